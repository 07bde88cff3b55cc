/**
 * No bypass: a Service whose traffic goes through a waypoint and that an L7 policy protects
 * there takes traffic on its target ports only from that waypoint. Otherwise calling an
 * endpoint's pod IP directly would skip the L7 policy (Istio leaves this hole open and asks for a
 * second, L4 policy). Pure: the caller gathers the facts from the mesh state.
 */
import type { ConnectionAttributes, Decision } from './decision.js';

/** One Service of the destination workload that is reached through a waypoint. */
export interface GuardedPort {
  /** The Service's target port on the workload. */
  targetPort: number;
  /** `namespace/name` of the Service, for the log. */
  service: string;
  /** The waypoint's SPIFFE ID (`spiffe://<td>/ns/<ns>/sa/<waypoint>`). */
  waypointIdentity: string;
  /** `namespace/name` of the L7 policies that protect it at the waypoint (at least one). */
  policies: readonly string[];
}

/**
 * The denial for a connection to a port only a waypoint may reach, from anyone else; undefined
 * when the guard does not apply. A port several such Services share accepts each of their
 * waypoints.
 */
export function checkWaypointOnly(
  guarded: readonly GuardedPort[],
  conn: ConnectionAttributes,
): Decision | undefined {
  const here = guarded.filter((g) => g.targetPort === conn.destinationPort);
  if (here.length === 0) return undefined;
  if (conn.sourceIdentity && here.some((g) => g.waypointIdentity === conn.sourceIdentity)) {
    return undefined;
  }
  const first = here[0] as GuardedPort;
  return { allowed: false, reason: 'waypoint_required', policy: first.policies[0] };
}
