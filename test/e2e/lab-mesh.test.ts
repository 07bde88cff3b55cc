// The README's main command: `meshctl lab up` builds the lab and a running mesh in it (server,
// one agent per node, workloads created through ptp + meshd-cni into an enrolled namespace); traffic between nodes goes through HBONE; `lab down`
// removes everything, processes included.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { LAB_STATE_ROOT, Lab } from '../../ctl/lab/index.js';
import { run } from '../../daemon/command.js';
import { startEchoServer, stop } from '../support/lab-helpers.js';

const meshctl = new URL('../../../bin/meshctl', import.meta.url).pathname;

test('meshctl lab up brings up a mesh whose cross-node traffic goes through HBONE; lab down removes it', async () => {
  const id = randomBytes(4).toString('hex');
  const pids: number[] = [];
  const up = await run(
    [meshctl, 'lab', 'up', '--id', id, '--nodes', '2', '--no-demo', '--workloads', '1'],
    {
      timeoutMs: 120_000,
    },
  );
  const lab = Lab.open(id);
  try {
    assert.match(up.stdout, /through an HBONE tunnel/);
    // The workloads were registered by meshd-cni, chained after ptp, as a runtime does it.
    const got = await lab.exec('n1', [
      meshctl,
      'get',
      'workload',
      'n1-w1',
      '-n',
      'demo',
      '-o',
      'json',
      '--ca-dir',
      `${LAB_STATE_ROOT}/${id}/ca`,
    ]);
    const workload = JSON.parse(got.stdout) as {
      metadata: { annotations: Record<string, string> };
      spec: { netns: string };
    };
    assert.equal(workload.metadata.annotations['meshd.io/container-id'], `mdl-${id}-n1-w1`);
    assert.equal(workload.spec.netns, `/var/run/netns/mdl-${id}-n1-w1`);
    const echo = await startEchoServer(lab, 'n2-w1', 8080);
    try {
      const { stdout } = await lab.exec('n1-w1', [
        'curl',
        '-sS',
        '-m',
        '5',
        `http://${lab.member('n2-w1').ipv4}:8080/`,
      ]);
      assert.ok(JSON.parse(stdout).localAddress);
    } finally {
      stop(echo);
    }
    const log = `${LAB_STATE_ROOT}/${id}/agent-n1.log`;
    const deadline = Date.now() + 5_000;
    while (!readFileSync(log, 'utf8').includes('"transport":"hbone"')) {
      assert.ok(Date.now() < deadline, 'the agent logged the HBONE connection');
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    // The server and the agents run inside the node namespaces.
    for (const node of lab.plan.nodes) {
      const { stdout } = await run(['ip', 'netns', 'pids', node.netns]);
      pids.push(...stdout.split(/\s+/).filter(Boolean).map(Number));
    }
    const down = await run([meshctl, 'lab', 'down', '--lab', id]);
    assert.match(down.stdout, new RegExp(`removed: ${id}`));
  }
  const { stdout: left } = await run(['ip', 'netns', 'list']);
  assert.ok(!left.includes(`mdl-${id}-`), 'namespaces removed');
  assert.ok(pids.length >= 3, `server and two agents were running (${pids.length} processes)`);
  // Gone, or a zombie waiting for init to reap it (it was killed).
  const running = (pid: number) => {
    try {
      return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    } catch {
      return false;
    }
  };
  const until = Date.now() + 3_000;
  while (pids.some(running) && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(pids.filter(running), [], 'no process of the lab is left');
});
