/**
 * Policy evaluation as pure functions (DESIGN §8, §13): at L4, PeerAuthentication's mTLS mode,
 * then AuthorizationPolicy (DENY first, then ALLOW) with L7 conditions settled fail-safe; at a
 * waypoint, the same order over whole HTTP requests for the policies with targetRefs.
 * docs/policy.md is the reference.
 */

export { authorize, authorizeWaypointConnection } from './authorize.js';
export {
  authorizeRequest,
  describeDecision,
  type RequestDecision,
} from './authorize-request.js';
export { isL7Condition } from './conditions.js';
export {
  type ConnectionAttributes,
  comesBefore,
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
export { L7_OPERATION_FIELDS } from './match.js';
export { wildcardMatch } from './patterns.js';
export {
  hostForms,
  normalizeRequestPath,
  type RequestAttributes,
} from './request.js';
export { policiesForTarget, type RequestTarget } from './targets.js';
export { l7Warnings } from './warnings.js';
export { checkWaypointOnly, type GuardedPort } from './waypoint-only.js';
