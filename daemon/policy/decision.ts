/** What the policy functions take (a connection's L4 attributes) and give (a decision). */
/** The L4 attributes of an inbound connection that policy looks at. */
export interface ConnectionAttributes {
  /**
   * The peer's SPIFFE ID (`spiffe://td/ns/x/sa/y`) when the connection came over HBONE (mTLS);
   * undefined (or empty) for plaintext.
   */
  sourceIdentity?: string | undefined;
  /** The source address, IPv4 or IPv6 (IPv4-mapped IPv6 counts as IPv4). */
  sourceIp: string;
  /**
   * The destination address: the workload's at L4; at a waypoint, the one the client addressed
   * (the Service VIP, or the pod IP for workload-addressed traffic). Only `when` destination.ip
   * matches on it.
   */
  destinationIp: string;
  /** The workload's target port at L4; at a waypoint, the port the client addressed. */
  destinationPort: number;
}

/** Stable, low-cardinality reasons, fit for a metric label or an access-log field. */
export const DECISION_REASONS = [
  'allowed_by_default',
  'allowed_by_policy',
  'denied_by_policy',
  'no_matching_allow',
  'mtls_required',
  'waypoint_required',
] as const;
export type DecisionReason = (typeof DECISION_REASONS)[number];

export interface Decision {
  allowed: boolean;
  /** The deciding policy as "namespace/name"; absent when no single policy decided. */
  policy?: string;
  reason: DecisionReason;
}

/** "namespace/name" of a namespaced resource. */
export function policyName(resource: { metadata: { namespace: string; name: string } }): string {
  return `${resource.metadata.namespace}/${resource.metadata.name}`;
}

/** Namespace, then name: the order that picks the deciding policy among several that match. */
export function comesBefore(
  a: { metadata: { namespace: string; name: string } },
  b: { metadata: { namespace: string; name: string } },
): boolean {
  const x = a.metadata;
  const y = b.metadata;
  return x.namespace !== y.namespace ? x.namespace < y.namespace : x.name < y.name;
}
