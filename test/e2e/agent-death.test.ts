// An agent that dies (SIGKILL) must not make a cut-off stream look complete: the applications
// on both ends of a meshed connection see a reset, never a clean end (FIN). The agent's own
// sockets to applications carry SO_LINGER 0 while a connection is live, so the kernel resets
// them when the process dies; the surviving agent resets its side when the HBONE connection
// goes.
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

/** The agent of `node`; without a token it restarts from its saved state. */
function startAgent(node: string, extra: Record<string, string> = {}): ChildProcess {
  const agent = startRole(node, 'agent', {
    MESHD_NODE_NAME: node,
    MESHD_SERVER: `${lab.member('n1').ipv4}:15012`,
    MESHD_STATE_DIR: join(dir, `agent-${node}`),
    MESHD_CNI_SOCKET: join(dir, `cni-${node}.sock`),
    ...extra,
  });
  agent.stderr?.on('data', (c: Buffer) =>
    logs[node]?.push(...c.toString().split('\n').filter(Boolean)),
  );
  agents[node] = agent;
  return agent;
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

async function capturedOwnWorkload(node: string): Promise<void> {
  await eventually(
    `${node} captured its workload`,
    () => admin<{ captured: { workload: string }[] }>(node, '/config_dump'),
    (d) => d.captured.some((c) => c.workload === `shop/${node}-w1`),
  );
}

/** A support app and the JSON lines it has printed so far. */
function witness(workload: string, args: string[]): { child: ChildProcess; lines: string[] } {
  const child = lab.spawn(workload, [process.execPath, supportScript('stream-witness'), ...args]);
  running.push(child);
  const lines: string[] = [];
  let partial = '';
  child.stdout?.on('data', (c: Buffer) => {
    const parts = (partial + c.toString()).split('\n');
    partial = parts.pop() ?? '';
    lines.push(...parts.filter(Boolean));
  });
  return { child, lines };
}

/** How the app said its connection ended, once it has. */
const endedOf = (lines: string[]) =>
  eventually(
    'the application saw its connection end',
    async () => lines.find((l) => l.includes('"ended"')),
    (l) => l !== undefined,
  ).then((l) => (JSON.parse(l ?? '{}') as { ended: string }).ended);

before(async () => {
  // n2-w2 is not in the mesh: connections to it take the passthrough path.
  lab = await Lab.create({ nodes: 2, workloads: 2 });
  dir = mkdtempSync(join(tmpdir(), 'meshd-agent-death-e2e-'));
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
  for (const node of ['n1', 'n2']) {
    const { stdout: token } = await lab.exec('n1', [
      meshctl,
      'token',
      'create',
      '--node',
      node,
      '--ca-dir',
      caDir,
    ]);
    const agent = startAgent(node, {
      MESHD_JOIN_TOKEN: token.trim(),
      MESHD_CA_BUNDLE: join(caDir, 'bundle.pem'),
    });
    await waitForOutput(agent, /"msg":"agent ready"/);
  }
  for (const node of ['n1', 'n2']) await capturedOwnWorkload(node);
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

/**
 * `target` streams to n1-w1 (through both agents over HBONE, or by passthrough to a workload
 * outside the mesh); `victim`'s agent is SIGKILLed mid-stream. Returns how each application
 * saw the end; the agent is running again afterwards.
 */
async function killMidStream(victim: 'n1' | 'n2', port: number, target = 'n2-w1', path = 'hbone') {
  const agent = agents[victim];
  assert.ok(agent);
  const exited = new Promise((r) => agent.once('exit', r));
  const server = witness(target, ['drip', String(port)]);
  let client: ReturnType<typeof witness> | undefined;
  try {
    await waitForLine(server.child, '{"listening":true}');
    client = witness('n1-w1', ['watch', lab.member(target).ipv4, String(port)]);
    await waitForLine(client.child, '{"receiving":true}', 15_000);
    const live = await admin<{ connections: { path: string; destination: { port: number } }[] }>(
      'n1',
      '/connections',
    );
    assert.ok(
      live.connections.some((c) => c.path === path && c.destination.port === port),
      `the stream takes the ${path} path: ${JSON.stringify(live)}`,
    );
    await new Promise((r) => setTimeout(r, 300)); // a few more chunks in flight
    agent.kill('SIGKILL');
    await exited;
    return { client: await endedOf(client.lines), server: await endedOf(server.lines) };
  } finally {
    stop(client?.child);
    stop(server.child);
    // Back as the lab had it, for the next test and a clean teardown.
    if (agent.exitCode === null && agent.signalCode === null) agent.kill('SIGKILL');
    await exited;
    const again = startAgent(victim);
    await waitForOutput(again, /"msg":"agent ready"/);
    await capturedOwnWorkload(victim);
  }
}

test("the client's agent SIGKILLed: the applications on both ends see a reset, not a FIN", async () => {
  const ended = await killMidStream('n1', 9400);
  assert.deepEqual(ended, { client: 'ECONNRESET', server: 'ECONNRESET' });
});

test("the server's agent SIGKILLed: the applications on both ends see a reset, not a FIN", async () => {
  const ended = await killMidStream('n2', 9401);
  assert.deepEqual(ended, { client: 'ECONNRESET', server: 'ECONNRESET' });
});

test("passthrough, the client's agent SIGKILLed: the applications on both ends see a reset", async () => {
  const ended = await killMidStream('n1', 9402, 'n2-w2', 'passthrough');
  assert.deepEqual(ended, { client: 'ECONNRESET', server: 'ECONNRESET' });
});
