/** An in-process meshd server with a fresh CA and file store, and clients for its callers. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadAdminCredentials } from '../../ctl/client.js';
import type { ServerConfig } from '../../daemon/config.js';
import {
  createCsr,
  exportPrivateKeyPem,
  generateKeyPair,
  initCa,
  nodeId,
} from '../../daemon/identity/index.js';
import {
  type ClientCredentials,
  IdentityClient,
  RegistryClient,
} from '../../daemon/proto/index.js';
import { type ServerDeps, type ServerHandle, startServer } from '../../daemon/server/index.js';
import { silentLogger } from '../../daemon/telemetry/index.js';

export const TD = 'cluster.local';

export interface TestServer {
  dir: string;
  caDir: string;
  server: ServerHandle;
  address: string;
  admin: ClientCredentials;
  registry(creds?: ClientCredentials): RegistryClient;
  /** Joins `node` and returns its credentials (node certificate). */
  nodeCredentials(node: string): Promise<ClientCredentials>;
  close(): Promise<void>;
}

/** Makes a join token with the admin credentials and joins `node`; its node credentials. */
export async function joinNode(
  admin: ClientCredentials,
  address: string,
  node: string,
): Promise<ClientCredentials> {
  const adminClient = new IdentityClient({ ...admin, server: address });
  const anon = new IdentityClient({ trustDomain: TD, bundlePem: admin.bundlePem, server: address });
  try {
    const { token } = await adminClient.createJoinToken({ node, ttlSeconds: 600 });
    const keys = await generateKeyPair();
    const answer = await anon.join({
      token,
      csr: Buffer.from(await createCsr(keys, nodeId(TD, node))),
    });
    return {
      trustDomain: TD,
      bundlePem: admin.bundlePem,
      identity: {
        certChainPem: answer.certChain.join(''),
        keyPem: await exportPrivateKeyPem(keys.privateKey),
      },
    };
  } finally {
    adminClient.close();
    anon.close();
  }
}

export function serverConfig(
  dir: string,
  caDir: string,
  overrides: Partial<ServerConfig> = {},
): ServerConfig {
  return {
    listenAddress: '127.0.0.1',
    grpcPort: 0,
    monitoringPort: 0,
    dataDir: join(dir, 'data'),
    trustDomain: TD,
    logLevel: 'error',
    caDir,
    maxCertTtlMs: 24 * 3600_000,
    nodeCertTtlMs: 24 * 3600_000,
    workloadsFile: undefined,
    store: undefined,
    ...overrides,
  };
}

export async function startTestServer(
  overrides: Partial<ServerConfig> = {},
  deps: ServerDeps = {},
): Promise<TestServer> {
  const dir = mkdtempSync(join(tmpdir(), 'meshd-registry-'));
  const caDir = join(dir, 'ca');
  await initCa({ dir: caDir, trustDomain: TD });
  const server = await startServer(serverConfig(dir, caDir, overrides), {
    logger: silentLogger,
    ...deps,
  });
  const address = `127.0.0.1:${server.grpcPort}`;
  const admin = loadAdminCredentials(caDir);
  const clients: { close(): void }[] = [];
  const track = <C extends { close(): void }>(c: C) => {
    clients.push(c);
    return c;
  };
  return {
    dir,
    caDir,
    server,
    address,
    admin,
    registry: (creds = admin) =>
      track(new RegistryClient({ ...creds, server: address, timeoutMs: 10_000 })),
    nodeCredentials: (node) => joinNode(admin, address, node),
    async close() {
      for (const c of clients) c.close();
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const ns = (name: string, labels: Record<string, string> = {}) => ({
  apiVersion: 'meshd.io/v1alpha1',
  kind: 'Namespace',
  metadata: { name, labels },
});

export const workload = (
  name: string,
  node: string,
  ip: string,
  labels: Record<string, string> = {},
) => ({
  apiVersion: 'meshd.io/v1alpha1',
  kind: 'Workload',
  metadata: { name, namespace: 'shop', labels },
  spec: { node, addresses: [ip], serviceAccount: name },
});

export const service = (name: string, vip: string, app: string) => ({
  apiVersion: 'meshd.io/v1alpha1',
  kind: 'Service',
  metadata: { name, namespace: 'shop' },
  spec: {
    addresses: [vip],
    ports: [{ port: 80, targetPort: 8080 }],
    selector: { matchLabels: { app } },
  },
});

export const json = (...resources: object[]) => resources.map((r) => JSON.stringify(r));
