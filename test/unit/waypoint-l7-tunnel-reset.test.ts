// Rapid reset inside a tunnel: h2c carried by an HTTP/2 CONNECT stream (as HBONE hands it to the
// waypoint), each stream's HEADERS and RST_STREAM in the same write. Such streams never reach the
// engine's 'stream' handler, so the cut must come from the reset budget given to nghttp2 (the
// engine's cancelledStreamBurst), not from nghttp2's default of ~1,000.
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { connect } from 'node:net';
import { test } from 'node:test';
import { L7Engine } from '../../daemon/waypoint/index.js';

const frame = (type: number, flags: number, id: number, payload: Buffer) => {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(id, 5);
  return Buffer.concat([head, payload]);
};

test('an h2c rapid-reset flood inside a tunnel is cut after about the cancel budget, not 1,000 resets', async () => {
  const engine = new L7Engine({
    hooks: {
      authorize: () => ({ allowed: true }),
      connect: (e) =>
        new Promise((resolve, reject) => {
          const s = connect(e.port, e.ip);
          s.once('connect', () => resolve(s));
          s.once('error', reject);
        }),
      record: () => {},
    },
  });
  const wp = http2.createServer();
  wp.on('stream', (stream) => {
    stream.on('error', () => {});
    stream.respond({ ':status': 200 });
    void engine.serveTunnel(
      stream,
      {
        sourcePrincipal: 'spiffe://cluster.local/ns/shop/sa/attacker',
        sourceIp: '127.0.0.1',
        destination: { ip: '10.96.0.1', port: 80 },
        authority: '10.96.0.1:80',
      },
      { protocol: 'http2', endpoints: () => [{ ip: '127.0.0.1', port: 9, id: 'none:9' }] },
    );
  });
  await new Promise<void>((r) => wp.listen(0, '127.0.0.1', r));
  const port = (wp.address() as { port: number }).port;
  const client = http2.connect(`http://127.0.0.1:${port}`);
  client.on('error', () => {});
  const tunnel = client.request({ ':method': 'CONNECT', ':authority': '10.96.0.1:80' });
  tunnel.on('error', () => {});
  await new Promise((r) => tunnel.once('response', r));
  let goaway = -1;
  let buf = Buffer.alloc(0);
  tunnel.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 9) {
      const len = buf.readUIntBE(0, 3);
      if (buf.length < 9 + len) break;
      if (buf[3] === 7) goaway = buf.readUInt32BE(9 + 4);
      buf = buf.subarray(9 + len);
    }
  });
  const headers = Buffer.from([0x82, 0x84, 0x86, 0x41, 0x01, 0x61]); // GET / http, :authority a
  const cancel = Buffer.alloc(4);
  cancel.writeUInt32BE(8); // CANCEL
  tunnel.write(
    Buffer.concat([
      Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
      frame(4, 0, 0, Buffer.alloc(0)),
    ]),
  );
  let id = 1;
  const limit = engine.limits.cancelledStreamBurst;
  const fire = () => {
    if (tunnel.destroyed || goaway >= 0 || id > 4000) return;
    const frames: Buffer[] = [];
    for (let i = 0; i < 25; i++, id += 2)
      frames.push(frame(1, 5, id, headers), frame(3, 0, id, cancel));
    tunnel.write(Buffer.concat(frames));
    setImmediate(fire);
  };
  fire();
  const deadline = Date.now() + 3_000;
  while (goaway < 0 && !tunnel.destroyed && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 10));
  }
  const sent = (id - 1) / 2;
  client.destroy();
  engine.destroy();
  wp.close();
  assert.ok(goaway >= 0 || tunnel.destroyed, 'the flooding session is cut');
  assert.ok(
    sent < limit * 5,
    `cut after ${sent} cancelled streams (budget ${limit}, nghttp2's default ~1,000)`,
  );
});
