/** What `meshctl check` says about L7 conditions an L4 enforcement point cannot check. */
import { type AuthorizationPolicy, isWaypointPolicy } from '../model/index.js';
import { isL7Condition } from './conditions.js';
import { L7_OPERATION_FIELDS } from './match.js';

/**
 * One warning per rule with L7 fields (methods, paths, hosts and their `not` forms, and `when`
 * conditions on request.headers), naming them by field path: at L4 an ALLOW rule with them never
 * matches, a DENY rule with them matches on its L4 part alone. Empty when the policy is L4 only,
 * and for policies with targetRefs: a waypoint checks those whole. `when` conditions on source.*
 * and destination.* are L4 facts the agent checks, so they draw no warning.
 */
export function l7Warnings(policy: AuthorizationPolicy): string[] {
  if (isWaypointPolicy(policy)) return [];
  const { action, rules } = policy.spec;
  const out: string[] = [];
  rules?.forEach((rule, i) => {
    const fields: string[] = [];
    rule.to?.forEach(({ operation }, j) => {
      for (const f of L7_OPERATION_FIELDS) {
        if (operation[f] !== undefined) fields.push(`to[${j}].operation.${f}`);
      }
    });
    const headers = (rule.when ?? []).flatMap((c, j) =>
      isL7Condition(c) ? [`when[${j}] ${c.key}`] : [],
    );
    fields.push(...headers);
    if (fields.length === 0) return;
    const where = `spec.rules[${i}]`;
    const what = `has L7 conditions (${fields.join(', ')}) that only a waypoint can check`;
    const unchecked =
      headers.length > 0 ? 'method, path, host and header' : 'method, path and host';
    out.push(
      action === 'ALLOW'
        ? `${where} ${what}: at L4 this ALLOW rule never matches, so without a waypoint it allows nothing`
        : `${where} ${what}: at L4 this DENY rule matches on its other conditions alone, so without a waypoint it denies every ${unchecked}`,
    );
  });
  return out;
}
