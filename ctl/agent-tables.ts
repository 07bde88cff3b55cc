/**
 * One agent's view as rows and tables, from its /config_dump (or /connections, /certs):
 * the workloads of its node, the services and policies it enforces from, its connections.
 * Pure: the same dump always gives the same rows, sorted by namespace then name.
 */
import type { CertificateRow, ConnectionInfo } from '../daemon/agent/index.js';
import { MeshdError } from '../daemon/errors.js';
import {
  type AuthorizationPolicy,
  type LabelSelector,
  MeshState,
  type PeerAuthentication,
  STATE_FORMAT,
  selectorToString,
  workloadIdentity,
} from '../daemon/model/index.js';
import { formatTable } from './output.js';

/** The parts of an agent's /config_dump that meshctl reads. */
export interface AgentDump {
  /** The node's SPIFFE ID. */
  node: string;
  nodeName?: string;
  captured: { workload: string; identity: string; netns: string; addresses: string[] }[];
  certificates: CertificateRow[];
  connections?: ConnectionInfo[];
  registry: { revision: number; source: string; connectedTo: string | null; resources: unknown[] };
}

export interface WorkloadRow {
  namespace: string;
  name: string;
  addresses: string[];
  identity: string;
  netns: string;
  captured: boolean;
}

export interface ServiceRow {
  namespace: string;
  name: string;
  addresses: string[];
  /** `port` or `port:targetPort`. */
  ports: string[];
  /** How many workloads the service's selector picks. */
  endpoints: number;
}

export interface PolicyRow {
  namespace: string;
  name: string;
  kind: 'AuthorizationPolicy' | 'PeerAuthentication';
  /** ALLOW or DENY; for a PeerAuthentication its mTLS mode. */
  action: string;
  selector: string;
  /** AuthorizationPolicy rules; null for a PeerAuthentication. */
  rules: number | null;
}

const byName = (a: { namespace: string; name: string }, b: { namespace: string; name: string }) =>
  cmp(a.namespace, b.namespace) || cmp(a.name, b.name);
const cmp = (a: string | number, b: string | number) => (a < b ? -1 : a > b ? 1 : 0);
const list = (values: string[]) => (values.length ? values.join(',') : '-');
const selector = (s: LabelSelector | undefined) => (s ? selectorToString(s) : '<all>');

function notADump(source: string, what: string): never {
  throw new MeshdError('MESHD_E_AGENT_ADMIN', `${source} is not an agent's /config_dump: ${what}`, {
    hint: 'save one on the agent\'s host with "curl -s 127.0.0.1:15000/config_dump > dump.json"',
  });
}

/** Checks the shape meshctl relies on; `source` names the file or endpoint in errors. */
export function parseDump(value: unknown, source: string): AgentDump {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    notADump(source, 'expected a JSON object');
  }
  const d = value as Partial<AgentDump>;
  if (typeof d.node !== 'string') notADump(source, 'no "node"');
  if (!Array.isArray(d.captured)) notADump(source, 'no "captured" list');
  if (!Array.isArray(d.certificates)) notADump(source, 'no "certificates" list');
  const r = d.registry;
  if (!r || typeof r.revision !== 'number' || !Array.isArray(r.resources)) {
    notADump(source, 'no "registry" with a revision and resources');
  }
  return d as AgentDump;
}

/** The node's name: from the dump, or the last segment of its SPIFFE ID (older agents). */
export function nodeNameOf(dump: Pick<AgentDump, 'node' | 'nodeName'>): string {
  return dump.nodeName ?? dump.node.replace(/^spiffe:\/\/[^/]+\/node\//, '');
}

function trustDomainOf(nodeId: string): string | undefined {
  return /^spiffe:\/\/([^/]+)\//.exec(nodeId)?.[1];
}

/** The registry state the agent holds, validated like the agent's own saved state. */
export function stateOf(dump: AgentDump, source: string): MeshState {
  try {
    return MeshState.fromJSON({
      format: STATE_FORMAT,
      revision: dump.registry.revision,
      resources: dump.registry.resources,
    });
  } catch (cause) {
    throw new MeshdError(
      'MESHD_E_AGENT_ADMIN',
      `${source}: the registry resources in it do not validate`,
      { cause, hint: 'was the dump edited, or written by another meshd version?' },
    );
  }
}

/** The node's Workloads (registry), with whether the agent captures each. */
export function workloadRows(dump: AgentDump, state: MeshState): WorkloadRow[] {
  const captured = new Map(dump.captured.map((c) => [c.workload, c]));
  const trustDomain = trustDomainOf(dump.node);
  const rows = new Map<string, WorkloadRow>();
  for (const w of state.workloadsOnNode(nodeNameOf(dump))) {
    const namespace = w.metadata.namespace ?? '';
    const key = `${namespace}/${w.metadata.name}`;
    const c = captured.get(key);
    rows.set(key, {
      namespace,
      name: w.metadata.name,
      addresses: [...w.spec.addresses].sort(),
      identity: c?.identity ?? (trustDomain ? workloadIdentity(w, trustDomain) : ''),
      netns: w.spec.netns ?? '',
      captured: c !== undefined,
    });
  }
  // Captured but no longer the node's in the registry (a release or move in progress).
  for (const [key, c] of captured) {
    if (rows.has(key)) continue;
    const [namespace = '', name = ''] = key.split('/');
    rows.set(key, {
      namespace,
      name,
      addresses: [...c.addresses].sort(),
      identity: c.identity,
      netns: c.netns,
      captured: true,
    });
  }
  return [...rows.values()].sort(byName);
}

export function serviceRows(state: MeshState): ServiceRow[] {
  return state
    .list('Service')
    .map((s) => {
      const namespace = s.metadata.namespace ?? '';
      return {
        namespace,
        name: s.metadata.name,
        addresses: [...s.spec.addresses],
        ports: s.spec.ports.map((p) =>
          p.targetPort === undefined || p.targetPort === p.port
            ? `${p.port}`
            : `${p.port}:${p.targetPort}`,
        ),
        endpoints: state.endpoints({ namespace, name: s.metadata.name }).length,
      };
    })
    .sort(byName);
}

export function policyRows(state: MeshState): PolicyRow[] {
  const authz = state.list('AuthorizationPolicy').map(
    (p: AuthorizationPolicy): PolicyRow => ({
      namespace: p.metadata.namespace ?? '',
      name: p.metadata.name,
      kind: 'AuthorizationPolicy',
      action: p.spec.action,
      selector: selector(p.spec.selector),
      rules: p.spec.rules?.length ?? 0,
    }),
  );
  const peer = state.list('PeerAuthentication').map(
    (p: PeerAuthentication): PolicyRow => ({
      namespace: p.metadata.namespace ?? '',
      name: p.metadata.name,
      kind: 'PeerAuthentication',
      action: p.spec.mtls.mode,
      selector: selector(p.spec.selector),
      rules: null,
    }),
  );
  return [...authz, ...peer].sort((a, b) => byName(a, b) || cmp(a.kind, b.kind));
}

const endKey = (e: ConnectionInfo['source']) =>
  [e.workload, e.address, String(e.port ?? '').padStart(5, '0')] as const;

function compareConnections(a: ConnectionInfo, b: ConnectionInfo): number {
  const keys = (c: ConnectionInfo) => [
    c.direction,
    ...endKey(c.source),
    ...endKey(c.destination),
    c.openedAt,
  ];
  const ka = keys(a);
  const kb = keys(b);
  for (let i = 0; i < ka.length; i++) {
    const d = cmp(ka[i] ?? '', kb[i] ?? '');
    if (d !== 0) return d;
  }
  return 0;
}

export function sortConnections(rows: ConnectionInfo[]): ConnectionInfo[] {
  return [...rows].sort(compareConnections);
}

// ---- tables --------------------------------------------------------------------------------

export function workloadsTable(rows: WorkloadRow[]): string {
  return formatTable(
    ['namespace', 'name', 'addresses', 'identity', 'netns', 'captured'],
    rows.map((r) => [
      r.namespace,
      r.name,
      list(r.addresses),
      r.identity || '-',
      r.netns || '-',
      r.captured ? 'yes' : 'no',
    ]),
  );
}

export function servicesTable(rows: ServiceRow[]): string {
  return formatTable(
    ['namespace', 'name', 'addresses', 'ports', 'endpoints'],
    rows.map((r) => [r.namespace, r.name, list(r.addresses), list(r.ports), String(r.endpoints)]),
  );
}

export function policiesTable(rows: PolicyRow[]): string {
  return formatTable(
    ['namespace', 'name', 'kind', 'action', 'selector', 'rules'],
    rows.map((r) => [
      r.namespace,
      r.name,
      r.kind,
      r.action,
      r.selector,
      r.rules === null ? '-' : String(r.rules),
    ]),
  );
}

const address = (ip: string, port: number | undefined) => {
  const host = ip.includes(':') ? `[${ip}]` : ip;
  return port === undefined ? ip || '-' : `${host}:${port}`;
};

/** 42s, 5m3s, 2h7m, 3d4h: the age of a connection as kubectl shows ages. */
export function formatAge(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86_400)}d${Math.floor((s % 86_400) / 3600)}h`;
}

export function connectionsTable(rows: ConnectionInfo[]): string {
  return formatTable(
    [
      'direction',
      'path',
      'source',
      'src address',
      'src identity',
      'original dst',
      'service',
      'destination',
      'dst address',
      'dst identity',
      'src bytes',
      'dst bytes',
      'age',
    ],
    sortConnections(rows).map((c) => [
      c.direction,
      c.path,
      c.source.workload || '-',
      address(c.source.address, c.source.port),
      c.source.identity || '-',
      c.originalDestination
        ? address(c.originalDestination.address, c.originalDestination.port)
        : '-',
      c.destination.service || '-',
      c.destination.workload || '-',
      address(c.destination.address, c.destination.port),
      c.destination.identity || '-',
      String(c.bytesSentBySource),
      String(c.bytesSentByDestination),
      formatAge(c.ageSeconds),
    ]),
  );
}
