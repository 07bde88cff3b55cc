import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type CommandError, run, runSync } from '../../daemon/command.js';

test('run returns output; a failure names the command, status and stderr', async () => {
  assert.equal((await run(['sh', '-c', 'cat'], { input: 'hello' })).stdout, 'hello');
  await assert.rejects(run(['sh', '-c', 'echo nope >&2; exit 3']), (err: CommandError) => {
    assert.equal(err.code, 'MESHD_E_COMMAND');
    assert.equal(err.status, 3);
    assert.equal(err.message, 'sh -c echo nope >&2; exit 3: exited with status 3: nope');
    return true;
  });
  assert.equal((await run(['sh', '-c', 'exit 2'], { okStatuses: [2] })).status, 2);
});

test('run and runSync enforce their timeout', async () => {
  await assert.rejects(run(['sleep', '5'], { timeoutMs: 100 }), /sleep 5: timed out after 100 ms/);
  assert.throws(
    () => runSync(['sleep', '5'], { timeoutMs: 100 }),
    /sleep 5: timed out after 100 ms/,
  );
});

test('a program that does not exist is a clear error', async () => {
  await assert.rejects(run(['/nonexistent/prog']), /\/nonexistent\/prog: could not start/);
  assert.throws(() => runSync(['/nonexistent/prog']), /\/nonexistent\/prog: could not start/);
});
