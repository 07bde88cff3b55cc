/**
 * AuthorizationPolicy in Istio's shape: a selector (or namespace-wide, or mesh-wide in the root
 * namespace) or `targetRefs` (a waypoint's policy), an action and rules of `from` sources, `to`
 * operations and `when` conditions.
 */
import { z } from 'zod';
import {
  ALWAYS,
  dnsLabel,
  ipBlock,
  namespacedMetadata,
  port,
  resourceSchema,
  rule,
  show,
  unique,
} from '../common.js';
import { checkDnsLabel } from '../names.js';
import { labelSelectorSchema } from '../selector.js';
import {
  checkConditionKey,
  checkWildcard,
  conditionValueCheck,
  parseConditionKey,
} from './authorization-condition.js';

export const AUTHORIZATION_ACTIONS = ['ALLOW', 'DENY'] as const;
export type AuthorizationAction = (typeof AUTHORIZATION_ACTIONS)[number];

function checkPrincipal(v: string): string | undefined {
  if (v.startsWith('spiffe://')) {
    return `"${v}": write principals without "spiffe://", as <trust-domain>/ns/<namespace>/sa/<serviceaccount>`;
  }
  return checkWildcard(v);
}

function checkNamespacePattern(v: string): string | undefined {
  if (v.includes('*')) return checkWildcard(v);
  const bad = checkDnsLabel(v);
  return bad === undefined ? undefined : `"${v}": ${bad}`;
}

const principal = rule(z.string(), checkPrincipal);
const namespaceName = rule(z.string(), checkNamespacePattern);

const method = rule(z.string(), (v) =>
  v === '*' || /^[A-Z]+$/.test(v)
    ? undefined
    : `"${v}" is not an HTTP method (upper case, like GET or POST, or *)`,
);

const path = rule(z.string(), (v) => {
  const bad = checkWildcard(v);
  if (bad) return bad;
  return v.startsWith('/') || v.startsWith('*')
    ? undefined
    : `"${v}" must start with "/" (or "*" for a suffix match)`;
});

const host = rule(z.string(), checkWildcard);

const PORT_HINT = 'ports are numbers here, unlike in Istio: write 8080, not "8080"';

const list = <T extends z.ZodType>(item: T) => z.array(item).min(1).optional();

function atLeastOne(fields: readonly string[], what: string) {
  return (value: Record<string, unknown>, ctx: z.core.$RefinementCtx) => {
    if (fields.some((f) => value[f] !== undefined)) return;
    ctx.addIssue({
      code: 'custom',
      input: value,
      message: `${what} must set at least one of ${fields.join(', ')} (omit it to match any)`,
    });
  };
}

const SOURCE_FIELDS = [
  'principals',
  'notPrincipals',
  'namespaces',
  'notNamespaces',
  'ipBlocks',
  'notIpBlocks',
] as const;

const source = z
  .strictObject({
    principals: list(principal),
    notPrincipals: list(principal),
    namespaces: list(namespaceName),
    notNamespaces: list(namespaceName),
    ipBlocks: list(ipBlock()),
    notIpBlocks: list(ipBlock()),
  })
  .superRefine(atLeastOne(SOURCE_FIELDS, 'a source'), ALWAYS);

const OPERATION_FIELDS = [
  'ports',
  'notPorts',
  'methods',
  'notMethods',
  'paths',
  'notPaths',
  'hosts',
  'notHosts',
] as const;

const operation = z
  .strictObject({
    ports: list(port(PORT_HINT)),
    notPorts: list(port(PORT_HINT)),
    methods: list(method),
    notMethods: list(method),
    paths: list(path),
    notPaths: list(path),
    hosts: list(host),
    notHosts: list(host),
  })
  .superRefine(atLeastOne(OPERATION_FIELDS, 'an operation'), ALWAYS);

/** Istio writes condition values as strings, ports included; so does meshd here. */
const conditionValue = z.string({
  error: (iss) =>
    typeof iss.input === 'number'
      ? `expected string, got number (condition values are strings, ports too: write "${iss.input}")`
      : undefined,
});

/** Each value checked by what its key expects (an address, a port, a pattern). */
function checkConditionValues(
  value: { key?: unknown; values?: unknown; notValues?: unknown },
  ctx: z.core.$RefinementCtx,
): void {
  const key = typeof value.key === 'string' ? parseConditionKey(value.key) : undefined;
  if (!key) return;
  const check = conditionValueCheck(key, {
    namespace: checkNamespacePattern,
    principal: checkPrincipal,
  });
  for (const field of ['values', 'notValues'] as const) {
    const items = value[field];
    if (!Array.isArray(items)) continue;
    items.forEach((item, i) => {
      if (typeof item !== 'string') return;
      const reason = check(item);
      if (reason) ctx.addIssue({ code: 'custom', path: [field, i], input: item, message: reason });
    });
  }
}

const condition = z
  .strictObject({
    key: rule(z.string(), checkConditionKey),
    values: list(conditionValue),
    notValues: list(conditionValue),
  })
  .superRefine(atLeastOne(['values', 'notValues'], 'a condition'), ALWAYS)
  .superRefine(checkConditionValues, ALWAYS);

const authorizationRule = z.strictObject({
  from: list(z.strictObject({ source })),
  to: list(z.strictObject({ operation })),
  when: list(condition),
});

export const TARGET_REF_KINDS = ['Service', 'Waypoint'] as const;
export type TargetRefKind = (typeof TARGET_REF_KINDS)[number];

/** The API groups each kind may be named with (an omitted group is always fine). */
const TARGET_REF_GROUPS: Record<TargetRefKind, readonly string[]> = {
  Service: ['', 'core'],
  Waypoint: ['meshd.io'],
};

const targetRef = z
  .strictObject({
    group: z.string().optional(),
    kind: z.enum(TARGET_REF_KINDS, {
      error: (iss) =>
        iss.input === 'Gateway'
          ? 'must be one of Service, Waypoint, got "Gateway" (a meshd waypoint is kind Waypoint)'
          : undefined,
    }),
    name: dnsLabel(),
  })
  .superRefine((ref, ctx) => {
    const groups = TARGET_REF_GROUPS[ref.kind as TargetRefKind];
    if (typeof ref.group !== 'string' || !groups || groups.includes(ref.group)) return;
    ctx.addIssue({
      code: 'custom',
      path: ['group'],
      input: ref.group,
      message: `${show(ref.group)} is not a group of kind ${ref.kind}: write ${groups.map((g) => show(g)).join(' or ')}, or leave group out`,
    });
  }, ALWAYS);

export const authorizationPolicySpec = z
  .strictObject({
    selector: labelSelectorSchema.optional(),
    targetRefs: z.array(targetRef).min(1).optional(),
    action: z.enum(AUTHORIZATION_ACTIONS).default('ALLOW'),
    rules: z.array(authorizationRule).optional(),
  })
  .superRefine((spec, ctx) => {
    if (spec.selector !== undefined && spec.targetRefs !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['targetRefs'],
        input: spec.targetRefs,
        message:
          'must not be set together with spec.selector: targetRefs hands the policy to a waypoint, selector to the agents of the workloads it picks; write one or the other',
      });
    }
    unique(
      spec.targetRefs as { kind?: unknown; name?: unknown }[] | undefined,
      (ref) => `${String(ref.kind)}/${String(ref.name)}`,
      ctx,
      (i) => ['targetRefs', i],
      'target',
    );
  }, ALWAYS);

export const authorizationPolicySchema = resourceSchema(
  'AuthorizationPolicy',
  namespacedMetadata(),
  authorizationPolicySpec.prefault({}),
);

export type AuthorizationPolicy = z.output<typeof authorizationPolicySchema>;
export type AuthorizationRule = z.output<typeof authorizationRule>;
export type AuthorizationSource = z.output<typeof source>;
export type AuthorizationOperation = z.output<typeof operation>;
export type AuthorizationCondition = z.output<typeof condition>;
export type PolicyTargetRef = z.output<typeof targetRef>;

/** A policy with `targetRefs` is a waypoint's to enforce; agents (L4) leave it alone. */
export function isWaypointPolicy(policy: AuthorizationPolicy): boolean {
  return policy.spec.targetRefs !== undefined;
}
