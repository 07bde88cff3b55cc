/**
 * Micro-benchmark of the waypoint's L7 engine (not part of npm test): N keep-alive HTTP/1.1
 * GETs on loopback, client → engine (a net server whose connections go to serveTunnel, as the
 * HBONE tunnels will) → upstream (a plain http server). Client, engine and upstream are three
 * processes, so the engine's CPU is its own: process.cpuUsage() over the measured window.
 * Prints req/s and the engine's CPU-µs per request (user + system). Bounded in count and time.
 *
 * Usage: node dist/test/bench/waypoint-l7-micro.js [--requests 20000] [--connections 16]
 *        [--warmup 2000] [--protocol http|detect] [--body 64] [--max-seconds 60]
 */
import { fork } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import { connect, createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { L7Engine } from '../../daemon/waypoint/l7/index.js';

const self = fileURLToPath(import.meta.url);

interface CpuReport {
  userUs: number;
  systemUs: number;
  rssMiB: number;
  records: number;
}

async function upstreamRole(body: number): Promise<void> {
  const payload = Buffer.alloc(body, 'x');
  const server = http.createServer({ keepAliveTimeout: 60_000 }, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': payload.length });
    res.end(payload);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  process.send?.({ port: (server.address() as { port: number }).port });
  process.on('message', (m: { cmd: string }) => {
    if (m.cmd === 'cpu-start') {
      started = process.cpuUsage();
      process.send?.({ ok: true });
    }
    if (m.cmd === 'cpu-stop') {
      const d = process.cpuUsage(started);
      process.send?.({ userUs: d.user, systemUs: d.system, rssMiB: 0, records: 0 });
    }
    if (m.cmd === 'exit') process.exit(0);
  });
  let started = process.cpuUsage();
}

async function engineRole(upstreamPort: number, detect: boolean): Promise<void> {
  let records = 0;
  const engine = new L7Engine({
    hooks: {
      authorize: () => ({ allowed: true }),
      connect: (e) =>
        new Promise((resolve, reject) => {
          const s = connect(e.port, e.ip);
          s.once('connect', () => resolve(s));
          s.once('error', reject);
        }),
      record: () => {
        records++;
      },
    },
  });
  const endpoints = [{ ip: '127.0.0.1', port: upstreamPort, id: 'up' }];
  const target = { protocol: detect ? undefined : ('http' as const), endpoints: () => endpoints };
  const ctx = {
    sourcePrincipal: 'spiffe://cluster.local/ns/bench/sa/client',
    sourceIp: '127.0.0.1',
    destination: { ip: '10.96.0.10', port: 80 },
    authority: '10.96.0.10:80',
  };
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    void engine.serveTunnel(socket, ctx, target);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  process.send?.({ port: (server.address() as { port: number }).port });
  let started = process.cpuUsage();
  process.on('message', (m: { cmd: string }) => {
    if (m.cmd === 'cpu-start') {
      started = process.cpuUsage();
      process.send?.({ ok: true });
    }
    if (m.cmd === 'cpu-stop') {
      const d = process.cpuUsage(started);
      process.send?.({
        userUs: d.user,
        systemUs: d.system,
        rssMiB: process.memoryUsage.rss() / 1024 / 1024,
        records,
      } satisfies CpuReport);
    }
    if (m.cmd === 'exit') {
      engine.destroy();
      server.close();
      // process.exit() would skip writing a --cpu-prof profile.
      process.disconnect?.();
      setTimeout(() => process.exit(0), 2_000).unref();
    }
  });
}

function child(role: string, args: string[]) {
  // L7_ENGINE_NODE_FLAGS adds Node flags to the engine process only (e.g. --cpu-prof).
  const flags =
    role === 'engine' ? (process.env.L7_ENGINE_NODE_FLAGS ?? '').split(' ').filter(Boolean) : [];
  const c = fork(self, [role, ...args], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    execArgv: [...process.execArgv, ...flags],
  });
  const ask = <T>(cmd: string): Promise<T> => {
    const reply = once(c, 'message') as Promise<[T]>;
    c.send({ cmd });
    return reply.then(([m]) => m);
  };
  const port = (once(c, 'message') as Promise<[{ port: number }]>).then(([m]) => m.port);
  return { c, ask, port };
}

async function drive(port: number, count: number, connections: number, deadline: number) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  let done = 0;
  let failed = 0;
  const one = () =>
    new Promise<void>((resolve) => {
      const req = http.get({ host: '127.0.0.1', port, path: '/bench', agent }, (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode !== 200) failed++;
          resolve();
        });
      });
      req.on('error', () => {
        failed++;
        resolve();
      });
    });
  const worker = async () => {
    while (done < count && Date.now() < deadline) {
      done++;
      await one();
    }
  };
  await Promise.all(Array.from({ length: connections }, worker));
  agent.destroy();
  return { done, failed };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      requests: { type: 'string', default: '20000' },
      connections: { type: 'string', default: '16' },
      warmup: { type: 'string', default: '2000' },
      protocol: { type: 'string', default: 'http' },
      body: { type: 'string', default: '64' },
      'max-seconds': { type: 'string', default: '60' },
    },
  });
  const requests = Math.min(1_000_000, Number(values.requests));
  const connections = Math.min(256, Number(values.connections));
  const warmup = Number(values.warmup);
  const deadline = Date.now() + Math.min(600, Number(values['max-seconds'])) * 1000;
  const upstream = child('upstream', [String(values.body)]);
  const engine = child('engine', [String(await upstream.port), values.protocol ?? 'http']);
  const port = await engine.port;
  if (process.env.L7_BENCH_DEBUG) console.error('engine port', port);
  try {
    await drive(port, warmup, connections, deadline);
    if (process.env.L7_BENCH_DEBUG) console.error('warm-up done');
    await engine.ask<{ ok: true }>('cpu-start');
    await upstream.ask<{ ok: true }>('cpu-start');
    const clientStart = process.cpuUsage();
    const t0 = performance.now();
    const { done, failed } = await drive(port, requests, connections, deadline);
    const seconds = (performance.now() - t0) / 1000;
    const client = process.cpuUsage(clientStart);
    const cpu = await engine.ask<CpuReport>('cpu-stop');
    const up = await upstream.ask<CpuReport>('cpu-stop');
    const perReq = (us: number) => (us / done).toFixed(1);
    console.log(
      JSON.stringify(
        {
          requests: done,
          failed,
          connections,
          protocol: values.protocol,
          seconds: Number(seconds.toFixed(2)),
          reqPerSec: Math.round(done / seconds),
          engineCpuUsPerReq: Number(perReq(cpu.userUs + cpu.systemUs)),
          engineUserUsPerReq: Number(perReq(cpu.userUs)),
          engineSystemUsPerReq: Number(perReq(cpu.systemUs)),
          engineRssMiB: Number(cpu.rssMiB.toFixed(1)),
          engineRecords: cpu.records,
          upstreamCpuUsPerReq: Number(perReq(up.userUs + up.systemUs)),
          clientCpuUsPerReq: Number(perReq(client.user + client.system)),
        },
        null,
        2,
      ),
    );
  } finally {
    engine.c.send({ cmd: 'exit' });
    upstream.c.send({ cmd: 'exit' });
  }
}

const [role, ...rest] = process.argv.slice(2);
if (role === 'upstream') process.once('disconnect', () => process.exit(0));
if (role === 'upstream') void upstreamRole(Number(rest[0] ?? 64));
else if (role === 'engine') void engineRole(Number(rest[0]), rest[1] === 'detect');
else await main();
