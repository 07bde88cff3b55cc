/**
 * Where a tunnel the waypoint accepted is going, pure: the CONNECT's `:authority` names a
 * Service VIP:port or a workload's IP:port, and only traffic bound to this waypoint is served
 * (the waypoint is never an open relay into the mesh).
 */
import type {
  MeshState,
  NamespacedName,
  AppProtocol as PortProtocol,
  Service,
  Workload,
} from '../model/index.js';
import type { AppProtocol, Endpoint } from './l7/index.js';

export type WaypointDestination =
  | {
      kind: 'service';
      service: Service;
      /** The Service port's protocol, lower case; undefined: detect. */
      protocol: AppProtocol;
      targetPort: number;
    }
  | { kind: 'workload'; workload: Workload; port: number }
  | { kind: 'refuse'; reason: string };

const PROTOCOLS: Record<PortProtocol, AppProtocol> = {
  HTTP: 'http',
  HTTP2: 'http2',
  GRPC: 'grpc',
  TCP: 'tcp',
};

const sameWaypoint = (a: NamespacedName | undefined, b: NamespacedName) =>
  a !== undefined && a.namespace === b.namespace && a.name === b.name;

const refOf = (r: { metadata: { namespace?: string | undefined; name: string } }) => ({
  namespace: r.metadata.namespace ?? '',
  name: r.metadata.name,
});

export function resolveDestination(
  state: MeshState,
  waypoint: NamespacedName,
  authority: { ip: string; port: number },
): WaypointDestination {
  const here = `${waypoint.namespace}/${waypoint.name}`;
  const match = state.serviceAt(authority.ip, authority.port);
  if (match) {
    const ref = refOf(match.service);
    if (!sameWaypoint(state.waypointForService(ref), waypoint)) {
      return {
        kind: 'refuse',
        reason: `service ${ref.namespace}/${ref.name} is not bound to waypoint ${here}`,
      };
    }
    const { protocol } = match.port;
    return {
      kind: 'service',
      service: match.service,
      protocol: protocol ? PROTOCOLS[protocol] : undefined,
      targetPort: match.port.targetPort ?? authority.port,
    };
  }
  const workload = state.workloadByIp(authority.ip);
  if (workload) {
    const ref = refOf(workload);
    if (!sameWaypoint(state.waypointForWorkload(ref), waypoint)) {
      return {
        kind: 'refuse',
        reason: `workload ${ref.namespace}/${ref.name} is not bound to waypoint ${here}`,
      };
    }
    return { kind: 'workload', workload, port: authority.port };
  }
  return {
    kind: 'refuse',
    reason: `${authority.ip}:${authority.port} is neither a service nor a workload of the mesh`,
  };
}

/**
 * An endpoint's id, `<namespace>/<workload>:<port>`. The engine keys its upstream pools (HTTP/1.1
 * agents, HTTP/2 sessions) and load counts by id, so two ports of one workload must not share
 * one: a session opened to one port would carry requests meant for the other.
 */
export function endpointId(workload: Workload, port: number): string {
  return `${workload.metadata.namespace ?? ''}/${workload.metadata.name}:${port}`;
}

/** The workload of an endpoint id (names never hold ':'); undefined when it is not one. */
export function workloadOfEndpoint(id: string | undefined): NamespacedName | undefined {
  const m = /^([^/]*)\/([^/:]+):\d+$/.exec(id ?? '');
  return m ? { namespace: m[1] ?? '', name: m[2] ?? '' } : undefined;
}

/** The endpoints a request may go to now: the service's workloads with an address. */
export function endpointsOf(
  state: MeshState,
  destination: Extract<WaypointDestination, { kind: 'service' | 'workload' }>,
): Endpoint[] {
  if (destination.kind === 'workload') {
    const { workload, port } = destination;
    const ip = workload.spec.addresses[0] ?? '';
    return [{ ip, port, id: endpointId(workload, port) }];
  }
  return state
    .endpoints(refOf(destination.service))
    .filter((w) => w.spec.addresses.length > 0)
    .map((w) => ({
      ip: w.spec.addresses[0] ?? '',
      port: destination.targetPort,
      id: endpointId(w, destination.targetPort),
    }));
}
