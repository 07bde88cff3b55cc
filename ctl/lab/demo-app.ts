/**
 * The lab demo's own services, one process each inside a workload's namespace:
 *   frontend --port 8080 --backend http://10.96.0.20/
 *   backend  --port 8080 --version v1 --redis 10.96.0.30:6379
 * They know nothing of the mesh: plain HTTP and plain Redis, captured and carried in mTLS by
 * the agents. Every call has a timeout; failures answer 502 with the reason.
 */
import http from 'node:http';
import net from 'node:net';
import { parseArgs } from 'node:util';

const CALL_TIMEOUT_MS = 3000;

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    port: { type: 'string', default: '8080' },
    name: { type: 'string', default: '' },
    backend: { type: 'string', default: '' },
    redis: { type: 'string', default: '' },
    version: { type: 'string', default: 'v1' },
  },
});

/** INCR over one short Redis connection (RESP): the visit counter shared by all backends. */
function incrementVisits(address: string): Promise<number> {
  const [host, port] = [
    address.slice(0, address.lastIndexOf(':')),
    address.slice(address.lastIndexOf(':') + 1),
  ];
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port: Number(port) });
    let reply = '';
    socket.setTimeout(CALL_TIMEOUT_MS, () =>
      socket.destroy(new Error(`redis ${address}: timed out`)),
    );
    socket.on('connect', () => socket.write('*2\r\n$4\r\nINCR\r\n$6\r\nvisits\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString('latin1');
      const m = /^([:-])(.*)\r\n/.exec(reply);
      if (!m) return;
      socket.end();
      if (m[1] === ':') resolve(Number(m[2]));
      else reject(new Error(`redis ${address}: ${m[2]}`));
    });
    socket.on('error', (err) => reject(new Error(`redis ${address}: ${err.message}`)));
    socket.on('close', () =>
      reject(new Error(`redis ${address}: connection closed without a reply`)),
    );
  });
}

function fetchText(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    // A new connection per call: the mesh balances connections (L4), so pooled keep-alive
    // connections would pin the frontend to one backend version.
    const req = http.get(url, { timeout: CALL_TIMEOUT_MS, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () =>
        (res.statusCode ?? 500) < 400
          ? resolve(body)
          : reject(new Error(`${url}: HTTP ${res.statusCode}: ${body.trim()}`)),
      );
    });
    req.on('timeout', () => req.destroy(new Error(`${url}: timed out`)));
    req.on('error', (err) => reject(new Error(`${url}: ${err.message}`)));
  });
}

async function answer(role: string): Promise<string> {
  if (role === 'backend') {
    const visits = await incrementVisits(values.redis);
    return `backend ${values.version} (${values.name}): visit ${visits}\n`;
  }
  return `frontend (${values.name}) -> ${await fetchText(values.backend)}`;
}

const role = positionals[0] ?? '';
if (role !== 'frontend' && role !== 'backend') {
  console.error('usage: demo-app frontend|backend [--port N] [--backend URL] [--redis HOST:PORT]');
  process.exit(2);
}
const server = http.createServer((req, res) => {
  answer(role).then(
    (text) => {
      res.writeHead(200, { 'content-type': 'text/plain' }).end(text);
      console.log(`${new Date().toISOString()} ${req.method} ${req.url} 200`);
    },
    (err: Error) => {
      res.writeHead(502, { 'content-type': 'text/plain' }).end(`${role}: ${err.message}\n`);
      console.log(`${new Date().toISOString()} ${req.method} ${req.url} 502 ${err.message}`);
    },
  );
});
server.listen(Number(values.port), () => console.log(`${role} listening on :${values.port}`));
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    server.close();
    server.closeAllConnections();
  });
}
