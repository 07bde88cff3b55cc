/**
 * Matching one rule of an AuthorizationPolicy against an HTTP request, as a waypoint does: every
 * field can be checked here, so nothing is settled fail-safe except what does not parse.
 */
import type {
  AuthorizationAction,
  AuthorizationOperation,
  AuthorizationPolicy,
  AuthorizationRule,
} from '../model/index.js';
import { type ConditionSubject, conditionsMatch } from './conditions.js';
import type { ConnectionAttributes } from './decision.js';
import { type Peer, peerOf, sourceMatches } from './match.js';
import { anyPattern, wildcardMatch } from './patterns.js';

/** What a waypoint knows of a request: the tunnel's L4 attributes plus the HTTP request. */
export interface RequestAttributes extends ConnectionAttributes {
  /** `:authority` (HTTP/2) or `Host` (HTTP/1.1) as received, port included if the client sent one. */
  host: string;
  /** As received (HTTP methods are case-sensitive): `GET`, `POST`; gRPC calls are `POST`. */
  method: string;
  /** The request target as received, query included; matching uses `normalizeRequestPath`. */
  path: string;
  /** Request headers by lower-cased name (Node's `req.headers`); repeated ones joined or listed. */
  headers: Readonly<Record<string, string | readonly string[] | undefined>>;
}

/** A request's attributes in the form the matchers use, computed once per evaluation. */
export interface RequestView extends ConditionSubject {
  peer: Peer;
  /** The host as received and without its port, both lower-cased. */
  hosts: readonly string[];
  method: string;
  path: string;
  header: (name: string) => string | undefined;
}

const UNRESERVED = /^[A-Za-z0-9\-._~]$/;
const ABSOLUTE_FORM = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/;

/** RFC 3986 §5.2.4 on a path that starts with `/`. */
function removeDotSegments(path: string): string {
  const input = path.split('/');
  const out: string[] = [];
  for (let i = 1; i < input.length; i++) {
    const segment = input[i] ?? '';
    if (segment === '.' || segment === '..') {
      if (segment === '..') out.pop();
      if (i === input.length - 1) out.push('');
    } else {
      out.push(segment);
    }
  }
  return `/${out.join('/')}`;
}

/**
 * The path policy matches against: no query or fragment; `\` read as `/`; percent-encoded
 * unreserved characters decoded (`%2e` is `.`), others kept; repeated slashes merged; `.` and `..`
 * resolved. Otherwise `/admin/../x`, `//admin` or `/%61dmin` would slip past a rule on `/admin*`
 * while the backend still serves /admin. A waypoint should forward this path, not the raw one, so
 * the backend serves exactly what policy checked. `*` (OPTIONS *) stays as it is.
 */
export function normalizeRequestPath(target: string): string {
  if (target === '*') return target;
  let path = target.replace(ABSOLUTE_FORM, '');
  const end = path.search(/[?#]/);
  if (end >= 0) path = path.slice(0, end);
  path = path.replaceAll('\\', '/');
  path = path.replace(/%([0-9A-Fa-f]{2})/g, (encoded, hex: string) => {
    const char = String.fromCharCode(Number.parseInt(hex, 16));
    return UNRESERVED.test(char) ? char : encoded.toUpperCase();
  });
  if (!path.startsWith('/')) path = `/${path}`;
  return removeDotSegments(path.replace(/\/{2,}/g, '/'));
}

const HOST_WITH_PORT = /^(\[[^\]]*\]|[^:]*):\d*$/;

/** The host lower-cased, as received and without its port (`Web.Shop:8080` → both forms). */
export function hostForms(host: string): string[] {
  const lower = host.toLowerCase();
  const bare = HOST_WITH_PORT.exec(lower)?.[1];
  return bare !== undefined && bare !== lower ? [lower, bare] : [lower];
}

const lowered = new WeakMap<readonly string[], string[]>();

/** Whether a `hosts` pattern matches either form, ignoring case (host names ignore case). */
function anyHost(patterns: readonly string[], hosts: readonly string[]): boolean {
  let lower = lowered.get(patterns);
  if (!lower) {
    lower = patterns.map((p) => p.toLowerCase());
    lowered.set(patterns, lower);
  }
  return hosts.some((h) => h !== '' && lower.some((p) => wildcardMatch(p, h)));
}

export function requestView(attrs: RequestAttributes): RequestView {
  const { headers } = attrs;
  return {
    peer: peerOf(attrs),
    hosts: hostForms(attrs.host),
    method: attrs.method,
    path: normalizeRequestPath(attrs.path),
    header: (name) => {
      const value = headers[name];
      return typeof value === 'string' || value === undefined ? value : value.join(', ');
    },
  };
}

/** One operation: every field that is set must hold, the L7 ones included. */
export function operationMatchesRequest(
  operation: AuthorizationOperation,
  view: RequestView,
): boolean {
  const o = operation;
  const port = view.peer.port;
  if (o.ports && !o.ports.includes(port)) return false;
  if (o.notPorts?.includes(port)) return false;
  if (o.methods && !anyPattern(o.methods, view.method)) return false;
  if (o.notMethods && anyPattern(o.notMethods, view.method)) return false;
  if (o.paths && !anyPattern(o.paths, view.path)) return false;
  if (o.notPaths && anyPattern(o.notPaths, view.path)) return false;
  if (o.hosts && !anyHost(o.hosts, view.hosts)) return false;
  if (o.notHosts && anyHost(o.notHosts, view.hosts)) return false;
  return true;
}

/** One rule: any of its sources, any of its operations and all of its conditions. */
export function ruleMatchesRequest(
  rule: AuthorizationRule,
  view: RequestView,
  action: AuthorizationAction,
): boolean {
  if (rule.from && !rule.from.some(({ source }) => sourceMatches(source, view.peer, action))) {
    return false;
  }
  if (rule.to && !rule.to.some(({ operation }) => operationMatchesRequest(operation, view))) {
    return false;
  }
  return !rule.when || conditionsMatch(rule.when, view, action);
}

/** The index of the policy's first rule that matches, or -1 (always -1 without rules). */
export function matchingRule(policy: AuthorizationPolicy, view: RequestView): number {
  const { action, rules } = policy.spec;
  return rules?.findIndex((rule) => ruleMatchesRequest(rule, view, action)) ?? -1;
}
