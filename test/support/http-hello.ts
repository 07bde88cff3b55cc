// A tiny HTTP/1.1 server for the lab: answers every request with its method and path (and
// reads the whole body first). Usage: http-hello.js PORT; prints "listening".
import { createServer } from 'node:http';

const port = Number(process.argv[2] ?? 8080);
const server = createServer((req, res) => {
  let size = 0;
  req.on('data', (c: Buffer) => {
    size += c.length;
  });
  req.on('end', () => {
    res.setHeader('content-type', 'text/plain');
    res.end(`hello ${req.method} ${req.url} ${size}\n`);
  });
});
server.listen(port, () => console.log('listening'));
process.on('SIGTERM', () => process.exit(0));
