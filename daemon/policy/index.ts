/**
 * Policy evaluation at L4 as pure functions (DESIGN §8): PeerAuthentication's mTLS mode, then
 * AuthorizationPolicy (DENY first, then ALLOW) with L7 conditions settled fail-safe.
 * docs/policy.md is the reference.
 */

export { authorize } from './authorize.js';
export {
  type ConnectionAttributes,
  DECISION_REASONS,
  type Decision,
  type DecisionReason,
  policyName,
} from './decision.js';
export {
  checkPeerAuthentication,
  evaluate,
  type InboundPolicy,
  type MtlsSetting,
} from './evaluate.js';
export { L7_OPERATION_FIELDS, wildcardMatch } from './match.js';
export { l7Warnings } from './warnings.js';
