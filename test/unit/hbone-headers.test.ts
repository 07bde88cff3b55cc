// The HBONE request headers: what a peer may send is parsed without throwing, what we send has
// the shapes of DESIGN §4 (ztunnel-compatible).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  formatBaggage,
  formatForwarded,
  formatHostPort,
  isTraceparent,
  newTraceparent,
  parseBaggage,
  parseForwarded,
  parseHostPort,
} from '../../daemon/hbone/index.js';

test(':authority must be an IP literal and a port', () => {
  assert.deepEqual(parseHostPort('10.0.0.7:5432'), { ip: '10.0.0.7', port: 5432, family: 4 });
  assert.deepEqual(parseHostPort('[fd00::7]:80'), { ip: 'fd00::7', port: 80, family: 6 });
  for (const bad of [
    'db.local:5432',
    '10.0.0.7',
    '10.0.0.7:0',
    '10.0.0.7:65536',
    '10.0.0.7:+80',
    '10.0.0.7:80 ',
    'fd00::7:80',
    '[fd00::7]',
    '[fd00::7]80',
    '[10.0.0.7]:80',
    '[fe80::1%eth0]:80',
    '',
    undefined,
  ]) {
    assert.equal(parseHostPort(bad), undefined, String(bad));
  }
  assert.equal(formatHostPort('fd00::7', 15008), '[fd00::7]:15008');
  assert.equal(formatHostPort('10.0.0.7', 15008), '10.0.0.7:15008');
});

test('forwarded: for="ip:port" out; quoted, bare, IPv6 and port-less forms in', () => {
  assert.equal(formatForwarded('10.0.0.5', 40000), 'for="10.0.0.5:40000"');
  assert.equal(formatForwarded('fd00::5', 40000), 'for="[fd00::5]:40000"');
  assert.deepEqual(parseForwarded('for="10.0.0.5:40000"'), { ip: '10.0.0.5', port: 40000 });
  assert.deepEqual(parseForwarded('for="[fd00::5]:40000"'), { ip: 'fd00::5', port: 40000 });
  assert.deepEqual(parseForwarded('for=10.0.0.5'), { ip: '10.0.0.5', port: undefined });
  assert.deepEqual(parseForwarded('For="[fd00::5]";proto=https, for=10.9.9.9'), {
    ip: 'fd00::5',
    port: undefined,
  });
  assert.deepEqual(parseForwarded('proto=https;for="10.0.0.5:1"'), { ip: '10.0.0.5', port: 1 });
  for (const bad of ['for=unknown', 'for="_hidden"', 'for="10.0.0.5:1', 'by=10.0.0.1', '']) {
    assert.equal(parseForwarded(bad), undefined, bad);
  }
});

test('baggage: k=v members, percent-encoded values, properties dropped, junk skipped', () => {
  const header = formatBaggage({
    'k8s.namespace.name': 'shop',
    'k8s.workload.name': 'web',
    'service.name': 'web frontend,v2',
    absent: undefined,
  });
  assert.equal(
    header,
    'k8s.namespace.name=shop,k8s.workload.name=web,service.name=web%20frontend%2Cv2',
  );
  assert.deepEqual(parseBaggage(header), {
    'k8s.namespace.name': 'shop',
    'k8s.workload.name': 'web',
    'service.name': 'web frontend,v2',
  });
  assert.deepEqual(parseBaggage(' a = 1 ;prop=x, bad key=2, c=%E0%A4%A, d=4, a=dup'), {
    a: '1',
    d: '4',
  });
  assert.deepEqual(parseBaggage(undefined), {});
  assert.deepEqual(parseBaggage('x'.repeat(9000)), {});
  assert.throws(() => formatBaggage({ 'not a token': 'x' }), /not an HTTP token/);
});

test('traceparent: fresh ones are valid W3C version 00; malformed ones are recognised', () => {
  const seen = new Set<string>();
  // 400: across two refills of the random pool (170 ids each)
  for (let i = 0; i < 400; i++) {
    const tp = newTraceparent();
    assert.match(tp, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    assert.ok(isTraceparent(tp));
    seen.add(tp);
  }
  assert.equal(seen.size, 400);
  assert.ok(isTraceparent('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'));
  assert.ok(isTraceparent('01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra'));
  for (const bad of [
    '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra',
    'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
    '00-00000000000000000000000000000000-00f067aa0ba902b7-01',
    '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01',
    '00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01',
    'garbage',
    undefined,
  ]) {
    assert.equal(isTraceparent(bad), false, String(bad));
  }
});
