/**
 * Raw TCP servers for data-path tests. Usage: tcp-server.js MODE PORT; prints "listening".
 *   echo    echoes bytes; when the client ends its half, ends ours (half-close honoured)
 *   banner  says "HELLO from banner\n" first (server speaks first), then echoes
 *   sha     hashes everything received; when the client ends, answers the sha256 hex and ends
 *   reset   says "bye\n", then resets the connection (TCP RST) 100 ms later
 */
import { createHash } from 'node:crypto';
import { createServer } from 'node:net';

const [mode = 'echo', port = '9000'] = process.argv.slice(2);
const server = createServer({ allowHalfOpen: true }, (socket) => {
  socket.on('error', () => {});
  if (mode === 'sha') {
    const hash = createHash('sha256');
    socket.on('data', (c: Buffer) => hash.update(c));
    socket.on('end', () => socket.end(`${hash.digest('hex')}\n`));
    return;
  }
  if (mode === 'reset') {
    socket.write('bye\n');
    setTimeout(() => socket.resetAndDestroy(), 100);
    return;
  }
  if (mode === 'banner') socket.write('HELLO from banner\n');
  socket.pipe(socket);
});
server.listen({ port: Number(port), host: '::', ipv6Only: false }, () => console.log('listening'));
process.on('SIGTERM', () => process.exit(0));
