/** The waypoint's decision on an HTTP request: the same order as at L4, over L7 matching. */
import type { AuthorizationPolicy } from '../model/index.js';
import { comesBefore, type Decision, policyName } from './decision.js';
import { matchingRule, type RequestAttributes, requestView } from './request.js';

export interface RequestDecision extends Decision {
  /** The index in `spec.rules` of the deciding policy's first matching rule. */
  rule?: number;
}

interface Hit {
  policy: AuthorizationPolicy;
  rule: number;
}

/**
 * Decides a request at a waypoint: any matching DENY denies; else, with no ALLOW policy, allow;
 * else a matching ALLOW allows; else deny. `policies` are those the waypoint applies to the
 * request (`policiesForTarget`), in any order.
 */
export function authorizeRequest(
  policies: readonly AuthorizationPolicy[],
  attrs: RequestAttributes,
): RequestDecision {
  const view = requestView(attrs);
  let deny: Hit | undefined;
  let allow: Hit | undefined;
  let anyAllow = false;
  for (const policy of policies) {
    const isDeny = policy.spec.action === 'DENY';
    if (!isDeny) anyAllow = true;
    const best = isDeny ? deny : allow;
    if ((!isDeny && deny) || (best && !comesBefore(policy, best.policy))) continue;
    const rule = matchingRule(policy, view);
    if (rule < 0) continue;
    if (isDeny) deny = { policy, rule };
    else allow = { policy, rule };
  }
  if (deny) {
    return {
      allowed: false,
      policy: policyName(deny.policy),
      rule: deny.rule,
      reason: 'denied_by_policy',
    };
  }
  if (!anyAllow) return { allowed: true, reason: 'allowed_by_default' };
  if (allow) {
    return {
      allowed: true,
      policy: policyName(allow.policy),
      rule: allow.rule,
      reason: 'allowed_by_policy',
    };
  }
  return { allowed: false, reason: 'no_matching_allow' };
}

/** For a log line: `denied by policy shop/no-post rule 0`, `allowed: no ALLOW policy applies`. */
export function describeDecision(decision: RequestDecision): string {
  const verdict = decision.allowed ? 'allowed' : 'denied';
  if (decision.policy !== undefined) {
    const rule = decision.rule === undefined ? '' : ` rule ${decision.rule}`;
    return `${verdict} by policy ${decision.policy}${rule}`;
  }
  switch (decision.reason) {
    case 'allowed_by_default':
      return 'allowed: no ALLOW policy applies';
    case 'no_matching_allow':
      return 'denied: no ALLOW policy matches';
    case 'mtls_required':
      return 'denied: mTLS required';
    default:
      return `${verdict} (${decision.reason})`;
  }
}
