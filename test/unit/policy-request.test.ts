// AuthorizationPolicy at a waypoint: every operation, source and `when` field on whole HTTP
// requests, path normalization and host forms, the DENY-then-ALLOW order with the deciding
// policy and rule, which policies a waypoint applies, gRPC as POST to a path, and that the
// L4 path leaves targetRefs policies to the waypoint.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type AuthorizationPolicy,
  formatFieldErrors,
  validateResource,
} from '../../daemon/model/index.js';
import {
  authorize,
  authorizeRequest,
  describeDecision,
  hostForms,
  l7Warnings,
  normalizeRequestPath,
  policiesForTarget,
  type RequestAttributes,
  type RequestDecision,
} from '../../daemon/policy/index.js';

type Spec = Record<string, unknown>;

const WEB_SVC = [{ kind: 'Service', name: 'web' }];

function policy(name: string, spec: Spec, namespace = 'shop'): AuthorizationPolicy {
  const r = validateResource({
    apiVersion: 'meshd.io/v1alpha1',
    kind: 'AuthorizationPolicy',
    metadata: { name, namespace },
    spec,
  });
  assert.ok(r.ok, r.ok ? '' : formatFieldErrors(r.errors));
  return r.resource as AuthorizationPolicy;
}
const allow = (name: string, rules?: Spec[], ns?: string) =>
  policy(name, { targetRefs: WEB_SVC, action: 'ALLOW', ...(rules ? { rules } : {}) }, ns);
const deny = (name: string, rules?: Spec[], ns?: string) =>
  policy(name, { targetRefs: WEB_SVC, action: 'DENY', ...(rules ? { rules } : {}) }, ns);

/** GET http://web.shop:80/api/items?page=2 from shop/front (10.0.1.5) to the VIP 10.96.0.10. */
function request(over: Partial<RequestAttributes> = {}): RequestAttributes {
  return {
    sourceIdentity: 'spiffe://cluster.local/ns/shop/sa/front',
    sourceIp: '10.0.1.5',
    destinationIp: '10.96.0.10',
    destinationPort: 80,
    host: 'web.shop:80',
    method: 'GET',
    path: '/api/items?page=2',
    headers: { 'x-user': 'alice', 'x-team': ['blue', 'green'], 'x-empty': '' },
    ...over,
  };
}
const plain = { sourceIdentity: undefined };

const to = (operation: Spec): Spec => ({ to: [{ operation }] });
const from = (source: Spec): Spec => ({ from: [{ source }] });
const when = (...conditions: Spec[]): Spec => ({ when: conditions });

/** Whether a rule matches, seen through one ALLOW policy and through one DENY policy. */
function matches(rule: Spec, r: RequestAttributes, label: string): boolean {
  const a = authorizeRequest([allow('a', [rule])], r);
  const d = authorizeRequest([deny('d', [rule])], r);
  assert.equal(a.allowed, !d.allowed, `${label}: ALLOW and DENY disagree`);
  return a.allowed;
}

function table(cases: [Spec, Partial<RequestAttributes>, boolean][]): void {
  for (const [rule, over, want] of cases) {
    const label = `${JSON.stringify(rule)} on ${JSON.stringify(over)}`;
    assert.equal(matches(rule, request(over), label), want, label);
  }
}

test('methods and notMethods (gRPC is POST)', () => {
  table([
    [to({ methods: ['GET'] }), {}, true],
    [to({ methods: ['POST', 'PUT'] }), {}, false],
    [to({ methods: ['*'] }), {}, true],
    [to({ methods: ['GET'] }), { method: 'get' }, false],
    [to({ notMethods: ['POST'] }), {}, true],
    [to({ notMethods: ['GET'] }), {}, false],
    [to({ methods: ['POST'] }), { method: 'POST' }, true],
  ]);
});

test('paths: exact, prefix, suffix, *, notPaths; the query never counts', () => {
  table([
    [to({ paths: ['/api/items'] }), {}, true],
    [to({ paths: ['/api/items?page=2'] }), {}, false],
    [to({ paths: ['/api'] }), {}, false],
    [to({ paths: ['/api/*'] }), {}, true],
    [to({ paths: ['/admin/*'] }), {}, false],
    [to({ paths: ['*/items'] }), {}, true],
    [to({ paths: ['*/users'] }), {}, false],
    [to({ paths: ['*'] }), {}, true],
    [to({ paths: ['/API/items'] }), {}, false],
    [to({ notPaths: ['/admin/*'] }), {}, true],
    [to({ notPaths: ['/api/*'] }), {}, false],
    [to({ paths: ['/api/items'] }), { path: '/api/items#top' }, true],
    [to({ paths: ['/api/*'], notPaths: ['/api/internal/*'] }), {}, true],
    [to({ paths: ['/api/*'], notPaths: ['/api/internal/*'] }), { path: '/api/internal/x' }, false],
  ]);
});

test('paths are matched normalized: dot segments, repeated slashes, backslashes, %-escapes', () => {
  const admin = to({ paths: ['/admin', '/admin/*'] });
  table([
    [admin, { path: '/admin' }, true],
    [admin, { path: '/public/../admin' }, true],
    [admin, { path: '/./admin' }, true],
    [admin, { path: '//admin' }, true],
    [admin, { path: '/public\\..\\admin' }, true],
    [admin, { path: '/%61dmin' }, true],
    [admin, { path: '/%2e%2e/admin/x' }, true],
    [admin, { path: 'http://web.shop/admin?x=1' }, true],
    [admin, { path: '/admin%2fx' }, false],
    [admin, { path: '/administrator' }, false],
  ]);
  const cases: [string, string][] = [
    ['/a/b/../c', '/a/c'],
    ['/a/b/..', '/a/'],
    ['/a/./b/.', '/a/b/'],
    ['/..', '/'],
    ['/../../x', '/x'],
    ['', '/'],
    ['x', '/x'],
    ['/a%2Fb', '/a%2Fb'],
    ['/a%2fb', '/a%2Fb'],
    ['/%7euser', '/~user'],
    ['/a?b=/../c', '/a'],
    ['*', '*'],
  ];
  for (const [raw, want] of cases) assert.equal(normalizeRequestPath(raw), want, raw);
  for (const [, want] of cases)
    assert.equal(normalizeRequestPath(want), want, `idempotent ${want}`);
});

test('hosts: case-insensitive, with or without the port the client sent', () => {
  table([
    [to({ hosts: ['web.shop'] }), {}, true],
    [to({ hosts: ['web.shop:80'] }), {}, true],
    [to({ hosts: ['web.shop:8080'] }), {}, false],
    [to({ hosts: ['WEB.Shop'] }), {}, true],
    [to({ hosts: ['web.shop'] }), { host: 'Web.SHOP' }, true],
    [to({ hosts: ['*.shop'] }), {}, true],
    [to({ hosts: ['web.*'] }), {}, true],
    [to({ hosts: ['api.shop'] }), {}, false],
    [to({ notHosts: ['web.shop'] }), {}, false],
    [to({ notHosts: ['web.shop'] }), { host: 'WEB.shop:80' }, false],
    [to({ notHosts: ['api.shop'] }), {}, true],
    [to({ hosts: ['10.96.0.10'] }), { host: '10.96.0.10:80' }, true],
    [to({ hosts: ['[fd00::10]'] }), { host: '[fd00::10]:80' }, true],
    [to({ hosts: ['*'] }), { host: '' }, false],
    [to({ notHosts: ['*'] }), { host: '' }, true],
  ]);
  assert.deepEqual(hostForms('Web.Shop:8080'), ['web.shop:8080', 'web.shop']);
  assert.deepEqual(hostForms('web.shop'), ['web.shop']);
  assert.deepEqual(hostForms('[fd00::1]'), ['[fd00::1]']);
});

test('ports: the destination port the client addressed', () => {
  table([
    [to({ ports: [80] }), {}, true],
    [to({ ports: [8080] }), {}, false],
    [to({ notPorts: [80] }), {}, false],
    [to({ ports: [80], methods: ['GET'] }), {}, true],
    [to({ ports: [80], methods: ['POST'] }), {}, false],
  ]);
});

test('sources: principals, namespaces, ipBlocks and their not forms', () => {
  table([
    [from({ principals: ['cluster.local/ns/shop/sa/front'] }), {}, true],
    [from({ principals: ['cluster.local/ns/shop/sa/other'] }), {}, false],
    [from({ principals: ['*'] }), plain, false],
    [from({ notPrincipals: ['*'] }), plain, true],
    [from({ namespaces: ['shop'] }), {}, true],
    [from({ namespaces: ['other'] }), {}, false],
    [from({ notNamespaces: ['shop'] }), {}, false],
    [from({ ipBlocks: ['10.0.0.0/8'] }), {}, true],
    [from({ ipBlocks: ['192.0.2.0/24'] }), {}, false],
    [from({ notIpBlocks: ['10.0.1.0/24'] }), {}, false],
    [from({ ipBlocks: ['10.0.0.0/8'], namespaces: ['other'] }), {}, false],
  ]);
});

test('when: headers (lower-cased names), source.*, destination.*', () => {
  const header = (key: string, values: Spec) => when({ key, ...values });
  table([
    [header('request.headers[x-user]', { values: ['alice'] }), {}, true],
    [header('request.headers[X-User]', { values: ['alice'] }), {}, true],
    [header('request.headers[x-user]', { values: ['bob', 'ali*'] }), {}, true],
    [header('request.headers[x-user]', { values: ['Alice'] }), {}, false],
    [header('request.headers[x-user]', { notValues: ['alice'] }), {}, false],
    [header('request.headers[x-user]', { notValues: ['bob'] }), {}, true],
    [header('request.headers[x-missing]', { values: ['*'] }), {}, false],
    [header('request.headers[x-missing]', { notValues: ['*'] }), {}, true],
    [header('request.headers[x-empty]', { values: ['*'] }), {}, true],
    [header('request.headers[x-team]', { values: ['blue, green'] }), {}, true],
    [header('request.headers[x-team]', { values: ['*green'] }), {}, true],
    [when({ key: 'source.ip', values: ['10.0.1.0/24'] }), {}, true],
    [when({ key: 'source.ip', notValues: ['10.0.1.5'] }), {}, false],
    [when({ key: 'source.namespace', values: ['sh*'] }), {}, true],
    [when({ key: 'source.namespace', values: ['*'] }), plain, false],
    [when({ key: 'source.principal', values: ['*/sa/front'] }), {}, true],
    [when({ key: 'source.principal', notValues: ['*'] }), plain, true],
    [when({ key: 'destination.ip', values: ['10.96.0.0/12'] }), {}, true],
    [when({ key: 'destination.ip', values: ['fd00::/8'] }), {}, false],
    [when({ key: 'destination.port', values: ['80', '443'] }), {}, true],
    [when({ key: 'destination.port', values: ['8080'] }), {}, false],
    [when({ key: 'destination.port', notValues: ['80'] }), {}, false],
    // all conditions must hold
    [
      when(
        { key: 'request.headers[x-user]', values: ['alice'] },
        { key: 'source.namespace', values: ['other'] },
      ),
      {},
      false,
    ],
  ]);
});

test('a rule is from AND to AND when; a list inside is OR', () => {
  const rule = {
    from: [{ source: { namespaces: ['other'] } }, { source: { principals: ['*/sa/front'] } }],
    to: [{ operation: { methods: ['POST'] } }, { operation: { paths: ['/api/*'] } }],
    when: [{ key: 'request.headers[x-user]', values: ['alice'] }],
  };
  table([
    [rule, {}, true],
    [rule, { headers: {} }, false],
    [rule, { path: '/other' }, false],
    [rule, { path: '/other', method: 'POST' }, true],
    [rule, { sourceIdentity: 'spiffe://cluster.local/ns/shop/sa/back' }, false],
    [{}, {}, true],
  ]);
});

test('order: DENY before ALLOW, no ALLOW means allow, ALLOW without rules allows nothing', () => {
  const noPost = deny('no-post', [to({ methods: ['POST'] })]);
  const getOnly = allow('get-only', [to({ paths: ['/health'] }), to({ methods: ['GET'] })]);
  const allowAll = allow('allow-all', [{}]);
  const cases: [string, AuthorizationPolicy[], Partial<RequestAttributes>, RequestDecision][] = [
    ['no policies', [], {}, { allowed: true, reason: 'allowed_by_default' }],
    ['only a DENY that misses', [noPost], {}, { allowed: true, reason: 'allowed_by_default' }],
    [
      'DENY matches',
      [noPost],
      { method: 'POST' },
      { allowed: false, policy: 'shop/no-post', rule: 0, reason: 'denied_by_policy' },
    ],
    [
      'DENY beats a matching ALLOW',
      [allowAll, noPost],
      { method: 'POST' },
      { allowed: false, policy: 'shop/no-post', rule: 0, reason: 'denied_by_policy' },
    ],
    [
      'ALLOW names the policy and the rule',
      [getOnly, noPost],
      {},
      { allowed: true, policy: 'shop/get-only', rule: 1, reason: 'allowed_by_policy' },
    ],
    [
      'ALLOW policies and none matches',
      [getOnly],
      { method: 'PUT' },
      { allowed: false, reason: 'no_matching_allow' },
    ],
    [
      'ALLOW without rules is allow-nothing',
      [allow('nothing')],
      {},
      { allowed: false, reason: 'no_matching_allow' },
    ],
    [
      'DENY without rules denies nothing',
      [deny('nothing')],
      {},
      { allowed: true, reason: 'allowed_by_default' },
    ],
    [
      'ALLOW rules: [{}] allows all',
      [allow('nothing'), allowAll],
      {},
      { allowed: true, policy: 'shop/allow-all', rule: 0, reason: 'allowed_by_policy' },
    ],
    [
      'deny-all',
      [deny('deny-all', [{}]), allowAll],
      {},
      { allowed: false, policy: 'shop/deny-all', rule: 0, reason: 'denied_by_policy' },
    ],
    [
      'the first matching policy by name decides, whatever the order given',
      [allow('b', [{}]), allow('a', [to({ paths: ['/nope'] }), {}])],
      {},
      { allowed: true, policy: 'shop/a', rule: 1, reason: 'allowed_by_policy' },
    ],
  ];
  for (const [label, policies, over, want] of cases) {
    assert.deepEqual(authorizeRequest(policies, request(over)), want, label);
    const reversed = [...policies].reverse();
    assert.deepEqual(authorizeRequest(reversed, request(over)), want, `${label} (reversed)`);
  }
});

test('describeDecision words a decision for a log line', () => {
  const noPost = deny('no-post', [to({ methods: ['POST'] })]);
  assert.equal(
    describeDecision(authorizeRequest([noPost], request({ method: 'POST' }))),
    'denied by policy shop/no-post rule 0',
  );
  assert.equal(
    describeDecision(authorizeRequest([allow('all', [{}])], request())),
    'allowed by policy shop/all rule 0',
  );
  assert.equal(
    describeDecision(authorizeRequest([], request())),
    'allowed: no ALLOW policy applies',
  );
  assert.equal(
    describeDecision(authorizeRequest([allow('none')], request())),
    'denied: no ALLOW policy matches',
  );
});

test('gRPC: a method is POST to /package.Service/Method', () => {
  const grpc = request({
    method: 'POST',
    path: '/shop.v1.Orders/Cancel',
    headers: { 'content-type': 'application/grpc' },
  });
  const noCancel = deny('no-cancel', [
    to({ methods: ['POST'], paths: ['/shop.v1.Orders/Cancel'] }),
  ]);
  const orders = allow('orders', [to({ paths: ['/shop.v1.Orders/*'] })]);
  assert.deepEqual(authorizeRequest([noCancel, orders], grpc), {
    allowed: false,
    policy: 'shop/no-cancel',
    rule: 0,
    reason: 'denied_by_policy',
  });
  assert.deepEqual(authorizeRequest([noCancel, orders], { ...grpc, path: '/shop.v1.Orders/Get' }), {
    allowed: true,
    policy: 'shop/orders',
    rule: 0,
    reason: 'allowed_by_policy',
  });
  assert.equal(authorizeRequest([orders], { ...grpc, path: '/shop.v1.Users/Get' }).allowed, false);
});

test('policiesForTarget: targetRefs to the Service or the Waypoint, same namespace only', () => {
  const toWeb = policy('to-web', { targetRefs: [{ kind: 'Service', name: 'web' }] });
  const toWp = policy('to-wp', {
    targetRefs: [{ kind: 'Waypoint', name: 'wp', group: 'meshd.io' }],
  });
  const toApi = policy('to-api', { targetRefs: [{ kind: 'Service', name: 'api' }] });
  const both = policy('both', {
    targetRefs: [
      { kind: 'Service', name: 'api' },
      { kind: 'Service', name: 'web' },
    ],
  });
  const otherNs = policy('other', { targetRefs: [{ kind: 'Service', name: 'web' }] }, 'other');
  const root = policy('root', { targetRefs: [{ kind: 'Service', name: 'web' }] }, 'meshd-system');
  const selector = policy('sel', { selector: { matchLabels: { app: 'web' } }, rules: [{}] });
  const wide = policy('wide', { rules: [{}] });
  const all = [toWeb, toWp, toApi, both, otherNs, root, selector, wide];
  const names = (ps: AuthorizationPolicy[]) => ps.map((p) => p.metadata.name);
  const wp = { namespace: 'shop', name: 'wp' };
  assert.deepEqual(
    names(policiesForTarget(all, { service: { namespace: 'shop', name: 'web' }, waypoint: wp })),
    ['both', 'to-web', 'to-wp'],
  );
  assert.deepEqual(names(policiesForTarget(all, { waypoint: wp })), ['to-wp']);
  assert.deepEqual(
    names(
      policiesForTarget(all, {
        service: { namespace: 'shop', name: 'web' },
        waypoint: { namespace: 'infra', name: 'wp' },
      }),
    ),
    ['both', 'to-web'],
  );
  assert.deepEqual(
    names(policiesForTarget(all, { service: { namespace: 'other', name: 'web' }, waypoint: wp })),
    ['other', 'to-wp'],
  );
});

test('L4 ignores targetRefs policies: they neither match nor turn on deny-by-default', () => {
  const conn = {
    sourceIdentity: 'spiffe://cluster.local/ns/shop/sa/front',
    sourceIp: '10.0.1.5',
    destinationIp: '10.0.2.9',
    destinationPort: 8080,
  };
  const waypointDenyAll = deny('wp-deny-all', [{}]);
  const waypointAllowNothing = allow('wp-allow-nothing');
  assert.deepEqual(authorize([waypointDenyAll, waypointAllowNothing], conn), {
    allowed: true,
    reason: 'allowed_by_default',
  });
  const l4Allow = policy('l4-allow', { rules: [from({ namespaces: ['shop'] })] });
  assert.deepEqual(authorize([waypointDenyAll, l4Allow], conn), {
    allowed: true,
    policy: 'shop/l4-allow',
    reason: 'allowed_by_policy',
  });
  // and the agent's warnings about L7 fields are not for them: the waypoint checks those whole
  assert.deepEqual(l7Warnings(deny('wp-l7', [to({ methods: ['POST'] })])), []);
});

test('a waypoint carrying opaque TCP applies its targetRefs policies at L4: principals and ports decide, HTTP fields cannot match', async () => {
  const { authorizeWaypointConnection } = await import('../../daemon/policy/index.js');
  const { validateResource } = await import('../../daemon/model/index.js');
  const policy = (name: string, action: string, rule: object) => {
    const v = validateResource({
      apiVersion: 'meshd.io/v1alpha1',
      kind: 'AuthorizationPolicy',
      metadata: { name, namespace: 'shop' },
      spec: { targetRefs: [{ kind: 'Service', name: 'db' }], action, rules: [rule] },
    });
    assert.ok(v.ok, JSON.stringify(v));
    return v.resource as never;
  };
  const conn = (who: string) => ({
    sourceIdentity: `spiffe://cluster.local/ns/shop/sa/${who}`,
    sourceIp: '10.0.0.1',
    destinationIp: '10.96.0.5',
    destinationPort: 5432,
  });
  const onlyWeb = policy('only-web', 'ALLOW', {
    from: [{ source: { principals: ['cluster.local/ns/shop/sa/web'] } }],
  });
  assert.equal(authorizeWaypointConnection([onlyWeb], conn('web')).allowed, true);
  assert.deepEqual(authorizeWaypointConnection([onlyWeb], conn('batch')), {
    allowed: false,
    reason: 'no_matching_allow',
  });
  const getOnly = policy('get-only', 'ALLOW', { to: [{ operation: { methods: ['GET'] } }] });
  assert.equal(authorizeWaypointConnection([getOnly], conn('web')).allowed, false);
  const noDelete = policy('no-delete', 'DENY', { to: [{ operation: { methods: ['DELETE'] } }] });
  assert.deepEqual(authorizeWaypointConnection([noDelete], conn('web')), {
    allowed: false,
    policy: 'shop/no-delete',
    reason: 'denied_by_policy',
  });
  // The agents' L4 decision never applies them.
  const { authorize } = await import('../../daemon/policy/index.js');
  assert.equal(authorize([onlyWeb], conn('batch')).allowed, true);
});
