// AuthorizationPolicy at L4 (DESIGN §8): every source and operation field and its `not` form,
// wildcards, IPv4/IPv6 blocks, rule and policy structure, the DENY-then-ALLOW order, the L7
// fail-safe both ways, the deciding policy's name, and that a matching DENY always wins.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type AuthorizationPolicy,
  formatFieldErrors,
  validateResource,
} from '../../daemon/model/index.js';
import {
  authorize,
  type ConnectionAttributes,
  type Decision,
  wildcardMatch,
} from '../../daemon/policy/index.js';

type Spec = Record<string, unknown>;

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
  policy(name, rules ? { action: 'ALLOW', rules } : { action: 'ALLOW' }, ns);
const deny = (name: string, rules?: Spec[], ns?: string) =>
  policy(name, rules ? { action: 'DENY', rules } : { action: 'DENY' }, ns);

const WEB = 'spiffe://cluster.local/ns/shop/sa/web';
/** A connection from shop/web (10.0.1.5) over mTLS to port 8080; `plain` drops the identity. */
function conn(over: Partial<ConnectionAttributes> = {}): ConnectionAttributes {
  return {
    sourceIdentity: WEB,
    sourceIp: '10.0.1.5',
    destinationIp: '10.0.1.9',
    destinationPort: 8080,
    ...over,
  };
}
const plain = { sourceIdentity: undefined };
const v6 = { sourceIp: 'fd00::5' };
const id = (principal: string) => ({ sourceIdentity: `spiffe://${principal}` });

// Shorthands, so each table case stays on one line.
const from = (...sources: Spec[]): Spec => ({ from: sources.map((source) => ({ source })) });
const to = (...operations: Spec[]): Spec => ({
  to: operations.map((operation) => ({ operation })),
});
const both = (source: Spec, ...operations: Spec[]): Spec => ({
  ...from(source),
  ...to(...operations),
});
const ALL: Spec[] = [{}];
const DEFAULT: Decision = { allowed: true, reason: 'allowed_by_default' };
const NO_ALLOW: Decision = { allowed: false, reason: 'no_matching_allow' };
const allowedBy = (policy: string): Decision => ({
  allowed: true,
  policy,
  reason: 'allowed_by_policy',
});
const deniedBy = (policy: string): Decision => ({
  allowed: false,
  policy,
  reason: 'denied_by_policy',
});

/** Whether a rule matches, seen through one ALLOW policy and through one DENY policy. */
function matchesBoth(rule: Spec, c: ConnectionAttributes, label: string): boolean {
  const a = authorize([allow('a', [rule])], c);
  const d = authorize([deny('d', [rule])], c);
  assert.equal(a.allowed, !d.allowed, `${label}: ALLOW and DENY disagree`);
  return a.allowed;
}

test('wildcards: * alone is any non-empty value, *x a suffix, x* a prefix, else exact', () => {
  const cases: [string, string, boolean][] = [
    ['*', 'anything', true],
    ['*', '', false],
    ['*/sa/web', 'cluster.local/ns/shop/sa/web', true],
    ['*/sa/web', 'cluster.local/ns/shop/sa/web2', false],
    ['cluster.local/ns/shop/*', 'cluster.local/ns/shop/sa/web', true],
    ['cluster.local/ns/shop/*', 'cluster.local/ns/shopping/sa/web', false],
    ['shop', 'shop', true],
    ['shop', 'shop2', false],
    ['shop', 'Shop', false],
    ['sh*', 'sh', true],
  ];
  for (const [pattern, value, want] of cases) {
    assert.equal(wildcardMatch(pattern, value), want, `${pattern} ~ ${value}`);
  }
});

test('source fields, their not forms and wildcards (each line: source, connection, match)', () => {
  const cases: [Spec, Partial<ConnectionAttributes>, boolean][] = [
    // principals: the SPIFFE ID without spiffe://; plaintext has none, so never matches
    [{ principals: ['cluster.local/ns/shop/sa/web'] }, {}, true],
    [{ principals: ['cluster.local/ns/shop/sa/db'] }, {}, false],
    [{ principals: ['cluster.local/ns/shop/sa/db', 'cluster.local/ns/shop/sa/web'] }, {}, true],
    [{ principals: ['other.td/ns/shop/sa/web'] }, {}, false],
    [{ principals: ['cluster.local/ns/shop/*'] }, {}, true],
    [{ principals: ['cluster.local/ns/other/*'] }, {}, false],
    [{ principals: ['*/sa/web'] }, {}, true],
    [{ principals: ['*/sa/web'] }, id('cluster.local/ns/other/sa/web'), true],
    [{ principals: ['*/sa/db'] }, {}, false],
    [{ principals: ['*'] }, {}, true],
    [{ principals: ['*'] }, plain, false],
    [{ principals: ['cluster.local/ns/shop/sa/web'] }, plain, false],
    [{ principals: ['*'] }, { sourceIdentity: '' }, false],
    // notPrincipals: holds unless the identity matches; plaintext (no identity) always holds
    [{ notPrincipals: ['cluster.local/ns/shop/sa/web'] }, {}, false],
    [{ notPrincipals: ['cluster.local/ns/shop/sa/db'] }, {}, true],
    [{ notPrincipals: ['cluster.local/ns/shop/*'] }, {}, false],
    [{ notPrincipals: ['*/sa/db'] }, {}, true],
    [{ notPrincipals: ['*'] }, {}, false],
    [{ notPrincipals: ['*'] }, plain, true],
    [{ notPrincipals: ['cluster.local/ns/shop/sa/web'] }, plain, true],
    // namespaces: from /ns/<ns>/ of the identity; plaintext and non-workload IDs have none
    [{ namespaces: ['shop'] }, {}, true],
    [{ namespaces: ['other'] }, {}, false],
    [{ namespaces: ['other', 'shop'] }, {}, true],
    [{ namespaces: ['sh*'] }, {}, true],
    [{ namespaces: ['*op'] }, {}, true],
    [{ namespaces: ['*x'] }, {}, false],
    [{ namespaces: ['*'] }, {}, true],
    [{ namespaces: ['*'] }, plain, false],
    [{ namespaces: ['shop'] }, plain, false],
    [{ namespaces: ['*'] }, id('cluster.local/node/node-1'), false],
    [{ namespaces: ['sa'] }, id('cluster.local/ns/x/sa/sa'), false],
    [{ namespaces: ['shop'] }, id('other.td/ns/shop/sa/web'), true],
    // notNamespaces
    [{ notNamespaces: ['shop'] }, {}, false],
    [{ notNamespaces: ['other'] }, {}, true],
    [{ notNamespaces: ['sh*'] }, {}, false],
    [{ notNamespaces: ['*'] }, {}, false],
    [{ notNamespaces: ['*'] }, plain, true],
    [{ notNamespaces: ['shop'] }, plain, true],
    [{ notNamespaces: ['shop'] }, id('cluster.local/node/node-1'), true],
    // ipBlocks on the source address, IPv4
    [{ ipBlocks: ['10.0.0.0/8'] }, {}, true],
    [{ ipBlocks: ['10.0.2.0/24'] }, {}, false],
    [{ ipBlocks: ['10.0.2.0/24', '10.0.1.0/24'] }, {}, true],
    [{ ipBlocks: ['10.0.1.5'] }, {}, true],
    [{ ipBlocks: ['10.0.1.5/32'] }, {}, true],
    [{ ipBlocks: ['10.0.1.4/31'] }, {}, true],
    [{ ipBlocks: ['10.0.1.6/31'] }, {}, false],
    [{ ipBlocks: ['0.0.0.0/0'] }, {}, true],
    [{ ipBlocks: ['10.0.0.0/8'] }, plain, true],
    [{ ipBlocks: ['10.0.0.0/8'] }, { sourceIp: '::ffff:10.0.1.5' }, true],
    [{ ipBlocks: ['fd00::/8'] }, {}, false],
    [{ ipBlocks: ['::/0'] }, {}, false],
    // ipBlocks, IPv6
    [{ ipBlocks: ['fd00::/8'] }, v6, true],
    [{ ipBlocks: ['fd00::5'] }, v6, true],
    [{ ipBlocks: ['fd00::5/128'] }, { sourceIp: 'FD00:0:0:0:0:0:0:5' }, true],
    [{ ipBlocks: ['fd00::6/128'] }, v6, false],
    [{ ipBlocks: ['::/0'] }, v6, true],
    [{ ipBlocks: ['0.0.0.0/0'] }, v6, false],
    [{ ipBlocks: ['2001:db8::/33'] }, { sourceIp: '2001:db8:7fff::1' }, true],
    [{ ipBlocks: ['2001:db8::/33'] }, { sourceIp: '2001:db8:8000::1' }, false],
    [{ ipBlocks: ['10.0.0.0/8', 'fd00::/8'] }, v6, true],
    // notIpBlocks
    [{ notIpBlocks: ['10.0.0.0/8'] }, {}, false],
    [{ notIpBlocks: ['192.168.0.0/16'] }, {}, true],
    [{ notIpBlocks: ['10.0.0.0/8'] }, v6, true],
    [{ notIpBlocks: ['fd00::/8'] }, v6, false],
    [{ notIpBlocks: ['10.0.0.0/8'] }, { sourceIp: '::ffff:10.0.1.5' }, false],
    // all set fields of a source must hold
    [{ principals: ['*'], ipBlocks: ['10.0.0.0/8'] }, {}, true],
    [{ principals: ['*'], ipBlocks: ['192.168.0.0/16'] }, {}, false],
    [{ namespaces: ['shop'], notPrincipals: ['*/sa/web'] }, {}, false],
    [{ namespaces: ['shop'], notPrincipals: ['*/sa/db'] }, {}, true],
    [{ notNamespaces: ['other'], notIpBlocks: ['10.0.2.0/24'] }, plain, true],
  ];
  for (const [source, over, want] of cases) {
    const label = `${JSON.stringify(source)} ${JSON.stringify(over)}`;
    assert.equal(matchesBoth({ from: [{ source }] }, conn(over), label), want, label);
  }
});

test('operation ports and notPorts on the destination port (each line: operation, port, match)', () => {
  const cases: [Spec, number, boolean][] = [
    [{ ports: [8080] }, 8080, true],
    [{ ports: [80] }, 8080, false],
    [{ ports: [80, 8080] }, 8080, true],
    [{ notPorts: [8080] }, 8080, false],
    [{ notPorts: [80] }, 8080, true],
    [{ notPorts: [80, 443] }, 443, false],
    [{ ports: [8080], notPorts: [8080] }, 8080, false],
    [{ ports: [8080, 9090], notPorts: [9090] }, 9090, false],
    [{ ports: [8080, 9090], notPorts: [9090] }, 8080, true],
  ];
  for (const [operation, destinationPort, want] of cases) {
    const label = `${JSON.stringify(operation)} port ${destinationPort}`;
    assert.equal(matchesBoth({ to: [{ operation }] }, conn({ destinationPort }), label), want);
  }
});

test('rules: any source, any operation, from AND to, any rule; {} matches everything', () => {
  const web = { principals: ['cluster.local/ns/shop/sa/web'] };
  const db = { principals: ['cluster.local/ns/shop/sa/db'] };
  const x = { namespaces: ['x'] };
  const cases: [string, Spec[], Partial<ConnectionAttributes>, boolean][] = [
    ['empty rule, mTLS', [{}], {}, true],
    ['empty rule, plaintext', [{}], plain, true],
    ['empty rule, IPv6', [{}], v6, true],
    ['second source matches', [from(db, web)], {}, true],
    ['no source matches', [from(db, x)], {}, false],
    ['second operation matches', [to({ ports: [1] }, { ports: [8080] })], {}, true],
    ['no operation matches', [to({ ports: [1] }, { ports: [2] })], {}, false],
    ['from and to both match', [both(web, { ports: [8080] })], {}, true],
    ['from matches, to does not', [both(web, { ports: [80] })], {}, false],
    ['to matches, from does not', [both(db, { ports: [8080] })], {}, false],
    ['second rule matches', [from(db), to({ ports: [8080] })], {}, true],
    ['no rule matches', [from(db), to({ ports: [80] })], {}, false],
  ];
  for (const [label, rules, over, want] of cases) {
    assert.equal(authorize([allow('a', rules)], conn(over)).allowed, want, `ALLOW: ${label}`);
    assert.equal(authorize([deny('d', rules)], conn(over)).allowed, !want, `DENY: ${label}`);
  }
});

test('policies without rules match nothing: ALLOW is allow-nothing, DENY denies nothing', () => {
  for (const c of [conn(), conn(plain), conn(v6)]) {
    assert.deepEqual(authorize([allow('nothing')], c), {
      allowed: false,
      reason: 'no_matching_allow',
    });
    assert.deepEqual(authorize([allow('nothing', [])], c), {
      allowed: false,
      reason: 'no_matching_allow',
    });
    assert.deepEqual(authorize([deny('nothing')], c), {
      allowed: true,
      reason: 'allowed_by_default',
    });
    assert.deepEqual(authorize([deny('nothing', [])], c), {
      allowed: true,
      reason: 'allowed_by_default',
    });
    // the action defaults to ALLOW, so spec: {} is allow-nothing
    assert.equal(authorize([policy('empty', {})], c).allowed, false);
  }
});

test('L7 fail-safe: ALLOW rules with L7 conditions never match, DENY rules match on their L4 part', () => {
  const L7: Spec[] = [
    { methods: ['GET'] },
    { notMethods: ['POST'] },
    { paths: ['/api/*'] },
    { notPaths: ['/admin'] },
    { hosts: ['web.shop'] },
    { notHosts: ['*.internal'] },
  ];
  for (const op of L7) {
    const label = JSON.stringify(op);
    assert.equal(authorize([allow('a', [to(op)])], conn()).allowed, false, `ALLOW ${label}`);
    assert.equal(authorize([deny('d', [to(op)])], conn()).allowed, false, `DENY ${label}`);
    assert.equal(authorize([deny('d', [to(op)])], conn(plain)).allowed, false, `DENY ${label}`);
  }
  const GET = { methods: ['GET'] };
  // each line: action, rule, connection, allowed
  const cases: ['ALLOW' | 'DENY', Spec, Partial<ConnectionAttributes>, boolean][] = [
    ['ALLOW', to({ ports: [8080], ...GET }), {}, false],
    ['ALLOW', both({ principals: ['*'] }, { paths: ['/'] }), {}, false],
    // one L7 operation drops the whole ALLOW rule, even if another operation matches
    ['ALLOW', to({ ports: [8080] }, GET), {}, false],
    ['DENY', to({ ports: [8080], ...GET }), {}, false],
    ['DENY', to({ ports: [80], ...GET }), {}, true],
    ['DENY', to({ notPorts: [8080], paths: ['/x'] }), {}, true],
    ['DENY', both({ principals: ['*/sa/db'] }, GET), {}, true],
    ['DENY', both({ principals: ['*/sa/web'] }, GET), {}, false],
    ['DENY', both({ notPrincipals: ['*'] }, { hosts: ['a'] }), plain, false],
    ['DENY', to({ ports: [80] }, { notMethods: ['GET'] }), {}, false],
  ];
  for (const [action, rule, over, want] of cases) {
    const p = action === 'ALLOW' ? allow('p', [rule]) : deny('p', [rule]);
    assert.equal(authorize([p], conn(over)).allowed, want, `${action} ${JSON.stringify(rule)}`);
  }
  // an L4 rule beside an L7 one in the same ALLOW policy still allows
  const mixed = allow('mixed', [to(GET), to({ ports: [8080] })]);
  assert.deepEqual(authorize([mixed], conn()), allowedBy('shop/mixed'));
  assert.deepEqual(authorize([mixed], conn({ destinationPort: 80 })), NO_ALLOW);
});

test('when at L4: source.* and destination.* are checked, request.headers is settled fail-safe', () => {
  const when = (...conditions: Spec[]): Spec => ({ when: conditions });
  const header = { key: 'request.headers[x-user]', values: ['alice'] };
  // each line: rule, connection, match (seen through ALLOW and DENY alike)
  const l4: [Spec, Partial<ConnectionAttributes>, boolean][] = [
    [when({ key: 'source.ip', values: ['10.0.1.0/24'] }), {}, true],
    [when({ key: 'source.ip', notValues: ['10.0.1.5'] }), {}, false],
    [when({ key: 'source.namespace', values: ['shop'] }), {}, true],
    [when({ key: 'source.namespace', values: ['*'] }), plain, false],
    [when({ key: 'source.principal', values: ['*/sa/web'] }), {}, true],
    [when({ key: 'source.principal', notValues: ['*'] }), plain, true],
    [when({ key: 'destination.ip', values: ['10.0.1.9'] }), {}, true],
    [when({ key: 'destination.ip', values: ['fd00::/8'] }), {}, false],
    [when({ key: 'destination.port', values: ['8080'] }), {}, true],
    [when({ key: 'destination.port', values: ['80'] }), {}, false],
    [
      when(
        { key: 'destination.port', values: ['8080'] },
        { key: 'source.namespace', values: ['x'] },
      ),
      {},
      false,
    ],
  ];
  for (const [rule, over, want] of l4) {
    assert.equal(matchesBoth(rule, conn(over), JSON.stringify(rule)), want, JSON.stringify(rule));
  }
  // a header condition: an ALLOW rule never matches, a DENY rule matches on the rest
  assert.deepEqual(authorize([allow('a', [when(header)])], conn()), NO_ALLOW);
  assert.deepEqual(authorize([deny('d', [when(header)])], conn()), deniedBy('shop/d'));
  const rest = { key: 'destination.port', values: ['80'] };
  assert.deepEqual(authorize([deny('d', [when(header, rest)])], conn()), DEFAULT);
  assert.deepEqual(
    authorize([deny('d', [when(header, rest)])], conn({ destinationPort: 80 })),
    deniedBy('shop/d'),
  );
});

test('policies with targetRefs belong to the waypoint: L4 skips them entirely', () => {
  const targetRefs = [{ kind: 'Service', name: 'web' }];
  const wpDenyAll = policy('wp-deny-all', { targetRefs, action: 'DENY', rules: [{}] });
  const wpAllowNothing = policy('wp-allow-nothing', { targetRefs });
  assert.deepEqual(authorize([wpDenyAll, wpAllowNothing], conn()), DEFAULT);
  assert.deepEqual(
    authorize([wpDenyAll, wpAllowNothing, allow('l4', ALL)], conn()),
    allowedBy('shop/l4'),
  );
  assert.deepEqual(authorize([wpAllowNothing, deny('l4', ALL)], conn()), deniedBy('shop/l4'));
});

test('an address that does not parse is settled fail-safe: in DENY rules it matches, in ALLOW not', () => {
  for (const source of [{ ipBlocks: ['10.0.0.0/8'] }, { notIpBlocks: ['10.0.0.0/8'] }]) {
    const c = conn({ sourceIp: 'not-an-ip' });
    const rule = { from: [{ source }] };
    assert.equal(authorize([allow('a', [rule])], c).allowed, false, JSON.stringify(source));
    assert.equal(authorize([deny('d', [rule])], c).allowed, false, JSON.stringify(source));
  }
  // fields that do not look at the address are unaffected
  const c = conn({ sourceIp: 'not-an-ip' });
  assert.equal(
    authorize([allow('a', [{ from: [{ source: { namespaces: ['shop'] } }] }])], c).allowed,
    true,
  );
});

test('order: any matching DENY, else no ALLOW → allow, else a matching ALLOW, else deny', () => {
  const fromDb = [from({ principals: ['*/sa/db'] })];
  const fromShop = [from({ namespaces: ['shop'] })];
  const onlyGet = [to({ methods: ['GET'] })];
  const M = 'meshd-system';
  // each line: what, policies, decision, connection (mTLS from shop/web unless given)
  const cases: [string, AuthorizationPolicy[], Decision, Partial<ConnectionAttributes>?][] = [
    ['no policy', [], DEFAULT],
    ['matching DENY', [deny('d', ALL)], deniedBy('shop/d')],
    ['DENY that does not match', [deny('d', fromDb)], DEFAULT],
    ['matching ALLOW', [allow('a', fromShop)], allowedBy('shop/a')],
    ['ALLOW that does not match', [allow('a', fromDb)], NO_ALLOW],
    ['allow-nothing', [allow('nothing')], NO_ALLOW],
    ['allow-nothing + ALLOW', [allow('nothing'), allow('a', ALL)], allowedBy('shop/a')],
    ['DENY beats ALLOW', [allow('a', ALL), deny('d', ALL)], deniedBy('shop/d')],
    ['DENY no match, ALLOW match', [deny('d', fromDb), allow('a', ALL)], allowedBy('shop/a')],
    ['DENY no match, ALLOW no match', [deny('d', fromDb), allow('a', fromDb)], NO_ALLOW],
    ['plaintext, namespaces ALLOW', [allow('a', fromShop)], NO_ALLOW, plain],
    ['plaintext, allow-all', [allow('a', ALL)], allowedBy('shop/a'), plain],
    ['ALLOW with only L7 rules', [allow('get', onlyGet)], NO_ALLOW],
    ['L7 DENY beats L4 ALLOW', [allow('a', ALL), deny('d', onlyGet)], deniedBy('shop/d')],
    ['mesh DENY beats ALLOW', [allow('a', ALL), deny('g', fromShop, M)], deniedBy(`${M}/g`)],
    ['mesh ALLOW, allow-nothing', [allow('nothing'), allow('g', ALL, M)], allowedBy(`${M}/g`)],
  ];
  for (const [label, policies, want, over] of cases) {
    assert.deepEqual(authorize(policies, conn(over)), want, label);
    assert.deepEqual(authorize([...policies].reverse(), conn(over)), want, `${label}, reversed`);
  }
});

/** Every order of a few items. */
function permutations<T>(xs: readonly T[]): T[][] {
  if (xs.length <= 1) return [[...xs]];
  return xs.flatMap((x, i) =>
    permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map((rest) => [x, ...rest]),
  );
}

test('the deciding policy is the first by namespace, then name, whatever the input order', () => {
  const portOne = [to({ ports: [1] })];
  // a/x and a/q come first but do not match
  const denies = [
    deny('b', [{}]),
    deny('a', [{}]),
    deny('z', [{}], 'other'),
    deny('x', portOne, 'a'),
  ];
  const allows = [
    allow('m', [{}]),
    allow('c', [{}]),
    allow('y', [{}], 'meshd-system'),
    allow('q', portOne, 'a'),
  ];
  for (const ds of permutations(denies)) {
    assert.equal(authorize([...ds, ...allows], conn()).policy, 'other/z');
    assert.equal(
      authorize(
        ds.filter((p) => p.metadata.namespace === 'shop'),
        conn(),
      ).policy,
      'shop/a',
    );
  }
  for (const as of permutations(allows)) {
    assert.equal(authorize(as, conn()).policy, 'meshd-system/y');
    assert.equal(
      authorize(
        as.filter((p) => p.metadata.namespace === 'shop'),
        conn(),
      ).policy,
      'shop/c',
    );
  }
});

/** A small deterministic PRNG (mulberry32), so the property test is reproducible. */
function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test('property: a matching DENY wins over any set of ALLOW policies (2000 random cases)', () => {
  const rnd = prng(42);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const sources: Spec[] = [
    { principals: ['*'] },
    { principals: ['cluster.local/ns/shop/*'] },
    { notPrincipals: ['*/sa/web'] },
    { namespaces: ['shop', 'other'] },
    { notNamespaces: ['shop'] },
    { ipBlocks: ['10.0.0.0/8'] },
    { notIpBlocks: ['fd00::/8'] },
    { ipBlocks: ['fd00::/16'], principals: ['*'] },
  ];
  const operations: Spec[] = [
    { ports: [8080] },
    { notPorts: [8080] },
    { ports: [80, 443] },
    { methods: ['GET'] },
    { ports: [8080], paths: ['/x'] },
  ];
  const some = <T>(xs: readonly T[]): T[] =>
    Array.from({ length: 1 + Math.floor(rnd() * 2) }, () => pick(xs));
  const randomRule = (): Spec => ({
    ...(rnd() < 0.7 ? from(...some(sources)) : {}),
    ...(rnd() < 0.5 ? to(...some(operations)) : {}),
  });
  const randomRules = () =>
    rnd() < 0.1 ? undefined : Array.from({ length: 1 + Math.floor(rnd() * 2) }, randomRule);
  const conns: ConnectionAttributes[] = [
    conn(),
    conn(plain),
    conn(v6),
    conn({ ...v6, ...plain }),
    conn(id('cluster.local/ns/other/sa/db')),
    conn({ destinationPort: 443 }),
    conn({ sourceIp: '192.0.2.1' }),
  ];
  let denied = 0;
  let allowedByPolicy = 0;
  for (let i = 0; i < 2000; i++) {
    const policies = Array.from({ length: Math.floor(rnd() * 5) }, (_, j) =>
      (rnd() < 0.4 ? deny : allow)(`p${j}`, randomRules(), pick(['shop', 'meshd-system'])),
    );
    const c = pick(conns);
    const got = authorize(policies, c);
    const matchingDenies = policies.filter(
      (p) => p.spec.action === 'DENY' && !authorize([p], c).allowed,
    );
    const allowPolicies = policies.filter((p) => p.spec.action === 'ALLOW');
    const matchingAllows = allowPolicies.filter((p) => authorize([p], c).allowed);
    const first = (ps: AuthorizationPolicy[]) =>
      ps.map((p) => `${p.metadata.namespace}/${p.metadata.name}`).sort()[0];
    const label = `case ${i}: ${JSON.stringify(policies.map((p) => p.spec))} ${JSON.stringify(c)}`;
    if (matchingDenies.length > 0) {
      denied++;
      assert.deepEqual(got, deniedBy(first(matchingDenies)!), label);
      // adding any ALLOW, even allow-everything, changes nothing
      const more = [allow('zz-all', ALL), ...policies, allow('aa-all', ALL, 'a')];
      assert.deepEqual(authorize(more, c), got, label);
    } else if (allowPolicies.length === 0) {
      assert.deepEqual(got, DEFAULT, label);
    } else if (matchingAllows.length > 0) {
      allowedByPolicy++;
      assert.deepEqual(got, allowedBy(first(matchingAllows)!), label);
    } else {
      assert.deepEqual(got, NO_ALLOW, label);
    }
  }
  // the generator exercises both interesting branches
  assert.ok(denied > 200 && allowedByPolicy > 200, `${denied} denied, ${allowedByPolicy} allowed`);
});
