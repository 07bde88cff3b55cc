/**
 * `meshctl why` along the path a connection really takes: the source agent's plan
 * (`planOutbound`), the waypoint's destination and L7 decision when the plan hands off to one,
 * and the destination agent's L4 decision at each endpoint. Pure; the command prints.
 */
import { type OutboundPlan, planOutbound } from '../daemon/agent/index.js';
import { MeshdError } from '../daemon/errors.js';
import {
  type AuthorizationPolicy,
  type MeshState,
  type Service,
  type Workload,
  workloadIdentity,
} from '../daemon/model/index.js';
import { authorizeRequest, describeDecision, policiesForTarget } from '../daemon/policy/index.js';
import { endpointsOf, resolveDestination, workloadOfEndpoint } from '../daemon/waypoint/index.js';
import { findWorkload, inboundDecision, splitTarget } from './why-cmd.js';

/** The HTTP request the waypoint hop is evaluated for. */
export interface WhyRequest {
  method: string;
  path: string;
  /** By lower-cased name. */
  headers: Record<string, string>;
  /** False when the caller gave neither --method nor --path: `GET /` stands in. */
  given: boolean;
}

export const DEFAULT_REQUEST: WhyRequest = { method: 'GET', path: '/', headers: {}, given: false };

export interface SourceAgentHop {
  hop: 'source-agent';
  node: string;
  workload: string;
  identity: string;
  /** `planOutbound`'s kind. */
  plan: OutboundPlan['kind'];
  allowed: boolean;
  service?: string;
  /** Workload-addressed traffic: the workload dialed. */
  target?: string;
  /** The plan's endpoints (`service`): `ns/name ip:port`. */
  endpoints?: string[];
  waypoint?: string;
  /** What binds the destination to the waypoint, in words. */
  boundBy?: string;
  /** Ready replicas: `ns/name ip (node n)`. */
  replicas?: string[];
  /** `refuse`: the plan's reason and message, as the agent logs them. */
  reason?: string;
  message?: string;
}

export interface WaypointHop {
  hop: 'waypoint';
  waypoint: string;
  identity: string;
  /** `service ns/name` or `workload ns/name`, as the waypoint resolved `:authority`. */
  destination?: string;
  /** The port's protocol (`http`, `http2`, `grpc`, `tcp`), or `detect`. */
  protocol?: string;
  request?: {
    method: string;
    path: string;
    host: string;
    headers: Record<string, string>;
    sourceIdentity: string;
  };
  allowed: boolean;
  /** The deciding policy; for `no_matching_allow`, the ALLOW policies that applied (comma-separated). */
  policy?: string;
  rule?: number;
  /** A decision reason, `opaque_tcp` (no L7 policy applies) or `refused` (not bound here). */
  reason: string;
  /** In words: `denied by policy shop/no-post rule 0`, `allowed: no ALLOW policy applies`. */
  decision: string;
  /** Set when no --method/--path was given. */
  note?: string;
}

export interface EndpointDecision {
  endpoint: string;
  address: string;
  allowed: boolean;
  policy?: string;
  reason: string;
}

export interface DestinationAgentHop {
  hop: 'destination-agent';
  /** The identity the destination agent sees: the waypoint's after a hand-off. */
  sourceIdentity: string;
  sourceIs: 'waypoint' | 'source';
  endpoints: EndpointDecision[];
  allowed: boolean;
}

export type WhyHop = SourceAgentHop | WaypointHop | DestinationAgentHop;

export interface WhyTrace {
  source: string;
  /** What the source dialed. */
  destination: string;
  service?: string;
  waypoint?: string;
  allowed: boolean;
  /** The first hop that denies: a denial anywhere is the answer. */
  deniedAt?: WhyHop['hop'];
  policy?: string;
  reason: string;
  hops: WhyHop[];
}

const nameOf = (r: { metadata: { namespace?: string | undefined; name: string } }) =>
  `${r.metadata.namespace ?? ''}/${r.metadata.name}`;

const refOf = (r: { metadata: { namespace?: string | undefined; name: string } }) => ({
  namespace: r.metadata.namespace ?? '',
  name: r.metadata.name,
});

const hostPort = (ip: string, port: number) =>
  ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;

/** `--header k=v` → `{ k: v }`, names lower-cased (as Node hands them to the waypoint). */
export function parseHeaders(pairs: readonly string[]): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0)
      throw new MeshdError('MESHD_E_BAD_REQUEST', `--header "${pair}" is not NAME=VALUE`);
    const name = pair.slice(0, eq).toLowerCase();
    const value = pair.slice(eq + 1);
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  return headers;
}

function boundBy(
  binding: { source: 'service' | 'workload' | 'namespace'; namespace: string },
  service: Service | undefined,
): string {
  if (binding.source === 'service') {
    return service?.spec.waypoint !== undefined
      ? "the Service's spec.waypoint"
      : "the Service's meshd.io/use-waypoint label";
  }
  if (binding.source === 'workload') return "the Workload's meshd.io/use-waypoint label";
  return `namespace ${binding.namespace}'s meshd.io/use-waypoint label`;
}

function sourceHop(source: Workload, identity: string, plan: OutboundPlan): SourceAgentHop {
  const hop: SourceAgentHop = {
    hop: 'source-agent',
    node: source.spec.node,
    workload: nameOf(source),
    identity,
    plan: plan.kind,
    allowed: plan.kind !== 'refuse',
  };
  switch (plan.kind) {
    case 'refuse':
      return {
        ...hop,
        ...(plan.service ? { service: nameOf(plan.service) } : {}),
        ...(plan.workload ? { target: nameOf(plan.workload) } : {}),
        reason: plan.reason,
        message: plan.message,
      };
    case 'service':
      return {
        ...hop,
        service: nameOf(plan.service),
        endpoints: plan.endpoints.map(
          (w) => `${nameOf(w)} ${hostPort(w.spec.addresses[0] ?? '', plan.targetPort)}`,
        ),
      };
    case 'workload':
      return { ...hop, target: nameOf(plan.workload) };
    case 'waypoint':
      return {
        ...hop,
        ...(plan.service ? { service: nameOf(plan.service) } : {}),
        ...(plan.workload ? { target: nameOf(plan.workload) } : {}),
        waypoint: `${plan.binding.namespace}/${plan.binding.name}`,
        boundBy: boundBy(plan.binding, plan.service),
        replicas: plan.replicas.map(
          (w) => `${nameOf(w)} ${w.spec.addresses[0] ?? ''} (node ${w.spec.node})`,
        ),
      };
    case 'passthrough':
      return { ...hop, ...(plan.workload ? { target: nameOf(plan.workload) } : {}) };
  }
}

/** The destination agent's L4 decision at each endpoint, for a source identity and address. */
function destinationHop(
  state: MeshState,
  endpoints: readonly { workload: Workload | undefined; ip: string; port: number }[],
  source: { identity: string; ip: string; is: 'waypoint' | 'source'; viaWaypoint: boolean },
): DestinationAgentHop {
  const decisions = endpoints.map(({ workload, ip, port }): EndpointDecision => {
    const endpoint = workload ? nameOf(workload) : ip;
    const address = hostPort(ip, port);
    if (!workload || !state.isEnrolled(workload)) {
      // A waypoint reaches endpoints over HBONE only; the source agent passes plain TCP through.
      return source.viaWaypoint
        ? { endpoint, address, allowed: false, reason: 'not_in_mesh' }
        : { endpoint, address, allowed: true, reason: 'not_in_mesh' };
    }
    const d = inboundDecision(state, workload, {
      sourceIdentity: source.identity,
      sourceIp: source.ip,
      port,
    });
    // Denied for want of a matching ALLOW rule: the ALLOW policies that applied are the ones to read.
    const policy =
      d.policy ??
      (d.allowed ? undefined : allowPolicies(state.authorizationPoliciesFor(refOf(workload))));
    return {
      endpoint,
      address,
      allowed: d.allowed,
      ...(policy ? { policy } : {}),
      reason: d.reason,
    };
  });
  return {
    hop: 'destination-agent',
    sourceIdentity: source.identity,
    sourceIs: source.is,
    endpoints: decisions,
    allowed: decisions.every((e) => e.allowed),
  };
}

/** The waypoint's hop: where `:authority` leads, then L7 authorization of the request. */
function waypointHops(
  state: MeshState,
  plan: Extract<OutboundPlan, { kind: 'waypoint' }>,
  dialed: { ip: string; port: number },
  source: { identity: string; ip: string },
  options: { trustDomain: string; request: WhyRequest },
): WhyHop[] {
  const waypoint = { namespace: plan.binding.namespace, name: plan.binding.name };
  const identity = `spiffe://${options.trustDomain}/ns/${waypoint.namespace}/sa/${waypoint.name}`;
  const hop = {
    hop: 'waypoint' as const,
    waypoint: `${waypoint.namespace}/${waypoint.name}`,
    identity,
  };
  const destination = resolveDestination(state, waypoint, dialed);
  if (destination.kind === 'refuse') {
    return [{ ...hop, allowed: false, reason: 'refused', decision: destination.reason }];
  }
  const resolved =
    destination.kind === 'service'
      ? `service ${nameOf(destination.service)}`
      : `workload ${nameOf(destination.workload)}`;
  const protocol = destination.kind === 'service' ? (destination.protocol ?? 'detect') : 'detect';
  const { request } = options;
  const host = hostPort(dialed.ip, dialed.port);
  const note = request.given
    ? {}
    : {
        note: `no --method/--path given: this is for GET /; L7 rules on methods, paths or headers may decide otherwise`,
      };
  let decided: Omit<WaypointHop, keyof typeof hop | 'destination' | 'protocol'>;
  if (protocol === 'tcp') {
    decided = {
      allowed: true,
      reason: 'opaque_tcp',
      decision:
        'allowed: the port is TCP, spliced as opaque bytes; L7 policy applies to HTTP requests only',
    };
  } else {
    const policies = policiesForTarget(state.list('AuthorizationPolicy'), {
      service: destination.kind === 'service' ? refOf(destination.service) : undefined,
      waypoint,
    });
    const d = authorizeRequest(policies, {
      sourceIdentity: source.identity,
      sourceIp: source.ip,
      destinationIp: dialed.ip,
      destinationPort: dialed.port,
      host,
      method: request.method,
      path: request.path,
      headers: request.headers,
    });
    const policy = d.policy ?? (d.allowed ? undefined : allowPolicies(policies));
    decided = {
      request: {
        method: request.method,
        path: request.path,
        host,
        headers: request.headers,
        sourceIdentity: source.identity,
      },
      allowed: d.allowed,
      ...(policy ? { policy } : {}),
      ...(d.rule !== undefined ? { rule: d.rule } : {}),
      reason: d.reason,
      decision: describeDecision(d),
      ...note,
    };
  }
  const waypointHop: WaypointHop = { ...hop, destination: resolved, protocol, ...decided };
  if (!waypointHop.allowed) return [waypointHop];
  const replicaIp = plan.replicas[0]?.spec.addresses[0] ?? '';
  const endpoints = endpointsOf(state, destination).map((e) => {
    const ref = workloadOfEndpoint(e.id);
    return {
      workload: ref ? state.get({ kind: 'Workload', ...ref }) : undefined,
      ip: e.ip,
      port: e.port,
    };
  });
  return [
    waypointHop,
    destinationHop(state, endpoints, {
      identity,
      ip: replicaIp,
      is: 'waypoint',
      viaWaypoint: true,
    }),
  ];
}

/** Denied for want of a matching ALLOW rule: the ALLOW policies that applied, as the waypoint logs. */
function allowPolicies(policies: readonly AuthorizationPolicy[]): string | undefined {
  const names = policies.filter((p) => p.spec.action === 'ALLOW').map(nameOf);
  return names.length > 0 ? names.join(',') : undefined;
}

/**
 * Pure: the path from `src` to `dst` (HOST:PORT) hop by hop, with the deciding policy at each.
 * Undefined when the source is no mesh workload (no agent captures it: `explain` answers).
 */
export function tracePath(
  state: MeshState,
  src: string,
  dst: string,
  options: { namespace?: string; trustDomain: string; request?: WhyRequest },
): WhyTrace | undefined {
  const namespace = options.namespace ?? 'default';
  const request = options.request ?? DEFAULT_REQUEST;
  const source = findWorkload(state, src, namespace);
  if (!source || !state.isEnrolled(source)) return undefined;
  const { host, port } = splitTarget(dst);
  const ip = /^[\d.]+$|:/.test(host)
    ? host
    : findWorkload(state, host, namespace)?.spec.addresses[0];
  if (ip === undefined) return undefined;
  const sourceIdentity = workloadIdentity(source, options.trustDomain);
  const sourceIp = source.spec.addresses[0] ?? '';
  const plan = planOutbound(state, { dst: { ip, port }, source });
  const hops: WhyHop[] = [sourceHop(source, sourceIdentity, plan)];
  const fromSource = { identity: sourceIdentity, ip: sourceIp, is: 'source' as const };
  if (plan.kind === 'waypoint') {
    hops.push(
      ...waypointHops(state, plan, { ip, port }, fromSource, {
        trustDomain: options.trustDomain,
        request,
      }),
    );
  } else if (plan.kind === 'service') {
    const endpoints = plan.endpoints.map((w) => ({
      workload: w,
      ip: w.spec.addresses[0] ?? '',
      port: plan.targetPort,
    }));
    hops.push(destinationHop(state, endpoints, { ...fromSource, viaWaypoint: false }));
  } else if (plan.kind === 'workload') {
    const endpoints = [{ workload: plan.workload, ip, port }];
    hops.push(destinationHop(state, endpoints, { ...fromSource, viaWaypoint: false }));
  }
  const first = hops[0] as SourceAgentHop;
  const denied = hops.find((h) => !h.allowed);
  const last = hops[hops.length - 1] as WhyHop;
  const deciding = denied ?? last;
  const policy =
    deciding.hop === 'destination-agent'
      ? deciding.endpoints.find((e) => e.allowed === deciding.allowed && e.policy)?.policy
      : deciding.hop === 'waypoint'
        ? deciding.policy
        : undefined;
  return {
    source: nameOf(source),
    destination: hostPort(ip, port),
    ...(first.service ? { service: first.service } : {}),
    ...(first.waypoint ? { waypoint: first.waypoint } : {}),
    allowed: denied === undefined,
    ...(denied ? { deniedAt: denied.hop } : {}),
    ...(policy ? { policy } : {}),
    reason: reasonOf(deciding),
    hops,
  };
}

function reasonOf(hop: WhyHop): string {
  switch (hop.hop) {
    case 'source-agent':
      return hop.reason ?? (hop.plan === 'passthrough' ? 'not_in_mesh' : hop.plan);
    case 'waypoint':
      return hop.reason;
    case 'destination-agent':
      return (
        (hop.endpoints.find((e) => e.allowed === hop.allowed) ?? hop.endpoints[0])?.reason ?? ''
      );
  }
}

/** Whether the hop-by-hop view says more than `explain`: a waypoint, or a refusal at the source. */
export function needsHops(trace: WhyTrace | undefined): trace is WhyTrace {
  const first = trace?.hops[0];
  return (
    trace !== undefined &&
    ((first?.hop === 'source-agent' && first.plan === 'refuse') ||
      trace.hops.some((h) => h.hop === 'waypoint'))
  );
}

const verdict = (allowed: boolean) => (allowed ? 'ALLOW' : 'DENY');

function sourceText(h: SourceAgentHop): string[] {
  const lines = [`source agent (node ${h.node}): ${h.workload} as ${h.identity}`];
  switch (h.plan) {
    case 'refuse':
      lines.push(`  plan:     refuse (${h.reason}): ${h.message}`);
      break;
    case 'service':
      lines.push(`  plan:     service ${h.service} -> endpoints ${h.endpoints?.join(', ')}`);
      break;
    case 'workload':
      lines.push(`  plan:     workload ${h.target} over HBONE`);
      break;
    case 'waypoint':
      lines.push(
        `  plan:     waypoint ${h.waypoint}, bound by ${h.boundBy}`,
        `  replicas: ${h.replicas?.join(', ')}`,
      );
      break;
    case 'passthrough':
      lines.push(`  plan:     passthrough (${h.target ?? 'the destination'} is not in the mesh)`);
      break;
  }
  lines.push(`  decision: ${verdict(h.allowed)}${h.allowed ? '' : ` (${h.reason})`}`);
  return lines;
}

function waypointText(h: WaypointHop): string[] {
  const lines = [`waypoint ${h.waypoint} as ${h.identity}`];
  if (h.destination) lines.push(`  destination: ${h.destination} (protocol ${h.protocol})`);
  if (h.request) {
    const r = h.request;
    const headers = Object.entries(r.headers)
      .map(([k, v]) => ` ${k}=${v}`)
      .join('');
    lines.push(
      `  request:  ${r.method} ${r.path} host ${r.host}${headers} from ${r.sourceIdentity}`,
    );
  }
  const by = h.policy ? ` by ${h.policy}${h.rule !== undefined ? ` rule ${h.rule}` : ''}` : '';
  // A named policy says it all; otherwise the reason in words (`no ALLOW policy applies`).
  const words = h.policy ? '' : `: ${h.decision.replace(/^(allowed|denied): /, '')}`;
  lines.push(`  decision: ${verdict(h.allowed)}${by} (${h.reason}${words})`);
  if (h.note) lines.push(`  note:     ${h.note}`);
  return lines;
}

function destinationText(h: DestinationAgentHop): string[] {
  const whose = h.sourceIs === 'waypoint' ? "the waypoint's identity" : "the source's identity";
  const lines = [`destination agent: source ${h.sourceIdentity} (${whose})`];
  for (const e of h.endpoints) {
    const reason =
      e.reason === 'not_in_mesh'
        ? h.sourceIs === 'waypoint'
          ? 'not_in_mesh: the waypoint reaches endpoints over HBONE only'
          : 'not_in_mesh: no mesh policy applies'
        : e.reason;
    lines.push(
      `  ${e.endpoint} ${e.address}: ${verdict(e.allowed)}${e.policy ? ` by ${e.policy}` : ''} (${reason})`,
    );
  }
  return lines;
}

const HOP_NAMES: Record<WhyHop['hop'], string> = {
  'source-agent': 'the source agent',
  waypoint: 'the waypoint',
  'destination-agent': 'the destination agent',
};

/** One block per hop, then the answer. */
export function traceText(t: WhyTrace): string {
  const head = `${t.source} -> ${t.destination}${t.service ? ` (service ${t.service})` : ''}`;
  const blocks = t.hops.map((h) =>
    (h.hop === 'source-agent'
      ? sourceText(h)
      : h.hop === 'waypoint'
        ? waypointText(h)
        : destinationText(h)
    ).join('\n'),
  );
  const answer = t.deniedAt
    ? `decision: DENY at ${HOP_NAMES[t.deniedAt]}${t.policy ? ` by ${t.policy}` : ''} (${t.reason})`
    : 'decision: ALLOW at every hop';
  return [head, ...blocks, answer].join('\n');
}
