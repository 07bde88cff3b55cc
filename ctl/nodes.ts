/**
 * The cluster's nodes as the servers see them (`meshctl get nodes`, `meshctl check`). With
 * several server replicas an agent watches one of them, so every configured server is asked
 * and the answers are merged: a node is connected when any replica has its stream.
 */
import { MeshdError } from '../daemon/errors.js';
import {
  ControlPlaneCallError,
  grpc,
  type NodeStatus,
  RegistryClient,
} from '../daemon/proto/index.js';
import { loadAdminCredentials } from './client.js';
import type { ConnectionFlags } from './config.js';
import { connectionOrLab } from './lab-context.js';
import { formatTable } from './output.js';

export interface NodeView extends NodeStatus {
  /** The server whose stream the node's agent holds (or last held). */
  server: string;
  /** The registry revision of that server. */
  serverRevision: number;
}

export interface NodesAnswer {
  nodes: NodeView[];
  /** Servers that answered, with their revision and clock offset from ours (ms). */
  servers: { address: string; revision: number; clockOffsetMs: number }[];
  unreachable: { address: string; error: string }[];
}

export async function fetchNodes(flags: ConnectionFlags): Promise<NodesAnswer> {
  const { servers, caDir } = connectionOrLab(flags);
  const creds = loadAdminCredentials(caDir);
  const answer: NodesAnswer = { nodes: [], servers: [], unreachable: [] };
  const byName = new Map<string, NodeView>();
  for (const address of servers) {
    const client = new RegistryClient({ ...creds, server: address, timeoutMs: 5000 });
    try {
      const sentAt = Date.now();
      const res = await client.listNodes();
      const midpoint = (sentAt + Date.now()) / 2;
      answer.servers.push({
        address,
        revision: res.revision,
        clockOffsetMs: Math.round(res.serverTimeUnixMs - midpoint),
      });
      for (const node of res.nodes)
        merge(byName, { ...node, server: address, serverRevision: res.revision });
    } catch (err) {
      const unreachable =
        err instanceof ControlPlaneCallError &&
        (err.status === grpc.status.UNAVAILABLE || err.status === grpc.status.DEADLINE_EXCEEDED);
      if (!unreachable) throw err;
      answer.unreachable.push({ address, error: err.message });
    } finally {
      client.close();
    }
  }
  if (answer.servers.length === 0) {
    throw new MeshdError(
      'MESHD_E_CONTROL_PLANE',
      `no meshd server answered: ${answer.unreachable.map((u) => u.error).join('; ')}`,
    );
  }
  answer.nodes = [...byName.values()].sort((a, b) => a.name.localeCompare(b.name));
  return answer;
}

/** Keeps the connected view of a node, else the one seen last. */
function merge(into: Map<string, NodeView>, node: NodeView): void {
  const seen = into.get(node.name);
  if (!seen || rank(node) > rank(seen)) into.set(node.name, node);
}

const rank = (n: NodeView) => (n.connected ? 2e15 : 0) + Date.parse(n.connectedSince || '0') || 0;

export function nodeState(node: NodeView): 'Connected' | 'Disconnected' | 'NeverConnected' {
  if (node.connected) return 'Connected';
  return node.connectedSince ? 'Disconnected' : 'NeverConnected';
}

/** "current", or how far behind the server's revision the node's stream is. */
export function revisionText(node: NodeView): string {
  if (!node.connectedSince) return '-';
  if (!node.connected) return `${node.revisionSent} (last sent)`;
  const behind = node.serverRevision - node.revisionSent;
  return behind <= 0 ? `${node.revisionSent} (current)` : `${node.revisionSent} (${behind} behind)`;
}

export function age(iso: string, now: number): string {
  if (!iso) return '-';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172_800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86_400)}d`;
}

export function nodesTable(nodes: NodeView[], now: number): string {
  if (nodes.length === 0)
    return 'no nodes known (no agent has connected and no workload is registered)';
  return formatTable(
    ['name', 'status', 'server', 'workloads', 'revision', 'clock skew', 'version', 'age'],
    nodes.map((n) => [
      n.name,
      nodeState(n),
      n.connectedSince ? n.server : '-',
      String(n.workloads),
      revisionText(n),
      n.connected ? `${n.clockSkewMs}ms` : '-',
      n.version || '-',
      age(n.connected ? n.connectedSince : n.disconnectedAt, now),
    ]),
  );
}
