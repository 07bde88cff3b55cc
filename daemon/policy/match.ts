/**
 * Matching one rule of an AuthorizationPolicy against a connection's L4 attributes, as Istio
 * does, with the L4 fail-safe of DESIGN §8 for what L4 cannot see (L7 fields).
 */
import {
  type AuthorizationAction,
  type AuthorizationOperation,
  type AuthorizationRule,
  type AuthorizationSource,
  type IpAddress,
  type IpBlock,
  ipBlockContains,
  parseIp,
  parseIpBlock,
} from '../model/index.js';
import type { ConnectionAttributes } from './decision.js';

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
    port: conn.destinationPort,
  };
}

/** Istio's string match: `*` alone (any non-empty value), `*suffix`, `prefix*`, or exact. */
export function wildcardMatch(pattern: string, value: string): boolean {
  if (pattern === '*') return value !== '';
  if (pattern.startsWith('*')) return value.endsWith(pattern.slice(1));
  if (pattern.endsWith('*')) return value.startsWith(pattern.slice(0, -1));
  return value === pattern;
}

/** An attribute that is absent matches no pattern: `principals` fails, `notPrincipals` holds. */
function anyPattern(patterns: readonly string[], value: string | undefined): boolean {
  return value !== undefined && patterns.some((p) => wildcardMatch(p, value));
}

const parsedBlocks = new WeakMap<readonly string[], (IpBlock | undefined)[]>();

function blocksOf(texts: readonly string[]): (IpBlock | undefined)[] {
  let blocks = parsedBlocks.get(texts);
  if (!blocks) {
    blocks = texts.map(parseIpBlock);
    parsedBlocks.set(texts, blocks);
  }
  return blocks;
}

/**
 * Whether the address is in one of the blocks (an IPv4-mapped IPv6 address counts as IPv4; the
 * families must agree otherwise); undefined when that cannot be told.
 */
function inAnyBlock(texts: readonly string[], ip: IpAddress | undefined): boolean | undefined {
  if (!ip) return undefined;
  let unknown = false;
  for (const block of blocksOf(texts)) {
    if (!block) {
      unknown = true;
      continue;
    }
    if (ipBlockContains(block, ip)) return true;
  }
  return unknown ? undefined : false;
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
 * One rule at L4: any of its sources and any of its operations (a missing `from` or `to` is any).
 * L7 fail-safe: an ALLOW rule with an L7 field in any operation never matches; a DENY rule's
 * operations are matched on their L4 part alone (an operation with only L7 fields is any port).
 */
export function ruleMatches(
  rule: AuthorizationRule,
  peer: Peer,
  action: AuthorizationAction,
): boolean {
  if (rule.to) {
    if (action === 'ALLOW' && rule.to.some(({ operation }) => hasL7(operation))) return false;
    if (!rule.to.some(({ operation }) => operationMatchesL4(operation, peer))) return false;
  }
  if (rule.from && !rule.from.some(({ source }) => sourceMatches(source, peer, action))) {
    return false;
  }
  return true;
}
