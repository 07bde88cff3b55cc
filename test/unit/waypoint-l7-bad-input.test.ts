// Bad input on a request whose upstream connection is still being opened (the usual case
// through HBONE, where a connect takes a round trip): the refusal is what is recorded.
import assert from 'node:assert/strict';
import http from 'node:http';
import { connect, type Socket } from 'node:net';
import { test } from 'node:test';
import {
  endpointOf,
  startHarness,
  target,
  tcpConnect,
  until,
} from '../support/waypoint-l7-harness.js';

function raw(port: number, bytes: string): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const s: Socket = connect(port, '127.0.0.1');
    let text = '';
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ text, closed: false });
    }, 3_000);
    s.on('data', (d) => {
      text += d.toString('latin1');
    });
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ text, closed: true });
    });
    s.write(bytes);
  });
}

test('a bad chunk while the upstream connect is under way: 400, recorded as 400 DPE, the upstream never asked', async () => {
  const paths: string[] = [];
  const up = http.createServer((req, res) => {
    paths.push(req.url ?? '');
    req.resume();
    res.end('ok');
  });
  await new Promise<void>((r) => up.listen(0, '127.0.0.1', r));
  const h = await startHarness({
    target: target('http', [endpointOf(up)]),
    // A connect that takes a while, as a tunnel to another node does. (net.connect with a
    // signal aborted already still connects: not called then.)
    connect: async (e, signal) => {
      await new Promise((r) => setTimeout(r, 100));
      if (signal.aborted) throw signal.reason;
      return tcpConnect(e, signal);
    },
  });
  try {
    const r = await raw(
      h.port,
      'POST /chunks HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n',
    );
    assert.ok(r.text.startsWith('HTTP/1.1 400 '), JSON.stringify(r.text));
    assert.equal(r.closed, true);
    assert.ok(await until(() => h.records.length === 1));
    await new Promise((res) => setTimeout(res, 300));
    assert.equal(h.records.length, 1);
    const rec = h.records[0];
    assert.equal(rec?.path, '/chunks');
    assert.equal(rec?.status, 400);
    assert.equal(rec?.responseFlags, 'DPE');
    assert.deepEqual(paths, [], 'the upstream never saw the request');
  } finally {
    await h.close();
    up.close();
  }
});
