// The waypoint L7 engine's HTTP/2 (h2c prior knowledge, gRPC) proxying on loopback: gRPC bidi
// streaming, statuses and denials, h2 bodies and trailers, resets both ways, rapid-reset
// floods, stream limits and graceful GOAWAY.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import http2 from 'node:http2';
import { connect, type Socket } from 'node:net';
import { test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import {
  endpointOf,
  type Harness,
  startHarness,
  target,
  tcpConnect,
  until,
} from '../support/waypoint-l7-harness.js';

const h2c = http2.constants;
const raw = (b: Buffer) => b;

const echoService = {
  bidi: {
    path: '/test.Echo/Bidi',
    requestStream: true,
    responseStream: true,
    requestSerialize: raw,
    requestDeserialize: raw,
    responseSerialize: raw,
    responseDeserialize: raw,
    originalName: 'bidi',
  },
  unary: {
    path: '/test.Echo/Unary',
    requestStream: false,
    responseStream: false,
    requestSerialize: raw,
    requestDeserialize: raw,
    responseSerialize: raw,
    responseDeserialize: raw,
    originalName: 'unary',
  },
  serverStream: {
    path: '/test.Echo/ServerStream',
    requestStream: false,
    responseStream: true,
    requestSerialize: raw,
    requestDeserialize: raw,
    responseSerialize: raw,
    responseDeserialize: raw,
    originalName: 'serverStream',
  },
} satisfies grpc.ServiceDefinition;

interface EchoClient extends grpc.Client {
  bidi(): grpc.ClientDuplexStream<Buffer, Buffer>;
  unary(
    req: Buffer,
    cb: (err: grpc.ServiceError | null, res?: Buffer) => void,
  ): grpc.ClientUnaryCall;
  serverStream(req: Buffer): grpc.ClientReadableStream<Buffer>;
}

async function grpcServer(): Promise<{
  server: grpc.Server;
  port: number;
  cancelled: () => number;
}> {
  let cancelled = 0;
  const server = new grpc.Server();
  server.addService(echoService, {
    bidi: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      call.on('data', (d: Buffer) => call.write(d));
      call.on('end', () => call.end());
    },
    unary: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      const text = call.request.toString();
      if (text === 'missing') cb({ code: grpc.status.NOT_FOUND, details: 'no such thing' });
      else cb(null, Buffer.from(`echo:${text}`));
    },
    serverStream: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      const timer = setInterval(() => call.write(Buffer.from('tick')), 10);
      call.on('cancelled', () => {
        cancelled++;
        clearInterval(timer);
      });
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  return { server, port, cancelled: () => cancelled };
}

const EchoClient = grpc.makeGenericClientConstructor(echoService, 'Echo') as unknown as new (
  address: string,
  creds: grpc.ChannelCredentials,
) => EchoClient;

function grpcClient(port: number): EchoClient {
  return new EchoClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
}

function unary(client: EchoClient, text: string): Promise<string> {
  return new Promise((resolve, reject) =>
    client.unary(Buffer.from(text), (err, res) => (err ? reject(err) : resolve(String(res)))),
  );
}

const grpcEndpoint = (port: number) => ({ ip: '127.0.0.1', port, id: `grpc-${port}` });

test('a gRPC bidi stream of 1,000 messages passes through the engine (appProtocol grpc)', async () => {
  const up = await grpcServer();
  const h = await startHarness({ target: target('grpc', [grpcEndpoint(up.port)]) });
  const client = grpcClient(h.port);
  try {
    const call = client.bidi();
    const got: string[] = [];
    const done = new Promise<void>((resolve, reject) => {
      call.on('data', (d: Buffer) => got.push(d.toString()));
      call.on('end', resolve);
      call.on('error', reject);
    });
    for (let i = 0; i < 1000; i++) {
      if (!call.write(Buffer.from(`m${i}`))) await once(call, 'drain');
    }
    call.end();
    await done;
    assert.equal(got.length, 1000);
    assert.equal(got[0], 'm0');
    assert.equal(got[999], 'm999');
    assert.ok(await until(() => h.records.length === 1));
    const r = h.records[0];
    assert.equal(r?.protocol, 'HTTP/2');
    assert.equal(r?.path, '/test.Echo/Bidi');
    assert.equal(r?.status, 200);
    assert.equal(r?.grpcStatus, 0);
    assert.equal(r?.responseFlags, '-');
    assert.ok((r?.requestBytes ?? 0) >= 1000 * 7, `request bytes ${r?.requestBytes}`);
    assert.ok((r?.responseBytes ?? 0) >= 1000 * 7);
  } finally {
    client.close();
    await h.close();
    up.server.forceShutdown();
  }
});

test('gRPC detected from the preface: statuses pass, one upstream session serves many calls, denial is PERMISSION_DENIED', async () => {
  const up = await grpcServer();
  let allow = true;
  const h = await startHarness({
    target: target(undefined, [grpcEndpoint(up.port)]),
    authorize: () => (allow ? { allowed: true } : { allowed: false, policy: 'ns/no-grpc' }),
  });
  const client = grpcClient(h.port);
  try {
    for (let i = 0; i < 10; i++) assert.equal(await unary(client, `hi${i}`), `echo:hi${i}`);
    await assert.rejects(unary(client, 'missing'), (err: grpc.ServiceError) => {
      assert.equal(err.code, grpc.status.NOT_FOUND);
      assert.equal(err.details, 'no such thing');
      return true;
    });
    allow = false;
    await assert.rejects(unary(client, 'x'), (err: grpc.ServiceError) => {
      assert.equal(err.code, grpc.status.PERMISSION_DENIED);
      assert.equal(err.details, 'RBAC: access denied');
      return true;
    });
    assert.equal(h.connects.length, 1, 'one upstream HTTP/2 session for all calls');
    assert.equal(h.engine.stats().h2cTunnels, 1);
    assert.ok(await until(() => h.records.length === 12));
    const last = h.records.slice(-2);
    assert.deepEqual(
      last.map((r) => [r.status, r.grpcStatus, r.policy ?? null]),
      [
        [200, 5, null],
        [200, 7, 'ns/no-grpc'],
      ],
    );
  } finally {
    client.close();
    await h.close();
    up.server.forceShutdown();
  }
});

test('gRPC with no endpoints is UNAVAILABLE (UH); a client cancel reaches the upstream', async () => {
  const up = await grpcServer();
  const endpoints = [grpcEndpoint(up.port)];
  const h = await startHarness({ target: { protocol: 'grpc', endpoints: () => endpoints } });
  const client = grpcClient(h.port);
  try {
    const call = client.serverStream(Buffer.from('go'));
    call.on('error', () => {});
    await once(call, 'data');
    call.cancel();
    assert.ok(await until(() => up.cancelled() === 1), 'upstream saw the cancel');
    endpoints.pop();
    await assert.rejects(unary(client, 'x'), (err: grpc.ServiceError) => {
      assert.equal(err.code, grpc.status.UNAVAILABLE);
      assert.equal(err.details, 'no healthy upstream');
      return true;
    });
    assert.ok(await until(() => h.records.length === 2));
    assert.deepEqual(
      h.records.map((r) => r.responseFlags),
      ['DC', 'UH'],
    );
  } finally {
    client.close();
    await h.close();
    up.server.forceShutdown();
  }
});

async function h2Server(
  handler: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void,
): Promise<{ server: http2.Http2Server; port: number; sessions: () => number }> {
  let sessions = 0;
  const server = http2.createServer();
  server.on('session', () => {
    sessions++;
  });
  server.on('stream', handler);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as { port: number }).port, sessions: () => sessions };
}

function h2Request(
  session: http2.ClientHttp2Session,
  headers: http2.OutgoingHttpHeaders,
  body?: Buffer,
): Promise<{
  headers: http2.IncomingHttpHeaders;
  trailers: http2.IncomingHttpHeaders;
  body: Buffer;
  rstCode: number;
}> {
  return new Promise((resolve) => {
    const req = session.request(headers, { endStream: body === undefined });
    let resHeaders: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    req.on('response', (h) => {
      resHeaders = h;
    });
    req.on('trailers', (t) => {
      trailers = t;
    });
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('error', () => {});
    req.on('close', () =>
      resolve({
        headers: resHeaders,
        trailers,
        body: Buffer.concat(chunks),
        rstCode: req.rstCode ?? 0,
      }),
    );
    if (body) req.end(body);
  });
}

test('h2c: bodies stream both ways, trailers pass, connection-specific headers go, sessions are reused', async () => {
  const up = await h2Server((stream, headers) => {
    const hash = createHash('sha256');
    stream.respond(
      { ':status': 200, 'x-up': 'yes', 'x-saw-te': String(headers.te) },
      { waitForTrailers: true },
    );
    stream.on('data', (c: Buffer) => {
      hash.update(c);
      if (!stream.write(c)) {
        stream.pause();
        stream.once('drain', () => stream.resume());
      }
    });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'x-sha256': hash.digest('hex') }));
    stream.on('end', () => stream.end());
  });
  const h = await startHarness({ target: target('http2', [endpointOf(up.server)]) });
  const session = http2.connect(`http://127.0.0.1:${h.port}`);
  session.on('error', () => {});
  try {
    const body = Buffer.alloc(4 * 1024 * 1024, 7);
    const want = createHash('sha256').update(body).digest('hex');
    const r = await h2Request(session, { ':method': 'POST', ':path': '/up', te: 'trailers' }, body);
    assert.equal(r.headers[':status'], 200);
    assert.equal(r.headers['x-up'], 'yes');
    assert.equal(r.headers['x-saw-te'], 'trailers');
    assert.equal(r.body.length, body.length);
    assert.equal(r.trailers['x-sha256'], want);
    assert.equal(r.rstCode, 0);
    for (let i = 0; i < 5; i++) {
      const small = await h2Request(
        session,
        { ':method': 'POST', ':path': `/s${i}` },
        Buffer.from('x'),
      );
      assert.equal(small.body.toString(), 'x');
    }
    assert.equal(up.sessions(), 1);
    assert.equal(
      session.remoteSettings.maxConcurrentStreams,
      100,
      'the stream limit is advertised',
    );
    assert.ok(await until(() => h.records.length === 6));
    assert.equal(h.records[0]?.requestBytes, body.length);
    assert.equal(h.records[0]?.responseBytes, body.length);
  } finally {
    session.destroy();
    await h.close();
    up.server.close();
  }
});

test('h2c resets pass both ways: upstream RST reaches the client, client RST reaches the upstream', async () => {
  let upstreamSawCancel = false;
  const up = await h2Server((stream, headers) => {
    stream.on('error', () => {});
    stream.respond({ ':status': 200 });
    stream.write('first');
    if (headers[':path'] === '/upstream-resets') {
      setTimeout(() => stream.close(h2c.NGHTTP2_ENHANCE_YOUR_CALM), 20);
    } else {
      stream.on('close', () => {
        upstreamSawCancel = stream.rstCode === h2c.NGHTTP2_CANCEL;
      });
    }
  });
  const h = await startHarness({ target: target('http2', [endpointOf(up.server)]) });
  const session = http2.connect(`http://127.0.0.1:${h.port}`);
  session.on('error', () => {});
  try {
    // The request body stays open: a stream both sides have ended is closed, and an RST_STREAM
    // after that means nothing.
    const r = await new Promise<{ body: string; rstCode: number }>((resolve) => {
      const req = session.request({ ':method': 'POST', ':path': '/upstream-resets' });
      let body = '';
      req.on('data', (c: Buffer) => {
        body += c;
      });
      req.on('error', () => {});
      req.on('close', () => resolve({ body, rstCode: req.rstCode ?? 0 }));
      req.write('still sending');
    });
    assert.equal(r.body.toString(), 'first');
    assert.equal(
      r.rstCode,
      h2c.NGHTTP2_ENHANCE_YOUR_CALM,
      'the upstream reset code reached the client',
    );
    const req = session.request({ ':path': '/client-cancels' });
    req.on('error', () => {});
    await once(req, 'data');
    req.close(h2c.NGHTTP2_CANCEL);
    assert.ok(await until(() => upstreamSawCancel), 'the upstream saw CANCEL');
    assert.ok(await until(() => h.records.length === 2));
    assert.deepEqual(
      h.records.map((x) => x.responseFlags),
      ['UC', 'DC'],
    );
  } finally {
    session.destroy();
    await h.close();
    up.server.close();
  }
});

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId, 5);
  return Buffer.concat([head, payload]);
}

test('an HTTP/2 rapid-reset flood gets GOAWAY and does not disturb other tunnels', async () => {
  let upstreamStreams = 0;
  const up = await h2Server((stream) => {
    upstreamStreams++;
    stream.on('error', () => {});
    stream.respond({ ':status': 200 });
    stream.end('ok');
  });
  const h = await startHarness({
    target: target(undefined, [endpointOf(up.server)]),
    limits: { cancelledStreamBurst: 50, cancelledStreamRate: 10 },
  });
  const good = http2.connect(`http://127.0.0.1:${h.port}`);
  good.on('error', () => {});
  try {
    assert.equal((await h2Request(good, { ':path': '/before' })).body.toString(), 'ok');
    // GET / over http, :authority a; HEADERS (END_STREAM|END_HEADERS) then RST_STREAM CANCEL.
    const block = Buffer.from([0x82, 0x84, 0x86, 0x41, 0x01, 0x61]);
    const rst = Buffer.alloc(4);
    rst.writeUInt32BE(h2c.NGHTTP2_CANCEL);
    const s: Socket = connect(h.port, '127.0.0.1');
    s.on('error', () => {});
    let goaway = -1;
    let buf = Buffer.alloc(0);
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 9) {
        const len = buf.readUIntBE(0, 3);
        if (buf.length < 9 + len) break;
        if (buf[3] === 0x7 && goaway === -1) goaway = buf.readUInt32BE(9 + 4);
        buf = buf.subarray(9 + len);
      }
    });
    s.write(Buffer.concat([PREFACE, frame(0x4, 0, 0, Buffer.alloc(0))]));
    // Bursts of 20 HEADERS + RST_STREAM pairs, one event-loop turn apart, at most 2,000.
    let nextId = 1;
    const fire = () => {
      if (s.destroyed || nextId > 4_000) return;
      const frames: Buffer[] = [];
      for (let i = 0; i < 20; i++, nextId += 2) {
        frames.push(frame(0x1, 0x5, nextId, block), frame(0x3, 0, nextId, rst));
      }
      s.write(Buffer.concat(frames));
      setImmediate(fire);
    };
    const closed = new Promise((r) => s.once('close', r));
    fire();
    await Promise.race([closed, new Promise((r) => setTimeout(r, 3_000))]);
    assert.ok(s.destroyed, 'the flooding connection was closed');
    // The engine's cancel budget answers ENHANCE_YOUR_CALM; when a burst lands in one read,
    // nghttp2's own reset guard (1,000 resets) may cut first, with INTERNAL_ERROR.
    assert.ok(
      goaway === h2c.NGHTTP2_ENHANCE_YOUR_CALM || goaway === h2c.NGHTTP2_INTERNAL_ERROR,
      `GOAWAY code ${goaway}`,
    );
    if (goaway === h2c.NGHTTP2_ENHANCE_YOUR_CALM) assert.ok(h.engine.stats().rapidResets >= 1);
    assert.ok(upstreamStreams < 100, `few flood streams reached the upstream (${upstreamStreams})`);
    assert.equal((await h2Request(good, { ':path': '/after' })).body.toString(), 'ok');
    assert.ok(await until(() => h.engine.stats().requestsActive === 0));
  } finally {
    good.destroy();
    await h.close();
    up.server.close();
  }
});

test('graceful close sends GOAWAY and lets the in-flight stream finish', async () => {
  let release: (() => void) | undefined;
  const up = await h2Server((stream, headers) => {
    stream.respond({ ':status': 200 });
    if (headers[':path'] === '/slow') release = () => stream.end('slow done');
    else stream.end('fast');
  });
  const h: Harness = await startHarness({ target: target('http2', [endpointOf(up.server)]) });
  const session = http2.connect(`http://127.0.0.1:${h.port}`);
  session.on('error', () => {});
  try {
    const goaway = once(session, 'goaway');
    const slow = h2Request(session, { ':path': '/slow' });
    assert.ok(await until(() => release !== undefined));
    const closing = h.engine.close(2_000);
    await goaway;
    release?.();
    const r = await slow;
    assert.equal(r.body.toString(), 'slow done');
    assert.equal(r.rstCode, 0);
    await closing;
    assert.equal(h.engine.stats().tunnels, 0);
  } finally {
    session.destroy();
    await h.close();
    up.server.close();
  }
});

test('streams that arrive while the upstream session opens share it: one connect for 20 streams', async () => {
  const up = await h2Server((stream) => {
    stream.respond({ ':status': 200 });
    stream.end('ok');
  });
  const h = await startHarness({
    target: target('http2', [endpointOf(up.server)]),
    connect: async (e, signal) => {
      await new Promise((r) => setTimeout(r, 50));
      return tcpConnect(e, signal);
    },
  });
  const session = http2.connect(`http://127.0.0.1:${h.port}`);
  session.on('error', () => {});
  try {
    const replies = await Promise.all(
      Array.from({ length: 20 }, (_, i) => h2Request(session, { ':path': `/p${i}` })),
    );
    assert.ok(replies.every((r) => r.body.toString() === 'ok'));
    assert.equal(h.connects.length, 1);
    assert.equal(up.sessions(), 1);
  } finally {
    session.destroy();
    await h.close();
    up.server.close();
  }
});
