import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Balancer } from '../../daemon/agent/balancer.js';

test('round robin rotates the first choice and keeps the others as fallbacks', () => {
  const b = new Balancer();
  const eps = ['a', 'b', 'c'];
  assert.deepEqual(b.order('svc', eps), ['a', 'b', 'c']);
  assert.deepEqual(b.order('svc', eps), ['b', 'c', 'a']);
  assert.deepEqual(b.order('svc', eps), ['c', 'a', 'b']);
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
