/**
 * What meshctl commands need to reach meshd server: defaults for --server and --ca-dir, and the
 * admin credentials of a CA directory. The client itself is shared with the agent
 * (daemon/proto IdentityClient).
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CA_FILES, CaFilesError, parseSpiffeId } from '../daemon/identity/index.js';
import type { ClientCredentials } from '../daemon/proto/index.js';

export { IdentityClient } from '../daemon/proto/index.js';

export const DEFAULT_SERVER = '127.0.0.1:15012';
export const DEFAULT_CA_DIR = '/etc/meshd/ca';

/** --server and --ca-dir defaults: MESHCTL_SERVER / MESHCTL_CA_DIR, else the standard places. */
export function defaultServer(env = process.env): string {
  return env.MESHCTL_SERVER || DEFAULT_SERVER;
}
export function defaultCaDir(env = process.env): string {
  return env.MESHCTL_CA_DIR || DEFAULT_CA_DIR;
}

function readCaFile(dir: string, file: string): string {
  try {
    return readFileSync(join(dir, file), 'utf8');
  } catch (cause) {
    throw new CaFilesError(
      `cannot read ${join(dir, file)}`,
      'pass --ca-dir (or set MESHCTL_CA_DIR) to the directory made by "meshctl ca init"',
      cause,
    );
  }
}

/** The admin credentials of a CA directory: admin.pem (chain), admin.key, bundle.pem. */
export function loadAdminCredentials(caDir: string): ClientCredentials {
  const certChainPem = readCaFile(caDir, CA_FILES.admin);
  const keyPem = readCaFile(caDir, CA_FILES.adminKey);
  const bundlePem = readCaFile(caDir, CA_FILES.bundle);
  let trustDomain: string;
  try {
    const leaf = new X509Certificate(certChainPem);
    const uri = /URI:(spiffe:\/\/[^,\s]+)/.exec(leaf.subjectAltName ?? '')?.[1] ?? '';
    trustDomain = parseSpiffeId(uri).trustDomain;
  } catch (cause) {
    throw new CaFilesError(
      `${join(caDir, CA_FILES.admin)} is not a meshd admin certificate`,
      undefined,
      cause,
    );
  }
  return { trustDomain, bundlePem, identity: { certChainPem, keyPem } };
}
