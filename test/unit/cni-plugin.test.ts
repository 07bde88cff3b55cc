import assert from 'node:assert/strict';
import { test } from 'node:test';
import { handleCni } from '../../cni/index.js';

test('VERSION answers with the supported CNI versions', () => {
  const out = handleCni({ CNI_COMMAND: 'VERSION' });
  assert.equal(out.exitCode, 0);
  assert.deepEqual(JSON.parse(out.stdout), {
    cniVersion: '1.1.0',
    supportedVersions: ['0.4.0', '1.0.0', '1.1.0'],
  });
});

test('verbs not built yet fail closed with a CNI error, unknown verbs with code 4', () => {
  const add = handleCni({ CNI_COMMAND: 'ADD' });
  assert.equal(add.exitCode, 1);
  assert.equal(JSON.parse(add.stdout).code, 100);
  const bad = handleCni({ CNI_COMMAND: 'FROB' });
  assert.deepEqual(
    { code: JSON.parse(bad.stdout).code, msg: JSON.parse(bad.stdout).msg },
    { code: 4, msg: 'CNI_COMMAND "FROB" is not a CNI verb' },
  );
  assert.equal(JSON.parse(handleCni({}).stdout).msg, 'CNI_COMMAND is not set');
});
