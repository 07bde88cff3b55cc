// The shared monitoring endpoint and the JSON-lines logger.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Counter, Registry } from 'prom-client';
import {
  createJsonLogger,
  metricsRoute,
  readinessRoute,
  startHttpEndpoint,
} from '../../daemon/telemetry/index.js';

test('routes: readiness 200/503, metrics text, 404 for unknown paths, 405 for other methods', async () => {
  const registry = new Registry();
  new Counter({ name: 'x_total', help: 'x', registers: [registry] }).inc(3);
  let ready = true;
  const endpoint = await startHttpEndpoint({
    host: '127.0.0.1',
    port: 0,
    routes: {
      '/healthz/ready': readinessRoute(() => (ready ? { ready } : { ready, reason: 'draining' })),
      '/metrics': metricsRoute(registry),
    },
  });
  const base = `http://127.0.0.1:${endpoint.port}`;
  try {
    assert.equal((await fetch(`${base}/healthz/ready`)).status, 200);
    ready = false;
    const notReady = await fetch(`${base}/healthz/ready?verbose=1`);
    assert.equal(notReady.status, 503);
    assert.equal(await notReady.text(), 'not ready: draining\n');
    const metrics = await fetch(`${base}/metrics`);
    assert.match(metrics.headers.get('content-type') ?? '', /^text\/plain/);
    assert.match(await metrics.text(), /^x_total 3$/m);
    assert.equal((await fetch(`${base}/other`)).status, 404);
    const post = await fetch(`${base}/metrics`, { method: 'POST' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET, HEAD');
  } finally {
    await endpoint.close();
  }
  await assert.rejects(fetch(`${base}/metrics`), 'closed');
});

test('a port in use is a MESHD_E_LISTEN error naming the address', async () => {
  const first = await startHttpEndpoint({ host: '127.0.0.1', port: 0, routes: {} });
  try {
    await assert.rejects(
      startHttpEndpoint({ host: '127.0.0.1', port: first.port, routes: {} }),
      new RegExp(`cannot listen for HTTP on 127\\.0\\.0\\.1:${first.port}: .*EADDRINUSE`),
    );
  } finally {
    await first.close();
  }
});

test('logger: one JSON object per line, level filter, child fields, errors as messages', () => {
  const lines: string[] = [];
  const log = createJsonLogger({
    level: 'info',
    write: (l) => void lines.push(l),
    base: { role: 'server' },
    now: () => Date.UTC(2030, 0, 1),
  });
  log.debug({ a: 1 }, 'dropped');
  log.child({ component: 'ca' }).warn({ err: new Error('boom'), n: 2n }, 'careful');
  assert.equal(lines.length, 1);
  assert.ok(lines[0]?.endsWith('\n'));
  assert.deepEqual(JSON.parse(lines[0] ?? ''), {
    level: 'warn',
    time: '2030-01-01T00:00:00.000Z',
    msg: 'careful',
    role: 'server',
    component: 'ca',
    err: { message: 'boom' },
    n: '2',
  });
});

test('logger to stderr: lines of every logger batched in order, none lost on process.exit()', async () => {
  const { spawnSync } = await import('node:child_process');
  const { fileURLToPath } = await import('node:url');
  const logger = fileURLToPath(new URL('../../daemon/telemetry/logger.js', import.meta.url));
  const script = `
    const { createJsonLogger } = await import(${JSON.stringify(logger)});
    const a = createJsonLogger({ base: { who: 'a' } });
    const b = createJsonLogger({ base: { who: 'b' } });
    for (let i = 0; i < 3000; i++) (i % 2 ? b : a).info({ i }, 'line');
    setImmediate(() => { a.info({ i: 3000 }, 'last'); process.exit(3); });`;
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: 20_000,
  });
  assert.equal(child.status, 3, child.stderr.slice(0, 500));
  const records = child.stderr
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { i: number; who: string });
  assert.equal(records.length, 3001);
  assert.deepEqual(
    records.map((r) => r.i),
    Array.from({ length: 3001 }, (_, i) => i),
  );
  assert.equal(records[1]?.who, 'b');
});
