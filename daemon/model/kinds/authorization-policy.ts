/**
 * AuthorizationPolicy in Istio's shape: a selector (or namespace-wide, or mesh-wide in the root
 * namespace), an action and rules of `from` sources and `to` operations.
 */
import { z } from 'zod';
import { ALWAYS, ipBlock, namespacedMetadata, port, resourceSchema, rule } from '../common.js';
import { checkDnsLabel } from '../names.js';
import { labelSelectorSchema } from '../selector.js';

export const AUTHORIZATION_ACTIONS = ['ALLOW', 'DENY'] as const;
export type AuthorizationAction = (typeof AUTHORIZATION_ACTIONS)[number];

/** `*` alone, or one `*` at the start or the end (Istio's prefix/suffix match). */
function checkWildcard(value: string): string | undefined {
  if (value === '') return 'must not be empty';
  const stars = value.split('*').length - 1;
  if (stars === 0 || value === '*') return undefined;
  if (stars === 1 && (value.startsWith('*') || value.endsWith('*'))) return undefined;
  return `"${value}": "*" is allowed only alone, as a prefix or as a suffix`;
}

const principal = rule(z.string(), (v) => {
  if (v.startsWith('spiffe://')) {
    return `"${v}": write principals without "spiffe://", as <trust-domain>/ns/<namespace>/sa/<serviceaccount>`;
  }
  return checkWildcard(v);
});

const namespaceName = rule(z.string(), (v) => {
  if (v.includes('*')) return checkWildcard(v);
  const bad = checkDnsLabel(v);
  return bad === undefined ? undefined : `"${v}": ${bad}`;
});

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

const authorizationRule = z.strictObject({
  from: list(z.strictObject({ source })),
  to: list(z.strictObject({ operation })),
});

export const authorizationPolicySpec = z.strictObject({
  selector: labelSelectorSchema.optional(),
  action: z.enum(AUTHORIZATION_ACTIONS).default('ALLOW'),
  rules: z.array(authorizationRule).optional(),
});

export const authorizationPolicySchema = resourceSchema(
  'AuthorizationPolicy',
  namespacedMetadata(),
  authorizationPolicySpec.prefault({}),
);

export type AuthorizationPolicy = z.output<typeof authorizationPolicySchema>;
export type AuthorizationRule = z.output<typeof authorizationRule>;
export type AuthorizationSource = z.output<typeof source>;
export type AuthorizationOperation = z.output<typeof operation>;
