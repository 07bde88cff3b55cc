/** How the state's lookups name a workload, service or waypoint, and its key in the indexes. */
import { refKey } from '../resource.js';

/** A namespace and a name: how lookups name a workload or service. */
export interface NamespacedName {
  namespace: string;
  name: string;
}

export const workloadKey = (w: NamespacedName) => refKey({ kind: 'Workload', ...w });
export const serviceKey = (s: NamespacedName) => refKey({ kind: 'Service', ...s });
export const waypointKey = (w: NamespacedName) => refKey({ kind: 'Waypoint', ...w });
