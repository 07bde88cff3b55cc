/**
 * Applications that report how their connection ended: a clean end (the peer's FIN) or an
 * error (a reset). Each prints JSON lines on stdout.
 *   drip PORT       listen; on each connection write 256 bytes every 100 ms, read and drop
 *                   what comes; print {listening}, then {accepted} and {ended: "end" | code}
 *   watch HOST PORT connect, write nothing; print {receiving} on the first bytes, then
 *                   {ended: "end" | code, bytes}
 * Only the first of 'end' and 'error' counts: after a FIN the peer's later reset (our write
 * meets its closed socket) does not make a truncated stream look any less complete.
 * Both exit on SIGTERM, and after 120 s whatever happens.
 */
import { connect, createServer, type Socket } from 'node:net';

const out = (v: unknown) => console.log(JSON.stringify(v));

/** Calls back once, with 'end' or the error's code, whichever the socket reports first. */
function onEnded(socket: Socket, report: (how: string) => void): void {
  let done = false;
  const once = (how: string) => {
    if (done) return;
    done = true;
    report(how);
  };
  socket.once('end', () => once('end'));
  socket.on('error', (err: NodeJS.ErrnoException) => once(err.code ?? err.message));
  socket.once('close', () => once('close without end or error'));
}

function drip(port: number): void {
  const chunk = Buffer.alloc(256, 'd');
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    out({ accepted: true });
    const timer = setInterval(() => {
      if (socket.writable) socket.write(chunk);
    }, 100);
    socket.resume();
    onEnded(socket, (how) => out({ ended: how }));
    socket.once('close', () => clearInterval(timer));
  });
  server.listen({ port, host: '::', ipv6Only: false }, () => out({ listening: true }));
}

function watch(host: string, port: number): void {
  const socket = connect({ host, port, allowHalfOpen: true });
  let bytes = 0;
  socket.on('data', (c: Buffer) => {
    if (bytes === 0) out({ receiving: true });
    bytes += c.length;
  });
  onEnded(socket, (how) => out({ ended: how, bytes }));
}

const [mode, a = '', b = ''] = process.argv.slice(2);
if (mode === 'drip') drip(Number(a));
else if (mode === 'watch') watch(a, Number(b));
else {
  console.error(`unknown mode ${mode}`);
  process.exit(2);
}
process.on('SIGTERM', () => process.exit(0));
setTimeout(() => process.exit(0), 120_000).unref();
