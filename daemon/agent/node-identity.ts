/**
 * The node's own certificate: read from the state directory when still valid, otherwise
 * obtained once with a join token. Written with mode 0600 (key) so a restart needs no token.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MeshdError } from '../errors.js';
import { writeFileAtomic } from '../files.js';
import {
  createCsr,
  exportPrivateKeyPem,
  generateKeyPair,
  type IssuedCertificate,
  nodeId,
} from '../identity/index.js';
import { IdentityClient, toIssued } from '../proto/index.js';

export const NODE_FILES = { cert: 'node.pem', key: 'node.key', bundle: 'bundle.pem' } as const;

export interface NodeIdentityOptions {
  stateDir: string;
  serverAddress: string;
  trustDomain: string;
  nodeName: string;
  /** The bundle to trust before the first join (given out of band, e.g. the CA's bundle.pem). */
  initialBundlePem?: string;
  joinToken?: string;
}

export interface NodeCredentials {
  cert: IssuedCertificate;
  roots: string[];
}

export function saveNodeCredentials(stateDir: string, creds: NodeCredentials): void {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  writeFileAtomic(join(stateDir, NODE_FILES.key), creds.cert.keyPem, 0o600);
  writeFileAtomic(join(stateDir, NODE_FILES.cert), creds.cert.certChainPem, 0o644);
  writeFileAtomic(join(stateDir, NODE_FILES.bundle), creds.roots.join(''), 0o644);
}

function splitPem(text: string): string[] {
  return [...text.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g)].map(
    (m) => (m[0].endsWith('\n') ? m[0] : `${m[0]}\n`),
  );
}

/** The saved credentials if they are present, verify against the saved bundle and are unexpired. */
function loadSaved(options: NodeIdentityOptions): NodeCredentials | undefined {
  const path = (f: string) => join(options.stateDir, f);
  if (!existsSync(path(NODE_FILES.cert)) || !existsSync(path(NODE_FILES.key))) return undefined;
  const roots = splitPem(readFileSync(path(NODE_FILES.bundle), 'utf8'));
  try {
    const cert = toIssued(
      nodeId(options.trustDomain, options.nodeName),
      readFileSync(path(NODE_FILES.cert), 'utf8'),
      readFileSync(path(NODE_FILES.key), 'utf8'),
      roots,
      options.trustDomain,
    );
    return { cert, roots };
  } catch {
    return undefined; // expired or from another CA: join again
  }
}

export async function loadOrJoin(options: NodeIdentityOptions): Promise<NodeCredentials> {
  const saved = loadSaved(options);
  if (saved) return saved;
  if (!options.joinToken || !options.initialBundlePem) {
    throw new MeshdError(
      'MESHD_E_JOIN',
      `node ${options.nodeName} has no valid certificate in ${options.stateDir} and cannot join: ${
        options.joinToken ? 'MESHD_CA_BUNDLE is not set' : 'MESHD_JOIN_TOKEN is not set'
      }`,
      {
        hint: `make a token with "meshctl token create --node ${options.nodeName}" and pass the CA's bundle.pem`,
      },
    );
  }
  return joinWithToken(options, options.joinToken, options.initialBundlePem);
}

async function joinWithToken(
  options: NodeIdentityOptions,
  token: string,
  bundlePem: string,
): Promise<NodeCredentials> {
  const id = nodeId(options.trustDomain, options.nodeName);
  const keys = await generateKeyPair();
  const client = new IdentityClient({
    server: options.serverAddress,
    trustDomain: options.trustDomain,
    bundlePem,
  });
  try {
    const answer = await client.join({ token, csr: Buffer.from(await createCsr(keys, id)) });
    const roots = answer.trustBundle.roots;
    const cert = toIssued(
      id,
      answer.certChain.join(''),
      await exportPrivateKeyPem(keys.privateKey),
      roots,
      options.trustDomain,
    );
    const creds = { cert, roots };
    saveNodeCredentials(options.stateDir, creds);
    return creds;
  } catch (cause) {
    throw new MeshdError(
      'MESHD_E_JOIN',
      `node ${options.nodeName} could not join via ${options.serverAddress}`,
      { cause },
    );
  } finally {
    client.close();
  }
}
