/** Which AuthorizationPolicies a waypoint applies to a request: those whose targetRefs name it. */
import type { AuthorizationPolicy, NamespacedName, PolicyTargetRef } from '../model/index.js';
import { comesBefore } from './decision.js';

/** What a request at a waypoint is for: the waypoint, and the Service it was addressed to. */
export interface RequestTarget {
  /** Absent for workload-addressed traffic (a pod IP, no Service). */
  service?: NamespacedName | undefined;
  waypoint: NamespacedName;
}

function names(ref: PolicyTargetRef, namespace: string, target: RequestTarget): boolean {
  const object = ref.kind === 'Service' ? target.service : target.waypoint;
  return object !== undefined && object.namespace === namespace && object.name === ref.name;
}

/**
 * The policies with a targetRef naming the request's Service or its Waypoint, each in the
 * policy's own namespace (a targetRef never reaches into another namespace, the root namespace's
 * included). Selector and namespace-wide policies are the agents' and never returned. Sorted by
 * namespace and name.
 */
export function policiesForTarget(
  policies: readonly AuthorizationPolicy[],
  target: RequestTarget,
): AuthorizationPolicy[] {
  return policies
    .filter((p) => p.spec.targetRefs?.some((ref) => names(ref, p.metadata.namespace, target)))
    .sort((a, b) => (comesBefore(a, b) ? -1 : comesBefore(b, a) ? 1 : 0));
}
