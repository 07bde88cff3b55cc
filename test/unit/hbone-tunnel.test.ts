// HBONE end to end on loopback: a pool (client) opens CONNECT tunnels through an HboneServer
// to plain TCP upstreams. Bytes, half-close, identities, headers, statuses, pooling, idle
// close and GOAWAY behave as DESIGN §3/§4 promise.
import assert from 'node:assert/strict';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, before, type TestContext, test } from 'node:test';
import { type SecureContext, TLSSocket } from 'node:tls';
import {
  abortSide,
  type ConnectDecision,
  type ConnectRequest,
  formatBaggage,
  formatForwarded,
  HboneError,
  HbonePool,
  type HbonePoolLimits,
  HboneRefusedError,
  HboneServer,
  type HboneServerOptions,
  hboneSecureContext,
  type PoolKey,
  splice,
} from '../../daemon/hbone/index.js';
import { issueTestSvid, makeTestCa, type TestCa } from '../support/pki.js';

const TD = 'cluster.local';
const SERVER_ID = 'spiffe://cluster.local/ns/db/sa/postgres';
const CLIENT_ID = 'spiffe://cluster.local/ns/shop/sa/web';

let ca: TestCa;
let serverCtx: SecureContext;
let clientCtx: SecureContext;
/** The client SVID's leaf, DER (its chain also carries the intermediate). */
let clientLeafDer: Buffer;

before(async () => {
  ca = await makeTestCa(TD);
  const server = await issueTestSvid(ca, SERVER_ID);
  const client = await issueTestSvid(ca, CLIENT_ID);
  serverCtx = hboneSecureContext({
    certChainPem: server.chainPem,
    keyPem: server.keyPem,
    rootsPem: ca.rootPem,
  });
  clientLeafDer = new X509Certificate(client.chainPem).raw;
  clientCtx = hboneSecureContext({
    certChainPem: client.chainPem,
    keyPem: client.keyPem,
    rootsPem: ca.rootPem,
  });
});

// ---- fixture -------------------------------------------------------------------------------

type Cleanup = () => unknown;
function cleanups(t: TestContext): (fn: Cleanup) => void {
  const list: Cleanup[] = [];
  t.after(async () => {
    for (const fn of list.reverse()) await fn();
  });
  return (fn) => list.push(fn);
}

/** A TCP server on 127.0.0.1 whose sockets keep their write half open after the peer's FIN. */
async function tcpServer(
  defer: (fn: Cleanup) => void,
  onSocket: (s: Socket) => void,
): Promise<{ server: Server; port: number; sockets: Set<Socket> }> {
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.once('close', () => sockets.delete(s));
    onSocket(s);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  defer(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  });
  return { server, port: (server.address() as { port: number }).port, sockets };
}

function tcpConnect(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    s.once('connect', () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

const echo = (s: Socket) => s.pipe(s);

/** An HboneServer behind a loopback listener; onConnect defaults to "connect to upstreamPort". */
async function hboneServer(
  defer: (fn: Cleanup) => void,
  options: Partial<HboneServerOptions> & { upstreamPort?: number },
): Promise<{ hbone: HboneServer; port: number; listener: Server; requests: ConnectRequest[] }> {
  const requests: ConnectRequest[] = [];
  const onConnect =
    options.onConnect ??
    (async (): Promise<ConnectDecision> => ({
      status: 200,
      upstream: await tcpConnect(options.upstreamPort ?? 0),
    }));
  const hbone = new HboneServer({
    trustDomain: TD,
    secureContext: () => serverCtx,
    ...options,
    onConnect: (req) => {
      requests.push(req);
      return onConnect(req);
    },
  });
  const listener = createServer({ allowHalfOpen: true });
  hbone.attach(listener);
  listener.listen(0, '127.0.0.1');
  await once(listener, 'listening');
  defer(async () => {
    hbone.destroy();
    await new Promise((r) => listener.close(r));
  });
  return { hbone, port: (listener.address() as { port: number }).port, listener, requests };
}

function keyFor(port: number, expectedIdentity = SERVER_ID): PoolKey {
  return {
    sourceIdentity: CLIENT_ID,
    sourceNetns: '/proc/self/ns/net',
    expectedIdentity,
    destination: `127.0.0.1:${port}`,
  };
}

function hbonePool(
  defer: (fn: Cleanup) => void,
  limits: Partial<HbonePoolLimits> = {},
  dialed?: (key: PoolKey) => void,
): HbonePool {
  const pool = new HbonePool({
    trustDomain: TD,
    secureContext: (id) => {
      assert.equal(id, CLIENT_ID);
      return clientCtx;
    },
    dial: (key) => {
      dialed?.(key);
      return tcpConnect(Number(key.destination.split(':')[1]));
    },
    limits,
  });
  defer(() => pool.destroy());
  return pool;
}

/** Whether the socket emits 'close' (or has) within `ms`: a socket that never does leaks. */
function closesWithin(socket: Socket, ms: number): Promise<boolean> {
  if (socket.closed) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.once('end', () => resolve(Buffer.concat(chunks)));
    stream.once('error', reject);
  });
}

function waitFor(pred: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const tick = () => {
      if (pred()) resolve();
      else if (Date.now() > deadline) reject(new Error('condition not met in time'));
      else setTimeout(tick, 10);
    };
    tick();
  });
}

after(() => {
  // every test closes what it opened; nothing should keep the loop alive
});

// ---- data path -----------------------------------------------------------------------------

test('the server reads the client certificate without getPeerX509Certificate, parsed on demand', async (t) => {
  // Node 24's getPeerX509Certificate() leaves a parsed copy of the client's intermediate behind
  // per call (server side, a client sending its chain): ~5 KiB per HBONE handshake, for good.
  t.mock.method(TLSSocket.prototype, 'getPeerX509Certificate', () => {
    throw new Error('getPeerX509Certificate leaks the peer chain on the server side');
  });
  const defer = cleanups(t);
  const upstream = await tcpServer(defer, echo);
  const { port, requests } = await hboneServer(defer, { upstreamPort: upstream.port });
  const pool = hbonePool(defer);
  const tunnel = await pool.connect({ key: keyFor(port), authority: `127.0.0.1:${upstream.port}` });
  tunnel.end('ping');
  assert.equal((await collect(tunnel)).toString(), 'ping');
  const peer = requests[0]?.peer;
  assert.ok(peer);
  assert.equal(peer.spiffeId, CLIENT_ID);
  assert.ok(peer.certificate.raw.equals(clientLeafDer), 'the leaf, not the intermediate');
  assert.equal(peer.certificate, peer.certificate, 'parsed once');
});

test('round trip; the server sees the client SPIFFE ID, no SNI and the request headers', async (t) => {
  const defer = cleanups(t);
  const upstream = await tcpServer(defer, echo);
  const seenTls: { servername: unknown; protocol: unknown; alpn: unknown }[] = [];
  const { port, requests } = await hboneServer(defer, {
    onConnect: async (req) => {
      const tlsSocket = req.stream.session?.socket as TLSSocket;
      seenTls.push({
        servername: tlsSocket.servername,
        protocol: tlsSocket.getProtocol(),
        alpn: tlsSocket.alpnProtocol,
      });
      return { status: 200, upstream: await tcpConnect(upstream.port) };
    },
  });
  const pool = hbonePool(defer);
  const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
  const tunnel = await pool.connect({
    key: keyFor(port),
    authority: `127.0.0.1:${upstream.port}`,
    headers: {
      forwarded: formatForwarded('10.1.2.3', 40_000),
      baggage: formatBaggage({ 'k8s.namespace.name': 'shop', 'k8s.workload.name': 'web' }),
      traceparent,
    },
  });
  tunnel.end('ping');
  assert.equal((await collect(tunnel)).toString(), 'ping');
  const [req] = requests;
  assert.ok(req);
  assert.equal(req.peer.spiffeId, CLIENT_ID);
  assert.match(req.peer.certificate.subjectAltName ?? '', /URI:spiffe:\/\/cluster.local\/ns\/shop/);
  assert.deepEqual(req.authority, { ip: '127.0.0.1', port: upstream.port, family: 4 });
  assert.equal(req.source.ip, '127.0.0.1');
  assert.deepEqual(req.forwardedFor, { ip: '10.1.2.3', port: 40_000 });
  assert.deepEqual(req.baggage, { 'k8s.namespace.name': 'shop', 'k8s.workload.name': 'web' });
  assert.equal(req.traceparent, traceparent);
  assert.equal(req.headers[':method'], 'CONNECT');
  assert.ok(!seenTls[0]?.servername, `no SNI expected, got ${seenTls[0]?.servername}`);
  assert.equal(seenTls[0]?.protocol, 'TLSv1.3');
  assert.equal(seenTls[0]?.alpn, 'h2');

  // Without a traceparent the client makes one.
  const second = await pool.connect({ key: keyFor(port), authority: `127.0.0.1:${upstream.port}` });
  second.end();
  await collect(second);
  assert.match(requests[1]?.traceparent ?? '', /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  assert.notEqual(requests[1]?.traceparent, traceparent);
});

test('64 MiB through the tunnel and back arrive intact (sha256)', async (t) => {
  const defer = cleanups(t);
  const upstream = await tcpServer(defer, echo);
  const { port } = await hboneServer(defer, { upstreamPort: upstream.port });
  const pool = hbonePool(defer);
  const tunnel = await pool.connect({ key: keyFor(port), authority: `127.0.0.1:${upstream.port}` });
  const sent = createHash('sha256');
  const received = createHash('sha256');
  let receivedBytes = 0;
  const done = new Promise<void>((resolve, reject) => {
    tunnel.on('data', (c: Buffer) => {
      received.update(c);
      receivedBytes += c.length;
    });
    tunnel.once('end', resolve);
    tunnel.once('error', reject);
  });
  const chunk = 256 * 1024;
  const total = 64 * 1024 * 1024;
  for (let offset = 0; offset < total; offset += chunk) {
    const buf = randomBytes(chunk);
    sent.update(buf);
    if (!tunnel.write(buf)) await once(tunnel, 'drain');
  }
  tunnel.end();
  await done;
  assert.equal(receivedBytes, total);
  assert.equal(received.digest('hex'), sent.digest('hex'));
});

test('half-close: the client ends first; the upstream sees the end and its reply still arrives', async (t) => {
  const defer = cleanups(t);
  const upstream = await tcpServer(defer, (s) => {
    collect(s).then((got) => {
      setTimeout(() => s.end(`got ${got.length} bytes: ${got}`), 50);
    });
  });
  const { port } = await hboneServer(defer, { upstreamPort: upstream.port });
  const pool = hbonePool(defer);
  const tunnel = await pool.connect({ key: keyFor(port), authority: `127.0.0.1:${upstream.port}` });
  tunnel.end('hello');
  assert.equal((await collect(tunnel)).toString(), 'got 5 bytes: hello');
});

test('half-close: the upstream ends first; the client keeps sending and the upstream gets it', async (t) => {
  const defer = cleanups(t);
  let upstreamGot: Promise<Buffer> | undefined;
  const upstream = await tcpServer(defer, (s) => {
    upstreamGot = collect(s);
    s.end('bye');
  });
  const { port } = await hboneServer(defer, { upstreamPort: upstream.port });
  const pool = hbonePool(defer);
  const tunnel = await pool.connect({ key: keyFor(port), authority: `127.0.0.1:${upstream.port}` });
  assert.equal((await collect(tunnel)).toString(), 'bye');
  await new Promise((r) => setTimeout(r, 50));
  tunnel.write('still ');
  tunnel.end('talking');
  await waitFor(() => upstreamGot !== undefined);
  assert.equal((await upstreamGot)?.toString(), 'still talking');
  await waitFor(() => tunnel.destroyed);
  assert.equal((tunnel as unknown as { rstCode?: number }).rstCode, 0, 'closed without a reset');
});

test('server speaks first: the upstream banner arrives before the client writes', async (t) => {
  const defer = cleanups(t);
  const upstream = await tcpServer(defer, (s) => {
    s.write('220 banner\r\n');
    collect(s).then(() => s.end());
  });
  const { port } = await hboneServer(defer, { upstreamPort: upstream.port });
  const pool = hbonePool(defer);
  const tunnel = await pool.connect({ key: keyFor(port), authority: `127.0.0.1:${upstream.port}` });
  const [banner] = (await once(tunnel, 'data')) as [Buffer];
  assert.equal(banner.toString(), '220 banner\r\n');
  tunnel.end();
  await collect(tunnel);
});

// ---- identities and statuses ---------------------------------------------------------------

test('the client refuses a server whose SPIFFE ID is not the expected one', async (t) => {
  const defer = cleanups(t);
  const upstream = await tcpServer(defer, echo);
  const { port, requests } = await hboneServer(defer, { upstreamPort: upstream.port });
  const pool = hbonePool(defer);
  const err = await pool
    .connect({
      key: keyFor(port, 'spiffe://cluster.local/ns/db/sa/mysql'),
      authority: `127.0.0.1:${upstream.port}`,
    })
    .then(
      () => assert.fail('connected to the wrong identity'),
      (e: unknown) => e,
    );
  assert.ok(err instanceof HboneError, String(err));
  assert.equal(err.code, 'MESHD_E_HBONE');
  assert.equal(err.phase, 'identity');
  assert.match(err.message, /ns\/db\/sa\/postgres, expected .*ns\/db\/sa\/mysql/);
  assert.equal(requests.length, 0);
  assert.equal(pool.stats().connections, 0);
});

test('401, 400 and 503 decisions reach the client as coded errors with the status', async (t) => {
  const defer = cleanups(t);
  const closedPort = await (async () => {
    const s = createServer().listen(0, '127.0.0.1');
    await once(s, 'listening');
    const p = (s.address() as { port: number }).port;
    await new Promise((r) => s.close(r));
    return p;
  })();
  const { port, hbone } = await hboneServer(defer, {
    onConnect: async (req): Promise<ConnectDecision> => {
      if (req.authority.port === 1) return { status: 401, reason: 'denied by policy deny-all' };
      if (req.authority.port === 2) return { status: 400, reason: 'not an address of db' };
      try {
        return { status: 200, upstream: await tcpConnect(req.authority.port) };
      } catch (err) {
        return { status: 503, reason: String(err) };
      }
    },
  });
  const pool = hbonePool(defer);
  for (const [authority, status] of [
    ['127.0.0.1:1', 401],
    ['127.0.0.1:2', 400],
    [`127.0.0.1:${closedPort}`, 503],
  ] as const) {
    const err = await pool.connect({ key: keyFor(port), authority }).then(
      () => assert.fail(`${authority} connected`),
      (e: unknown) => e,
    );
    assert.ok(err instanceof HboneRefusedError, String(err));
    assert.equal(err.code, 'MESHD_E_HBONE_REFUSED');
    assert.equal(err.status, status);
  }
  assert.deepEqual(pool.stats().refused, { '400': 1, '401': 1, '503': 1 });
  assert.deepEqual(hbone.stats().responses, { '400': 1, '401': 1, '503': 1 });
  // Refusals do not cost the connection: all three went over one session, which stays usable.
  assert.equal(pool.stats().handshakes, 1);
  await waitFor(() => pool.stats().streams === 0);
  assert.equal(hbone.stats().rejected['http2-protocol'], undefined);
});

test('200 is sent only after the upstream connect succeeded', async (t) => {
  const defer = cleanups(t);
  const upstream = await tcpServer(defer, echo);
  let upstreamConnectedAt = 0;
  const { port } = await hboneServer(defer, {
    onConnect: async (): Promise<ConnectDecision> => {
      await new Promise((r) => setTimeout(r, 300)); // an application slow to accept
      const socket = await tcpConnect(upstream.port);
      upstreamConnectedAt = performance.now();
      return { status: 200, upstream: socket };
    },
  });
  const pool = hbonePool(defer);
  const started = performance.now();
  const tunnel = await pool.connect({ key: keyFor(port), authority: `127.0.0.1:${upstream.port}` });
  const resolvedAt = performance.now();
  assert.ok(upstreamConnectedAt > 0 && upstreamConnectedAt <= resolvedAt);
  assert.ok(resolvedAt - started >= 290, `resolved after ${resolvedAt - started} ms`);
  tunnel.end('x');
  assert.equal((await collect(tunnel)).toString(), 'x');
});

// ---- pooling -------------------------------------------------------------------------------

test('200 concurrent tunnels to one destination share 2 HTTP/2 connections, set up one at a time', async (t) => {
  const defer = cleanups(t);
  const upstream = await tcpServer(defer, echo);
  const { port, hbone } = await hboneServer(defer, { upstreamPort: upstream.port });
  let dials = 0;
  const pool = hbonePool(defer, { maxStreamsPerConnection: 100 }, () => dials++);
  const tunnels = await Promise.all(
    Array.from({ length: 200 }, () =>
      pool.connect({ key: keyFor(port), authority: `127.0.0.1:${upstream.port}` }),
    ),
  );
  const stats = pool.stats();
  assert.equal(stats.connections, 2);
  assert.equal(pool.connections(keyFor(port)), 2);
  assert.equal(stats.streams, 200);
  assert.equal(stats.handshakes, 2);
  assert.equal(dials, 2);
  assert.equal(stats.peakSetupsPerKey, 1, 'never two set-ups for one key at once');
  assert.equal(hbone.stats().sessions, 2);
  assert.equal(hbone.stats().streams, 200);
  const replies = await Promise.all(
    tunnels.map((tunnel, i) => {
      tunnel.end(`n${i}`);
      return collect(tunnel);
    }),
  );
  replies.forEach((r, i) => {
    assert.equal(r.toString(), `n${i}`);
  });
  await waitFor(() => pool.stats().streams === 0 && hbone.stats().streams === 0);
  assert.equal(pool.stats().connections, 2, 'connections stay pooled while not idle');
});

test('the peer’s lower SETTINGS_MAX_CONCURRENT_STREAMS wins', async (t) => {
  const defer = cleanups(t);
  const upstream = await tcpServer(defer, echo);
  const { port } = await hboneServer(defer, {
    upstreamPort: upstream.port,
    limits: { maxStreamsPerConnection: 3 },
  });
  const pool = hbonePool(defer, { maxStreamsPerConnection: 100 });
  const tunnels = await Promise.all(
    Array.from({ length: 7 }, () =>
      pool.connect({ key: keyFor(port), authority: `127.0.0.1:${upstream.port}` }),
    ),
  );
  assert.equal(pool.stats().connections, 3);
  for (const tunnel of tunnels) tunnel.end();
  await Promise.all(tunnels.map(collect));
});

test('idle connections close after idleTimeoutMs; the next tunnel opens a new one', async (t) => {
  const defer = cleanups(t);
  const upstream = await tcpServer(defer, echo);
  const { port, hbone } = await hboneServer(defer, { upstreamPort: upstream.port });
  const pool = hbonePool(defer, {
    idleTimeoutMs: 150,
    keepaliveIntervalMs: 20,
    keepaliveTimeoutMs: 1000,
  });
  const tunnel = await pool.connect({ key: keyFor(port), authority: `127.0.0.1:${upstream.port}` });
  await new Promise((r) => setTimeout(r, 250)); // busy: not idle, keepalive PINGs answered
  assert.equal(pool.connections(keyFor(port)), 1);
  tunnel.end('a');
  await collect(tunnel);
  const ended = performance.now();
  await waitFor(() => pool.connections(keyFor(port)) === 0);
  assert.ok(performance.now() - ended >= 100, 'closed only after the idle timeout');
  await waitFor(() => hbone.stats().sessions === 0);
  assert.equal(pool.stats().keys, 0, 'no empty entries left behind');
  const again = await pool.connect({ key: keyFor(port), authority: `127.0.0.1:${upstream.port}` });
  again.end('b');
  assert.equal((await collect(again)).toString(), 'b');
  assert.equal(pool.stats().handshakes, 2);
});

test('after a burst, surplus idle connections close soon; one stays for the full idle timeout', async (t) => {
  const defer = cleanups(t);
  const upstream = await tcpServer(defer, echo);
  const { port, hbone } = await hboneServer(defer, { upstreamPort: upstream.port });
  const pool = hbonePool(defer, {
    maxStreamsPerConnection: 1,
    idleTimeoutMs: 60_000,
    surplusIdleTimeoutMs: 150,
  });
  const open = () => pool.connect({ key: keyFor(port), authority: `127.0.0.1:${upstream.port}` });
  const burst = await Promise.all([open(), open(), open()]);
  assert.equal(pool.connections(keyFor(port)), 3);
  for (const tunnel of burst) tunnel.end('x');
  await Promise.all(burst.map(collect));
  const ended = performance.now();
  await waitFor(() => pool.connections(keyFor(port)) === 1);
  assert.ok(performance.now() - ended >= 100, 'surplus closed only after their idle timeout');
  await waitFor(() => hbone.stats().sessions === 1);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(pool.connections(keyFor(port)), 1, 'the last one is kept');
  const again = await open();
  again.end('y');
  assert.equal((await collect(again)).toString(), 'y');
  assert.equal(pool.stats().handshakes, 3, 'the next tunnel reuses the kept connection');
});

test('GOAWAY: a graceful server close lets live tunnels finish; new ones go to a new session', async (t) => {
  const defer = cleanups(t);
  const upstream = await tcpServer(defer, echo);
  const connectUpstream = async (): Promise<ConnectDecision> => ({
    status: 200,
    upstream: await tcpConnect(upstream.port),
  });
  // One listener; its connections go to whichever HboneServer is current (a restart, say).
  const first = new HboneServer({
    trustDomain: TD,
    secureContext: () => serverCtx,
    onConnect: connectUpstream,
  });
  const second = new HboneServer({
    trustDomain: TD,
    secureContext: () => serverCtx,
    onConnect: connectUpstream,
  });
  let current = first;
  const listener = createServer({ allowHalfOpen: true }, (s) => current.handle(s));
  listener.listen(0, '127.0.0.1');
  await once(listener, 'listening');
  defer(async () => {
    first.destroy();
    second.destroy();
    await new Promise((r) => listener.close(r));
  });
  const port = (listener.address() as { port: number }).port;
  const pool = hbonePool(defer);
  const live = await pool.connect({ key: keyFor(port), authority: `127.0.0.1:${upstream.port}` });
  live.write('before ');

  current = second;
  const closed = first.close();
  await waitFor(() => pool.stats().goaways === 1);

  const fresh = await pool.connect({ key: keyFor(port), authority: `127.0.0.1:${upstream.port}` });
  assert.equal(pool.stats().handshakes, 2, 'the new tunnel needed a new session');
  assert.equal(second.stats().streamsTotal, 1);
  fresh.end('fresh');
  assert.equal((await collect(fresh)).toString(), 'fresh');

  // The old tunnel still works after GOAWAY and finishes normally.
  live.end('after');
  assert.equal((await collect(live)).toString(), 'before after');
  await closed;
  assert.equal(first.stats().sessions, 0);
  assert.equal(first.stats().responses['200'], 1);
  await waitFor(() => pool.connections(keyFor(port)) === 1);
});

test('a pool refuses new tunnels once closed, and close() waits for live ones', async (t) => {
  const defer = cleanups(t);
  const upstream = await tcpServer(defer, echo);
  const { port } = await hboneServer(defer, { upstreamPort: upstream.port });
  const pool = hbonePool(defer);
  const tunnel = await pool.connect({ key: keyFor(port), authority: `127.0.0.1:${upstream.port}` });
  let closed = false;
  const closing = pool.close().then(() => {
    closed = true;
  });
  await assert.rejects(
    pool.connect({ key: keyFor(port), authority: `127.0.0.1:${upstream.port}` }),
    (e: unknown) => e instanceof HboneError && e.phase === 'closed',
  );
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(closed, false);
  tunnel.end('last');
  assert.equal((await collect(tunnel)).toString(), 'last');
  await closing;
  assert.equal(pool.stats().connections, 0);
});

test('GOAWAY race: CONNECTs the peer did not start are retried on a new session', async (t) => {
  const defer = cleanups(t);
  const upstream = await tcpServer(defer, echo);
  const connectUpstream = async (): Promise<ConnectDecision> => ({
    status: 200,
    upstream: await tcpConnect(upstream.port),
  });
  const make = () =>
    new HboneServer({
      trustDomain: TD,
      secureContext: () => serverCtx,
      onConnect: connectUpstream,
    });
  const first = make();
  const second = make();
  let current = first;
  const listener = createServer({ allowHalfOpen: true }, (s) => current.handle(s));
  listener.listen(0, '127.0.0.1');
  await once(listener, 'listening');
  defer(async () => {
    first.destroy();
    second.destroy();
    await new Promise((r) => listener.close(r));
  });
  const port = (listener.address() as { port: number }).port;
  const pool = hbonePool(defer);
  const warm = await pool.connect({ key: keyFor(port), authority: `127.0.0.1:${upstream.port}` });
  // GOAWAY leaves before the next CONNECTs arrive: the old session ignores them, the client
  // learns they were not started (id above the GOAWAY's last stream) and retries them.
  current = second;
  void first.close();
  const tunnels = await Promise.all(
    Array.from({ length: 20 }, () =>
      pool.connect({ key: keyFor(port), authority: `127.0.0.1:${upstream.port}` }),
    ),
  );
  assert.equal(first.stats().streamsTotal, 1);
  assert.equal(second.stats().streamsTotal, 20);
  assert.ok(pool.stats().retries >= 20, `retries ${pool.stats().retries}`);
  for (const tunnel of [warm, ...tunnels]) tunnel.end('z');
  for (const tunnel of [warm, ...tunnels]) assert.equal((await collect(tunnel)).toString(), 'z');
});

test('errors cross the tunnel as resets: upstream RST → RST_STREAM; client reset → TCP RST', async (t) => {
  const defer = cleanups(t);
  const upstreams: Socket[] = [];
  const upstream = await tcpServer(defer, (s) => {
    upstreams.push(s);
    s.on('data', () => {});
  });
  const { port, hbone } = await hboneServer(defer, { upstreamPort: upstream.port });
  const pool = hbonePool(defer);

  const one = await pool.connect({ key: keyFor(port), authority: `127.0.0.1:${upstream.port}` });
  one.write('x');
  await waitFor(() => upstreams.length === 1);
  const oneError = once(one, 'error');
  upstreams[0]?.resetAndDestroy();
  const [err] = (await oneError) as [Error];
  assert.match(err.message, /NGHTTP2_CONNECT_ERROR/);

  const two = await pool.connect({ key: keyFor(port), authority: `127.0.0.1:${upstream.port}` });
  two.write('y');
  await waitFor(() => upstreams.length === 2);
  const up = upstreams[1] as Socket;
  const upError = new Promise<string>((resolve) => {
    up.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? ''));
    up.once('end', () => resolve('end'));
  });
  two.destroy(); // the application's socket broke: RST_STREAM CANCEL
  assert.equal(await upError, 'ECONNRESET');

  // Resets touch single streams: the session carries on.
  const three = await pool.connect({ key: keyFor(port), authority: `127.0.0.1:${upstream.port}` });
  assert.equal(pool.stats().handshakes, 1);
  three.destroy();
  await waitFor(() => hbone.stats().streams === 0);
});

test('a decision that takes too long is answered 503 and its signal aborted', async (t) => {
  const defer = cleanups(t);
  let aborted = false;
  const { port } = await hboneServer(defer, {
    limits: { connectTimeoutMs: 100 },
    onConnect: (req) =>
      new Promise<ConnectDecision>(() => {
        req.signal.addEventListener('abort', () => {
          aborted = true;
        });
      }),
  });
  const pool = hbonePool(defer);
  await assert.rejects(
    pool.connect({ key: keyFor(port), authority: '127.0.0.1:9' }),
    (e: unknown) => e instanceof HboneRefusedError && e.status === 503,
  );
  assert.equal(aborted, true);
});

test('a tunnel the outbound side aborts right after the answer (its client already gone) closes the upstream connection too', async (t) => {
  const defer = cleanups(t);
  const upstream = await tcpServer(defer, echo);
  const agentSide: Socket[] = [];
  const { port } = await hboneServer(defer, {
    onConnect: async () => {
      const s = await tcpConnect(upstream.port);
      agentSide.push(s);
      return { status: 200, upstream: s };
    },
  });
  const pool = hbonePool(defer);
  const tunnel = await pool.connect({
    key: keyFor(port),
    authority: `127.0.0.1:${upstream.port}`,
  });
  abortSide(tunnel); // what splice does when the client's socket was destroyed meanwhile
  await waitFor(() => agentSide.length === 1);
  const up = agentSide[0] as Socket;
  up.on('error', () => {});
  assert.equal(await closesWithin(up, 3000), true, "the inbound side's upstream socket closed");
});

test('an application that resets after answering: the client behind the tunnel gets the answer, then a reset', async (t) => {
  const defer = cleanups(t);
  const upstream = await tcpServer(defer, (s) => {
    s.write('bye\n');
    setTimeout(() => s.resetAndDestroy(), 100);
  });
  const { port } = await hboneServer(defer, { upstreamPort: upstream.port });
  const pool = hbonePool(defer);
  const tunnel = await pool.connect({ key: keyFor(port), authority: `127.0.0.1:${upstream.port}` });
  // The inbound side aborts the stream with close(CONNECT_ERROR), which sends END_STREAM and
  // then RST_STREAM: the END_STREAM must not reach the client as a FIN first.
  const app = await tcpServer(defer, () => {});
  const client = await tcpConnect(app.port);
  await waitFor(() => app.sockets.size === 1);
  let answer = '';
  client.on('data', (c: Buffer) => {
    answer += c.toString();
  });
  const outcome = new Promise<string>((resolve) => {
    client.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    client.once('end', () => resolve('end (a FIN)'));
  });
  void splice([...app.sockets][0] as Socket, tunnel);
  assert.equal(await outcome, 'ECONNRESET');
  assert.equal(answer, 'bye\n');
});
