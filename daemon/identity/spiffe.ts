/** SPIFFE IDs (spiffe://<trust-domain>/<path>) as meshd uses them, per the SPIFFE ID spec. */
import { MeshdError } from '../errors.js';

export type SpiffeId = string & { readonly __brand: 'SpiffeId' };

export interface ParsedSpiffeId {
  id: SpiffeId;
  trustDomain: string;
  /** Path segments, never empty (a root ID has no workload meaning). */
  segments: string[];
}

const TRUST_DOMAIN = /^[a-z0-9._-]{1,255}$/;
const SEGMENT = /^[A-Za-z0-9._-]+$/;

export class SpiffeIdError extends MeshdError {
  constructor(value: string, reason: string) {
    super('MESHD_E_SPIFFE_ID', `"${value}" is not a valid meshd SPIFFE ID: ${reason}`);
  }
}

export function isTrustDomain(value: string): boolean {
  return TRUST_DOMAIN.test(value);
}

/** Parses and validates; with `trustDomain`, also requires that trust domain. */
export function parseSpiffeId(value: string, trustDomain?: string): ParsedSpiffeId {
  const m = /^spiffe:\/\/([^/]*)(\/.*)?$/.exec(value);
  if (!m) throw new SpiffeIdError(value, 'must start with spiffe://');
  const [, td = '', path = ''] = m;
  if (!TRUST_DOMAIN.test(td))
    throw new SpiffeIdError(value, 'trust domain must be lowercase letters, digits, ".", "-", "_"');
  if (trustDomain !== undefined && td !== trustDomain) {
    throw new SpiffeIdError(value, `trust domain "${td}" is not the mesh's "${trustDomain}"`);
  }
  if (path === '' || path === '/') throw new SpiffeIdError(value, 'the path must not be empty');
  const segments = path.slice(1).split('/');
  for (const s of segments) {
    if (s === '.' || s === '..' || !SEGMENT.test(s)) {
      throw new SpiffeIdError(value, `path segment "${s}" is not allowed`);
    }
  }
  return { id: value as SpiffeId, trustDomain: td, segments };
}

export function workloadId(
  trustDomain: string,
  namespace: string,
  serviceAccount: string,
): SpiffeId {
  return parseSpiffeId(`spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`).id;
}

export function nodeId(trustDomain: string, node: string): SpiffeId {
  return parseSpiffeId(`spiffe://${trustDomain}/node/${node}`).id;
}

/** The identity the control plane serves with; clients check it before trusting an answer. */
export function controlPlaneId(trustDomain: string): SpiffeId {
  return parseSpiffeId(`spiffe://${trustDomain}/control-plane/meshd-server`).id;
}

export function adminId(trustDomain: string, name: string): SpiffeId {
  return parseSpiffeId(`spiffe://${trustDomain}/admin/${name}`).id;
}

export type IdentityKind =
  | { kind: 'workload'; namespace: string; serviceAccount: string }
  | { kind: 'node'; node: string }
  | { kind: 'admin'; name: string }
  | { kind: 'other' };

/** What an ID names, by meshd's path conventions. */
export function classify(parsed: ParsedSpiffeId): IdentityKind {
  const s = parsed.segments;
  if (s.length === 4 && s[0] === 'ns' && s[2] === 'sa') {
    return { kind: 'workload', namespace: s[1] ?? '', serviceAccount: s[3] ?? '' };
  }
  if (s.length === 2 && s[0] === 'node') return { kind: 'node', node: s[1] ?? '' };
  if (s.length === 2 && s[0] === 'admin') return { kind: 'admin', name: s[1] ?? '' };
  return { kind: 'other' };
}
