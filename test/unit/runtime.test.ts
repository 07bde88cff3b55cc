import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertSupportedRuntime } from '../../daemon/runtime.js';

test('meshd runs on the pinned Node 24 and refuses older runtimes', () => {
  assert.equal(process.versions.node.split('.')[0], '24', 'tests run on the pinned Node 24');
  assert.doesNotThrow(() => assertSupportedRuntime('24.21.0'));
  assert.throws(
    () => assertSupportedRuntime('20.20.2'),
    /MESHD_E_RUNTIME|Node.js 20.20.2 is not supported/,
  );
});
