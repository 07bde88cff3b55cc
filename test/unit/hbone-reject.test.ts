// What a peer may throw at an HBONE server: not TLS, no or bad client certificates, no ALPN,
// stalled handshakes, bad requests, garbage instead of HTTP/2. Each is refused without a crash,
// reported through onRejected with a reason, and the server keeps serving good clients.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { type ClientHttp2Session, connect as h2connect } from 'node:http2';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { before, type TestContext, test } from 'node:test';
import {
  createSecureContext,
  type SecureContext,
  type TLSSocket,
  connect as tlsConnect,
} from 'node:tls';
import {
  type ConnectRequest,
  HboneError,
  HbonePool,
  HboneServer,
  type HboneServerLimits,
  hboneSecureContext,
  type RejectedInfo,
} from '../../daemon/hbone/index.js';
import {
  createCsr,
  exportPrivateKeyPem,
  generateKeyPair,
  leafValidity,
  parseCsr,
  parseSpiffeId,
  type SpiffeId,
  signSvid,
  toPem,
} from '../../daemon/identity/index.js';
import { issueTestSvid, makeTestCa, type TestCa } from '../support/pki.js';

const TD = 'cluster.local';
const SERVER_ID = 'spiffe://cluster.local/ns/db/sa/postgres';
const CLIENT_ID = 'spiffe://cluster.local/ns/shop/sa/web';

let ca: TestCa;
let serverCtx: SecureContext;
let clientCtx: SecureContext;
let foreignCaCtx: SecureContext;
let expiredCtx: SecureContext;
let otherDomainCtx: SecureContext;
/** Trusts the bundle but has no client certificate. */
let noCertCtx: SecureContext;

/** An SVID signed by `ca` directly (no CSR trust-domain check), valid from `now` for ttlMs. */
async function signedSvid(id: string, now: number, ttlMs: number): Promise<SecureContext> {
  const keys = await generateKeyPair();
  const csr = await parseCsr(await createCsr(keys, parseSpiffeId(CLIENT_ID).id), ca.trustDomain);
  const cert = await signSvid(
    ca.intermediate,
    id as SpiffeId,
    csr.publicKeyInfo,
    leafValidity(now, ttlMs, ca.intermediate.cert),
  );
  return hboneSecureContext({
    certChainPem: toPem('CERTIFICATE', cert.toSchema().toBER(false)) + ca.intermediatePem,
    keyPem: await exportPrivateKeyPem(keys.privateKey),
    rootsPem: ca.rootPem,
  });
}

before(async () => {
  ca = await makeTestCa(TD);
  const server = await issueTestSvid(ca, SERVER_ID);
  const client = await issueTestSvid(ca, CLIENT_ID);
  const ctx = (svid: typeof server, roots = ca.rootPem) =>
    hboneSecureContext({ certChainPem: svid.chainPem, keyPem: svid.keyPem, rootsPem: roots });
  serverCtx = ctx(server);
  noCertCtx = createSecureContext({ ca: ca.rootPem, minVersion: 'TLSv1.3' });
  clientCtx = ctx(client);
  // Trusts our root (so it gets as far as sending its certificate) but is signed by another CA.
  foreignCaCtx = ctx(await issueTestSvid(await makeTestCa(TD), CLIENT_ID));
  expiredCtx = await signedSvid(CLIENT_ID, Date.now() - 2 * 3600_000, 3600_000);
  otherDomainCtx = await signedSvid('spiffe://evil.example/ns/shop/sa/web', Date.now(), 3600_000);
});

// ---- fixture -------------------------------------------------------------------------------

interface Harness {
  hbone: HboneServer;
  port: number;
  upstreamPort: number;
  rejected: RejectedInfo[];
  requests: ConnectRequest[];
}

async function listen(server: Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as { port: number }).port;
}

function tcpConnect(port: number, allowHalfOpen = true): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1', allowHalfOpen });
    s.once('connect', () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

async function harness(t: TestContext, limits: Partial<HboneServerLimits> = {}): Promise<Harness> {
  const upstreamSockets = new Set<Socket>();
  const upstream = createServer({ allowHalfOpen: true }, (s) => {
    upstreamSockets.add(s);
    s.on('error', () => {});
    s.once('close', () => upstreamSockets.delete(s));
    s.pipe(s);
  });
  const upstreamPort = await listen(upstream);
  const rejected: RejectedInfo[] = [];
  const requests: ConnectRequest[] = [];
  const hbone = new HboneServer({
    trustDomain: TD,
    secureContext: () => serverCtx,
    onConnect: async (req) => {
      requests.push(req);
      return { status: 200, upstream: await tcpConnect(upstreamPort) };
    },
    onRejected: (info) => rejected.push(info),
    limits: { handshakeTimeoutMs: 2000, ...limits },
  });
  const listener = createServer({ allowHalfOpen: true });
  hbone.attach(listener);
  const port = await listen(listener);
  t.after(async () => {
    hbone.destroy();
    for (const s of upstreamSockets) s.destroy();
    await Promise.all([
      new Promise((r) => listener.close(r)),
      new Promise((r) => upstream.close(r)),
    ]);
  });
  return { hbone, port, upstreamPort, rejected, requests };
}

/** A TLS client that holds the connection until the server closes it (bounded). */
function tlsClient(
  port: number,
  options: { secureContext?: SecureContext; ALPNProtocols?: string[]; send?: Buffer } = {},
): Promise<{ secured: boolean; error: string | undefined }> {
  return new Promise((resolve) => {
    let secured = false;
    let error: string | undefined;
    const s: TLSSocket = tlsConnect({
      port,
      host: '127.0.0.1',
      secureContext: options.secureContext ?? noCertCtx,
      ALPNProtocols: options.ALPNProtocols ?? ['h2'],
      checkServerIdentity: () => undefined,
    });
    s.on('secureConnect', () => {
      secured = true;
      if (options.send) s.write(options.send);
    });
    s.on('data', () => {});
    s.on('error', (e) => {
      error = e.message;
    });
    const timer = setTimeout(() => s.destroy(), 3000);
    s.once('close', () => {
      clearTimeout(timer);
      resolve({ secured, error });
    });
  });
}

async function assertStillServes(h: Harness, t: TestContext): Promise<void> {
  const pool = new HbonePool({
    trustDomain: TD,
    secureContext: () => clientCtx,
    dial: () => tcpConnect(h.port),
  });
  t.after(() => pool.destroy());
  const tunnel = await pool.connect({
    key: {
      sourceIdentity: CLIENT_ID,
      sourceNetns: 'test',
      expectedIdentity: SERVER_ID,
      destination: `127.0.0.1:${h.port}`,
    },
    authority: `127.0.0.1:${h.upstreamPort}`,
  });
  const chunks: Buffer[] = [];
  tunnel.on('data', (c: Buffer) => chunks.push(c));
  tunnel.end('still serving');
  await once(tunnel, 'end');
  assert.equal(Buffer.concat(chunks).toString(), 'still serving');
}

function reasons(h: Harness): string[] {
  return h.rejected.map((r) => r.reason);
}

async function waitFor(pred: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

// ---- connections ---------------------------------------------------------------------------

test('plain TCP junk is refused as not-tls', async (t) => {
  const h = await harness(t);
  const s = await tcpConnect(h.port, false);
  s.on('error', () => {});
  s.on('data', () => {});
  s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  await once(s, 'close');
  await waitFor(() => h.rejected.length === 1);
  assert.deepEqual(reasons(h), ['not-tls']);
  assert.equal(h.rejected[0]?.kind, 'connection');
  assert.equal(h.rejected[0]?.remote.ip, '127.0.0.1');
  assert.equal(h.hbone.stats().connections, 0);
  await assertStillServes(h, t);
});

test('TLS without a client certificate is refused', async (t) => {
  const h = await harness(t);
  await tlsClient(h.port);
  await waitFor(() => h.rejected.length === 1);
  assert.deepEqual(reasons(h), ['no-client-certificate']);
  assert.equal(h.hbone.stats().sessions, 0);
});

test('a client certificate from another CA is refused', async (t) => {
  const h = await harness(t);
  await tlsClient(h.port, { secureContext: foreignCaCtx });
  await waitFor(() => h.rejected.length === 1);
  assert.deepEqual(reasons(h), ['untrusted-certificate']);
  assert.match(
    h.rejected[0]?.detail ?? '',
    /UNABLE_TO_GET_ISSUER_CERT|UNABLE_TO_VERIFY_LEAF_SIGNATURE/,
  );
  assert.equal(h.hbone.stats().sessionsTotal, 0);
});

test('an expired client certificate is refused', async (t) => {
  const h = await harness(t);
  await tlsClient(h.port, { secureContext: expiredCtx });
  await waitFor(() => h.rejected.length === 1);
  assert.deepEqual(reasons(h), ['certificate-not-valid-now']);
  assert.match(h.rejected[0]?.detail ?? '', /CERT_HAS_EXPIRED/);
});

test('a certificate of another trust domain (even from our CA) is refused', async (t) => {
  const h = await harness(t);
  await tlsClient(h.port, { secureContext: otherDomainCtx });
  await waitFor(() => h.rejected.length === 1);
  assert.deepEqual(reasons(h), ['invalid-svid']);
  assert.match(h.rejected[0]?.detail ?? '', /evil\.example/);
});

test('TLS without ALPN h2 is refused', async (t) => {
  const h = await harness(t);
  await tlsClient(h.port, { secureContext: clientCtx, ALPNProtocols: [] });
  await tlsClient(h.port, { secureContext: clientCtx, ALPNProtocols: ['http/1.1'] });
  await waitFor(() => h.rejected.length === 2);
  for (const r of h.rejected) assert.match(r.reason, /^(alpn|tls-handshake)$/, r.detail);
  assert.equal(h.rejected[0]?.reason, 'alpn');
  assert.equal(h.hbone.stats().sessionsTotal, 0);
});

test('a stalled handshake is cut at handshakeTimeoutMs; maxConnections holds', async (t) => {
  const h = await harness(t, { handshakeTimeoutMs: 150, maxConnections: 2 });
  const silent = await tcpConnect(h.port, false);
  const partial = await tcpConnect(h.port, false);
  for (const s of [silent, partial]) {
    s.on('error', () => {});
    s.on('data', () => {});
  }
  // Over the limit: reset at once (it may already fail the client's connect).
  const extra = connect({ port: h.port, host: '127.0.0.1' });
  extra.on('error', () => {});
  const extraClosed = new Promise((resolve) => extra.once('close', resolve));
  partial.write(Buffer.from([0x16, 0x03, 0x01])); // the start of a TLS record, then nothing
  await Promise.all([once(silent, 'close'), once(partial, 'close'), extraClosed]);
  await waitFor(() => h.rejected.length === 3);
  assert.deepEqual(reasons(h).sort(), [
    'handshake-timeout',
    'handshake-timeout',
    'max-connections',
  ]);
  assert.equal(h.hbone.stats().connections, 0);
  await assertStillServes(h, t);
});

test('garbage instead of the HTTP/2 preface after TLS ends the session, nothing else', async (t) => {
  const h = await harness(t);
  const result = await tlsClient(h.port, {
    secureContext: clientCtx,
    send: Buffer.from('PRI * HTTP/1.1\r\n\r\nXX\r\n\r\nthis is not HTTP/2 at all\0\0\0\0\0\0\0\0'),
  });
  assert.equal(result.secured, true);
  await waitFor(() => h.rejected.length === 1);
  assert.deepEqual(reasons(h), ['http2-protocol']);
  assert.equal(h.rejected[0]?.peer, CLIENT_ID);
  await waitFor(() => h.hbone.stats().sessions === 0);
  await assertStillServes(h, t);
});

test('a pool whose certificate the server refuses gets a coded error, not a hang', async (t) => {
  const h = await harness(t);
  const pool = new HbonePool({
    trustDomain: TD,
    secureContext: () => foreignCaCtx,
    dial: () => tcpConnect(h.port),
  });
  t.after(() => pool.destroy());
  const err = await pool
    .connect({
      key: {
        sourceIdentity: CLIENT_ID,
        sourceNetns: 'test',
        expectedIdentity: SERVER_ID,
        destination: `127.0.0.1:${h.port}`,
      },
      authority: `127.0.0.1:${h.upstreamPort}`,
    })
    .then(
      () => assert.fail('connected with a foreign certificate'),
      (e: unknown) => e,
    );
  assert.ok(err instanceof HboneError, String(err));
  assert.equal(err.code, 'MESHD_E_HBONE');
  assert.match(err.phase, /^(http2|tls)$/);
  assert.equal(pool.stats().setupFailures, 1);
  assert.equal(pool.stats().connections, 0);
  await waitFor(() => h.rejected.length === 1);
  assert.deepEqual(reasons(h), ['untrusted-certificate']);
});

// ---- requests ------------------------------------------------------------------------------

function h2Session(port: number): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = h2connect(`https://127.0.0.1:${port}`, {
      createConnection: () =>
        tlsConnect({
          port,
          host: '127.0.0.1',
          secureContext: clientCtx,
          ALPNProtocols: ['h2'],
          checkServerIdentity: () => undefined,
        }),
    });
    session.once('remoteSettings', () => resolve(session));
    session.once('error', reject);
  });
}

function status(
  session: ClientHttp2Session,
  headers: Record<string, string>,
): Promise<{ status: number; rstCode: number | undefined }> {
  return new Promise((resolve, reject) => {
    const stream = session.request(headers, { endStream: false });
    let code: number | undefined;
    stream.on('error', () => {});
    stream.once('response', (h) => {
      code = Number(h[':status']);
      stream.resume();
      stream.end();
    });
    stream.once('close', () =>
      code === undefined
        ? reject(new Error(`closed without a response (${stream.rstCode})`))
        : resolve({ status: code, rstCode: stream.rstCode }),
    );
  });
}

test('non-CONNECT → 405, bad authorities → 400, and the same session still tunnels', async (t) => {
  const h = await harness(t);
  const session = await h2Session(h.port);
  t.after(() => session.destroy());
  session.on('error', () => {});
  assert.equal((await status(session, { ':method': 'GET', ':path': '/' })).status, 405);
  assert.equal((await status(session, { ':method': 'POST', ':path': '/x' })).status, 405);
  for (const authority of ['db.local:5432', '127.0.0.1:0', '127.0.0.1', '[::1]', '1.2.3.4:99999']) {
    const r = await status(session, { ':method': 'CONNECT', ':authority': authority });
    assert.equal(r.status, 400, authority);
  }
  assert.equal(h.requests.length, 0, 'onConnect never saw a bad request');
  assert.deepEqual(reasons(h), [
    'method',
    'method',
    'bad-authority',
    'bad-authority',
    'bad-authority',
    'bad-authority',
    'bad-authority',
  ]);
  assert.ok(h.rejected.every((r) => r.kind === 'stream' && r.peer === CLIENT_ID));
  const good = await status(session, {
    ':method': 'CONNECT',
    ':authority': `127.0.0.1:${h.upstreamPort}`,
  });
  assert.equal(good.status, 200);
  assert.equal(h.hbone.stats().sessionsTotal, 1);
  assert.deepEqual(h.hbone.stats().responses, { '200': 1, '400': 5, '405': 2 });
});
