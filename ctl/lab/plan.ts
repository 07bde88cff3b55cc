/**
 * The lab's names and addresses, computed from its id and size by pure functions so they can be
 * tested without a kernel. Every lab lives in its own namespaces, so two labs may reuse the same
 * subnets; only the namespace names (which carry the lab id) must be unique.
 */

/** Every namespace the lab creates starts with this; `lab down --all` looks for it. */
export const LAB_PREFIX = 'mdl-';
export const LAB_ID_PATTERN = /^[a-z0-9]{4,12}$/;
export const MAX_NODES = 16;
export const MAX_WORKLOADS_PER_NODE = 32;

export interface NodePlan {
  name: string; // n1, n2, …
  index: number;
  netns: string;
  underlayIf: string; // the node's end of its veth, inside the underlay namespace
  ipv4: string; // on the underlay
  ipv6: string;
  podCidrV4: string;
  podCidrV6: string;
}

export interface WorkloadPlan {
  name: string; // n1-w1, …, or an app's name
  node: string;
  netns: string;
  containerId: string;
  /** Labels the CNI plugin registers (default: app=<name>). */
  labels?: Record<string, string>;
  serviceAccount?: string;
}

/** A named workload placed on a node by index (1-based; wraps onto fewer nodes). */
export interface AppPlacement {
  name: string;
  nodeIndex: number;
  labels: Record<string, string>;
  serviceAccount: string;
}

export interface LabPlan {
  id: string;
  underlayNetns: string;
  underlayCidrV4: string;
  underlayCidrV6: string;
  nodes: NodePlan[];
  workloads: WorkloadPlan[];
}

export function labNetnsPrefix(id: string): string {
  return `${LAB_PREFIX}${id}-`;
}

/**
 * With `apps`, the workloads are those apps (placed on their nodes) instead of
 * `workloadsPerNode` anonymous ones per node.
 */
export function planLab(
  id: string,
  nodeCount: number,
  workloadsPerNode: number,
  apps?: readonly AppPlacement[],
): LabPlan {
  if (!LAB_ID_PATTERN.test(id)) {
    throw new RangeError(`lab id "${id}" must be 4-12 lowercase letters or digits`);
  }
  checkCount('--nodes', nodeCount, 1, MAX_NODES);
  checkCount('--workloads', workloadsPerNode, 0, MAX_WORKLOADS_PER_NODE);
  const prefix = labNetnsPrefix(id);
  const nodes: NodePlan[] = [];
  const workloads: WorkloadPlan[] = [];
  for (let i = 1; i <= nodeCount; i++) {
    const name = `n${i}`;
    nodes.push({
      name,
      index: i,
      netns: `${prefix}${name}`,
      underlayIf: `${name}-ul`,
      ipv4: `172.30.0.${10 + i}`,
      ipv6: `fd00:30::${(10 + i).toString(16)}`,
      podCidrV4: `10.40.${i}.0/24`,
      podCidrV6: `fd00:40:${i.toString(16)}::/64`,
    });
    for (let k = 1; !apps && k <= workloadsPerNode; k++) {
      const wname = `${name}-w${k}`;
      workloads.push({
        name: wname,
        node: name,
        netns: `${prefix}${wname}`,
        containerId: `${prefix}${wname}`,
      });
    }
  }
  for (const app of apps ?? []) {
    const node = nodes[(app.nodeIndex - 1) % nodes.length];
    if (!node || !/^[a-z][a-z0-9-]{0,30}$/.test(app.name)) {
      throw new RangeError(`app "${app.name}" needs a short lowercase name and a node`);
    }
    workloads.push({
      name: app.name,
      node: node.name,
      netns: `${prefix}${app.name}`,
      containerId: `${prefix}${app.name}`,
      labels: app.labels,
      serviceAccount: app.serviceAccount,
    });
  }
  return {
    id,
    underlayNetns: `${prefix}ul`,
    underlayCidrV4: '172.30.0.0/24',
    underlayCidrV6: 'fd00:30::/64',
    nodes,
    workloads,
  };
}

function checkCount(flag: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${flag} must be an integer from ${min} to ${max}, got ${value}`);
  }
}

/** The network configuration handed to the CNI chain of one node (ptp + host-local). */
export function cniNetworkConfig(node: NodePlan, ipamDataDir: string): Record<string, unknown> {
  return {
    cniVersion: '1.0.0',
    name: 'meshd-lab',
    type: 'ptp',
    ipMasq: false,
    ipam: {
      type: 'host-local',
      ranges: [[{ subnet: node.podCidrV4 }], [{ subnet: node.podCidrV6 }]],
      routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0' }],
      dataDir: ipamDataDir,
    },
  };
}

/** Routes node `from` needs to reach the pods of every other node across the underlay. */
export function podRoutes(from: NodePlan, all: NodePlan[]): { dst: string; via: string }[] {
  return all
    .filter((n) => n.name !== from.name)
    .flatMap((n) => [
      { dst: n.podCidrV4, via: n.ipv4 },
      { dst: n.podCidrV6, via: n.ipv6 },
    ]);
}
