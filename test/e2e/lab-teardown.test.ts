// Teardown always runs: on SIGINT and SIGTERM, when building fails half-way, and `lab down --all`
// removes what a SIGKILLed run left behind.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { LAB_STATE_ROOT, listLabIds } from '../../ctl/lab/index.js';
import { run } from '../../daemon/command.js';
import { supportScript, waitForLine } from '../support/lab-helpers.js';

const meshctl = new URL('../../../bin/meshctl', import.meta.url).pathname;

async function namespacesOf(id: string): Promise<string[]> {
  const { stdout } = await run(['ip', 'netns', 'list']);
  return stdout
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((ns) => ns.startsWith(`mdl-${id}-`));
}

function holdLab(id: string, env: NodeJS.ProcessEnv = process.env) {
  return spawn(process.execPath, [supportScript('lab-hold'), id, '2', '1'], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

const exited = (child: ReturnType<typeof holdLab>) =>
  new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  test(`a lab is torn down when its process gets ${signal}`, async () => {
    const id = randomBytes(4).toString('hex');
    const child = holdLab(id);
    await waitForLine(child, 'ready', 30_000);
    assert.equal((await namespacesOf(id)).length, 5, 'underlay, 2 nodes, 2 workloads');
    const done = exited(child);
    child.kill(signal);
    await done;
    assert.deepEqual(await namespacesOf(id), []);
    assert.equal(existsSync(`${LAB_STATE_ROOT}/${id}`), false);
  });
}

test('a lab whose build fails half-way is removed and the error names the CNI plugin', async () => {
  const id = randomBytes(4).toString('hex');
  let stderr = '';
  const child = holdLab(id, { ...process.env, MESHD_LAB_CNI_PATH: '/nonexistent/cni' });
  child.stderr.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  assert.equal(await exited(child), 3);
  assert.match(stderr, /building lab .* failed; it was removed again/);
  assert.match(stderr, /CNI ADD of mdl-.*-n1-w1 \(plugin ptp/);
  assert.deepEqual(await namespacesOf(id), []);
  assert.equal(existsSync(`${LAB_STATE_ROOT}/${id}`), false);
});

test('lab down --all removes what a SIGKILLed run left behind', async (t) => {
  const { stdout } = await run(['ip', 'netns', 'list']);
  if (listLabIds().length > 0 || stdout.includes('mdl-')) {
    t.skip('other labs are running on this machine; --all would remove them too');
    return;
  }
  const id = randomBytes(4).toString('hex');
  const child = holdLab(id);
  await waitForLine(child, 'ready', 30_000);
  const done = exited(child);
  child.kill('SIGKILL');
  await done;
  assert.equal((await namespacesOf(id)).length, 5, 'SIGKILL leaves the lab behind');
  const down = await run([meshctl, 'lab', 'down', '--all']);
  assert.match(down.stdout, new RegExp(`removed: .*${id}`));
  assert.deepEqual(await namespacesOf(id), []);
  assert.equal(existsSync(`${LAB_STATE_ROOT}/${id}`), false);
});
