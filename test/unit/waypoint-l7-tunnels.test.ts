// The engine with the streams production gives it: HTTP/2 CONNECT streams (as HBONE hands them
// over) downstream and upstream, not TCP sockets. h2c stands in for HBONE's mTLS here.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import { connect } from 'node:net';
import type { Duplex } from 'node:stream';
import { test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import {
  type DownstreamContext,
  type Endpoint,
  L7Engine,
  type L7Target,
  type RequestRecord,
} from '../../daemon/waypoint/l7/index.js';

/** An HBONE-like h2c server: each CONNECT stream is handed to `onTunnel` after a 200. */
async function connectServer(onTunnel: (s: http2.ServerHttp2Stream, authority: string) => void) {
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    stream.on('error', () => {});
    if (headers[':method'] !== 'CONNECT') {
      stream.respond({ ':status': 405 }, { endStream: true });
      return;
    }
    stream.respond({ ':status': 200 });
    onTunnel(stream, String(headers[':authority']));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as { port: number }).port };
}

/** Opens a CONNECT stream for `authority` on `session`, resolved once the 200 came. */
function openTunnel(session: http2.ClientHttp2Session, authority: string): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const s = session.request({ ':method': 'CONNECT', ':authority': authority });
    s.once('response', (h) => (h[':status'] === 200 ? resolve(s) : reject(new Error('refused'))));
    s.once('error', reject);
  });
}

async function setup(target: L7Target) {
  // The destination side: CONNECT streams to podIP:port are spliced to TCP there.
  const dest = await connectServer((stream, authority) => {
    const [host, port] = authority.split(':');
    const socket = connect(Number(port), host);
    socket.on('error', () => stream.destroy());
    stream.pipe(socket);
    socket.pipe(stream);
  });
  const destSession = http2.connect(`http://127.0.0.1:${dest.port}`);
  destSession.on('error', () => {});
  const records: RequestRecord[] = [];
  const engine = new L7Engine({
    hooks: {
      authorize: () => ({ allowed: true }),
      connect: (e: Endpoint) => openTunnel(destSession, `${e.ip}:${e.port}`),
      record: (r) => records.push(r),
    },
  });
  // The waypoint side: CONNECT streams go to the engine.
  const waypoint = await connectServer((stream, authority) => {
    const ctx: DownstreamContext = {
      sourcePrincipal: 'spiffe://cluster.local/ns/a/sa/client',
      sourceIp: '127.0.0.1',
      destination: { ip: '10.96.0.1', port: 80 },
      authority,
    };
    void engine.serveTunnel(stream, ctx, target);
  });
  const client = http2.connect(`http://127.0.0.1:${waypoint.port}`);
  client.on('error', () => {});
  return {
    records,
    engine,
    tunnel: () => openTunnel(client, '10.96.0.1:80'),
    close: () => {
      client.destroy();
      destSession.destroy();
      engine.destroy();
      waypoint.server.close();
      dest.server.close();
    },
  };
}

test('HTTP/1.1 inside CONNECT streams both ways: keep-alive requests on one tunnel', async () => {
  const up = http.createServer((req, res) => res.end(`hello ${req.url}`));
  up.listen(0, '127.0.0.1');
  await once(up, 'listening');
  const port = (up.address() as { port: number }).port;
  const w = await setup({
    protocol: undefined,
    endpoints: () => [{ ip: '127.0.0.1', port, id: 'up' }],
  });
  try {
    const tunnel = await w.tunnel();
    let text = '';
    tunnel.on('data', (d: Buffer) => {
      text += d.toString();
    });
    tunnel.write('GET /one HTTP/1.1\r\nHost: svc\r\n\r\n');
    const deadline = Date.now() + 3_000;
    while (!text.includes('hello /one') && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 10));
    tunnel.write('GET /two HTTP/1.1\r\nHost: svc\r\n\r\n');
    while (!text.includes('hello /two') && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 10));
    assert.match(text, /^HTTP\/1\.1 200 OK/);
    assert.ok(text.includes('hello /two'), text);
    assert.equal(w.records.length, 2);
    assert.equal(w.engine.stats().upstreamH1Agents, 1);
    tunnel.end();
  } finally {
    w.close();
    up.close();
  }
});

test('gRPC (h2c) inside CONNECT streams both ways', async () => {
  const raw = (b: Buffer) => b;
  const service = {
    unary: {
      path: '/t.S/Unary',
      requestStream: false,
      responseStream: false,
      requestSerialize: raw,
      requestDeserialize: raw,
      responseSerialize: raw,
      responseDeserialize: raw,
      originalName: 'unary',
    },
  } satisfies grpc.ServiceDefinition;
  const server = new grpc.Server();
  server.addService(service, {
    unary: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) =>
      cb(null, Buffer.from(`echo:${call.request}`)),
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  const w = await setup({
    protocol: 'grpc',
    endpoints: () => [{ ip: '127.0.0.1', port, id: 'g' }],
  });
  try {
    const tunnel = await w.tunnel();
    // An h2c client session over the tunnel stream, as a source agent's would be.
    const session = http2.connect('http://svc', { createConnection: () => tunnel });
    session.on('error', () => {});
    const frame = Buffer.alloc(5 + 3);
    frame.writeUInt32BE(3, 1);
    frame.write('abc', 5);
    const reply = await new Promise<{ body: Buffer; status: string | undefined }>((resolve) => {
      const req = session.request({
        ':method': 'POST',
        ':path': '/t.S/Unary',
        'content-type': 'application/grpc',
        te: 'trailers',
      });
      const chunks: Buffer[] = [];
      let status: string | undefined;
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('trailers', (t) => {
        status = String(t['grpc-status']);
      });
      req.on('close', () => resolve({ body: Buffer.concat(chunks), status }));
      req.end(frame);
    });
    assert.equal(reply.status, '0');
    assert.equal(reply.body.subarray(5).toString(), 'echo:abc');
    session.destroy();
    assert.equal(w.records.length, 1);
    assert.equal(w.records[0]?.grpcStatus, 0);
  } finally {
    w.close();
    server.forceShutdown();
  }
});
