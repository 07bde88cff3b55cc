/**
 * The outbound decision, pure: from a captured connection's original destination and the mesh
 * state to one typed plan the agent then carries out (outbound.ts). Every path a connection can
 * take is decided here and table-tested (test/unit/outbound-plan.test.ts).
 */
import { AGENT_PORT_SET } from '../discovery/index.js';
import {
  isEnrolled,
  LABEL_WAYPOINT,
  type MeshState,
  type NamespacedName,
  type Service,
  type WaypointBinding,
  type Workload,
} from '../model/index.js';
import type { ResponseFlag } from '../telemetry/index.js';

export interface OutboundInput {
  dst: { ip: string; port: number };
  /** The source workload; a waypoint replica's own traffic never goes back to its waypoint. */
  source: Workload;
}

/** Why a connection is refused: each has its own log line, metric reason and response flag. */
export type RefuseReason = 'agent-port' | 'no-endpoints' | 'waypoint-missing' | 'waypoint-unready';

export type OutboundPlan =
  | {
      kind: 'refuse';
      reason: RefuseReason;
      flag: ResponseFlag;
      message: string;
      service?: Service;
      workload?: Workload;
    }
  /** A Service VIP:port: one of its endpoints (the balancer orders them) at `targetPort`. */
  | {
      kind: 'service';
      service: Service;
      targetPort: number;
      endpoints: Workload[];
    }
  /** A mesh workload addressed by its own IP: HBONE to its :15008, expecting its identity. */
  | { kind: 'workload'; workload: Workload }
  /**
   * Hand-off: HBONE to a replica of the bound waypoint with `:authority` = the address the
   * workload dialed; the waypoint picks the endpoint and applies L7 policy.
   */
  | {
      kind: 'waypoint';
      binding: WaypointBinding & { target: 'service' | 'workload' };
      replicas: Workload[];
      service?: Service;
      workload?: Workload;
    }
  /** Not in the mesh: a plain TCP connection from the workload's namespace. */
  | { kind: 'passthrough'; workload: Workload | undefined };

const refOf = (r: { metadata: { namespace?: string | undefined; name: string } }) => ({
  namespace: r.metadata.namespace ?? '',
  name: r.metadata.name,
});

const bindingName = (b: NamespacedName) => `${b.namespace}/${b.name}`;

export function planOutbound(state: MeshState, input: OutboundInput): OutboundPlan {
  const { dst, source } = input;
  if (AGENT_PORT_SET.has(dst.port)) {
    return {
      kind: 'refuse',
      reason: 'agent-port',
      flag: 'DENY',
      message: `calls to the agent's own port ${dst.port} are refused`,
    };
  }
  const match = state.serviceAt(dst.ip, dst.port);
  if (match) {
    const { service } = match;
    const binding = state.waypointForService(refOf(service));
    if (binding && !isReplicaOf(source, binding)) {
      return viaWaypoint(state, { ...binding, target: 'service' }, { service });
    }
    return toService(state, service, match.port.targetPort ?? dst.port);
  }
  const workload = state.workloadByIp(dst.ip);
  if (!workload || !enrolled(state, workload)) return { kind: 'passthrough', workload };
  const binding = state.waypointForWorkload(refOf(workload));
  if (binding && !isReplicaOf(source, binding)) {
    return viaWaypoint(state, { ...binding, target: 'workload' }, { workload });
  }
  return { kind: 'workload', workload };
}

function toService(state: MeshState, service: Service, targetPort: number): OutboundPlan {
  const endpoints = state.endpoints(refOf(service)).filter((w) => w.spec.addresses.length > 0);
  if (endpoints.length > 0) return { kind: 'service', service, targetPort, endpoints };
  return {
    kind: 'refuse',
    reason: 'no-endpoints',
    flag: 'UH',
    message: `service ${bindingName(refOf(service))} has no endpoints`,
    service,
  };
}

function enrolled(state: MeshState, workload: Workload): boolean {
  return isEnrolled(
    workload.metadata.labels ?? {},
    state.namespaceLabels(workload.metadata.namespace ?? ''),
  );
}

/** Fail closed: a binding to a missing or unready waypoint refuses; it never goes direct. */
function viaWaypoint(
  state: MeshState,
  binding: WaypointBinding & { target: 'service' | 'workload' },
  dest: { service?: Service; workload?: Workload },
): OutboundPlan {
  const name = bindingName(binding);
  const what = dest.service
    ? `service ${bindingName(refOf(dest.service))}`
    : `workload ${bindingName(refOf(dest.workload as Workload))}`;
  const by = `(bound by its ${binding.source === 'namespace' ? "namespace's label" : binding.source === 'service' ? 'spec.waypoint or label' : 'label'})`;
  if (!binding.waypoint) {
    return {
      kind: 'refuse',
      reason: 'waypoint-missing',
      flag: 'UH',
      message: `${what} is bound to waypoint ${name} ${by}, which does not exist: create it (meshctl waypoint apply ${binding.name} -n ${binding.namespace}) or remove the binding`,
      ...dest,
    };
  }
  const replicas = waypointReplicas(state, binding);
  if (replicas.length === 0) {
    return {
      kind: 'refuse',
      reason: 'waypoint-unready',
      flag: 'UH',
      message: `${what} is bound to waypoint ${name} ${by}, which has no ready replica: start one (meshctl waypoint status ${binding.name} -n ${binding.namespace})`,
      ...dest,
    };
  }
  return { kind: 'waypoint', binding, replicas, ...dest };
}

export function isReplicaOf(workload: Workload, waypoint: NamespacedName): boolean {
  return (
    workload.metadata.namespace === waypoint.namespace &&
    workload.metadata.labels?.[LABEL_WAYPOINT] === waypoint.name
  );
}

/** Ready replicas with an address: a replica is labelled once it serves, unlabelled on stop. */
export function waypointReplicas(state: MeshState, waypoint: NamespacedName): Workload[] {
  return state.waypointReplicas(waypoint).filter((w) => w.spec.addresses.length > 0);
}
