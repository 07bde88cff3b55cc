/**
 * The error pattern every meshd module follows: a class per failure family, a stable
 * `MESHD_E_*` code (metrics, access logs and docs/errors.md key on it), an optional hint that
 * tells the operator what to do, and the original `cause` kept for debugging.
 */

/** Every stable code with the one-line meaning that docs/errors.md must list (a test checks). */
export const ERROR_CODES = {
  MESHD_E_CONFIG: 'a configuration value (environment variable or flag) is missing or invalid',
  MESHD_E_INSTALL: 'meshctl install could not write or would overwrite an installed file',
  MESHD_E_RUNTIME: 'meshd was started on an unsupported Node.js runtime',
  MESHD_E_NATIVE_LOAD: 'the native socket addon could not be loaded (not built, or wrong platform)',
  MESHD_E_NETNS: 'entering or leaving a network namespace failed',
  MESHD_E_SOCKET: 'a socket operation of the native addon failed (socket, bind, listen, option)',
  MESHD_E_ORIGINAL_DST: 'the original destination of a redirected connection could not be read',
  MESHD_E_HBONE:
    'an HBONE tunnel to a peer could not be set up or broke (dial, TLS, peer identity, HTTP/2, timeout)',
  MESHD_E_HBONE_REFUSED: 'the HBONE peer answered CONNECT with an error status (400, 401, 503)',
  MESHD_E_COMMAND: 'an external command (ip, iptables, a CNI plugin) failed or timed out',
  MESHD_E_CAPTURE:
    'the capture rules of a workload namespace could not be applied, removed or read (iptables)',
  MESHD_E_LAB: 'the netns lab could not be built, found or removed',
  MESHD_E_CNI_PLUGIN: 'a CNI plugin run by the lab returned an error result',
  MESHD_E_SPIFFE_ID: 'a SPIFFE ID is malformed or belongs to another trust domain',
  MESHD_E_CSR: 'a certificate signing request was refused (shape, key type, signature, identity)',
  MESHD_E_SVID:
    'a certificate is not a valid X.509-SVID of this mesh or does not chain to its roots',
  MESHD_E_CA: 'the CA directory is missing, incomplete or would be overwritten',
  MESHD_E_CONTROL_PLANE: 'a call to meshd server failed (unreachable, refused, or an error status)',
  MESHD_E_JOIN: 'the agent has no valid node certificate and could not join the mesh',
  MESHD_E_NOT_FOUND: 'the named resource does not exist in the registry',
  MESHD_E_NOT_BUILT: 'the requested role or command is not part of this build yet',
  MESHD_E_CERT_ISSUE: 'no valid certificate for a workload identity could be issued or served',
  MESHD_E_JOIN_TOKEN: 'a join token was refused: malformed, unknown, expired or already used',
  MESHD_E_CLIENT_CERT:
    'a call to meshd server that needs a client certificate came without a valid one of this mesh',
  MESHD_E_FORBIDDEN:
    "the caller's identity may not do this (node authorization, admin-only calls, join node)",
  MESHD_E_BAD_REQUEST: 'a request argument is invalid (TTL, node name)',
  MESHD_E_SERVER_STATE:
    'a state file of meshd server (join tokens, workloads) is unreadable, invalid or not writable',
  MESHD_E_LISTEN:
    'a server socket could not listen on its address (port in use, address not local)',
  MESHD_E_INVALID_RESOURCE:
    'a resource (manifest, stored state or request) failed validation: YAML, kind, field, type, rule, duplicate',
  MESHD_E_STORE:
    'the resource store could not be opened, read or written (file store, its lock, etcd)',
  MESHD_E_CONFLICT:
    'a store commit was refused: an item changed since it was read (resourceVersion mismatch)',
  MESHD_E_COMPACTED:
    'a watch asked for revisions the store has compacted away; list again, watch from there',
  MESHD_E_AGENT_ADMIN:
    "an agent's admin endpoint could not be reached or read, or a saved dump of it is not one",
  MESHD_E_AGENT:
    "a waypoint could not register with, or get its certificate through, its host's agent",
  MESHD_E_THREAD:
    "one of the agent's extra data-path threads (MESHD_AGENT_THREADS) failed to start or stopped",
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface MeshdErrorOptions {
  cause?: unknown;
  /** What the operator can do about it; appended to the message. */
  hint?: string;
}

export class MeshdError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;

  constructor(code: ErrorCode, message: string, options: MeshdErrorOptions = {}) {
    super(options.hint ? `${message} (hint: ${options.hint})` : message, {
      cause: options.cause,
    });
    this.name = new.target.name;
    this.code = code;
    this.hint = options.hint;
  }
}

/** Stable, low-cardinality label for metrics and access logs ("error" for foreign errors). */
export function errorReason(err: unknown): string {
  if (err instanceof MeshdError) return err.code;
  if (err && typeof err === 'object' && 'code' in err && typeof err.code === 'string') {
    return err.code;
  }
  return 'error';
}

/** One line for a terminal: message plus the chain of causes, without stack traces. */
export function describeError(err: unknown): string {
  const parts: string[] = [];
  let current: unknown = err;
  for (let depth = 0; current !== undefined && depth < 5; depth++) {
    if (current instanceof Error) {
      const code = 'code' in current && typeof current.code === 'string' ? `${current.code}: ` : '';
      parts.push(`${code}${current.message}`);
      current = current.cause;
    } else {
      parts.push(String(current));
      current = undefined;
    }
  }
  return parts.join('\n  caused by: ');
}
