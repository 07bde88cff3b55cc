/**
 * Long transfers that report how they ended, for tests that kill a peer mid-transfer.
 *   transfer server PORT
 *       each connection's first byte says what to do: "U" the client uploads (read slowly, so
 *       the writer's buffers fill up), "D" the client downloads (write as fast as allowed,
 *       read by the client as fast as it comes)
 *   transfer client up|down N HOST PORT [SECONDS]
 *       N connections of that kind; prints {"moving":N} once each one moved 1 MiB, then one
 *       line per connection when it ends, and exits once all have ended or SECONDS (default
 *       60) have passed
 * Both print per connection {"ended": "reset"|"fin"|"<error code>", "at": Date.now(), ...}:
 * "fin" is a clean end, which for a transfer cut in the middle is a lie (truncation).
 *
 * The same over HTTP/1.1 (through an L7 proxy), with the bytes' sha256 on both ends:
 *   transfer http-server PORT
 *       POST: reads the body and answers {"bytes","sha256"} of it; GET /N: sends N bytes of
 *       the stream below and prints {"side":"server","sent","sha256"}
 *   transfer http-client up|down BYTES URL [SECONDS]
 *       up: POSTs BYTES bytes of the stream to URL; down: GETs URL/BYTES; prints
 *       {"side":"client","bytes","sha256","server"?} (server: the POST's answer) or
 *       {"error"} and exits 1
 * The bytes are AES-128-CTR over zeros: never repeating, so a chunk lost, doubled or moved
 * changes the hash, and cheap for both ends to make.
 */
import { createCipheriv, createHash } from 'node:crypto';
import {
  createServer as createHttpServer,
  request as httpRequest,
  type IncomingMessage,
} from 'node:http';
import { connect, createServer, type Socket } from 'node:net';

const out = (v: unknown) => console.log(JSON.stringify(v));
const CHUNK = Buffer.alloc(64 * 1024, 0x61);
const SLOW_READ_BYTES = 256 * 1024;
const SLOW_READ_EVERY_MS = 100;
const MOVING_BYTES = 1024 * 1024;

/** How a connection ended: a reset, a clean FIN, or another error. */
function watchEnd(socket: Socket, report: (ended: string) => void): void {
  let done = false;
  const end = (ended: string) => {
    if (done) return;
    done = true;
    report(ended);
    socket.destroy();
  };
  socket.on('error', (err: NodeJS.ErrnoException) =>
    end(err.code === 'ECONNRESET' || err.code === 'EPIPE' ? 'reset' : (err.code ?? err.message)),
  );
  socket.on('end', () => end('fin'));
  socket.on('close', () => end('closed'));
}

/** Reads at most SLOW_READ_BYTES per SLOW_READ_EVERY_MS: the writer ends up write-blocked. */
function readSlowly(socket: Socket, onBytes: (n: number) => void): void {
  let budget = SLOW_READ_BYTES;
  const timer = setInterval(() => {
    budget = SLOW_READ_BYTES;
    socket.resume();
  }, SLOW_READ_EVERY_MS);
  socket.once('close', () => clearInterval(timer));
  socket.on('data', (chunk: Buffer) => {
    onBytes(chunk.length);
    budget -= chunk.length;
    if (budget <= 0) socket.pause();
  });
}

/** Writes as fast as the socket takes it, until it ends. */
function writeFast(socket: Socket, onBytes: (n: number) => void): void {
  const pump = () => {
    while (!socket.destroyed && socket.writable) {
      onBytes(CHUNK.length);
      if (!socket.write(CHUNK)) {
        socket.once('drain', pump);
        return;
      }
    }
  };
  pump();
}

function server(port: number): void {
  createServer({ allowHalfOpen: true }, (socket) => {
    socket.once('data', (first: Buffer) => {
      const kind = first.subarray(0, 1).toString();
      watchEnd(socket, (ended) => out({ side: 'server', kind, ended, at: Date.now() }));
      if (kind === 'U') readSlowly(socket, () => {});
      else writeFast(socket, () => {});
    });
    socket.on('error', () => {});
  }).listen({ port, host: '::', ipv6Only: false }, () => console.log('listening'));
}

function client(kind: 'up' | 'down', n: number, host: string, port: number, seconds: number) {
  let moving = 0;
  let ended = 0;
  const limit = setTimeout(() => process.exit(0), seconds * 1000);
  for (let i = 0; i < n; i++) {
    const socket = connect({ host, port, allowHalfOpen: true });
    let bytes = 0;
    let counted = false;
    const count = (b: number) => {
      bytes += b;
      if (counted || bytes < MOVING_BYTES) return;
      counted = true;
      if (++moving === n) out({ moving });
    };
    watchEnd(socket, (how) => {
      out({ side: 'client', kind, ended: how, at: Date.now(), bytes });
      if (++ended === n) {
        clearTimeout(limit);
        process.exit(0);
      }
    });
    socket.once('connect', () => {
      socket.write(kind === 'up' ? 'U' : 'D');
      // A download is read at once: bytes left in the client's own receive buffer (up to
      // tcp_rmem's 32 MiB) would come before the reset, however early the agent sent it.
      if (kind === 'up') writeFast(socket, count);
      else socket.on('data', (chunk: Buffer) => count(chunk.length));
    });
  }
}

const ZEROS = Buffer.alloc(64 * 1024);

/** The next `n` (<= 64 KiB) bytes of the stream, per call. */
function byteStream(): (n: number) => Buffer {
  const cipher = createCipheriv('aes-128-ctr', Buffer.alloc(16, 7), Buffer.alloc(16));
  return (n) => cipher.update(n === ZEROS.length ? ZEROS : ZEROS.subarray(0, n));
}

function httpServer(port: number): void {
  createHttpServer((req, res) => {
    if (req.method === 'POST') {
      const hash = createHash('sha256');
      let bytes = 0;
      req.on('data', (c: Buffer) => {
        bytes += c.length;
        hash.update(c);
      });
      req.on('end', () => {
        const answer = { bytes, sha256: hash.digest('hex') };
        out({ side: 'server', received: bytes, sha256: answer.sha256 });
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify(answer));
      });
      return;
    }
    const total = Number((req.url ?? '/').slice(1));
    if (!Number.isSafeInteger(total) || total < 0) {
      res.statusCode = 400;
      res.end();
      return;
    }
    const next = byteStream();
    const hash = createHash('sha256');
    let sent = 0;
    res.setHeader('content-type', 'application/octet-stream');
    res.setHeader('content-length', String(total));
    const pump = () => {
      while (sent < total) {
        const chunk = next(Math.min(ZEROS.length, total - sent));
        sent += chunk.length;
        hash.update(chunk);
        if (!res.write(chunk)) {
          res.once('drain', pump);
          return;
        }
      }
      res.end(() => out({ side: 'server', sent, sha256: hash.digest('hex') }));
    };
    res.once('close', () => res.off('drain', pump));
    pump();
  }).listen({ port, host: '::', ipv6Only: false }, () => console.log('listening'));
}

function httpClient(kind: 'up' | 'down', total: number, url: string, seconds: number): void {
  const fail = (err: unknown) => {
    out({ side: 'client', error: String(err) });
    process.exit(1);
  };
  setTimeout(() => fail(`not done within ${seconds} s`), seconds * 1000).unref();
  const hash = createHash('sha256');
  let bytes = 0;
  const done = (server?: unknown) => {
    out({ side: 'client', bytes, sha256: hash.digest('hex'), server });
    process.exit(0);
  };
  const readAll = (res: IncomingMessage, onEnd: (body: Buffer) => void) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => onEnd(Buffer.concat(chunks)));
    res.on('error', fail);
  };
  if (kind === 'down') {
    const req = httpRequest(`${url.replace(/\/$/, '')}/${total}`, (res) => {
      if (res.statusCode !== 200) fail(`status ${res.statusCode}`);
      res.on('data', (c: Buffer) => {
        bytes += c.length;
        hash.update(c);
      });
      res.on('end', () => done());
      res.on('error', fail);
    });
    req.on('error', fail);
    req.end();
    return;
  }
  const req = httpRequest(url, {
    method: 'POST',
    headers: { 'content-length': String(total), 'content-type': 'application/octet-stream' },
  });
  req.on('error', fail);
  req.on('response', (res) =>
    readAll(res, (body) => {
      try {
        done({ status: res.statusCode, ...JSON.parse(body.toString()) });
      } catch {
        fail(`status ${res.statusCode}: ${body.toString().slice(0, 200)}`);
      }
    }),
  );
  const next = byteStream();
  const pump = () => {
    while (bytes < total) {
      const chunk = next(Math.min(ZEROS.length, total - bytes));
      bytes += chunk.length;
      hash.update(chunk);
      if (!req.write(chunk)) {
        req.once('drain', pump);
        return;
      }
    }
    req.end();
  };
  pump();
}

const [role, ...args] = process.argv.slice(2);
if (role === 'server') server(Number(args[0]));
else if (role === 'http-server') httpServer(Number(args[0]));
else if (role === 'http-client') {
  const [kind, total = '0', url = '', seconds = '120'] = args;
  httpClient(kind === 'up' ? 'up' : 'down', Number(total), url, Number(seconds));
} else if (role === 'client') {
  const [kind, n = '1', host = '', port = '', seconds = '60'] = args;
  client(kind === 'up' ? 'up' : 'down', Number(n), host, Number(port), Number(seconds));
} else {
  console.error(
    'usage: transfer server PORT | transfer client up|down N HOST PORT [SECONDS] |' +
      ' transfer http-server PORT | transfer http-client up|down BYTES URL [SECONDS]',
  );
  process.exit(2);
}
process.on('SIGTERM', () => process.exit(0));
