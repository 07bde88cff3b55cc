// Agents with extra data-path threads (MESHD_AGENT_THREADS) in the lab: every thread serves
// the captured workloads through its own SO_REUSEPORT listeners and HBONE pool, and the agent
// still acts as one: its admin endpoint and metrics add the threads up, policy changes reach
// connections on every thread, and SIGTERM drains them all.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Lab } from '../../ctl/lab/index.js';
import { initCa } from '../../daemon/identity/index.js';
import {
  eventually,
  stop,
  supportScript,
  waitForLine,
  waitForOutput,
} from '../support/lab-helpers.js';

const root = new URL('../../..', import.meta.url).pathname;
const meshd = join(root, 'dist/daemon/main.js');
const meshctl = join(root, 'bin/meshctl');
const THREADS = { n1: 3, n2: 2 } as const;
let lab: Lab;
let dir: string;
let caDir: string;
const running: ChildProcess[] = [];
const agents: Record<string, ChildProcess> = {};
const logs: Record<string, string[]> = { n1: [], n2: [] };

function startRole(node: string, role: string, env: Record<string, string>): ChildProcess {
  const vars = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  const child = lab.spawn(node, ['env', ...vars, process.execPath, meshd, role]);
  running.push(child);
  return child;
}

async function apply(yaml: string): Promise<void> {
  const file = join(dir, `apply-${Date.now()}-${Math.random()}.yaml`);
  writeFileSync(file, yaml);
  await lab.exec('n1', [meshctl, 'apply', '-f', file, '--ca-dir', caDir]);
}

const workloadYaml = (name: string, sa: string) => {
  const m = lab.member(name);
  return `apiVersion: meshd.io/v1alpha1
kind: Workload
metadata: { name: ${name}, namespace: shop, labels: { app: ${sa} } }
spec: { node: ${m.node}, addresses: [${m.ipv4}], serviceAccount: ${sa}, netns: /var/run/netns/${m.netns} }
---
`;
};

async function admin<T>(node: string, path: string): Promise<T> {
  const { stdout } = await lab.exec(node, ['curl', '-sS', `http://127.0.0.1:15000${path}`]);
  return JSON.parse(stdout) as T;
}

async function echoServer(port: number): Promise<ChildProcess> {
  const child = lab.spawn('n2-w1', [
    process.execPath,
    supportScript('tcp-server'),
    'echo',
    String(port),
  ]);
  running.push(child);
  await waitForLine(child, 'listening');
  return child;
}

/** `hold N`: N connections from `from` to n2-w1:port, each with one byte echoed. */
async function holdConnections(n: number, port: number, from = 'n1-w1'): Promise<ChildProcess> {
  const holder = lab.spawn(from, [
    process.execPath,
    supportScript('tcp-client'),
    'hold',
    String(n),
    lab.member('n2-w1').ipv4,
    String(port),
  ]);
  running.push(holder);
  await waitForLine(holder, `{"held":${n}}`, 30_000);
  return holder;
}

/** The access records of `node` for connections to `port`. */
const records = (node: string, port: number) =>
  (logs[node] ?? [])
    .filter((l) => l.includes('"msg":"connection complete"') && l.includes(`:${port}"`))
    .map((l) => JSON.parse(l) as { thread?: number; error?: string });

before(async () => {
  lab = await Lab.create({ nodes: 2, workloads: 1 });
  dir = mkdtempSync(join(tmpdir(), 'meshd-threads-e2e-'));
  caDir = join(dir, 'ca');
  await initCa({ dir: caDir, trustDomain: 'cluster.local' });
  const server = startRole('n1', 'server', {
    MESHD_CA_DIR: caDir,
    MESHD_DATA_DIR: join(dir, 'server'),
  });
  await waitForOutput(server, /"msg":"meshd server listening"/);
  await apply(`apiVersion: meshd.io/v1alpha1
kind: Namespace
metadata: { name: shop, labels: { meshd.io/dataplane-mode: ambient } }
---
${workloadYaml('n1-w1', 'web')}${workloadYaml('n2-w1', 'api')}`);
  for (const node of ['n1', 'n2'] as const) {
    const { stdout: token } = await lab.exec('n1', [
      meshctl,
      'token',
      'create',
      '--node',
      node,
      '--ca-dir',
      caDir,
    ]);
    const agent = startRole(node, 'agent', {
      MESHD_NODE_NAME: node,
      MESHD_SERVER: `${lab.member('n1').ipv4}:15012`,
      MESHD_STATE_DIR: join(dir, `agent-${node}`),
      MESHD_CNI_SOCKET: join(dir, `cni-${node}.sock`),
      MESHD_JOIN_TOKEN: token.trim(),
      MESHD_CA_BUNDLE: join(caDir, 'bundle.pem'),
      MESHD_AGENT_THREADS: String(THREADS[node]),
    });
    agent.stderr?.on('data', (c: Buffer) =>
      logs[node]?.push(...c.toString().split('\n').filter(Boolean)),
    );
    agents[node] = agent;
    await waitForOutput(agent, /"msg":"agent ready"/);
  }
  for (const node of ['n1', 'n2']) {
    await eventually(
      `${node} captured its workload`,
      () => admin<{ captured: { workload: string }[] }>(node, '/config_dump'),
      (d) => d.captured.some((c) => c.workload === `shop/${node}-w1`),
    );
  }
});

after(() => {
  if (process.env.MESHD_TEST_DEBUG) {
    for (const [node, lines] of Object.entries(logs))
      console.error(`--- agent ${node}\n${lines.slice(-40).join('\n')}`);
  }
  for (const child of running) stop(child);
  assert.deepEqual(lab.destroy(), []);
  rmSync(dir, { recursive: true, force: true });
});

test('60 connections spread over the threads; /connections, the pool and /metrics count every thread', async () => {
  const server = await echoServer(9300);
  const holder = await holdConnections(60, 9300);
  try {
    const live = await admin<{
      connections: { direction: string; destination: { port: number } }[];
    }>('n1', '/connections');
    const outbound = live.connections.filter(
      (c) => c.direction === 'outbound' && c.destination.port === 9300,
    );
    assert.equal(outbound.length, 60, 'every thread reports its live connections');
    const inbound = await admin<{ connections: { destination: { port: number } }[] }>(
      'n2',
      '/connections',
    );
    assert.equal(inbound.connections.filter((c) => c.destination.port === 9300).length, 60);
    // Each n1 thread that carries a connection has its own HBONE connection to n2-w1.
    const dump = await admin<{ pool: { connections: number; streams: number } }>(
      'n1',
      '/config_dump',
    );
    const { stdout } = await lab.exec('n1-w1', [
      'ss',
      '-Htn',
      'state',
      'established',
      'dst',
      `${lab.member('n2-w1').ipv4}:15008`,
    ]);
    const onTheWire = stdout.split('\n').filter((l) => l.trim()).length;
    assert.equal(dump.pool.streams, 60, JSON.stringify(dump.pool));
    assert.equal(dump.pool.connections, onTheWire, 'the pools of all threads, summed');
    assert.ok(onTheWire >= 2 && onTheWire <= THREADS.n1, `${onTheWire} HBONE connections`);
  } finally {
    stop(holder);
    stop(server);
  }
  const done = await eventually(
    '60 access records on n1',
    async () => records('n1', 9300),
    (r) => r.length === 60,
  );
  const threads = new Set(done.map((r) => r.thread ?? 0));
  assert.ok(threads.size >= 2, `connections were served by threads ${[...threads]}`);
  const { stdout: metrics } = await lab.exec('n1', [
    'curl',
    '-sS',
    'http://127.0.0.1:15020/metrics',
  ]);
  const opened = metrics
    .split('\n')
    .find(
      (l) =>
        l.startsWith('istio_tcp_connections_opened_total{') &&
        l.includes('reporter="source"') &&
        l.includes('destination_workload="n2-w1"'),
    );
  assert.equal(Number(opened?.split(' ').at(-1)), 60, opened);
  assert.match(metrics, /^meshd_dataplane_threads\{state="answering"\} 3$/m);
  assert.match(metrics, /^meshd_dataplane_threads\{state="not_answering"\} 0$/m);
});

test('a DENY policy closes open connections on every thread within 2 s', async () => {
  // Plaintext from node 1's own namespace (outside the mesh): every connection reaches n2's
  // inbound listeners on its own, so the kernel spreads them over n2's threads.
  const server = await echoServer(9301);
  const holder = await holdConnections(30, 9301, 'n1');
  try {
    const closed = waitForLine(holder, '{"closed":30}', 5_000);
    const applied = Date.now();
    await apply(`apiVersion: meshd.io/v1alpha1
kind: AuthorizationPolicy
metadata: { name: deny-node1, namespace: shop }
spec:
  selector: { matchLabels: { app: api } }
  action: DENY
  rules: [{ from: [{ source: { ipBlocks: ["${lab.member('n1').ipv4}/32"] } }] }]
`);
    await closed;
    assert.ok(Date.now() - applied <= 2_000 + 1_000, 'closed soon after the policy');
  } finally {
    stop(holder);
    stop(server);
    await lab
      .exec('n1', [
        meshctl,
        'delete',
        'authorizationpolicy',
        'deny-node1',
        '-n',
        'shop',
        '--ca-dir',
        caDir,
      ])
      .catch(() => {});
  }
  const cut = await eventually(
    '30 access records on n2',
    async () => records('n2', 9301),
    (r) => r.length === 30,
  );
  const threads = new Set(cut.map((r) => r.thread ?? 0));
  assert.equal(threads.size, THREADS.n2, `closed by threads ${[...threads]}`);
  for (const r of cut) assert.equal(r.error, 'closed: denied_by_policy');
});

/** How many listeners each agent port has in `workload`'s namespace. */
async function listeners(workload: string): Promise<Record<number, number>> {
  const { stdout } = await lab.exec(workload, ['ss', '-Hltn']);
  const count: Record<number, number> = { 15001: 0, 15006: 0, 15008: 0 };
  for (const line of stdout.split('\n').filter(Boolean)) {
    // State, Recv-Q, Send-Q, local address:port, peer
    const port = Number(line.trim().split(/\s+/)[3]?.split(':').at(-1));
    if (port in count) count[port] = (count[port] ?? 0) + 1;
  }
  return count;
}

const ctl = (...args: string[]) => lab.exec('n1', [meshctl, ...args, '--ca-dir', caDir]);

test('every thread listens on each agent port; a release closes them all once the last connection ends, and a new capture opens them again', async () => {
  assert.deepEqual(await listeners('n2-w1'), { 15001: 2, 15006: 2, 15008: 2 });
  assert.deepEqual(await listeners('n1-w1'), { 15001: 3, 15006: 3, 15008: 3 });
  const server = await echoServer(9303);
  const holder = await holdConnections(20, 9303);
  try {
    await ctl('release', 'n2-w1', '-n', 'shop');
    await eventually(
      'n2-w1 released',
      () => admin<{ captured: unknown[] }>('n2', '/config_dump'),
      (d) => d.captured.length === 0,
    );
    // The wait for the threads' connections runs in the background: reconciling goes on (it
    // logs the release) while they are still open.
    await eventually(
      'the release logged while its connections are open',
      async () => (logs.n2 ?? []).some((l) => l.includes('"msg":"workload released"')),
      (logged) => logged,
      5_000,
    );
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(holder.exitCode, null, 'connections opened before the release stay open');
    const during = await listeners('n2-w1');
    assert.ok(
      (during[15008] ?? 0) >= 1,
      `listeners kept while connections live: ${JSON.stringify(during)}`,
    );
    const { stdout: kept } = await lab.exec('n2-w1', ['iptables-save', '-t', 'nat']);
    assert.match(kept, /MESHD/, 'capture rules kept while connections live');
  } finally {
    stop(holder);
    stop(server);
  }
  await eventually(
    'every listener of n2-w1 closed',
    () => listeners('n2-w1'),
    (l) => l[15001] === 0 && l[15006] === 0 && l[15008] === 0,
  );
  const { stdout: rules } = await lab.exec('n2-w1', ['iptables-save', '-t', 'nat']);
  assert.doesNotMatch(rules, /MESHD/i, 'capture rules removed');
  await ctl('label', 'workload', 'n2-w1', '-n', 'shop', 'meshd.io/dataplane-mode-');
  await eventually(
    'n2-w1 captured again on every thread',
    () => listeners('n2-w1'),
    (l) => l[15001] === 2 && l[15006] === 2 && l[15008] === 2,
  );
  const again = await echoServer(9304);
  stop(await holdConnections(10, 9304));
  stop(again);
});

test('a new identity: every thread takes the workload over at once, with its own listeners', async () => {
  const identity = async () =>
    (
      await admin<{ captured: { workload: string; identity: string }[] }>('n2', '/config_dump')
    ).captured.find((c) => c.workload === 'shop/n2-w1')?.identity;
  await apply(workloadYaml('n2-w1', 'api-v2'));
  try {
    await eventually(
      'n2-w1 captured with its new identity',
      identity,
      (id) => id === 'spiffe://cluster.local/ns/shop/sa/api-v2',
      3_000,
    );
    assert.deepEqual(await listeners('n2-w1'), { 15001: 2, 15006: 2, 15008: 2 });
    const server = await echoServer(9305);
    stop(await holdConnections(10, 9305));
    stop(server);
  } finally {
    await apply(workloadYaml('n2-w1', 'api'));
    await eventually('n2-w1 back to its identity', identity, (id) =>
      Boolean(id?.endsWith('/sa/api')),
    );
  }
});

test('SIGTERM drains every thread: connections are reset after the drain, each logged, and the agent exits 0', async () => {
  const server = await echoServer(9302);
  const holder = await holdConnections(30, 9302);
  const agent = agents.n1;
  assert.ok(agent);
  try {
    const signalled = Date.now();
    const exited = new Promise<number | null>((r) => agent.once('close', (code) => r(code)));
    const closed = waitForLine(holder, '{"closed":30}', 15_000);
    agent.kill('SIGTERM');
    await closed;
    assert.ok(Date.now() - signalled >= 4_000, 'the connections lasted through the drain');
    assert.equal(await exited, 0);
    const lines = logs.n1 ?? [];
    const stopped = lines.findLastIndex((l) => l.includes('"msg":"agent stopped"'));
    assert.ok(stopped > 0, 'the agent logged its stop');
    const cut = records('n1', 9302);
    assert.equal(cut.length, 30, 'every connection got its record before the exit');
    assert.ok(new Set(cut.map((r) => r.thread ?? 0)).size >= 2, 'on more than one thread');
  } finally {
    stop(holder);
    stop(server);
  }
});
