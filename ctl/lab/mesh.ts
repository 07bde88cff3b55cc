/**
 * Makes a lab a running mesh: a CA in the lab's directory, `meshd server` in node 1's
 * namespace, an enrolled namespace, one `meshd agent` per node joined with a one-time token;
 * then the lab's workloads are created through ptp + meshd-cni, as a container runtime does. Every process runs inside the lab's namespaces, so
 * `lab down` (which stops every process in them) removes the mesh with the lab.
 */
import { spawn } from 'node:child_process';
import { openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../daemon/command.js';
import { MeshdError } from '../../daemon/errors.js';
import { initCa } from '../../daemon/identity/index.js';
import { packageRoot } from '../../daemon/paths.js';
import type { Progress } from './build.js';
import { CNI_BIN_DIR, CniPluginError, type CniResult } from './cni.js';
import type { Lab } from './lab.js';
import type { WorkloadPlan } from './plan.js';
import { labDir } from './state.js';

export const DEMO_NAMESPACE = 'demo';

export interface LabMesh {
  caDir: string;
  serverAddress: string;
  logs: Record<string, string>;
}

/** Starts `argv` inside a member's namespace, detached, output appended to `log`. */
export function startDetached(
  lab: Lab,
  member: string,
  argv: string[],
  env: Record<string, string>,
  log: string,
): void {
  const out = openSync(log, 'a', 0o600);
  const vars = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  const child = spawn('ip', ['netns', 'exec', lab.member(member).netns, 'env', ...vars, ...argv], {
    detached: true,
    stdio: ['ignore', out, out],
  });
  child.unref();
}

async function waitReady(
  lab: Lab,
  member: string,
  url: string,
  what: string,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await lab.exec(member, ['curl', '-sf', '-m', '2', url]).then(
      () => true,
      () => false,
    );
    if (ok) return;
    if (Date.now() > deadline) {
      throw new MeshdError('MESHD_E_LAB', `${what} did not become ready within ${timeoutMs} ms`, {
        hint: `see its log in ${labDir(lab.id)}`,
      });
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

export async function startControlPlane(lab: Lab, progress: Progress): Promise<LabMesh> {
  const dir = labDir(lab.id);
  // Through bin/meshd, as systemd and Kubernetes start it: its per-role Node/V8 flags apply.
  const meshd = join(packageRoot(), 'bin', 'meshd');
  const caDir = join(dir, 'ca');
  const first = lab.plan.nodes[0];
  if (!first) throw new MeshdError('MESHD_E_LAB', 'the lab has no node for the control plane');
  const serverAddress = `${first.ipv4}:15012`;
  const logs: Record<string, string> = { server: join(dir, 'server.log') };

  progress(`CA for cluster.local in ${caDir}`);
  await initCa({ dir: caDir, trustDomain: 'cluster.local' });
  progress(`meshd server on ${first.name} (${serverAddress})`);
  startDetached(
    lab,
    first.name,
    [meshd, 'server'],
    { MESHD_CA_DIR: caDir, MESHD_DATA_DIR: join(dir, 'server') },
    logs.server ?? '',
  );
  await waitReady(lab, first.name, 'http://127.0.0.1:15014/healthz/ready', 'meshd server');

  const ctl = (...args: string[]) => meshctlInLab(lab, ...args);
  const manifest = join(dir, 'namespace.yaml');
  writeFileSync(
    manifest,
    `apiVersion: meshd.io/v1alpha1\nkind: Namespace\nmetadata: { name: ${DEMO_NAMESPACE}, labels: { meshd.io/dataplane-mode: ambient } }\n`,
    { mode: 0o600 },
  );
  await ctl('apply', '-f', manifest);
  progress(`namespace ${DEMO_NAMESPACE} enrolled (meshd.io/dataplane-mode=ambient)`);

  for (const node of lab.plan.nodes) {
    const { stdout: token } = await ctl('token', 'create', '--node', node.name);
    logs[node.name] = join(dir, `agent-${node.name}.log`);
    startDetached(
      lab,
      node.name,
      [meshd, 'agent'],
      {
        MESHD_NODE_NAME: node.name,
        MESHD_SERVER: serverAddress,
        MESHD_STATE_DIR: join(dir, `agent-${node.name}`),
        MESHD_CNI_SOCKET: cniSocket(lab, node.name),
        MESHD_JOIN_TOKEN: token.trim(),
        MESHD_CA_BUNDLE: join(caDir, 'bundle.pem'),
      },
      logs[node.name] ?? '',
    );
    progress(`meshd agent on ${node.name}`);
  }
  for (const node of lab.plan.nodes) {
    await waitReady(
      lab,
      node.name,
      'http://127.0.0.1:15021/healthz/ready',
      `meshd agent on ${node.name}`,
    );
  }
  return { caDir, serverAddress, logs };
}

/** Runs meshctl as the lab's admin inside the control plane's node. */
export function meshctlInLab(lab: Lab, ...args: string[]) {
  const first = lab.plan.nodes[0];
  if (!first) throw new MeshdError('MESHD_E_LAB', 'the lab has no node for the control plane');
  const meshctl = join(packageRoot(), 'dist', 'ctl', 'main.js');
  return lab.exec(first.name, [
    process.execPath,
    meshctl,
    ...args,
    '--ca-dir',
    join(labDir(lab.id), 'ca'),
    '--server',
    `${first.ipv4}:15012`,
  ]);
}

export const cniSocket = (lab: Lab, node: string) => join(labDir(lab.id), `cni-${node}.sock`);

/** meshd-cni ADD for a workload, chained after ptp exactly as a runtime runs it. */
export async function meshdCniAdd(
  lab: Lab,
  workload: WorkloadPlan,
  prevResult: CniResult,
): Promise<void> {
  const node = lab.plan.nodes.find((n) => n.name === workload.node);
  if (!node)
    throw new MeshdError(
      'MESHD_E_LAB',
      `workload ${workload.name} names unknown node ${workload.node}`,
    );
  const config = {
    cniVersion: '1.0.0',
    name: 'meshd-lab',
    type: 'meshd-cni',
    agentSocket: cniSocket(lab, node.name),
    logFile: join(labDir(lab.id), 'meshd-cni.log'),
    args: {
      cni: {
        labels: Object.entries(workload.labels ?? { app: workload.name }).map(([key, value]) => ({
          key,
          value,
        })),
      },
    },
    prevResult,
  };
  const env = {
    PATH: process.env.PATH,
    CNI_COMMAND: 'ADD',
    CNI_CONTAINERID: workload.containerId,
    CNI_NETNS: `/var/run/netns/${workload.netns}`,
    CNI_IFNAME: 'eth0',
    CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${DEMO_NAMESPACE};K8S_POD_NAME=${workload.name}${
      workload.serviceAccount ? `;MESHD_SERVICE_ACCOUNT=${workload.serviceAccount}` : ''
    }`,
    CNI_PATH: CNI_BIN_DIR,
  };
  try {
    await run(['ip', 'netns', 'exec', node.netns, join(packageRoot(), 'bin', 'meshd-cni')], {
      env,
      input: JSON.stringify(config),
      timeoutMs: 60_000,
    });
  } catch (cause) {
    throw new CniPluginError(
      {
        command: 'ADD',
        nodeNetns: node.netns,
        containerId: workload.containerId,
        workloadNetns: workload.netns,
        ifName: 'eth0',
        args: {},
        config,
      },
      (cause as Error).message,
      cause,
    );
  }
}
