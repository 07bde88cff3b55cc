/**
 * Request/response latency over one TCP connection, exact message sizes (Debian's sockperf
 * cannot send fewer than 14 bytes). The client sends `size` bytes, waits for all `size` bytes
 * back, and times each round trip with the monotonic clock; the server echoes.
 * Usage: pingpong.js server PORT
 *        pingpong.js client HOST PORT SIZE SECONDS MAX_ROUND_TRIPS
 * The server prints "listening"; the client prints one JSON line: round trips in a histogram of
 * 1 µs bins, [µs, count], from which every percentile it reports is read.
 */
import { connect, createServer, type Socket } from 'node:net';
import { latencySummary } from './stats.js';

const WARMUP_ROUND_TRIPS = 200;

function serve(port: number): void {
  const server = createServer((socket) => {
    socket.setNoDelay(true);
    socket.on('data', (chunk) => socket.write(chunk));
    socket.on('error', () => socket.destroy());
  });
  server.listen({ port, host: '0.0.0.0' }, () => console.log('listening'));
  process.on('SIGTERM', () => process.exit(0));
}

function measure(socket: Socket, size: number, seconds: number, max: number): Promise<number[]> {
  const message = Buffer.alloc(size, 0x61);
  const micros: number[] = [];
  const deadline = process.hrtime.bigint() + BigInt(Math.round(seconds * 1e9));
  let pending = size;
  let sentAt = 0n;
  let warmup = WARMUP_ROUND_TRIPS;
  return new Promise((resolve, reject) => {
    const send = () => {
      pending = size;
      sentAt = process.hrtime.bigint();
      socket.write(message);
    };
    socket.on('data', (chunk: Buffer) => {
      pending -= chunk.length;
      if (pending > 0) return;
      if (pending < 0) return reject(new Error(`echo returned ${-pending} bytes too many`));
      const now = process.hrtime.bigint();
      if (warmup > 0) warmup--;
      else micros.push(Number(now - sentAt) / 1000);
      if (micros.length >= max || now >= deadline) return resolve(micros);
      send();
    });
    socket.once('error', reject);
    socket.once('end', () => reject(new Error('the connection ended during the run')));
    send();
  });
}

async function client(host: string, port: number, size: number, seconds: number, max: number) {
  const socket = connect({ host, port, noDelay: true });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const timer = setTimeout(
    () => socket.destroy(new Error('no answer within the time limit')),
    (seconds + 10) * 1000,
  );
  try {
    const micros = await measure(socket, size, seconds, max);
    console.log(JSON.stringify({ size, warmup: WARMUP_ROUND_TRIPS, ...latencySummary(micros) }));
  } finally {
    clearTimeout(timer);
    socket.destroy();
  }
}

const [mode, ...args] = process.argv.slice(2);
if (mode === 'server') serve(Number(args[0]));
else if (mode === 'client') {
  const [host, port, size, seconds, max] = args;
  client(host ?? '', Number(port), Number(size), Number(seconds), Number(max)).catch((err) => {
    console.error(`pingpong: ${(err as Error).message}`);
    process.exit(1);
  });
} else {
  console.error('usage: pingpong.js server PORT | client HOST PORT SIZE SECONDS MAX');
  process.exit(2);
}
