// The waypoint L7 engine's opaque TCP path on loopback: appProtocol tcp, detection of non-HTTP
// bytes and of server-first protocols, half-close, back-pressure, endpoint fallbacks, records.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { test } from 'node:test';
import {
  deadPort,
  endpointOf,
  startHarness,
  target,
  until,
} from '../support/waypoint-l7-harness.js';

/** An upstream TCP server: 'echo' echoes and ends after the client ends; 'banner' greets first. */
async function tcpServer(mode: 'echo' | 'banner' | 'sha'): Promise<Server> {
  const server = createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {});
    if (mode === 'sha') {
      const hash = createHash('sha256');
      s.on('data', (c: Buffer) => hash.update(c));
      s.on('end', () => s.end(hash.digest('hex')));
      return;
    }
    if (mode === 'banner') s.write('220 hello from banner\r\n');
    s.pipe(s);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

/** Connects, writes `send` (then ends unless `keepOpen`), collects everything until close. */
function converse(
  port: number,
  send: Buffer | string | undefined,
  options: { keepOpen?: boolean; until?: (got: string) => boolean } = {},
): Promise<{ got: string; ms: number }> {
  const started = Date.now();
  return new Promise((resolve) => {
    const s: Socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    let got = '';
    s.on('error', () => {});
    s.on('data', (d) => {
      got += d.toString('latin1');
      if (options.until?.(got)) s.end();
    });
    s.on('close', () => resolve({ got, ms: Date.now() - started }));
    if (send !== undefined) s.write(send);
    if (!options.keepOpen) s.end();
  });
}

test('appProtocol tcp is spliced with half-close and recorded once with its bytes', async () => {
  const up = await tcpServer('echo');
  const h = await startHarness({ target: target('tcp', [endpointOf(up)]) });
  try {
    const r = await converse(h.port, 'GET / HTTP/1.1\r\nHost: a\r\n\r\n'); // HTTP bytes, still opaque
    assert.equal(r.got, 'GET / HTTP/1.1\r\nHost: a\r\n\r\n');
    assert.ok(await until(() => h.records.length === 1));
    const rec = h.records[0];
    assert.equal(rec?.protocol, 'tcp');
    assert.equal(rec?.requestBytes, 27);
    assert.equal(rec?.responseBytes, 27);
    assert.equal(rec?.responseFlags, '-');
    assert.equal(h.engine.stats().opaqueTunnels, 1);
  } finally {
    await h.close();
    up.close();
  }
});

test('non-HTTP first bytes are detected as opaque TCP (redis RESP, TLS)', async () => {
  const up = await tcpServer('echo');
  const h = await startHarness({ target: target(undefined, [endpointOf(up)]) });
  try {
    const resp = '*1\r\n$4\r\nPING\r\n';
    assert.equal((await converse(h.port, resp)).got, resp);
    const hello = Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5]);
    assert.equal((await converse(h.port, hello)).got, hello.toString('latin1'));
    assert.equal(h.engine.stats().opaqueTunnels, 2);
    assert.equal(h.engine.stats().http1Tunnels, 0);
  } finally {
    await h.close();
    up.close();
  }
});

test('a server-first protocol is not stalled: after the detection timeout the greeting comes', async () => {
  const up = await tcpServer('banner');
  const h = await startHarness({
    target: target(undefined, [endpointOf(up)]),
    limits: { detectTimeoutMs: 150 },
  });
  try {
    const r = await converse(h.port, undefined, {
      keepOpen: true,
      until: (got) => got.includes('\r\n'),
    });
    assert.equal(r.got, '220 hello from banner\r\n');
    assert.ok(r.ms >= 140 && r.ms < 1_500, `greeting after ${r.ms} ms`);
    // A client that half-closes at once without a byte is opaque too; the upstream gets FIN.
    const quiet = await converse(h.port, undefined);
    assert.equal(quiet.got, '220 hello from banner\r\n');
  } finally {
    await h.close();
    up.close();
  }
});

test('16 MiB pass with back-pressure intact', async () => {
  const up = await tcpServer('sha');
  const h = await startHarness({ target: target('tcp', [endpointOf(up)]) });
  try {
    const size = 16 * 1024 * 1024;
    const payload = Buffer.alloc(size);
    for (let i = 0; i < size; i += 1024) payload.writeUInt32LE(i, i);
    const r = await converse(h.port, payload);
    assert.equal(r.got, createHash('sha256').update(payload).digest('hex'));
    assert.ok(await until(() => h.records.length === 1));
    assert.equal(h.records[0]?.requestBytes, size);
  } finally {
    await h.close();
    up.close();
  }
});

test('opaque endpoint failures: a dead endpoint is skipped, all dead is UF, none is UH', async () => {
  const up = await tcpServer('echo');
  const dead = { ip: '127.0.0.1', port: await deadPort(), id: 'dead' };
  const endpoints = [dead, endpointOf(up, 'live')];
  const h = await startHarness({
    target: { protocol: 'tcp', endpoints: () => endpoints },
    random: () => 0,
  });
  try {
    assert.equal((await converse(h.port, 'abc')).got, 'abc');
    assert.deepEqual(h.connects, ['dead', 'live']);
    endpoints.splice(1, 1);
    assert.equal((await converse(h.port, 'abc', { keepOpen: true })).got, '');
    endpoints.splice(0, 1);
    assert.equal((await converse(h.port, 'abc', { keepOpen: true })).got, '');
    assert.ok(await until(() => h.records.length === 3));
    assert.deepEqual(
      h.records.map((r) => [r.responseFlags, r.endpoint ?? null]),
      [
        ['-', 'live'],
        ['UF', 'dead'],
        ['UH', null],
      ],
    );
  } finally {
    await h.close();
    up.close();
  }
});
