/**
 * Matching one rule of an AuthorizationPolicy against a connection's L4 attributes, as Istio
 * does, with the L4 fail-safe of DESIGN §8 for what L4 cannot see (L7 fields).
 */
import type {
  AuthorizationAction,
  AuthorizationOperation,
  AuthorizationRule,
  AuthorizationSource,
  IpAddress,
} from '../model/index.js';
import { parseIp } from '../model/index.js';
import { conditionsMatch, isL7Condition } from './conditions.js';
import type { ConnectionAttributes } from './decision.js';
import { anyPattern, inAnyBlock } from './patterns.js';

/** The operation fields only an L7 enforcement point (a waypoint) can check. */
export const L7_OPERATION_FIELDS = [
  'methods',
  'notMethods',
  'paths',
  'notPaths',
  'hosts',
  'notHosts',
] as const;

/** A connection's attributes in the form the matchers use, computed once per evaluation. */
export interface Peer {
  /** The SPIFFE ID without `spiffe://`, or undefined for plaintext. */
  principal: string | undefined;
  /** The namespace of `<td>/ns/<ns>/sa/<sa>`, or undefined (plaintext, or another shape). */
  namespace: string | undefined;
  /** The source address, or undefined if it does not parse. */
  ip: IpAddress | undefined;
  /** The destination address (for `when` destination.ip), or undefined if it does not parse. */
  destinationIp: IpAddress | undefined;
  port: number;
}

const WORKLOAD_PRINCIPAL = /^[^/]+\/ns\/([^/]+)\/sa\/[^/]+$/;

export function peerOf(conn: ConnectionAttributes): Peer {
  const id = conn.sourceIdentity;
  const principal = id ? (id.startsWith('spiffe://') ? id.slice('spiffe://'.length) : id) : '';
  return {
    principal: principal === '' ? undefined : principal,
    namespace: WORKLOAD_PRINCIPAL.exec(principal)?.[1],
    ip: parseIp(conn.sourceIp),
    destinationIp: parseIp(conn.destinationIp),
    port: conn.destinationPort,
  };
}

/**
 * One source: every field that is set must hold. What cannot be told (an address or block that
 * does not parse — the model never lets one through) is settled fail-safe, as for L7 fields:
 * it holds in a DENY rule and fails in an ALLOW rule.
 */
export function sourceMatches(
  source: AuthorizationSource,
  peer: Peer,
  action: AuthorizationAction,
): boolean {
  const unknown = action === 'DENY';
  if (source.principals && !anyPattern(source.principals, peer.principal)) return false;
  if (source.notPrincipals && anyPattern(source.notPrincipals, peer.principal)) return false;
  if (source.namespaces && !anyPattern(source.namespaces, peer.namespace)) return false;
  if (source.notNamespaces && anyPattern(source.notNamespaces, peer.namespace)) return false;
  if (source.ipBlocks) {
    const inside = inAnyBlock(source.ipBlocks, peer.ip);
    if (!(inside ?? unknown)) return false;
  }
  if (source.notIpBlocks) {
    const inside = inAnyBlock(source.notIpBlocks, peer.ip);
    if (!(inside === undefined ? unknown : !inside)) return false;
  }
  return true;
}

export function hasL7(operation: AuthorizationOperation): boolean {
  return L7_OPERATION_FIELDS.some((f) => operation[f] !== undefined);
}

/** One operation on its L4 part (ports, notPorts); its L7 fields are the callers' concern. */
export function operationMatchesL4(operation: AuthorizationOperation, peer: Peer): boolean {
  if (operation.ports && !operation.ports.includes(peer.port)) return false;
  if (operation.notPorts?.includes(peer.port)) return false;
  return true;
}

/**
 * One rule at L4: any of its sources and any of its operations (a missing `from` or `to` is any),
 * and all its conditions. L7 fail-safe: an ALLOW rule with an L7 field in any operation, or a
 * header condition, never matches; a DENY rule's operations are matched on their L4 part alone
 * (an operation with only L7 fields is any port) and its header conditions are skipped.
 */
export function ruleMatches(
  rule: AuthorizationRule,
  peer: Peer,
  action: AuthorizationAction,
): boolean {
  if (action === 'ALLOW' && rule.when?.some(isL7Condition)) return false;
  if (rule.to) {
    if (action === 'ALLOW' && rule.to.some(({ operation }) => hasL7(operation))) return false;
    if (!rule.to.some(({ operation }) => operationMatchesL4(operation, peer))) return false;
  }
  if (rule.from && !rule.from.some(({ source }) => sourceMatches(source, peer, action))) {
    return false;
  }
  const l4 = rule.when?.filter((c) => !isL7Condition(c));
  return !l4 || conditionsMatch(l4, { peer }, action);
}
