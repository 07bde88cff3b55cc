/** DESIGN §8's order over the AuthorizationPolicies that apply to a workload. */
import type { AuthorizationPolicy } from '../model/index.js';
import { type ConnectionAttributes, type Decision, policyName } from './decision.js';
import { type Peer, peerOf, ruleMatches } from './match.js';

/** Whether any rule of the policy matches; a policy without rules matches nothing (Istio). */
export function policyMatches(policy: AuthorizationPolicy, peer: Peer): boolean {
  const { action, rules } = policy.spec;
  return rules?.some((rule) => ruleMatches(rule, peer, action)) ?? false;
}

/** Namespace, then name: the order that picks the deciding policy among several that match. */
function before(a: AuthorizationPolicy, b: AuthorizationPolicy): boolean {
  const x = a.metadata;
  const y = b.metadata;
  return x.namespace !== y.namespace ? x.namespace < y.namespace : x.name < y.name;
}

/**
 * Decides a connection at L4: any matching DENY denies; else, with no ALLOW policy, allow; else
 * a matching ALLOW allows; else deny. `policies` are those that apply to the destination
 * workload (`MeshState.authorizationPoliciesFor`), in any order.
 */
export function authorize(
  policies: readonly AuthorizationPolicy[],
  conn: ConnectionAttributes,
): Decision {
  const peer = peerOf(conn);
  let deny: AuthorizationPolicy | undefined;
  let allow: AuthorizationPolicy | undefined;
  let anyAllow = false;
  for (const policy of policies) {
    if (policy.spec.action === 'DENY') {
      if ((!deny || before(policy, deny)) && policyMatches(policy, peer)) deny = policy;
    } else {
      anyAllow = true;
      if (!deny && (!allow || before(policy, allow)) && policyMatches(policy, peer)) {
        allow = policy;
      }
    }
  }
  if (deny) return { allowed: false, policy: policyName(deny), reason: 'denied_by_policy' };
  if (!anyAllow) return { allowed: true, reason: 'allowed_by_default' };
  if (allow) return { allowed: true, policy: policyName(allow), reason: 'allowed_by_policy' };
  return { allowed: false, reason: 'no_matching_allow' };
}
