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
 */
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

const [role, ...args] = process.argv.slice(2);
if (role === 'server') server(Number(args[0]));
else if (role === 'client') {
  const [kind, n = '1', host = '', port = '', seconds = '60'] = args;
  client(kind === 'up' ? 'up' : 'down', Number(n), host, Number(port), Number(seconds));
} else {
  console.error('usage: transfer server PORT | transfer client up|down N HOST PORT [SECONDS]');
  process.exit(2);
}
process.on('SIGTERM', () => process.exit(0));
