/**
 * The client side of the waypoint protocol e2e; each mode prints one JSON line (a few print a
 * progress line first) and exits. Every mode is bounded in time.
 *   ws URL N                 WebSocket (Node's global client): N text messages, echoes read
 *                            back; {"sent","received","inOrder"}
 *   raw HOST PORT CASE       one connection carrying bad HTTP/1.1 input (cl-te, bad-chunk,
 *                            big-header, junk); {"status","firstLine","closed"}
 *   slow HOST PORT N SECONDS N connections whose request headers trickle in (one header line
 *                            a second, never finished); prints {"open":N} once all are
 *                            connected, then {"opened","closed","lifeMs":[min,max],"statuses"}
 *                            once all are closed or SECONDS have passed
 *   h2get URL MS SECONDS     one HTTP/2 (prior knowledge) session, a GET every MS ms for
 *                            SECONDS; {"ok","failed","errors"}
 */
import { connect as h2connect } from 'node:http2';
import { connect, type Socket } from 'node:net';

const out = (v: unknown) => console.log(JSON.stringify(v));
const [mode = '', ...args] = process.argv.slice(2);

function bounded(seconds: number, report: () => unknown): void {
  setTimeout(() => {
    out(report());
    process.exit(0);
  }, seconds * 1000).unref();
}

async function ws(url: string, n: number): Promise<void> {
  const received: string[] = [];
  bounded(20, () => ({ sent: n, received: received.length, inOrder: false, timedOut: true }));
  const socket = new WebSocket(url);
  await new Promise<void>((resolve, reject) => {
    socket.addEventListener('open', () => resolve());
    socket.addEventListener('error', () => reject(new Error('websocket error before open')));
  });
  socket.addEventListener('message', (ev: MessageEvent) => {
    received.push(String(ev.data));
    if (received.length === n) socket.close(1000, 'done');
  });
  for (let i = 0; i < n; i++) socket.send(`message ${i} ${'x'.repeat(i % 200)}`);
  await new Promise<void>((resolve) => socket.addEventListener('close', () => resolve()));
  const inOrder = received.every((m, i) => m === `message ${i} ${'x'.repeat(i % 200)}`);
  out({ sent: n, received: received.length, inOrder });
  process.exit(0);
}

const RAW: Record<string, (host: string) => Buffer> = {
  'cl-te': (host) =>
    Buffer.from(
      `POST /smuggle HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 5\r\n` +
        'Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    ),
  'bad-chunk': (host) =>
    Buffer.from(
      `POST /chunks HTTP/1.1\r\nHost: ${host}\r\nTransfer-Encoding: chunked\r\n\r\n` +
        'zz\r\nhello\r\n0\r\n\r\n',
    ),
  'big-header': (host) =>
    Buffer.from(`GET /big HTTP/1.1\r\nHost: ${host}\r\nX-Big: ${'a'.repeat(32 * 1024)}\r\n\r\n`),
  junk: () => Buffer.from('\x00\x01\x02 this is not HTTP \xff\xfe\r\n\r\n', 'latin1'),
};

function raw(host: string, port: number, kind: string): void {
  const make = RAW[kind];
  if (!make) throw new Error(`unknown case ${kind}`);
  const chunks: Buffer[] = [];
  const report = (closed: boolean) => {
    const text = Buffer.concat(chunks).toString('latin1');
    const firstLine = text.split('\r\n')[0] ?? '';
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(firstLine)?.[1] ?? 0);
    return { status, firstLine, closed };
  };
  bounded(10, () => report(false));
  const socket = connect({ host, port });
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.on('error', () => {});
  socket.once('close', () => {
    out(report(true));
    process.exit(0);
  });
  socket.once('connect', () => socket.write(make(host)));
}

function slow(host: string, port: number, n: number, seconds: number): void {
  let opened = 0;
  let closed = 0;
  let minLife = Number.POSITIVE_INFINITY;
  let maxLife = 0;
  const statuses: Record<string, number> = {};
  const report = () => ({
    opened,
    closed,
    lifeMs: [Math.round(minLife), Math.round(maxLife)],
    statuses,
  });
  bounded(seconds, report);
  const sockets = new Set<Socket>();
  const tick = setInterval(() => {
    for (const s of sockets) s.write(`x-slow-${Date.now() % 1000}: still coming\r\n`);
  }, 1_000);
  const one = () => {
    const socket = connect({ host, port });
    let at = 0;
    let head = '';
    socket.on('error', () => {});
    socket.on('data', (c: Buffer) => {
      if (head.length < 64) head += c.toString('latin1');
    });
    socket.once('connect', () => {
      at = performance.now();
      sockets.add(socket);
      socket.write(`GET /slow HTTP/1.1\r\nHost: ${host}\r\n`);
      if (++opened === n) out({ open: n });
    });
    socket.once('close', () => {
      sockets.delete(socket);
      if (at > 0) {
        const life = performance.now() - at;
        minLife = Math.min(minLife, life);
        maxLife = Math.max(maxLife, life);
      }
      const status = /^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 'none';
      statuses[status] = (statuses[status] ?? 0) + 1;
      if (++closed === n) {
        clearInterval(tick);
        out(report());
        process.exit(0);
      }
    });
  };
  // In batches, so the connects do not all wait on one tunnel setup at once.
  let started = 0;
  const batch = setInterval(() => {
    for (let i = 0; i < 100 && started < n; i++, started++) one();
    if (started === n) clearInterval(batch);
  }, 50);
}

async function h2get(url: string, everyMs: number, seconds: number): Promise<void> {
  let ok = 0;
  let failed = 0;
  const errors: string[] = [];
  const session = h2connect(url);
  session.on('error', (err) => errors.push(`session: ${err.message}`));
  const deadline = Date.now() + seconds * 1000;
  bounded(seconds + 10, () => ({ ok, failed, errors, timedOut: true }));
  while (Date.now() < deadline) {
    const answered = await new Promise<boolean>((resolve) => {
      const req = session.request({ ':path': `/normal/${ok + failed}` });
      let body = '';
      let status = 0;
      const t = setTimeout(() => {
        req.close();
        resolve(false);
      }, 2_000);
      req.on('response', (h) => {
        status = Number(h[':status']);
      });
      req.on('data', (c: Buffer) => {
        body += c.toString();
      });
      req.on('error', (err) => errors.push(err.message));
      req.on('close', () => {
        clearTimeout(t);
        resolve(status === 200 && body.startsWith('h2 hello GET /normal/'));
      });
      req.end();
    });
    if (answered) ok++;
    else failed++;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  session.close();
  out({ ok, failed, errors: errors.slice(0, 5) });
  process.exit(0);
}

if (mode === 'ws') await ws(args[0] ?? '', Number(args[1] ?? 10));
else if (mode === 'raw') raw(args[0] ?? '', Number(args[1]), args[2] ?? '');
else if (mode === 'slow')
  slow(args[0] ?? '', Number(args[1]), Number(args[2] ?? 1000), Number(args[3] ?? 30));
else if (mode === 'h2get') await h2get(args[0] ?? '', Number(args[1] ?? 50), Number(args[2] ?? 5));
else {
  console.error('usage: waypoint-lab-client ws|raw|slow|h2get ...');
  process.exit(2);
}
