// Rotation under load: the server's CA and an agent's identity (joined with a token, renewing
// through CreateCertificate) with TTLs of seconds; 1000 mutual TLS 1.3 handshakes between two
// of the agent's workload identities, spread over at least three rotations, all succeed.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { connect, createSecureContext, createServer, type SecureContext } from 'node:tls';
import { loadAdminCredentials } from '../../ctl/client.js';
import { AgentIdentity, NODE_FILES } from '../../daemon/agent/index.js';
import { type IssuedCertificate, initCa, spiffeIdOfPeer } from '../../daemon/identity/index.js';
import { IdentityClient } from '../../daemon/proto/index.js';
import { type ServerHandle, startServer } from '../../daemon/server/index.js';
import { silentLogger } from '../../daemon/telemetry/index.js';

const TD = 'cluster.local';
const WEB = 'spiffe://cluster.local/ns/shop/sa/web';
const DB = 'spiffe://cluster.local/ns/shop/sa/db';
const TTL_MS = 3_000;
const HANDSHAKES = 1000;
const SPREAD_MS = 6_000;
const CONCURRENCY = 8;

let dir: string;
let server: ServerHandle;
let agent: AgentIdentity;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'meshd-rotation-'));
  const caDir = join(dir, 'ca');
  await initCa({ dir: caDir, trustDomain: TD });
  writeFileSync(join(dir, 'workloads.json'), JSON.stringify({ nodes: { n1: [WEB, DB] } }));
  server = await startServer(
    {
      listenAddress: '127.0.0.1',
      grpcPort: 0,
      monitoringPort: 0,
      dataDir: join(dir, 'data'),
      trustDomain: TD,
      logLevel: 'error',
      caDir,
      maxCertTtlMs: TTL_MS,
      nodeCertTtlMs: TTL_MS,
      workloadsFile: join(dir, 'workloads.json'),
      store: undefined,
    },
    { logger: silentLogger },
  );
  const admin = loadAdminCredentials(caDir);
  const address = `127.0.0.1:${server.grpcPort}`;
  const adminClient = new IdentityClient({ ...admin, server: address });
  const { token } = await adminClient.createJoinToken({ node: 'n1', ttlSeconds: 600 });
  adminClient.close();
  agent = await AgentIdentity.start({
    stateDir: join(dir, 'agent'),
    serverAddress: address,
    trustDomain: TD,
    nodeName: 'n1',
    joinToken: token,
    initialBundlePem: admin.bundlePem,
    workloadTtlSeconds: TTL_MS / 1000,
    nodeTtlSeconds: TTL_MS / 1000,
    bundleRefreshMs: 1_000,
  });
});

after(async () => {
  agent?.close();
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** One TLS context per certificate, made once and reused (as the data path will). */
function contexts() {
  const cache = new Map<string, SecureContext>();
  return async (identity: string): Promise<{ ctx: SecureContext; cert: IssuedCertificate }> => {
    const cert = await agent.certificate(identity);
    let ctx = cache.get(cert.serial);
    if (!ctx) {
      ctx = createSecureContext({
        key: cert.keyPem,
        cert: cert.certChainPem,
        ca: agent.roots,
        minVersion: 'TLSv1.3',
      });
      cache.set(cert.serial, ctx);
    }
    return { ctx, cert };
  };
}

test('the node joined once; its key is 0600 and its certificate is renewed like any other', () => {
  assert.equal(statSync(join(dir, 'agent', NODE_FILES.key)).mode & 0o777, 0o600);
  assert.equal(agent.list()[0]?.identity, 'spiffe://cluster.local/node/n1');
});

test(`${HANDSHAKES} mTLS handshakes over at least three certificate rotations all succeed`, async () => {
  const serverContext = contexts();
  const clientContext = contexts();
  const serverSerials = new Set<string>();
  const clientSerialsSeenByServer = new Set<string>();
  const tlsServer = createServer(
    {
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.3',
      SNICallback: (_name, cb) => {
        serverContext(DB).then(({ ctx, cert }) => {
          serverSerials.add(cert.serial);
          cb(null, ctx);
        }, cb);
      },
    },
    (socket) => {
      const peer = socket.getPeerX509Certificate();
      clientSerialsSeenByServer.add(peer?.serialNumber.toLowerCase() ?? '');
      socket.end(spiffeIdOfPeer(peer, TD));
    },
  );
  await new Promise<void>((r) => tlsServer.listen(0, '127.0.0.1', r));
  const port = (tlsServer.address() as { port: number }).port;

  const handshake = async (): Promise<void> => {
    const { ctx } = await clientContext(WEB);
    await new Promise<void>((resolve, reject) => {
      const socket = connect({
        host: '127.0.0.1',
        port,
        servername: 'mesh',
        secureContext: ctx,
        checkServerIdentity: (_host, cert) => {
          const id = spiffeIdOfPeer(new X509Certificate(cert.raw), TD);
          return id === DB ? undefined : new Error(`server is ${id}`);
        },
      });
      let answer = '';
      socket.setTimeout(5_000, () => socket.destroy(new Error('handshake timed out')));
      socket.on('data', (c: Buffer) => {
        answer += c.toString();
      });
      socket.on('end', () =>
        answer === WEB ? resolve() : reject(new Error(`server saw "${answer}"`)),
      );
      socket.on('error', reject);
    });
  };

  const failures: string[] = [];
  let done = 0;
  const started = Date.now();
  const worker = async (index: number) => {
    for (let i = index; i < HANDSHAKES; i += CONCURRENCY) {
      const due = started + (i * SPREAD_MS) / HANDSHAKES;
      const wait = due - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      await handshake().then(
        () => void done++,
        (err: Error) => void failures.push(err.message),
      );
    }
  };
  try {
    await Promise.all(Array.from({ length: CONCURRENCY }, (_, i) => worker(i)));
  } finally {
    tlsServer.close();
  }
  assert.deepEqual(failures.slice(0, 5), [], `${failures.length} handshakes failed`);
  assert.equal(done, HANDSHAKES);
  // Three rotations = at least four certificates on each side within the run.
  assert.ok(
    clientSerialsSeenByServer.size >= 4,
    `client certificates seen: ${clientSerialsSeenByServer.size}`,
  );
  assert.ok(serverSerials.size >= 4, `server certificates used: ${serverSerials.size}`);
});
