/** PeerAuthentication's check, and the whole inbound decision: mTLS mode first, then authorization. */
import type { AuthorizationPolicy, MtlsMode, PeerAuthentication } from '../model/index.js';
import { authorize } from './authorize.js';
import { type ConnectionAttributes, type Decision, policyName } from './decision.js';

/** The effective mTLS mode; `MeshState.peerAuthenticationFor` gives exactly this. */
export interface MtlsSetting {
  mode: MtlsMode;
  /** The PeerAuthentication that set the mode; undefined for the default (PERMISSIVE). */
  policy?: PeerAuthentication | undefined;
}

/**
 * The denial STRICT mode gives a plaintext connection (no source identity), or undefined when
 * the mode lets the connection through (PERMISSIVE, or any mTLS connection).
 */
export function checkPeerAuthentication(
  mtls: MtlsSetting,
  conn: ConnectionAttributes,
): Decision | undefined {
  if (mtls.mode !== 'STRICT' || conn.sourceIdentity) return undefined;
  return mtls.policy
    ? { allowed: false, policy: policyName(mtls.policy), reason: 'mtls_required' }
    : { allowed: false, reason: 'mtls_required' };
}

/** What decides a workload's inbound connections; all of it comes from MeshState. */
export interface InboundPolicy {
  /** `MeshState.authorizationPoliciesFor(workload)`. */
  policies: readonly AuthorizationPolicy[];
  /** `MeshState.peerAuthenticationFor(workload)`. */
  mtls: MtlsSetting;
}

/**
 * The decision for an inbound connection: PeerAuthentication first, then AuthorizationPolicy.
 * Call it again with the new policy to re-check a live connection after a change.
 */
export function evaluate(inbound: InboundPolicy, conn: ConnectionAttributes): Decision {
  return checkPeerAuthentication(inbound.mtls, conn) ?? authorize(inbound.policies, conn);
}
