import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { describeError, ERROR_CODES, errorReason, MeshdError } from '../../daemon/errors.js';

test('docs/errors.md lists every error code with its meaning', () => {
  const doc = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8');
  for (const code of Object.keys(ERROR_CODES)) {
    assert.match(doc, new RegExp(`\\| \`${code}\` \\|`), `${code} missing from docs/errors.md`);
  }
  const documented = [...doc.matchAll(/\| `(MESHD_E_[A-Z_]+)` \|/g)].map((m) => m[1]);
  assert.deepEqual(
    documented.filter((c) => !(c! in ERROR_CODES)),
    [],
    'codes documented but not defined',
  );
});

test('a MeshdError keeps code, hint and cause', () => {
  const cause = new Error('ENOENT');
  const err = new MeshdError('MESHD_E_LAB', 'lab "x" not found', {
    cause,
    hint: 'run meshctl lab status',
  });
  assert.equal(err.code, 'MESHD_E_LAB');
  assert.equal(err.cause, cause);
  assert.equal(err.message, 'lab "x" not found (hint: run meshctl lab status)');
  assert.equal(err.name, 'MeshdError');
  assert.equal(errorReason(err), 'MESHD_E_LAB');
  assert.equal(
    errorReason(Object.assign(new Error('x'), { code: 'ECONNREFUSED' })),
    'ECONNREFUSED',
  );
  assert.equal(errorReason('weird'), 'error');
  assert.equal(
    describeError(err),
    'MESHD_E_LAB: lab "x" not found (hint: run meshctl lab status)\n  caused by: ENOENT',
  );
});
