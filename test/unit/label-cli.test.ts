import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseLabelChanges } from '../../ctl/enroll-cmd.js';
import { matches, parseLabelSelector } from '../../daemon/model/index.js';

test('selector strings in kubectl form', () => {
  assert.deepEqual(parseLabelSelector('app=web'), { matchLabels: { app: 'web' } });
  const s = parseLabelSelector('app==web, tier in (a, b),env!=prod,canary,!legacy,zone notin (x)');
  assert.deepEqual(s, {
    matchLabels: { app: 'web' },
    matchExpressions: [
      { key: 'tier', operator: 'In', values: ['a', 'b'] },
      { key: 'env', operator: 'NotIn', values: ['prod'] },
      { key: 'canary', operator: 'Exists' },
      { key: 'legacy', operator: 'DoesNotExist' },
      { key: 'zone', operator: 'NotIn', values: ['x'] },
    ],
  });
  assert.ok(matches(s, { app: 'web', tier: 'a', env: 'dev', canary: '1', zone: 'y' }));
  assert.ok(!matches(s, { app: 'web', tier: 'a', env: 'dev', canary: '1', legacy: 'yes' }));
  assert.deepEqual(parseLabelSelector(''), {});
  assert.throws(() => parseLabelSelector('a=b=c'), /cannot read selector part "a=b=c"/);
});

test('label changes: key=value sets, key- removes', () => {
  assert.deepEqual(parseLabelChanges(['app=web', 'old-', 'empty=']), {
    app: 'web',
    old: null,
    empty: '',
  });
  assert.throws(() => parseLabelChanges(['nonsense']), /"nonsense" is neither key=value nor key-/);
});
