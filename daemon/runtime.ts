import { MeshdError } from './errors.js';

export const MIN_NODE_MAJOR = 24;

/** meshd terminates mTLS: refuse runtimes (and their bundled OpenSSL) past end of life. */
export function assertSupportedRuntime(version = process.versions.node): void {
  const major = Number(version.split('.')[0]);
  if (!(major >= MIN_NODE_MAJOR)) {
    throw new MeshdError(
      'MESHD_E_RUNTIME',
      `Node.js ${version} is not supported (meshd needs Node ${MIN_NODE_MAJOR} LTS)`,
      {
        hint: 'start it through bin/meshd, bin/meshctl or npm scripts: they use node_modules/.bin/node',
      },
    );
  }
}
