/**
 * A tiny HTTP server for lab tests: answers every request with the address the connection came
 * from, as JSON. Usage: echo-server.js PORT [HOST]; prints "listening" once it accepts.
 */
import { createServer } from 'node:http';

const port = Number(process.argv[2] ?? 8080);
const host = process.argv[3] ?? '::';
const server = createServer((req, res) => {
  const body = JSON.stringify({
    remoteAddress: req.socket.remoteAddress?.replace(/^::ffff:/, ''),
    remotePort: req.socket.remotePort,
    localAddress: req.socket.localAddress?.replace(/^::ffff:/, ''),
  });
  res.writeHead(200, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    connection: 'close',
  });
  res.end(body);
});
server.listen({ port, host, ipv6Only: false }, () => console.log('listening'));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
