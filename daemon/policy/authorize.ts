/** DESIGN §8's order over the AuthorizationPolicies that apply to a workload. */
import { type AuthorizationPolicy, isWaypointPolicy } from '../model/index.js';
import { type ConnectionAttributes, comesBefore, type Decision, policyName } from './decision.js';
import { type Peer, peerOf, ruleMatches } from './match.js';

/** Whether any rule of the policy matches; a policy without rules matches nothing (Istio). */
export function policyMatches(policy: AuthorizationPolicy, peer: Peer): boolean {
  const { action, rules } = policy.spec;
  return rules?.some((rule) => ruleMatches(rule, peer, action)) ?? false;
}

/**
 * Decides a connection at L4: any matching DENY denies; else, with no ALLOW policy, allow; else
 * a matching ALLOW allows; else deny. `policies` are those that apply to the destination
 * workload (`MeshState.authorizationPoliciesFor`), in any order. Policies with `targetRefs` are
 * skipped: a waypoint enforces them (as in Istio, where ztunnel leaves them to the waypoint), so
 * they neither match nor make the workload deny-by-default here.
 */
export function authorize(
  policies: readonly AuthorizationPolicy[],
  conn: ConnectionAttributes,
): Decision {
  return decideL4(policies, conn, false);
}

/**
 * A waypoint's decision for a connection it carries as opaque TCP: its targetRefs policies at
 * L4, as Istio's waypoint does for TCP (HTTP fields cannot match: an ALLOW rule with them
 * never matches, a DENY rule matches on its other fields, as at the agents).
 */
export function authorizeWaypointConnection(
  policies: readonly AuthorizationPolicy[],
  conn: ConnectionAttributes,
): Decision {
  return decideL4(policies, conn, true);
}

function decideL4(
  policies: readonly AuthorizationPolicy[],
  conn: ConnectionAttributes,
  atWaypoint: boolean,
): Decision {
  const peer = peerOf(conn);
  let deny: AuthorizationPolicy | undefined;
  let allow: AuthorizationPolicy | undefined;
  let anyAllow = false;
  for (const policy of policies) {
    if (isWaypointPolicy(policy) !== atWaypoint) continue;
    if (policy.spec.action === 'DENY') {
      if ((!deny || comesBefore(policy, deny)) && policyMatches(policy, peer)) deny = policy;
    } else {
      anyAllow = true;
      if (!deny && (!allow || comesBefore(policy, allow)) && policyMatches(policy, peer)) {
        allow = policy;
      }
    }
  }
  if (deny) return { allowed: false, policy: policyName(deny), reason: 'denied_by_policy' };
  if (!anyAllow) return { allowed: true, reason: 'allowed_by_default' };
  if (allow) return { allowed: true, policy: policyName(allow), reason: 'allowed_by_policy' };
  return { allowed: false, reason: 'no_matching_allow' };
}
