/**
 * The upstream side of the waypoint protocol e2e, in one process: an HTTP/1.1 server and an h2c
 * server. Usage: waypoint-lab-server HTTP_PORT H2C_PORT; prints "listening" once both listen.
 *
 * HTTP/1.1 (keep-alive):
 *   POST /echo          answers the request body as it came
 *   anything else       `hello METHOD URL BODY_BYTES\n` (the body is read first)
 *   Upgrade: websocket  a minimal RFC 6455 server (written by hand: no npm dependency) that
 *                       echoes every text and binary frame, answers pings and closes
 * h2c (prior knowledge): `h2 hello METHOD PATH\n`.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import { createServer as h2createServer } from 'node:http2';
import type { Duplex } from 'node:stream';

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

function wsFrame(opcode: number, payload: Buffer): Buffer {
  const n = payload.length;
  const head =
    n < 126
      ? Buffer.from([0x80 | opcode, n])
      : n < 65_536
        ? Buffer.from([0x80 | opcode, 126, n >> 8, n & 0xff])
        : Buffer.concat([Buffer.from([0x80 | opcode, 127]), bigLength(n)]);
  return Buffer.concat([head, payload]);
}

function bigLength(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

/** Echoes WebSocket frames (client frames are masked; ours are not). No fragmentation. */
function webSocketEcho(req: IncomingMessage, socket: Duplex, head: Buffer): void {
  const key = req.headers['sec-websocket-key'];
  if (req.headers.upgrade?.toLowerCase() !== 'websocket' || typeof key !== 'string') {
    socket.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
    return;
  }
  const accept = createHash('sha1')
    .update(key + WS_GUID)
    .digest('base64');
  socket.write(
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Accept: ${accept}\r\n\r\n`,
  );
  let buffered = head;
  const onData = (chunk: Buffer) => {
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
    for (;;) {
      if (buffered.length < 2) return;
      const opcode = (buffered[0] as number) & 0x0f;
      const masked = ((buffered[1] as number) & 0x80) !== 0;
      let length = (buffered[1] as number) & 0x7f;
      let at = 2;
      if (length === 126) {
        if (buffered.length < 4) return;
        length = buffered.readUInt16BE(2);
        at = 4;
      } else if (length === 127) {
        if (buffered.length < 10) return;
        length = Number(buffered.readBigUInt64BE(2));
        at = 10;
      }
      const maskAt = at;
      if (masked) at += 4;
      if (buffered.length < at + length) return;
      const payload = Buffer.from(buffered.subarray(at, at + length));
      if (masked) {
        const mask = buffered.subarray(maskAt, maskAt + 4);
        for (let i = 0; i < length; i++)
          payload[i] = (payload[i] as number) ^ (mask[i % 4] as number);
      }
      buffered = buffered.subarray(at + length);
      if (opcode === 0x1 || opcode === 0x2) socket.write(wsFrame(opcode, payload));
      else if (opcode === 0x9) socket.write(wsFrame(0xa, payload));
      else if (opcode === 0x8) {
        socket.end(wsFrame(0x8, payload));
        return;
      }
    }
  };
  socket.on('data', onData);
  socket.on('error', () => {});
  if (head.length > 0) onData(Buffer.alloc(0));
}

const [httpPort = '8080', h2Port = '8081'] = process.argv.slice(2);
const http = createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/echo') {
    res.setHeader('content-type', 'application/octet-stream');
    req.pipe(res);
    return;
  }
  let size = 0;
  req.on('data', (c: Buffer) => {
    size += c.length;
  });
  req.on('end', () => {
    res.setHeader('content-type', 'text/plain');
    res.end(`hello ${req.method} ${req.url} ${size}\n`);
  });
});
http.keepAliveTimeout = 60_000;
http.on('upgrade', webSocketEcho);
const h2 = h2createServer();
h2.on('stream', (stream, headers) => {
  stream.on('error', () => {});
  stream.resume();
  stream.respond({ ':status': 200, 'content-type': 'text/plain' });
  stream.end(`h2 hello ${headers[':method']} ${headers[':path']}\n`);
});
let listening = 0;
const ready = () => {
  if (++listening === 2) console.log('listening');
};
http.listen(Number(httpPort), ready);
h2.listen(Number(h2Port), ready);
process.on('SIGTERM', () => process.exit(0));
