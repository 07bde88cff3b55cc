/**
 * Waypoint bindings (which waypoint traffic to a service or workload goes via) and waypoint
 * replicas (the workloads that run a waypoint, by their `meshd.io/waypoint` label).
 */
import { LABEL_USE_WAYPOINT, LABEL_WAYPOINT } from '../common.js';
import type { Service } from '../kinds/service.js';
import { type Waypoint, waypointServes } from '../kinds/waypoint.js';
import type { Workload } from '../kinds/workload.js';
import type { Labels } from '../selector.js';
import { addTo, EMPTY, removeFrom } from './key-sets.js';
import { type NamespacedName, waypointKey } from './keys.js';

export interface WaypointBinding {
  namespace: string;
  name: string;
  /** Where the binding came from: the service (spec.waypoint or label), the workload's label or the namespace's. */
  source: 'service' | 'workload' | 'namespace';
  /** The Waypoint resource; undefined when it does not exist (yet): fail closed. */
  waypoint: Waypoint | undefined;
}

/** The waypoint a service names itself (`spec.waypoint`, else its label); undefined: its namespace decides. */
export const ownWaypointOfService = (s: Service): string | undefined =>
  s.spec.waypoint ?? s.metadata.labels?.[LABEL_USE_WAYPOINT];

/** The waypoint a workload names itself (its label); undefined: its namespace decides. */
export const ownWaypointOfWorkload = (w: Workload): string | undefined =>
  w.metadata.labels?.[LABEL_USE_WAYPOINT];

/**
 * The binding of a service or workload (`target`) of `namespace`: its own choice, else its
 * namespace's label; "none" opts out, and a waypoint whose trafficType does not serve the
 * target gives none. Waypoints bind only in their own namespace, hence one namespace here.
 */
export function bindWaypoint(
  target: 'service' | 'workload',
  namespace: string,
  own: string | undefined,
  namespaceLabels: Labels,
  waypointNamed: (name: string) => Waypoint | undefined,
): WaypointBinding | undefined {
  const source = own === undefined ? 'namespace' : target;
  const name = own ?? namespaceLabels[LABEL_USE_WAYPOINT];
  if (name === undefined || name === 'none') return undefined;
  const waypoint = waypointNamed(name);
  if (waypoint && !waypointServes(waypoint.spec.trafficType, target)) return undefined;
  return { namespace, name, source, waypoint };
}

/** The waypoint a workload runs as a replica of, from its label; undefined: none. */
const replicaOf = (w: Workload | undefined): NamespacedName | undefined => {
  const name = w?.metadata.labels?.[LABEL_WAYPOINT];
  return w && name !== undefined ? { namespace: w.metadata.namespace, name } : undefined;
};

const NONE: readonly NamespacedName[] = [];

/** Waypoint replicas: waypoint key → keys of the workloads labelled as running it. */
export class WaypointReplicaIndex {
  readonly #replicas = new Map<string, Set<string>>();

  /**
   * Files `now` in place of `old`; returns the waypoints (one or two: a relabel moves a
   * replica) whose replica set the change touched, for their bindings to be marked affected.
   * Workloads without the label, nearly all of them, cost one property read.
   */
  update(
    key: string,
    old: Workload | undefined,
    now: Workload | undefined,
  ): readonly NamespacedName[] {
    const before = replicaOf(old);
    const after = replicaOf(now);
    if (!before && !after) return NONE;
    if (before) removeFrom(this.#replicas, waypointKey(before), key);
    if (after) addTo(this.#replicas, waypointKey(after), key);
    if (before && after && waypointKey(before) === waypointKey(after)) return [after];
    return [...(before ? [before] : []), ...(after ? [after] : [])];
  }

  replicaKeys(waypoint: NamespacedName): ReadonlySet<string> {
    return this.#replicas.get(waypointKey(waypoint)) ?? EMPTY;
  }
}
