// AuthorizationPolicy's waypoint fields: targetRefs (Service or Waypoint, never with a selector)
// and `when` conditions (supported keys only; values checked by key), refused with field paths.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  formatFieldErrors,
  isWaypointPolicy,
  parseConditionKey,
  type Resource,
  validateResource,
} from '../../daemon/model/index.js';

type Spec = Record<string, unknown>;

function input(spec: Spec): unknown {
  return {
    apiVersion: 'meshd.io/v1alpha1',
    kind: 'AuthorizationPolicy',
    metadata: { name: 'p', namespace: 'shop' },
    spec,
  };
}

function accepted(spec: Spec): Resource {
  const result = validateResource(input(spec));
  assert.ok(result.ok, result.ok ? '' : formatFieldErrors(result.errors));
  return result.resource;
}

/** Refused with exactly these `path: message` lines. */
function refused(spec: Spec, ...expected: string[]): void {
  const result = validateResource(input(spec));
  assert.equal(result.ok, false, 'expected the policy to be refused');
  if (result.ok) return;
  assert.deepEqual(
    result.errors.map((e) => `${e.path}: ${e.message}`),
    expected,
  );
}

const when = (...conditions: Spec[]): Spec => ({ rules: [{ when: conditions }] });
const SUPPORTED =
  'meshd supports request.headers[<name>], source.ip, source.namespace, source.principal, destination.ip, destination.port; Istio ignores other keys, meshd refuses them so a condition never silently does nothing';

test('targetRefs: Service and Waypoint, group optional, and the policy is a waypoint policy', () => {
  const p = accepted({
    targetRefs: [
      { kind: 'Service', name: 'web' },
      { group: '', kind: 'Service', name: 'api' },
      { group: 'core', kind: 'Service', name: 'db' },
      { group: 'meshd.io', kind: 'Waypoint', name: 'shop-wp' },
    ],
    action: 'DENY',
    rules: [{ to: [{ operation: { methods: ['POST'] } }] }],
  });
  assert.ok(p.kind === 'AuthorizationPolicy' && isWaypointPolicy(p));
  const q = accepted({ rules: [{}] });
  assert.ok(q.kind === 'AuthorizationPolicy' && !isWaypointPolicy(q));
});

test('targetRefs refused: with a selector, empty, other kinds and groups, duplicates', () => {
  const web = { kind: 'Service', name: 'web' };
  refused(
    { targetRefs: [web], selector: { matchLabels: { app: 'web' } } },
    'spec.targetRefs: must not be set together with spec.selector: targetRefs hands the policy to a waypoint, selector to the agents of the workloads it picks; write one or the other',
  );
  refused(
    { targetRefs: [web], selector: {} },
    'spec.targetRefs: must not be set together with spec.selector: targetRefs hands the policy to a waypoint, selector to the agents of the workloads it picks; write one or the other',
  );
  refused({ targetRefs: [] }, 'spec.targetRefs: must have at least 1 item');
  refused(
    { targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'wp' }] },
    'spec.targetRefs[0].kind: must be one of Service, Waypoint, got "Gateway" (a meshd waypoint is kind Waypoint)',
  );
  refused(
    { targetRefs: [{ kind: 'Pod', name: 'wp' }] },
    'spec.targetRefs[0].kind: must be one of Service, Waypoint, got "Pod"',
  );
  refused(
    { targetRefs: [{ group: 'apps', kind: 'Service', name: 'web' }] },
    'spec.targetRefs[0].group: "apps" is not a group of kind Service: write "" or "core", or leave group out',
  );
  refused(
    { targetRefs: [{ group: '', kind: 'Waypoint', name: 'wp' }] },
    'spec.targetRefs[0].group: "" is not a group of kind Waypoint: write "meshd.io", or leave group out',
  );
  refused({ targetRefs: [{ kind: 'Service' }] }, 'spec.targetRefs[0].name: required');
  refused(
    { targetRefs: [{ kind: 'Service', name: 'Web' }] },
    'spec.targetRefs[0].name: must be a DNS label: lowercase letters, digits and "-", starting and ending with a letter or digit',
  );
  refused(
    { targetRefs: [{ kind: 'Service', name: 'web', namespace: 'other' }] },
    'spec.targetRefs[0].namespace: unknown field (known fields: group, kind, name)',
  );
  refused(
    { targetRefs: [web, { ...web, group: 'core' }] },
    'spec.targetRefs[1]: duplicate target "Service/web" (already at index 0)',
  );
  refused({ targetRef: web }, 'spec.targetRef: unknown field (did you mean "targetRefs"?)');
});

test('when: every supported key with good values is accepted', () => {
  accepted(
    when(
      { key: 'request.headers[X-User]', values: ['alice', 'bob*', '*-admin'] },
      { key: 'request.headers[x-canary]', notValues: ['*'] },
      { key: 'source.ip', values: ['10.0.0.0/8', 'fd00::1'] },
      { key: 'source.namespace', values: ['shop', 'team-*'], notValues: ['shop-dev'] },
      { key: 'source.principal', values: ['cluster.local/ns/shop/sa/web', '*/sa/admin'] },
      { key: 'destination.ip', notValues: ['10.96.0.0/12'] },
      { key: 'destination.port', values: ['8080', '80'] },
    ),
  );
});

test('when: unknown keys are refused with the field path, the key and the supported keys', () => {
  refused(
    when({ key: 'request.method', values: ['GET'] }),
    `spec.rules[0].when[0].key: unsupported key "request.method": ${SUPPORTED}`,
  );
  refused(
    when({ key: 'source.ip', values: ['10.0.0.1'] }, { key: 'connection.sni', values: ['a'] }),
    `spec.rules[0].when[1].key: unsupported key "connection.sni": ${SUPPORTED}`,
  );
  refused(
    when({ key: 'request.auth.claims[iss]', values: ['x'] }),
    `spec.rules[0].when[0].key: unsupported key "request.auth.claims[iss]" (JWT claims need RequestAuthentication, which meshd does not have): ${SUPPORTED}`,
  );
  refused(
    when({ key: 'request.headers[]', values: ['x'] }),
    'spec.rules[0].when[0].key: "request.headers[]": "" is not an HTTP header name (write it like request.headers[x-user])',
  );
  refused(
    when({ key: 'request.headers[x user]', values: ['x'] }),
    'spec.rules[0].when[0].key: "request.headers[x user]": "x user" is not an HTTP header name (write it like request.headers[x-user])',
  );
});

test('when: values are checked by key; at least one of values and notValues', () => {
  refused(
    when({ key: 'source.ip' }),
    'spec.rules[0].when[0]: a condition must set at least one of values, notValues (omit it to match any)',
  );
  refused(
    when({ key: 'source.ip', values: [] }),
    'spec.rules[0].when[0].values: must have at least 1 item',
  );
  refused(
    when({ key: 'source.ip', values: ['10.0.0.0/8', 'nine'] }),
    'spec.rules[0].when[0].values[1]: "nine" is not an IP address or CIDR block (like 10.0.0.0/8 or fd00::/8)',
  );
  refused(
    when({ key: 'destination.ip', notValues: ['10.0.0.0/33'] }),
    'spec.rules[0].when[0].notValues[0]: "10.0.0.0/33": the prefix length must be 0..32',
  );
  refused(
    when({ key: 'destination.port', values: ['http', '0', '65536'] }),
    'spec.rules[0].when[0].values[0]: "http" is not a port number: destination.port takes ports 1..65535 written as strings, like "8080"',
    'spec.rules[0].when[0].values[1]: "0" is not a port number: destination.port takes ports 1..65535 written as strings, like "8080"',
    'spec.rules[0].when[0].values[2]: "65536" is not a port number: destination.port takes ports 1..65535 written as strings, like "8080"',
  );
  refused(
    when({ key: 'destination.port', values: [8080] }),
    'spec.rules[0].when[0].values[0]: expected string, got number (condition values are strings, ports too: write "8080")',
  );
  refused(
    when({ key: 'source.namespace', values: ['Shop'] }),
    'spec.rules[0].when[0].values[0]: "Shop": must be a DNS label: lowercase letters, digits and "-", starting and ending with a letter or digit',
  );
  refused(
    when({ key: 'source.principal', values: ['spiffe://td/ns/a/sa/b'] }),
    'spec.rules[0].when[0].values[0]: "spiffe://td/ns/a/sa/b": write principals without "spiffe://", as <trust-domain>/ns/<namespace>/sa/<serviceaccount>',
  );
  refused(
    when({ key: 'request.headers[x-user]', values: ['a*b'] }),
    'spec.rules[0].when[0].values[0]: "a*b": "*" is allowed only alone, as a prefix or as a suffix',
  );
  refused(
    when({ key: 'request.headers[x-user]', value: 'a' }),
    'spec.rules[0].when[0].value: unknown field (did you mean "values"?)',
    'spec.rules[0].when[0]: a condition must set at least one of values, notValues (omit it to match any)',
  );
});

test('parseConditionKey lower-cases header names and knows only the supported keys', () => {
  assert.deepEqual(parseConditionKey('request.headers[X-User]'), {
    attribute: 'request.headers',
    header: 'x-user',
  });
  assert.deepEqual(parseConditionKey('destination.port'), { attribute: 'destination.port' });
  assert.equal(parseConditionKey('request.headers'), undefined);
  assert.equal(parseConditionKey('source.ip '), undefined);
  assert.equal(parseConditionKey('request.auth.principal'), undefined);
});
