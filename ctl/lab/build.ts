/** Builds a lab from its plan: underlay bridge, nodes, routes, then workloads via real CNI. */
import { addressesOf, type CniInvocation, type CniResult, cniAdd } from './cni.js';
import { addNetns, ipIn, sysctlIn } from './netns.js';
import {
  cniNetworkConfig,
  type LabPlan,
  type NodePlan,
  podRoutes,
  type WorkloadPlan,
} from './plan.js';
import { ipamDir, type LabState, saveState } from './state.js';

export type Progress = (message: string) => void;

const NODE_SYSCTLS = {
  'net.ipv4.ip_forward': 1,
  'net.ipv6.conf.all.forwarding': 1,
  'net.ipv6.conf.all.accept_dad': 0,
  'net.ipv6.conf.default.accept_dad': 0,
};
// Skipping duplicate address detection makes IPv6 addresses usable at once; the lab assigns them.
const WORKLOAD_SYSCTLS = {
  'net.ipv6.conf.all.accept_dad': 0,
  'net.ipv6.conf.default.accept_dad': 0,
};

/** Steps a caller can add: after the network is up, and after each workload's ptp ADD. */
export interface BuildHooks {
  afterNetwork?: () => Promise<void>;
  /** The next plugin of the chain, given the primary plugin's result (its prevResult). */
  chain?: (workload: WorkloadPlan, prevResult: CniResult) => Promise<void>;
}

export async function buildLab(
  state: LabState,
  progress: Progress,
  hooks: BuildHooks = {},
): Promise<void> {
  const { plan } = state;
  progress(`underlay ${plan.underlayNetns} (bridge br0)`);
  await buildUnderlay(plan);
  for (const node of plan.nodes) {
    progress(`node ${node.name}: netns ${node.netns}, ${node.ipv4}, pods ${node.podCidrV4}`);
    await buildNode(plan, node);
  }
  for (const node of plan.nodes) {
    for (const route of podRoutes(node, plan.nodes)) {
      await ipIn(node.netns, 'route', 'add', route.dst, 'via', route.via);
    }
  }
  await hooks.afterNetwork?.();
  for (const workload of plan.workloads) {
    const addresses = await addWorkload(state, workload, hooks.chain);
    state.workloads[workload.name] = addresses;
    saveState(state);
    progress(
      `workload ${workload.name} on ${workload.node}: ${addresses.ipv4} ${addresses.ipv6 ?? ''}`,
    );
  }
}

async function buildUnderlay(plan: LabPlan): Promise<void> {
  await addNetns(plan.underlayNetns);
  await ipIn(plan.underlayNetns, 'link', 'add', 'br0', 'type', 'bridge');
  await ipIn(plan.underlayNetns, 'link', 'set', 'br0', 'up');
}

async function buildNode(plan: LabPlan, node: NodePlan): Promise<void> {
  await addNetns(node.netns);
  await sysctlIn(node.netns, NODE_SYSCTLS);
  await ipIn(
    node.netns,
    'link',
    'add',
    'eth0',
    'type',
    'veth',
    'peer',
    'name',
    node.underlayIf,
    'netns',
    plan.underlayNetns,
  );
  await ipIn(plan.underlayNetns, 'link', 'set', node.underlayIf, 'master', 'br0', 'up');
  await ipIn(node.netns, 'addr', 'add', `${node.ipv4}/24`, 'dev', 'eth0');
  await ipIn(node.netns, 'addr', 'add', `${node.ipv6}/64`, 'dev', 'eth0', 'nodad');
  await ipIn(node.netns, 'link', 'set', 'eth0', 'up');
}

export function workloadCniInvocation(
  state: LabState,
  workload: WorkloadPlan,
  command: CniInvocation['command'],
): CniInvocation {
  const node = state.plan.nodes.find((n) => n.name === workload.node);
  if (!node) throw new Error(`workload ${workload.name} names unknown node ${workload.node}`);
  return {
    command,
    nodeNetns: node.netns,
    containerId: workload.containerId,
    workloadNetns: workload.netns,
    ifName: 'eth0',
    args: { K8S_POD_NAMESPACE: 'default', K8S_POD_NAME: workload.name },
    config: cniNetworkConfig(node, ipamDir(state.id, node.name)),
  };
}

async function addWorkload(state: LabState, workload: WorkloadPlan, chain: BuildHooks['chain']) {
  await addNetns(workload.netns);
  await sysctlIn(workload.netns, WORKLOAD_SYSCTLS);
  const result = await cniAdd(workloadCniInvocation(state, workload, 'ADD'));
  await chain?.(workload, result);
  return addressesOf(result);
}
