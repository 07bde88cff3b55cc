// The HBONE server's defences against peers that misbehave on purpose: HTTP/2 rapid reset,
// handshakes that never finish, a node's certificate used as a workload's. Each must cost the
// server little, be refused with a reason, and leave good clients served.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { before, type TestContext, test } from 'node:test';
import { type SecureContext, connect as tlsConnect } from 'node:tls';
import {
  deadPeerPings,
  HboneServer,
  type HboneServerLimits,
  hboneSecureContext,
  type RejectedInfo,
  SourceGuard,
  type SourceGuardLimits,
  TokenBucket,
} from '../../daemon/hbone/index.js';
import { issueTestSvid, makeTestCa, type TestCa, type TestSvid } from '../support/pki.js';
import { rapidReset } from '../support/rapid-reset.js';

const TD = 'cluster.local';
const SERVER_ID = 'spiffe://cluster.local/ns/db/sa/postgres';
const CLIENT_ID = 'spiffe://cluster.local/ns/shop/sa/web';
const NODE_ID = 'spiffe://cluster.local/node/n1';

let ca: TestCa;
let serverCtx: SecureContext;
let client: TestSvid;
let node: TestSvid;

before(async () => {
  ca = await makeTestCa(TD);
  const server = await issueTestSvid(ca, SERVER_ID);
  serverCtx = hboneSecureContext({
    certChainPem: server.chainPem,
    keyPem: server.keyPem,
    rootsPem: ca.rootPem,
  });
  client = await issueTestSvid(ca, CLIENT_ID);
  node = await issueTestSvid(ca, NODE_ID);
});

// ---- pure parts ----------------------------------------------------------------------------

test('a token bucket allows its burst, then its rate', () => {
  const cases: { name: string; steps: [atMs: number, expected: boolean][] }[] = [
    {
      name: 'burst of 3',
      steps: [
        [0, true],
        [0, true],
        [0, true],
        [0, false],
      ],
    },
    {
      name: 'one more per 100 ms at 10/s',
      steps: [
        [0, true],
        [0, true],
        [0, true],
        [50, false],
        [100, true],
        [150, false],
      ],
    },
    {
      name: 'refills to the burst, no further',
      steps: [
        [0, true],
        [10_000, true],
        [10_000, true],
        [10_000, true],
        [10_000, false],
      ],
    },
  ];
  for (const c of cases) {
    const bucket = new TokenBucket({ burst: 3, ratePerSecond: 10 }, 0);
    const got = c.steps.map(([at]) => bucket.take(at));
    assert.deepEqual(
      got,
      c.steps.map(([, e]) => e),
      c.name,
    );
  }
});

test('the source guard caps handshakes per source, evicts the oldest at the total cap, shortens deadlines under pressure', () => {
  const now = 0;
  const limits: Partial<SourceGuardLimits> = {
    maxHandshakes: 4,
    maxHandshakesPerSource: 2,
    handshakeTimeoutMs: 10_000,
    pressuredHandshakeTimeoutMs: 2_000,
  };
  const guard = new SourceGuard(limits, () => now);
  const evicted: string[] = [];
  const admit = (ip: string, name: string) => guard.admit(ip, () => evicted.push(name));
  const a1 = admit('10.0.0.1', 'a1');
  const a2 = admit('10.0.0.1', 'a2');
  assert.deepEqual(admit('10.0.0.1', 'a3'), { refused: 'handshake-limit-source' });
  assert.ok('timeoutMs' in a1 && a1.timeoutMs === 10_000);
  assert.ok('timeoutMs' in a2 && a2.timeoutMs === 10_000);
  const b1 = admit('10.0.0.2', 'b1'); // half the cap in use: pressured
  assert.ok('timeoutMs' in b1 && b1.timeoutMs === 2_000);
  admit('10.0.0.2', 'b2');
  admit('10.0.0.3', 'c1'); // over the total cap: the oldest (a1) goes
  assert.deepEqual(evicted, ['a1']);
  assert.equal(guard.stats().pendingHandshakes, 4);
  // a1's slot is free for its source again; done() after eviction changes nothing.
  if ('done' in a1) a1.done();
  assert.equal(guard.stats().pendingHandshakes, 4);
  if ('done' in a2) a2.done();
  assert.equal(guard.stats().pendingHandshakes, 3);
  assert.ok('timeoutMs' in admit('10.0.0.1', 'a4'));
});

test('the source guard refuses a penalized source until its penalty ends, and budgets stream opens', () => {
  let now = 0;
  const guard = new SourceGuard(
    { penaltyMs: 1_000, streamOpens: { burst: 2, ratePerSecond: 1 } },
    () => now,
  );
  guard.penalize('10.0.0.9');
  assert.deepEqual(
    guard.admit('10.0.0.9', () => {}),
    { refused: 'penalized' },
  );
  assert.ok('timeoutMs' in guard.admit('10.0.0.8', () => {}), 'other sources are not affected');
  now = 1_000;
  assert.ok('timeoutMs' in guard.admit('10.0.0.9', () => {}), 'served again after the penalty');
  assert.deepEqual(
    [guard.takeStream('10.0.0.9'), guard.takeStream('10.0.0.9'), guard.takeStream('10.0.0.9')],
    [true, true, false],
  );
  now = 2_000;
  assert.equal(guard.takeStream('10.0.0.9'), true);
});

// ---- the server ----------------------------------------------------------------------------

interface Harness {
  hbone: HboneServer;
  port: number;
  rejected: RejectedInfo[];
  /** onConnect calls: each is an upstream connect the agent would make. */
  decided: number;
}

async function listen(server: Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as { port: number }).port;
}

async function harness(
  t: TestContext,
  limits: Partial<HboneServerLimits> = {},
  guard?: SourceGuard,
): Promise<Harness> {
  const rejected: RejectedInfo[] = [];
  const h = { port: 0, rejected, decided: 0 } as Harness;
  h.hbone = new HboneServer({
    trustDomain: TD,
    secureContext: () => serverCtx,
    onConnect: async () => {
      h.decided++;
      return { status: 401, reason: 'not in this test' };
    },
    onRejected: (info) => rejected.push(info),
    limits: { handshakeTimeoutMs: 2_000, ...limits },
    ...(guard ? { guard } : {}),
  });
  const listener = createServer({ allowHalfOpen: true });
  h.hbone.attach(listener);
  h.port = await listen(listener);
  t.after(async () => {
    h.hbone.destroy();
    await new Promise((r) => listener.close(r));
  });
  return h;
}

async function waitFor(pred: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Completes a TLS handshake with `svid`; resolves with how the server ended it. */
function handshake(port: number, svid: TestSvid): Promise<{ secured: boolean }> {
  return new Promise((resolve) => {
    let secured = false;
    const s = tlsConnect({
      port,
      host: '127.0.0.1',
      cert: svid.chainPem,
      key: svid.keyPem,
      ca: ca.rootPem,
      ALPNProtocols: ['h2'],
      checkServerIdentity: () => undefined,
    });
    s.on('secureConnect', () => {
      secured = true;
    });
    s.on('data', () => {});
    s.on('error', () => {});
    const timer = setTimeout(() => s.destroy(), 3_000);
    s.once('close', () => {
      clearTimeout(timer);
      resolve({ secured });
    });
  });
}

test("a node's certificate cannot open a tunnel: refused after the handshake, named in the refusal", async (t) => {
  const h = await harness(t);
  await handshake(h.port, node);
  await waitFor(() => h.rejected.length === 1);
  assert.equal(h.rejected[0]?.reason, 'not-a-workload-identity');
  assert.equal(h.rejected[0]?.peer, NODE_ID);
  assert.match(h.rejected[0]?.detail ?? '', /node identity; only workload identities/);
  assert.equal(h.hbone.stats().sessionsTotal, 0);
});

test('rapid reset: cancelled streams are never decided; past the budget GOAWAY ENHANCE_YOUR_CALM, then the source is refused', async (t) => {
  const guard = new SourceGuard({ penaltyMs: 60_000 });
  const h = await harness(t, { cancelledStreamBurst: 20, cancelledStreamRate: 5 }, guard);
  const report = await rapidReset({
    host: '127.0.0.1',
    port: h.port,
    authority: '127.0.0.1:9',
    cert: client.chainPem,
    key: client.keyPem,
    ca: ca.rootPem,
    connections: 2,
    durationMs: 1_500,
    burst: 50,
  });
  assert.equal(h.decided, 0, 'no cancelled stream reached a decision (no upstream connect)');
  assert.ok(
    (report.goaways['11'] ?? 0) >= 1,
    `GOAWAY ENHANCE_YOUR_CALM: ${JSON.stringify(report)}`,
  );
  assert.ok(report.refused >= 1, 'reconnects during the penalty are refused');
  const reasons = new Set(h.rejected.map((r) => r.reason));
  assert.ok(reasons.has('rapid-reset') && reasons.has('penalized'), [...reasons].join());
  const cut = h.rejected.find((r) => r.reason === 'rapid-reset');
  assert.equal(cut?.peer, CLIENT_ID);
  // Each session was cut within its budget: about 20 cancelled streams each, not thousands.
  const stats = h.hbone.stats();
  assert.ok(stats.cancelledStreams <= 2 * 60, `cancelled ${stats.cancelledStreams}`);
  assert.equal(stats.responses['401'] ?? 0, 0);
});

test('a ClientHello trickled one byte at a time still completes; the pending handshake holds no TLS state until it has', async (t) => {
  const h = await harness(t);
  // A relay that passes the client's bytes on one at a time, a write (a segment) each.
  const relay = createServer((inbound: Socket) => {
    const outbound = connect({ port: h.port, host: '127.0.0.1' });
    outbound.setNoDelay(true);
    const queue: number[] = [];
    let pumping = false;
    const pump = () => {
      const byte = queue.shift();
      if (byte === undefined) {
        pumping = false;
        return;
      }
      outbound.write(Buffer.from([byte]));
      setImmediate(pump);
    };
    inbound.on('data', (chunk: Buffer) => {
      queue.push(...chunk);
      if (!pumping) {
        pumping = true;
        pump();
      }
    });
    outbound.pipe(inbound);
    for (const s of [inbound, outbound]) s.on('error', () => {});
    inbound.once('close', () => outbound.destroy());
    outbound.once('close', () => inbound.destroy());
  });
  const relayPort = await listen(relay);
  t.after(() => new Promise((r) => relay.close(r)));
  const result = await handshake(relayPort, client);
  assert.equal(result.secured, true);
  assert.deepEqual(
    h.rejected.map((r) => r.reason),
    [],
  );
});

test('handshakes over the per-source cap are reset at once; the rest time out and free their slots', async (t) => {
  const guard = new SourceGuard({ maxHandshakesPerSource: 3, handshakeTimeoutMs: 300 });
  const h = await harness(t, {}, guard);
  const sockets = Array.from({ length: 8 }, () => {
    const s = connect({ port: h.port, host: '127.0.0.1' });
    s.on('error', () => {});
    s.on('connect', () => s.write(Buffer.from([0x16, 0x03, 0x01, 0x02]))); // and nothing more
    return new Promise((r) => s.once('close', r));
  });
  await Promise.all(sockets);
  await waitFor(() => h.rejected.length === 8);
  const counts: Record<string, number> = {};
  for (const r of h.rejected) counts[r.reason] = (counts[r.reason] ?? 0) + 1;
  assert.deepEqual(counts, { 'handshake-limit-source': 5, 'handshake-timeout': 3 });
  assert.equal(guard.stats().pendingHandshakes, 0);
  assert.equal(h.hbone.stats().connections, 0);
  // Served again once the stalled ones are gone.
  const ok = await handshake(h.port, client);
  assert.equal(ok.secured, true);
});

test('a busy session PINGs often enough to find a dead peer within the dead-peer timeout', () => {
  for (const timeoutMs of [1_000, 5_000, 30_000]) {
    const { busyIntervalMs, busyTimeoutMs } = deadPeerPings(timeoutMs);
    // Worst case: the peer dies right after an answer; the next PING goes out one interval
    // later, and its lateness is seen at most one interval after its deadline.
    assert.ok(2 * busyIntervalMs + busyTimeoutMs <= timeoutMs, `${timeoutMs}`);
    assert.ok(busyTimeoutMs >= timeoutMs / 2, `${timeoutMs}: the peer gets most of the time`);
  }
});
