// The lab itself: real CNI (ptp + host-local) workloads on two nodes reach each other across
// the underlay, and `meshctl lab status` reports the addresses the CNI result gave them.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { LAB_STATE_ROOT, Lab } from '../../ctl/lab/index.js';
import { run } from '../../daemon/command.js';
import { startEchoServer, stop } from '../support/lab-helpers.js';

const meshctl = new URL('../../../bin/meshctl', import.meta.url).pathname;
let lab: Lab;
let server: ChildProcess | undefined;

before(async () => {
  lab = await Lab.create({ nodes: 2, workloads: 2 });
});

after(() => {
  stop(server);
  assert.deepEqual(lab.destroy(), []);
});

test('curl from a workload on node 1 reaches an HTTP server in a workload on node 2', async () => {
  server = await startEchoServer(lab, 'n2-w1', 8080);
  const client = lab.member('n1-w1');
  const target = lab.member('n2-w1');
  for (const [flag, address] of [
    ['-4', target.ipv4],
    ['-6', `[${target.ipv6}]`],
  ] as const) {
    const { stdout } = await lab.exec('n1-w1', [
      'curl',
      '-sS',
      flag,
      '-m',
      '5',
      `http://${address}:8080/`,
    ]);
    const seen = JSON.parse(stdout) as { remoteAddress: string };
    // No NAT anywhere: the server sees the client workload's own address.
    assert.equal(seen.remoteAddress, flag === '-4' ? client.ipv4 : client.ipv6);
  }
});

test('meshctl lab status shows the IPs the CNI result assigned', async () => {
  const { stdout } = await run([meshctl, 'lab', 'status', '--lab', lab.id, '-o', 'json']);
  const [status] = JSON.parse(stdout) as {
    id: string;
    members: { name: string; kind: string; ipv4: string; ipv6: string }[];
  }[];
  assert.equal(status?.id, lab.id);
  const workloads = status?.members.filter((m) => m.kind === 'workload') ?? [];
  assert.deepEqual(workloads.map((w) => w.name).sort(), ['n1-w1', 'n1-w2', 'n2-w1', 'n2-w2']);
  for (const w of workloads) {
    const { stdout: addr } = await lab.exec(w.name, ['ip', '-j', 'addr', 'show', 'dev', 'eth0']);
    const configured = (JSON.parse(addr) as { addr_info: { local: string; scope: string }[] }[])
      .flatMap((i) => i.addr_info)
      .filter((a) => a.scope === 'global')
      .map((a) => a.local)
      .sort();
    assert.deepEqual(configured, [w.ipv4, w.ipv6].sort(), `addresses of ${w.name}`);
  }
  const table = await run([meshctl, 'lab', 'status', '--lab', lab.id]);
  assert.match(table.stdout, /^NAME\s+KIND\s+NODE\s+IPV4\s+IPV6\s+NETNS$/m);
  assert.match(
    table.stdout,
    new RegExp(
      `^n2-w2\\s+workload\\s+n2\\s+${lab.member('n2-w2').ipv4.replaceAll('.', '\\.')}\\s`,
      'm',
    ),
  );
});

test('a lab is removed completely: namespaces, processes and state', async () => {
  const other = await Lab.create({ nodes: 1, workloads: 1 });
  const sleeper = other.spawn('n1-w1', ['sleep', '30']);
  const namespaces = other.members().map((m) => m.netns);
  assert.deepEqual(other.destroy(), []);
  const { stdout } = await run(['ip', 'netns', 'list']);
  for (const ns of [...namespaces, other.plan.underlayNetns])
    assert.ok(!stdout.includes(ns), `${ns} left behind`);
  assert.equal(existsSync(`${LAB_STATE_ROOT}/${other.id}`), false);
  await new Promise((resolve) =>
    sleeper.exitCode !== null || sleeper.signalCode ? resolve(null) : sleeper.once('exit', resolve),
  );
  assert.ok(sleeper.exitCode !== 0 || sleeper.signalCode, 'process inside the lab was stopped');
});
