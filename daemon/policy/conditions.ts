/**
 * A rule's `when` conditions: each holds when its attribute matches one of `values` (if set) and
 * none of `notValues` (if set). Conditions on source.* and destination.* are L4 facts an agent
 * knows; request.headers needs a waypoint.
 */
import {
  type AuthorizationAction,
  type AuthorizationCondition,
  type ConditionKey,
  parseConditionKey,
} from '../model/index.js';
import type { Peer } from './match.js';
import { anyPattern, inAnyBlock, wildcardMatch } from './patterns.js';

/** What conditions are tested against; `header` is absent at L4. */
export interface ConditionSubject {
  peer: Peer;
  /** A request header's value by lower-cased name, undefined when the request has none. */
  header?: (name: string) => string | undefined;
}

const parsedKeys = new WeakMap<AuthorizationCondition, ConditionKey | undefined>();

function keyOf(condition: AuthorizationCondition): ConditionKey | undefined {
  if (!parsedKeys.has(condition)) parsedKeys.set(condition, parseConditionKey(condition.key));
  return parsedKeys.get(condition);
}

/** A condition only an L7 enforcement point can check (a request header). */
export function isL7Condition(condition: AuthorizationCondition): boolean {
  return keyOf(condition)?.attribute === 'request.headers';
}

/** `*` on a header means "present", even with an empty value (Istio's present match). */
function anyHeaderPattern(patterns: readonly string[], value: string | undefined): boolean {
  return value !== undefined && patterns.some((p) => p === '*' || wildcardMatch(p, value));
}

/** true/false for whether the attribute matches `patterns`; undefined when it cannot be told. */
function matchesAny(
  key: ConditionKey,
  patterns: readonly string[],
  subject: ConditionSubject,
): boolean | undefined {
  const { peer } = subject;
  switch (key.attribute) {
    case 'source.ip':
      return inAnyBlock(patterns, peer.ip);
    case 'destination.ip':
      return inAnyBlock(patterns, peer.destinationIp);
    case 'destination.port':
      return patterns.some((p) => Number(p) === peer.port);
    case 'source.namespace':
      return anyPattern(patterns, peer.namespace);
    case 'source.principal':
      return anyPattern(patterns, peer.principal);
    case 'request.headers': {
      if (!subject.header || key.header === undefined) return undefined;
      return anyHeaderPattern(patterns, subject.header(key.header));
    }
  }
}

/**
 * One condition. What cannot be told (a key the model would have refused, an address that does
 * not parse, a header at L4) is settled fail-safe: the condition holds in a DENY rule and fails
 * in an ALLOW rule.
 */
export function conditionMatches(
  condition: AuthorizationCondition,
  subject: ConditionSubject,
  action: AuthorizationAction,
): boolean {
  const unknown = action === 'DENY';
  const key = keyOf(condition);
  if (!key) return unknown;
  if (condition.values) {
    const inside = matchesAny(key, condition.values, subject);
    if (!(inside ?? unknown)) return false;
  }
  if (condition.notValues) {
    const inside = matchesAny(key, condition.notValues, subject);
    if (!(inside === undefined ? unknown : !inside)) return false;
  }
  return true;
}

/** Every condition holds (an empty list holds). */
export function conditionsMatch(
  conditions: readonly AuthorizationCondition[],
  subject: ConditionSubject,
  action: AuthorizationAction,
): boolean {
  return conditions.every((c) => conditionMatches(c, subject, action));
}
