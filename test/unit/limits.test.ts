import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConnectionLimiter } from '../../daemon/proxy/index.js';

test('pending connects and open connections are bounded separately; slots come back', () => {
  const limiter = new ConnectionLimiter({ maxConnections: 3, maxPendingConnects: 2 });
  const a = limiter.admit();
  const b = limiter.admit();
  assert.ok('connected' in a && 'connected' in b);
  const c = limiter.admit();
  assert.deepEqual(c, { refused: '2 connects pending (limit 2)' });
  a.connected();
  const d = limiter.admit();
  assert.ok('connected' in d);
  assert.deepEqual(limiter.admit(), { refused: '3 connections open (limit 3)' });
  b.closed();
  b.closed(); // idempotent
  assert.equal(limiter.open, 2);
  assert.equal(limiter.pending, 1);
  assert.ok('connected' in limiter.admit());
});
