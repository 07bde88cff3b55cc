/**
 * Verb dispatch of the meshd-cni plugin. VERSION is answered per the CNI spec; the verbs that
 * need the agent (ADD, DEL, CHECK, STATUS) come with the enrollment issue and until then fail
 * with a CNI error, so a runtime wired to this build fails closed rather than silently.
 */
export const CNI_SUPPORTED_VERSIONS = ['0.4.0', '1.0.0', '1.1.0'] as const;

export interface CniOutcome {
  stdout: string;
  exitCode: number;
}

/** CNI well-known error codes (spec §Error) and our plugin-specific range (100+). */
const CNI_ERR_INVALID_ENV = 4;
const CNI_ERR_NOT_BUILT = 100;

function cniError(code: number, msg: string, details?: string): CniOutcome {
  return {
    stdout: `${JSON.stringify({ cniVersion: '1.1.0', code, msg, details })}\n`,
    exitCode: 1,
  };
}

export function handleCni(env: Readonly<Record<string, string | undefined>>): CniOutcome {
  const verb = env.CNI_COMMAND;
  switch (verb) {
    case 'VERSION':
      return {
        stdout: `${JSON.stringify({ cniVersion: '1.1.0', supportedVersions: CNI_SUPPORTED_VERSIONS })}\n`,
        exitCode: 0,
      };
    case 'ADD':
    case 'DEL':
    case 'CHECK':
    case 'STATUS':
    case 'GC':
      return cniError(
        CNI_ERR_NOT_BUILT,
        `meshd-cni ${verb} is not part of this build yet`,
        'enrollment through CNI arrives with the enrollment issue; remove meshd-cni from the chain',
      );
    default:
      return cniError(
        CNI_ERR_INVALID_ENV,
        `CNI_COMMAND ${verb === undefined ? 'is not set' : `"${verb}" is not a CNI verb`}`,
        'expected one of ADD, DEL, CHECK, STATUS, GC, VERSION',
      );
  }
}
