import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Balancer } from '../../daemon/proxy/index.js';

test('round robin rotates the first choice and keeps the others as fallbacks', () => {
  const b = new Balancer();
  const eps = ['a', 'b', 'c'];
  assert.deepEqual(b.order('svc', eps), ['a', 'b', 'c']);
  assert.deepEqual(b.order('svc', eps), ['b', 'a', 'c']);
  assert.deepEqual(b.order('svc', eps), ['c', 'a', 'b']);
  assert.deepEqual(b.order('svc', eps)[0], 'a', 'and around again');
  assert.deepEqual(b.order('other', eps), ['a', 'b', 'c'], 'each service has its own cursor');
  assert.deepEqual(b.order('svc', []), []);
});

test('least connections prefers the endpoint with the fewest active connections', () => {
  const b = new Balancer();
  b.opened('a');
  b.opened('a');
  b.opened('b');
  assert.deepEqual(b.order('svc', ['a', 'b', 'c'], 'LeastConnections'), ['c', 'b', 'a']);
  b.closed('a');
  b.closed('a');
  assert.equal(b.order('svc', ['a', 'b'], 'LeastConnections')[0], 'a');
});

test('consecutive failures eject an endpoint for a back-off period that doubles', () => {
  let now = 0;
  const b = new Balancer(
    { consecutiveFailures: 3, baseEjectionMs: 1000, maxEjectionMs: 3000 },
    () => now,
  );
  assert.equal(b.failed('a'), false);
  b.succeeded('a'); // a success resets the count
  assert.equal(b.failed('a'), false);
  assert.equal(b.failed('a'), false);
  assert.equal(b.failed('a'), true);
  assert.ok(b.isEjected('a'));
  assert.deepEqual(b.order('svc', ['a', 'b']).slice(0, 1), ['b'], 'ejected endpoints go last');
  now = 1001;
  assert.equal(b.isEjected('a'), false);
  for (let i = 0; i < 3; i++) b.failed('a');
  now += 1999;
  assert.ok(b.isEjected('a'), 'second ejection lasts twice as long');
  now += 2;
  assert.equal(b.isEjected('a'), false);
});

test('when every endpoint is ejected, all are tried rather than none', () => {
  const now = 0;
  const b = new Balancer({ consecutiveFailures: 1 }, () => now);
  b.failed('a');
  b.failed('b');
  assert.equal(b.order('svc', ['a', 'b']).length, 2);
});

test('weights skew round robin smoothly and least connections proportionally', () => {
  const b = new Balancer();
  const weights = new Map([
    ['a', 3],
    ['b', 1],
  ]);
  const firsts = Array.from(
    { length: 8 },
    () => b.order('svc', ['a', 'b'], 'RoundRobin', weights)[0],
  );
  assert.deepEqual(firsts, ['a', 'a', 'b', 'a', 'a', 'a', 'b', 'a']);
  const lc = new Balancer();
  for (let i = 0; i < 3; i++) lc.opened('a');
  lc.opened('b');
  // a: 3 active / weight 3 = 1; b: 1 active / weight 1 = 1; c: 0 → c first, then a wins ties by order.
  assert.equal(lc.order('svc', ['a', 'b', 'c'], 'LeastConnections', weights)[0], 'c');
  lc.opened('c');
  lc.opened('c');
  assert.equal(lc.order('svc', ['a', 'b', 'c'], 'LeastConnections', weights)[0], 'a');
});
