// `meshd agent` as a process (daemon/agent/run.ts): a data-path thread that stops on its own
// makes the agent drain and exit with code 70, which systemd's Restart=on-failure restarts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AgentHandle } from '../../daemon/agent/app.js';
import { stopOnThreadFailure, THREAD_FAILURE_EXIT_CODE } from '../../daemon/agent/run.js';
import { MeshdError } from '../../daemon/errors.js';
import { silentLogger } from '../../daemon/telemetry/index.js';

test('a failed data-path thread: logged, the agent closes (drain included), exit code 70', async () => {
  const errors: Array<{ fields: unknown; msg: string }> = [];
  const logger = {
    ...silentLogger,
    error: (fields: unknown, msg: string) => errors.push({ fields, msg }),
  };
  let closed = 0;
  const handle = {
    threadFailed: Promise.resolve(
      new MeshdError(
        'MESHD_E_THREAD',
        'data-path thread 2 exited (code 1); its listeners are gone',
      ),
    ),
    close: async () => {
      closed++;
    },
  } as unknown as AgentHandle;
  const before = process.exitCode;
  try {
    await stopOnThreadFailure(handle, logger);
    assert.equal(process.exitCode, THREAD_FAILURE_EXIT_CODE);
    assert.equal(THREAD_FAILURE_EXIT_CODE, 70);
  } finally {
    process.exitCode = before;
  }
  assert.equal(closed, 1);
  assert.equal(errors.length, 1);
  assert.match(errors[0]?.msg ?? '', /a data-path thread is gone/);
  assert.match(JSON.stringify(errors[0]?.fields), /MESHD_E_THREAD.*data-path thread 2 exited/);
});
