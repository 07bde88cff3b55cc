// The waypoint L7 engine's HTTP/1.1 proxying on loopback: keep-alive, header rules, streaming
// bodies, 100-continue, trailers, upgrades, bad input, policy, endpoint choice and records.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import { connect, type Socket } from 'node:net';
import { test } from 'node:test';
import {
  deadPort,
  endpointOf,
  type Harness,
  startHarness,
  target,
  until,
} from '../support/waypoint-l7-harness.js';

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  trailers: Record<string, string | undefined>;
  body: Buffer;
}

function request(
  port: number,
  options: http.RequestOptions & { body?: Buffer | string },
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, ...options }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          trailers: res.trailers,
          body: Buffer.concat(chunks),
        }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

async function listen(server: http.Server): Promise<http.Server> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

/** Sends raw bytes; resolves with everything received once the engine closes the connection. */
function raw(
  port: number,
  bytes: string,
  timeoutMs = 3_000,
): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const s: Socket = connect(port, '127.0.0.1');
    let text = '';
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ text, closed: false });
    }, timeoutMs);
    s.on('data', (d) => {
      text += d.toString('latin1');
    });
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ text, closed: true });
    });
    s.write(bytes);
  });
}

/** An upstream that reports what it saw as JSON. */
async function echoHeadersServer(): Promise<{
  server: http.Server;
  connections: () => number;
  paths: string[];
}> {
  let connections = 0;
  const paths: string[] = [];
  const server = http.createServer((req, res) => {
    paths.push(req.url ?? '');
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ url: req.url, method: req.method, headers: req.headers }));
  });
  server.on('connection', () => {
    connections++;
  });
  await listen(server);
  return { server, connections: () => connections, paths };
}

async function withHarness(
  h: Harness,
  servers: http.Server[],
  body: () => Promise<void>,
): Promise<void> {
  try {
    await body();
  } finally {
    await h.close();
    for (const s of servers) {
      s.closeAllConnections();
      s.close();
    }
  }
}

test('keep-alive requests are detected as HTTP/1.1, reuse one upstream connection, and lose hop-by-hop headers', async () => {
  const up = await echoHeadersServer();
  const h = await startHarness({ target: target(undefined, [endpointOf(up.server)]) });
  await withHarness(h, [up.server], async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    for (let i = 0; i < 5; i++) {
      const r = await request(h.port, {
        agent,
        path: `/r${i}?q=1`,
        headers: {
          connection: 'keep-alive, x-hop',
          'x-hop': 'secret',
          'keep-alive': 'timeout=5',
          'proxy-connection': 'keep-alive',
          te: 'trailers, deflate',
          traceparent,
          'x-custom': 'kept',
        },
      });
      assert.equal(r.status, 200);
      const seen = JSON.parse(r.body.toString()) as {
        url: string;
        headers: Record<string, string>;
      };
      assert.equal(seen.url, `/r${i}?q=1`);
      assert.equal(seen.headers['x-hop'], undefined);
      assert.equal(seen.headers['keep-alive'], undefined);
      assert.equal(seen.headers['proxy-connection'], undefined);
      assert.equal(seen.headers.te, 'trailers');
      assert.equal(seen.headers.traceparent, traceparent);
      assert.equal(seen.headers['x-custom'], 'kept');
      assert.match(seen.headers['x-request-id'] ?? '', /^[0-9a-f-]{36}$/);
      assert.equal(seen.headers.host, `127.0.0.1:${h.port}`, 'Host passes as the client sent it');
      assert.equal(r.headers['x-hop'], undefined);
    }
    agent.destroy();
    assert.equal(up.connections(), 1, 'one kept-alive upstream connection');
    assert.equal(h.connects.length, 1);
    assert.equal(h.engine.stats().http1Tunnels, 1);
    await until(() => h.records.length === 5);
    assert.equal(h.records.length, 5);
    for (const r of h.records) {
      assert.equal(r.protocol, 'HTTP/1.1');
      assert.equal(r.method, 'GET');
      assert.equal(r.status, 200);
      assert.equal(r.responseFlags, '-');
      assert.equal(r.traceId, '0af7651916cd43dd8448eb211c80319c');
      assert.ok(r.responseBytes > 0);
      assert.ok(r.durationMs >= 0);
    }
  });
});

test('a client x-request-id is kept; bodies stream both ways with back-pressure and are counted', async () => {
  // The upstream echoes the body slowly-ish in chunks and reports its sha256 in a trailer.
  const up = await listen(
    http.createServer((req, res) => {
      const hash = createHash('sha256');
      res.writeHead(200, { 'content-type': 'application/octet-stream', trailer: 'x-sha256' });
      req.on('data', (c: Buffer) => {
        hash.update(c);
        if (!res.write(c)) {
          req.pause();
          res.once('drain', () => req.resume());
        }
      });
      req.on('end', () => {
        res.addTrailers({ 'x-sha256': hash.digest('hex') });
        res.end();
      });
    }),
  );
  const h = await startHarness({ target: target('http', [endpointOf(up)]) });
  await withHarness(h, [up], async () => {
    const size = 8 * 1024 * 1024;
    const payload = Buffer.alloc(size);
    for (let i = 0; i < size; i += 4096) payload.writeUInt32BE(i, i);
    const want = createHash('sha256').update(payload).digest('hex');
    const r = await new Promise<Reply>((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port: h.port,
          method: 'POST',
          path: '/upload',
          headers: { 'x-request-id': 'client-id-1' },
        },
        (res) => {
          const hash = createHash('sha256');
          let n = 0;
          res.on('data', (c: Buffer) => {
            hash.update(c);
            n += c.length;
          });
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              trailers: { ...res.trailers, body: hash.digest('hex'), n: String(n) },
              body: Buffer.alloc(0),
            }),
          );
        },
      );
      req.on('error', reject);
      // Written in 64 KiB pieces, honouring back-pressure (chunked request body).
      let off = 0;
      const pump = () => {
        while (off < size) {
          const piece = payload.subarray(off, off + 65536);
          off += piece.length;
          if (!req.write(piece)) {
            req.once('drain', pump);
            return;
          }
        }
        req.end();
      };
      pump();
    });
    assert.equal(r.status, 200);
    assert.equal(r.trailers.body, want, 'the echoed body is intact');
    assert.equal(r.trailers['x-sha256'], want, 'the response trailer was forwarded');
    assert.equal(r.trailers.n, String(size));
    await until(() => h.records.length === 1);
    const rec = h.records[0];
    assert.equal(rec?.requestId, 'client-id-1');
    assert.equal(rec?.requestBytes, size);
    assert.equal(rec?.responseBytes, size);
    assert.equal(rec?.method, 'POST');
  });
});

test('Expect: 100-continue goes to the upstream and its 100 comes back before the body is sent', async () => {
  let sawExpect = false;
  const up = http.createServer((req, res) => {
    let n = 0;
    req.on('data', (c: Buffer) => {
      n += c.length;
    });
    req.on('end', () => res.end(`got ${n}`));
  });
  up.on('checkContinue', (req: http.IncomingMessage, res: http.ServerResponse) => {
    sawExpect = req.headers.expect === '100-continue';
    res.writeContinue();
    up.emit('request', req, res);
  });
  await listen(up);
  const h = await startHarness({ target: target('http', [endpointOf(up)]) });
  await withHarness(h, [up], async () => {
    const r = await new Promise<string>((resolve, reject) => {
      const req = http.request({
        host: '127.0.0.1',
        port: h.port,
        method: 'PUT',
        path: '/p',
        headers: { expect: '100-continue', 'content-length': '5' },
      });
      let continued = false;
      req.on('continue', () => {
        continued = true;
        req.end('hello');
      });
      req.on('response', (res) => {
        let t = '';
        res.on('data', (d) => {
          t += d;
        });
        res.on('end', () => resolve(`${continued} ${res.statusCode} ${t}`));
      });
      req.on('error', reject);
      req.flushHeaders();
    });
    assert.equal(r, 'true 200 got 5');
    assert.equal(sawExpect, true);
  });
});

test('an Upgrade (WebSocket-style) is spliced as raw bytes after the upstream 101', async () => {
  const up = http.createServer((_req, res) => res.end('no upgrade'));
  up.on('upgrade', (req: http.IncomingMessage, socket: Socket, head: Buffer) => {
    socket.write(
      'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n' +
        `X-Saw-Upgrade: ${req.headers.upgrade}\r\n\r\n`,
    );
    if (head.length) socket.write(head);
    socket.pipe(socket);
  });
  await listen(up);
  const h = await startHarness({ target: target(undefined, [endpointOf(up)]) });
  await withHarness(h, [up], async () => {
    const got = await new Promise<string>((resolve, reject) => {
      const req = http.request({
        host: '127.0.0.1',
        port: h.port,
        path: '/ws',
        headers: { connection: 'Upgrade', upgrade: 'echo' },
      });
      req.on('upgrade', (res, socket: Socket) => {
        assert.equal(res.statusCode, 101);
        assert.equal(res.headers['x-saw-upgrade'], 'echo');
        let t = '';
        socket.on('data', (d) => {
          t += d;
          if (t.length >= 10) {
            socket.end();
            resolve(t);
          }
        });
        socket.write('ping-');
        socket.write('pong!');
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(got, 'ping-pong!');
    await until(() => h.records.length === 1);
    assert.equal(h.records[0]?.status, 101);
    assert.equal(h.records[0]?.requestBytes, 10);
    assert.equal(h.records[0]?.responseBytes, 10);
  });
});

test('request smuggling and oversized headers get 400/431 and a closed connection, once logged, others unaffected', async () => {
  const up = await echoHeadersServer();
  const h = await startHarness({
    target: target(undefined, [endpointOf(up.server)]),
    limits: { maxHeaderBytes: 8 * 1024 },
  });
  await withHarness(h, [up.server], async () => {
    // A good keep-alive client stays open across the bad ones.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    assert.equal((await request(h.port, { agent, path: '/before' })).status, 200);
    const bad: [string, string, number][] = [
      [
        'CL+TE',
        'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
        400,
      ],
      [
        'bad chunk size',
        'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n',
        400,
      ],
      [
        'conflicting CL',
        'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nabcdef',
        400,
      ],
      [
        'TE not chunked last',
        'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n',
        400,
      ],
      ['space before colon', 'GET / HTTP/1.1\r\nHost : a\r\n\r\n', 400],
      ['no Host', 'GET /nohost HTTP/1.1\r\nAccept: */*\r\n\r\n', 400],
      [
        'oversized headers',
        `GET / HTTP/1.1\r\nHost: a\r\nX-Big: ${'b'.repeat(10_000)}\r\n\r\n`,
        431,
      ],
    ];
    for (const [name, bytes, status] of bad) {
      const r = await raw(h.port, bytes);
      assert.ok(
        r.text.startsWith(`HTTP/1.1 ${status} `),
        `${name}: ${JSON.stringify(r.text.slice(0, 40))}`,
      );
      assert.equal(r.closed, true, `${name}: connection closed`);
    }
    assert.equal((await request(h.port, { agent, path: '/after' })).status, 200);
    agent.destroy();
    const logged = h.logs.filter((l) => l.code === 'l7.bad-request');
    assert.equal(logged.length, 1, 'bad input is logged once per window');
    assert.equal(h.logs.filter((l) => l.code === 'l7.header-overflow').length, 1);
    await until(() => h.records.length === 9);
    const dpe = h.records.filter((r) => r.responseFlags === 'DPE');
    assert.deepEqual(
      dpe.map((r) => r.status),
      [400, 400, 400, 400, 400, 400, 431],
      JSON.stringify(h.records.map((r) => [r.path, r.status, r.responseFlags])),
    );
    assert.equal(
      h.records.length,
      9,
      `one record per request, bad ones included: ${JSON.stringify(h.records.map((r) => [r.path, r.status, r.responseFlags]))}`,
    );
    // Only the request with a bad chunk got as far as its headers (bodies stream); none of
    // the others reached the upstream.
    const others = up.paths.filter((p) => p !== '/before' && p !== '/after');
    assert.ok(others.length <= 1 && others.every((p) => p === '/'), JSON.stringify(others));
  });
});

test('junk on an appProtocol http port gets 400 and a close', async () => {
  const up = await echoHeadersServer();
  const h = await startHarness({ target: target('http', [endpointOf(up.server)]) });
  await withHarness(h, [up.server], async () => {
    const r = await raw(h.port, '\x16\x03\x01\x02\x00junk\r\n\r\n');
    assert.ok(r.text.startsWith('HTTP/1.1 400 '), r.text);
    assert.equal(r.closed, true);
    assert.equal(up.connections(), 0);
  });
});

test('authorization is asked per request: denied is 403 RBAC: access denied, a policy change reaches the next request', async () => {
  const up = await echoHeadersServer();
  let allow = true;
  const h = await startHarness({
    target: target('http', [endpointOf(up.server)]),
    authorize: (req, ctx) => {
      assert.equal(ctx.sourcePrincipal, 'spiffe://cluster.local/ns/demo/sa/client');
      if (req.path.startsWith('/admin'))
        return { allowed: false, policy: 'ns/deny-admin', rule: 0 };
      return allow ? { allowed: true } : { allowed: false, policy: 'ns/lockdown' };
    },
  });
  await withHarness(h, [up.server], async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const ok = await request(h.port, { agent, path: '/ok' });
    assert.equal(ok.status, 200);
    const denied = await request(h.port, {
      agent,
      path: '/admin/x',
      method: 'POST',
      body: 'payload',
    });
    assert.equal(denied.status, 403);
    assert.equal(denied.body.toString(), 'RBAC: access denied');
    assert.equal(denied.headers['content-type'], 'text/plain');
    allow = false;
    const now = await request(h.port, { agent, path: '/ok' });
    assert.equal(now.status, 403, 'the policy change applies on the open connection');
    agent.destroy();
    await until(() => h.records.length === 3);
    assert.deepEqual(
      h.records.map((r) => [r.status, r.policy ?? null, r.endpoint === undefined]),
      [
        [200, null, false],
        [403, 'ns/deny-admin', true],
        [403, 'ns/lockdown', true],
      ],
    );
    assert.equal(up.connections(), 1);
  });
});

test('endpoint failures: none → 503 UH, a dead one is skipped, all dead → 503 UF', async () => {
  const up = await echoHeadersServer();
  const live = endpointOf(up.server, 'live');
  const dead1 = { ip: '127.0.0.1', port: await deadPort(), id: 'dead1' };
  const dead2 = { ip: '127.0.0.1', port: await deadPort(), id: 'dead2' };
  const endpoints = [dead1, live];
  const h = await startHarness({
    target: { protocol: 'http', endpoints: () => endpoints },
    random: () => 0, // always dead1 first
  });
  await withHarness(h, [up.server], async () => {
    const r1 = await request(h.port, { path: '/a' });
    assert.equal(r1.status, 200, 'the dead endpoint was skipped');
    assert.deepEqual(h.connects, ['dead1', 'live']);
    endpoints.splice(0, endpoints.length);
    const r2 = await request(h.port, { path: '/b' });
    assert.equal(r2.status, 503);
    assert.equal(r2.body.toString(), 'no healthy upstream');
    endpoints.push(dead1, dead2);
    const r3 = await request(h.port, { path: '/c' });
    assert.equal(r3.status, 503);
    assert.match(r3.body.toString(), /connection failure/);
    await until(() => h.records.length === 3);
    assert.deepEqual(
      h.records.map((r) => [r.status, r.responseFlags, r.endpoint]),
      [
        [200, '-', 'live'],
        [503, 'UH', undefined],
        [503, 'UF', 'dead2'],
      ],
    );
    assert.equal(h.logs.filter((l) => l.code === 'l7.upstream-connect').length, 1, 'rate-limited');
  });
});

test('a client that disconnects mid-response is recorded as DC and the upstream request is cut', async () => {
  let upstreamClosed = false;
  const up = await listen(
    http.createServer((_req, res) => {
      res.writeHead(200);
      res.write('partial');
      res.on('close', () => {
        upstreamClosed = true;
      });
    }),
  );
  const h = await startHarness({ target: target('http', [endpointOf(up)]) });
  await withHarness(h, [up], async () => {
    await new Promise<void>((resolve) => {
      const req = http.get({ host: '127.0.0.1', port: h.port, path: '/slow' }, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', () => {});
    });
    assert.ok(await until(() => h.records.length === 1));
    assert.equal(h.records[0]?.responseFlags, 'DC');
    assert.equal(h.records[0]?.status, 200);
    assert.ok(await until(() => upstreamClosed), 'the upstream request was cut');
  });
});

test('an upstream that dies mid-response is UC; one that closes before answering is 503 UC', async () => {
  const up = await listen(
    http.createServer((req, res) => {
      if (req.url === '/mid') {
        res.writeHead(200, { 'content-length': '100' });
        res.write('partial');
        setTimeout(() => req.socket.destroy(), 20);
      } else {
        req.socket.destroy();
      }
    }),
  );
  const h = await startHarness({ target: target('http', [endpointOf(up)]) });
  await withHarness(h, [up], async () => {
    const before = await request(h.port, { path: '/before', method: 'POST', body: 'x' });
    assert.equal(before.status, 503);
    assert.match(before.body.toString(), /connection termination/);
    await assert.rejects(request(h.port, { path: '/mid' }));
    await until(() => h.records.length === 2);
    assert.deepEqual(
      h.records.map((r) => [r.path, r.status, r.responseFlags]),
      [
        ['/before', 503, 'UC'],
        ['/mid', 200, 'UC'],
      ],
    );
  });
});

test('200 slowloris clients are closed after headersTimeout and nothing stays behind', async () => {
  const up = await echoHeadersServer();
  const h = await startHarness({
    target: target(undefined, [endpointOf(up.server)]),
    limits: { headersTimeoutMs: 500 },
  });
  await withHarness(h, [up.server], async () => {
    const sockets: Socket[] = [];
    let closed = 0;
    const started = Date.now();
    for (let i = 0; i < 200; i++) {
      const s = connect(h.port, '127.0.0.1');
      s.on('error', () => {});
      s.on('close', () => {
        closed++;
      });
      s.write('GET / HTTP/1.1\r\nHost: a\r\n');
      sockets.push(s);
    }
    // Trickle a header line every 100 ms: never completing the block.
    const trickle = setInterval(() => {
      for (const s of sockets) if (!s.destroyed) s.write('X-Slow: 1\r\n');
    }, 100);
    try {
      assert.ok(await until(() => closed === 200, 5_000), `closed ${closed} of 200`);
    } finally {
      clearInterval(trickle);
    }
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 450, `closed too early (${elapsed} ms)`);
    assert.ok(await until(() => h.engine.stats().tunnels === 0), 'no tunnel left');
    assert.equal(h.engine.stats().requestsActive, 0);
    assert.equal(up.connections(), 0);
  });
});

test('graceful close: the in-flight response finishes with Connection: close, idle connections close', async () => {
  let release: (() => void) | undefined;
  const up = await listen(
    http.createServer((req, res) => {
      if (req.url === '/slow') release = () => res.end('slow done');
      else res.end('fast');
    }),
  );
  const h = await startHarness({ target: target('http', [endpointOf(up)]) });
  await withHarness(h, [up], async () => {
    const idle = new http.Agent({ keepAlive: true, maxSockets: 1 });
    assert.equal((await request(h.port, { agent: idle, path: '/fast' })).status, 200);
    const idleSocket = Object.values(idle.freeSockets)[0]?.[0];
    assert.ok(idleSocket);
    const idleClosed = once(idleSocket, 'close');
    const busy = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const slow = request(h.port, { agent: busy, path: '/slow' });
    assert.ok(await until(() => release !== undefined));
    const closing = h.engine.close(2_000);
    await idleClosed;
    release?.();
    const r = await slow;
    assert.equal(r.body.toString(), 'slow done');
    assert.equal(r.headers.connection, 'close');
    await closing;
    assert.equal(h.engine.stats().tunnels, 0);
    idle.destroy();
    busy.destroy();
  });
});

test('a kept-alive upstream connection that dies as it is reused is retried once on a new one', async () => {
  const perSocket = new WeakMap<object, number>();
  let connections = 0;
  const up = http.createServer((req, res) => {
    const n = (perSocket.get(req.socket) ?? 0) + 1;
    perSocket.set(req.socket, n);
    if (n === 2)
      req.socket.destroy(); // dies instead of answering its second request
    else res.end(`answer ${req.url}`);
  });
  up.on('connection', () => {
    connections++;
  });
  await listen(up);
  const h = await startHarness({ target: target('http', [endpointOf(up)]) });
  await withHarness(h, [up], async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    assert.equal((await request(h.port, { agent, path: '/1' })).body.toString(), 'answer /1');
    const second = await request(h.port, { agent, path: '/2' });
    assert.equal(second.status, 200);
    assert.equal(second.body.toString(), 'answer /2');
    assert.equal(connections, 2);
    agent.destroy();
    await until(() => h.records.length === 2);
    assert.deepEqual(
      h.records.map((r) => [r.status, r.responseFlags]),
      [
        [200, '-'],
        [200, '-'],
      ],
    );
  });
});
