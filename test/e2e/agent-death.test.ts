// An agent that dies (SIGKILL) must not make a cut-off stream look complete: the applications
// on both ends of a meshed connection see a reset, never a clean end (FIN). The agent's own
// sockets to applications carry SO_LINGER 0 while a connection is live, so the kernel resets
// them when the process dies; the surviving agent resets its side when the HBONE connection
// goes.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, before, test } from 'node:test';
import {
  eventually,
  stop,
  supportScript,
  waitForLine,
  waitForOutput,
} from '../support/lab-helpers.js';
import { MeshE2E } from '../support/mesh-e2e.js';

let mesh: MeshE2E;
const admin = <T>(node: string, path: string) => mesh.admin<T>(node, path);

async function capturedOwnWorkload(node: string): Promise<void> {
  await eventually(
    `${node} captured its workload`,
    () => admin<{ captured: { workload: string }[] }>(node, '/config_dump'),
    (d) => d.captured.some((c) => c.workload === `shop/${node}-w1`),
  );
}

/** A support app and the JSON lines it has printed so far. */
function witness(workload: string, args: string[]): { child: ChildProcess; lines: string[] } {
  const child = mesh.spawn(workload, [process.execPath, supportScript('stream-witness'), ...args]);
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
  mesh = await MeshE2E.create({
    nodes: 2,
    workloads: 2,
    name: 'agent-death',
    register: [
      ['n1-w1', 'web'],
      ['n2-w1', 'api'],
    ],
  });
});

after(() => mesh.destroy());

/**
 * `target` streams to n1-w1 (through both agents over HBONE, or by passthrough to a workload
 * outside the mesh); `victim`'s agent is SIGKILLed mid-stream. Returns how each application
 * saw the end; the agent is running again afterwards.
 */
async function killMidStream(victim: 'n1' | 'n2', port: number, target = 'n2-w1', path = 'hbone') {
  const agent = mesh.agents[victim];
  assert.ok(agent);
  const exited = new Promise((r) => agent.once('exit', r));
  const server = witness(target, ['drip', String(port)]);
  let client: ReturnType<typeof witness> | undefined;
  try {
    await waitForLine(server.child, '{"listening":true}');
    client = witness('n1-w1', ['watch', mesh.lab.member(target).ipv4, String(port)]);
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
    const again = mesh.startAgent(victim);
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
