/**
 * The `when` conditions of an AuthorizationPolicy rule: the keys meshd understands and what their
 * values must look like. Istio silently ignores keys it does not know, so a typo there quietly
 * turns a condition off; meshd refuses them instead.
 */
import { checkIpBlock } from '../ip.js';

/** The attributes a condition can test; a header condition also names its header. */
export const CONDITION_ATTRIBUTES = [
  'request.headers',
  'source.ip',
  'source.namespace',
  'source.principal',
  'destination.ip',
  'destination.port',
] as const;
export type ConditionAttribute = (typeof CONDITION_ATTRIBUTES)[number];

/** The keys as written, for messages and docs. */
export const CONDITION_KEYS = [
  'request.headers[<name>]',
  ...CONDITION_ATTRIBUTES.filter((a) => a !== 'request.headers'),
] as const;

export interface ConditionKey {
  attribute: ConditionAttribute;
  /** For `request.headers[<name>]`: the header name, lower-cased (HTTP names ignore case). */
  header?: string;
}

const HEADER_KEY = /^request\.headers\[([^\]]*)\]$/;
/** RFC 9110 token characters. */
const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;

/** A key the schema accepted, parsed; undefined for any other text. */
export function parseConditionKey(key: string): ConditionKey | undefined {
  const header = HEADER_KEY.exec(key)?.[1];
  if (header !== undefined) {
    return HEADER_NAME.test(header)
      ? { attribute: 'request.headers', header: header.toLowerCase() }
      : undefined;
  }
  const attribute = CONDITION_ATTRIBUTES.find((a) => a === key && a !== 'request.headers');
  return attribute ? { attribute } : undefined;
}

/** Why a key is refused, or undefined when it is one meshd supports. */
export function checkConditionKey(key: string): string | undefined {
  if (parseConditionKey(key)) return undefined;
  const header = HEADER_KEY.exec(key)?.[1];
  if (header !== undefined) {
    return `"${key}": "${header}" is not an HTTP header name (write it like request.headers[x-user])`;
  }
  const hint = key.startsWith('request.auth.')
    ? ' (JWT claims need RequestAuthentication, which meshd does not have)'
    : '';
  return `unsupported key "${key}"${hint}: meshd supports ${CONDITION_KEYS.join(', ')}; Istio ignores other keys, meshd refuses them so a condition never silently does nothing`;
}

/** `*` alone, or one `*` at the start or the end (Istio's prefix/suffix match). */
export function checkWildcard(value: string): string | undefined {
  if (value === '') return 'must not be empty';
  const stars = value.split('*').length - 1;
  if (stars === 0 || value === '*') return undefined;
  if (stars === 1 && (value.startsWith('*') || value.endsWith('*'))) return undefined;
  return `"${value}": "*" is allowed only alone, as a prefix or as a suffix`;
}

function checkPortText(value: string): string | undefined {
  const n = /^\d{1,5}$/.test(value) ? Number(value) : 0;
  return n >= 1 && n <= 65535
    ? undefined
    : `"${value}" is not a port number: destination.port takes ports 1..65535 written as strings, like "8080"`;
}

/**
 * The check for one value of a condition with this key: addresses and blocks for the `.ip`
 * keys, port numbers for destination.port, wildcard patterns for the rest (namespace and
 * principal values get the same checks as `namespaces` and `principals`, passed in).
 */
export function conditionValueCheck(
  key: ConditionKey,
  checks: {
    namespace: (v: string) => string | undefined;
    principal: (v: string) => string | undefined;
  },
): (value: string) => string | undefined {
  switch (key.attribute) {
    case 'source.ip':
    case 'destination.ip':
      return checkIpBlock;
    case 'destination.port':
      return checkPortText;
    case 'source.namespace':
      return checks.namespace;
    case 'source.principal':
      return checks.principal;
    case 'request.headers':
      return checkWildcard;
  }
}
