/**
 * A meshed lab for e2e files that run the roles themselves: a CA, `meshd server` on n1, the
 * Namespace `shop` enrolled, the given workloads registered, and one `meshd agent` per node
 * (joined with a token the first time, from its saved state after a restart). Tracks every
 * process it starts and each agent's log lines; destroy() stops them and removes the lab.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Lab } from '../../ctl/lab/index.js';
import { initCa } from '../../daemon/identity/index.js';
import { collectLines, eventually, stop, waitForOutput } from './lab-helpers.js';

const root = new URL('../../..', import.meta.url).pathname;
const meshd = join(root, 'dist/daemon/main.js');
const meshctl = join(root, 'bin/meshctl');

export interface MeshE2EOptions {
  nodes: number;
  workloads: number;
  /** Workloads registered in `shop`: [lab member, service account]. */
  register: [member: string, serviceAccount: string][];
  /** The temporary directory's prefix. */
  name: string;
  /** Extra environment for every agent. */
  agentEnv?: Record<string, string>;
}

export class MeshE2E {
  readonly running: ChildProcess[] = [];
  readonly agents: Record<string, ChildProcess> = {};
  readonly logs: Record<string, string[]> = {};
  readonly #tokens: Record<string, string> = {};

  readonly lab: Lab;
  readonly dir: string;
  readonly caDir: string;
  readonly options: MeshE2EOptions;

  private constructor(lab: Lab, dir: string, caDir: string, options: MeshE2EOptions) {
    this.lab = lab;
    this.dir = dir;
    this.caDir = caDir;
    this.options = options;
  }

  static async create(options: MeshE2EOptions): Promise<MeshE2E> {
    const lab = await Lab.create({ nodes: options.nodes, workloads: options.workloads });
    const dir = mkdtempSync(join(tmpdir(), `meshd-${options.name}-e2e-`));
    const mesh = new MeshE2E(lab, dir, join(dir, 'ca'), options);
    await initCa({ dir: mesh.caDir, trustDomain: 'cluster.local' });
    const server = mesh.startRole('n1', 'server', {
      MESHD_CA_DIR: mesh.caDir,
      MESHD_DATA_DIR: join(dir, 'server'),
    });
    await waitForOutput(server, /"msg":"meshd server listening"/);
    await mesh.apply(`apiVersion: meshd.io/v1alpha1
kind: Namespace
metadata: { name: shop, labels: { meshd.io/dataplane-mode: ambient } }
---
${options.register.map(([member, sa]) => mesh.workloadYaml(member, sa)).join('')}`);
    const nodes = Array.from({ length: options.nodes }, (_, i) => `n${i + 1}`);
    for (const node of nodes) {
      const { stdout } = await mesh.meshctl('token', 'create', '--node', node);
      mesh.#tokens[node] = stdout.trim();
      await waitForOutput(mesh.startAgent(node), /"msg":"agent ready"/, 30_000);
    }
    for (const node of nodes) {
      const own = options.register.filter(([m]) => lab.member(m).node === node).length;
      await eventually(
        `${node} captured its workloads`,
        () => mesh.admin<{ captured: unknown[] }>(node, '/config_dump'),
        (d) => d.captured.length === own,
      );
    }
    return mesh;
  }

  /** A process in a lab member's namespace, stopped by destroy(). */
  spawn(member: string, argv: string[]): ChildProcess {
    const child = this.lab.spawn(member, argv);
    this.running.push(child);
    return child;
  }

  startRole(node: string, role: string, env: Record<string, string>): ChildProcess {
    const vars = Object.entries(env).map(([k, v]) => `${k}=${v}`);
    return this.spawn(node, ['env', ...vars, process.execPath, meshd, role]);
  }

  /** The agent of `node` (the first start joins; a restart uses the saved state). */
  startAgent(node: string, extra: Record<string, string> = {}): ChildProcess {
    const agent = this.startRole(node, 'agent', {
      MESHD_NODE_NAME: node,
      MESHD_SERVER: `${this.lab.member('n1').ipv4}:15012`,
      MESHD_STATE_DIR: join(this.dir, `agent-${node}`),
      MESHD_CNI_SOCKET: join(this.dir, `cni-${node}.sock`),
      MESHD_JOIN_TOKEN: this.#tokens[node] ?? '',
      MESHD_CA_BUNDLE: join(this.caDir, 'bundle.pem'),
      ...this.options.agentEnv,
      ...extra,
    });
    this.logs[node] ??= [];
    const lines = this.logs[node];
    collectLines(agent.stderr, lines);
    this.agents[node] = agent;
    return agent;
  }

  meshctl(...args: string[]) {
    return this.lab.exec('n1', [meshctl, ...args, '--ca-dir', this.caDir]);
  }

  async apply(yaml: string): Promise<void> {
    const file = join(this.dir, `apply-${Date.now()}-${Math.random()}.yaml`);
    writeFileSync(file, yaml);
    await this.meshctl('apply', '-f', file);
  }

  workloadYaml(member: string, sa: string): string {
    const m = this.lab.member(member);
    return `apiVersion: meshd.io/v1alpha1
kind: Workload
metadata: { name: ${member}, namespace: shop, labels: { app: ${sa} } }
spec: { node: ${m.node}, addresses: [${m.ipv4}], serviceAccount: ${sa}, netns: /var/run/netns/${m.netns} }
---
`;
  }

  /** GET on an agent's admin endpoint (127.0.0.1:15000 in its node's namespace), as JSON. */
  async admin<T>(node: string, path: string): Promise<T> {
    const { stdout } = await this.lab.exec(node, ['curl', '-sS', `http://127.0.0.1:15000${path}`]);
    return JSON.parse(stdout) as T;
  }

  destroy(): void {
    if (process.env.MESHD_TEST_DEBUG) {
      for (const [node, lines] of Object.entries(this.logs))
        console.error(`--- agent ${node}\n${lines.slice(-60).join('\n')}`);
    }
    for (const child of this.running) stop(child);
    assert.deepEqual(this.lab.destroy(), []);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
