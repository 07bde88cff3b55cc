// PeerAuthentication (STRICT refuses plaintext, PERMISSIVE lets it through to authorization),
// evaluate()'s order, and the whole path from MeshState: mesh-wide, namespace and selector
// PeerAuthentications and AuthorizationPolicies, and a live connection re-checked after a change.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type AuthorizationPolicy,
  formatFieldErrors,
  MeshState,
  type PeerAuthentication,
  type Resource,
  validateResource,
} from '../../daemon/model/index.js';
import {
  type ConnectionAttributes,
  checkPeerAuthentication,
  DECISION_REASONS,
  evaluate,
} from '../../daemon/policy/index.js';

const V = 'meshd.io/v1alpha1';

function make<R extends Resource>(input: Record<string, unknown>): R {
  const r = validateResource(input);
  assert.ok(r.ok, r.ok ? '' : formatFieldErrors(r.errors));
  return r.resource as R;
}
const pa = (namespace: string, name: string, mode: string, selector?: Record<string, unknown>) =>
  make<PeerAuthentication>({
    apiVersion: V,
    kind: 'PeerAuthentication',
    metadata: { name, namespace },
    spec: selector ? { selector, mtls: { mode } } : { mtls: { mode } },
  });
const ap = (namespace: string, name: string, spec: Record<string, unknown>) =>
  make<AuthorizationPolicy>({
    apiVersion: V,
    kind: 'AuthorizationPolicy',
    metadata: { name, namespace },
    spec,
  });

const MTLS: ConnectionAttributes = {
  sourceIdentity: 'spiffe://cluster.local/ns/shop/sa/web',
  sourceIp: '10.0.1.5',
  destinationIp: '10.0.1.9',
  destinationPort: 8080,
};
const PLAIN: ConnectionAttributes = { ...MTLS, sourceIdentity: undefined };

test('checkPeerAuthentication: STRICT refuses plaintext only (each line: mode, policy, conn, result)', () => {
  const strict = pa('shop', 'strict', 'STRICT');
  const permissive = pa('shop', 'permissive', 'PERMISSIVE');
  const cases: [
    'STRICT' | 'PERMISSIVE',
    PeerAuthentication | undefined,
    ConnectionAttributes,
    unknown,
  ][] = [
    ['STRICT', strict, PLAIN, { allowed: false, policy: 'shop/strict', reason: 'mtls_required' }],
    ['STRICT', undefined, PLAIN, { allowed: false, reason: 'mtls_required' }],
    [
      'STRICT',
      strict,
      { ...MTLS, sourceIdentity: '' },
      { allowed: false, policy: 'shop/strict', reason: 'mtls_required' },
    ],
    ['STRICT', strict, MTLS, undefined],
    ['PERMISSIVE', permissive, PLAIN, undefined],
    ['PERMISSIVE', undefined, PLAIN, undefined],
    ['PERMISSIVE', permissive, MTLS, undefined],
  ];
  for (const [mode, policy, conn, want] of cases) {
    assert.deepEqual(
      checkPeerAuthentication({ mode, policy }, conn),
      want,
      `${mode} ${conn.sourceIdentity}`,
    );
  }
});

test('evaluate: PeerAuthentication first, then AuthorizationPolicy', () => {
  const strict = { mode: 'STRICT' as const, policy: pa('meshd-system', 'default', 'STRICT') };
  const permissive = { mode: 'PERMISSIVE' as const, policy: undefined };
  const allowAll = ap('shop', 'all', { rules: [{}] });
  const denyAll = ap('shop', 'none', { action: 'DENY', rules: [{}] });
  const fromShop = ap('shop', 'from-shop', {
    rules: [{ from: [{ source: { namespaces: ['shop'] } }] }],
  });
  const fromNet = ap('shop', 'from-net', {
    rules: [{ from: [{ source: { ipBlocks: ['10.0.0.0/8'] } }] }],
  });
  const cases: [
    string,
    typeof strict | typeof permissive,
    AuthorizationPolicy[],
    ConnectionAttributes,
    unknown,
  ][] = [
    [
      'STRICT plaintext, even with allow-all',
      strict,
      [allowAll],
      PLAIN,
      { allowed: false, policy: 'meshd-system/default', reason: 'mtls_required' },
    ],
    ['STRICT mTLS, no policy', strict, [], MTLS, { allowed: true, reason: 'allowed_by_default' }],
    [
      'STRICT mTLS, deny-all',
      strict,
      [denyAll],
      MTLS,
      { allowed: false, policy: 'shop/none', reason: 'denied_by_policy' },
    ],
    [
      'PERMISSIVE plaintext, no policy',
      permissive,
      [],
      PLAIN,
      { allowed: true, reason: 'allowed_by_default' },
    ],
    [
      'PERMISSIVE plaintext, namespace ALLOW',
      permissive,
      [fromShop],
      PLAIN,
      { allowed: false, reason: 'no_matching_allow' },
    ],
    [
      'PERMISSIVE plaintext, ipBlocks ALLOW',
      permissive,
      [fromNet],
      PLAIN,
      { allowed: true, policy: 'shop/from-net', reason: 'allowed_by_policy' },
    ],
    [
      'PERMISSIVE mTLS, namespace ALLOW',
      permissive,
      [fromShop],
      MTLS,
      { allowed: true, policy: 'shop/from-shop', reason: 'allowed_by_policy' },
    ],
  ];
  for (const [label, mtls, policies, conn, want] of cases) {
    const got = evaluate({ policies, mtls }, conn);
    assert.deepEqual(got, want, label);
    assert.ok(DECISION_REASONS.includes(got.reason), label);
  }
});

test('from MeshState: mesh-wide STRICT, a namespace and a selector override, policies, and a re-check', () => {
  const wl = (namespace: string, name: string, address: string, labels: Record<string, string>) =>
    make({
      apiVersion: V,
      kind: 'Workload',
      metadata: { name, namespace, labels },
      spec: { node: 'node-1', addresses: [address], serviceAccount: name },
    });
  const state = new MeshState();
  state.replaceAll(
    [
      make({ apiVersion: V, kind: 'Namespace', metadata: { name: 'shop' } }),
      make({ apiVersion: V, kind: 'Namespace', metadata: { name: 'legacy' } }),
      wl('shop', 'db', '10.0.1.9', { app: 'db' }),
      wl('shop', 'metrics', '10.0.1.10', { app: 'metrics' }),
      wl('legacy', 'old', '10.0.3.9', { app: 'old' }),
      pa('meshd-system', 'default', 'STRICT'),
      pa('legacy', 'default', 'PERMISSIVE'),
      pa('shop', 'scrape', 'PERMISSIVE', { matchLabels: { app: 'metrics' } }),
      ap('shop', 'db-from-web', {
        selector: { matchLabels: { app: 'db' } },
        rules: [
          {
            from: [{ source: { principals: ['cluster.local/ns/shop/sa/web'] } }],
            to: [{ operation: { ports: [5432] } }],
          },
        ],
      }),
    ],
    1,
  );
  const inbound = (namespace: string, name: string) => {
    const w = { namespace, name };
    return { policies: state.authorizationPoliciesFor(w), mtls: state.peerAuthenticationFor(w) };
  };
  const toDb = { ...MTLS, destinationPort: 5432 };
  assert.deepEqual(evaluate(inbound('shop', 'db'), toDb), {
    allowed: true,
    policy: 'shop/db-from-web',
    reason: 'allowed_by_policy',
  });
  assert.deepEqual(evaluate(inbound('shop', 'db'), { ...toDb, destinationPort: 8080 }), {
    allowed: false,
    reason: 'no_matching_allow',
  });
  assert.deepEqual(
    evaluate(inbound('shop', 'db'), {
      ...toDb,
      sourceIdentity: 'spiffe://cluster.local/ns/shop/sa/other',
    }),
    { allowed: false, reason: 'no_matching_allow' },
  );
  assert.deepEqual(evaluate(inbound('shop', 'db'), { ...toDb, sourceIdentity: undefined }), {
    allowed: false,
    policy: 'meshd-system/default',
    reason: 'mtls_required',
  });
  assert.deepEqual(evaluate(inbound('shop', 'metrics'), PLAIN), {
    allowed: true,
    reason: 'allowed_by_default',
  });
  assert.deepEqual(evaluate(inbound('legacy', 'old'), PLAIN), {
    allowed: true,
    reason: 'allowed_by_default',
  });

  // a mesh-wide DENY arrives: the agent re-checks the live connection and closes it
  const live = inbound('shop', 'db');
  assert.equal(evaluate(live, toDb).allowed, true);
  state.apply({
    type: 'put',
    resource: ap('meshd-system', 'no-web', {
      action: 'DENY',
      rules: [{ from: [{ source: { principals: ['*/sa/web'] } }] }],
    }),
    revision: 2,
  });
  assert.deepEqual(evaluate(inbound('shop', 'db'), toDb), {
    allowed: false,
    policy: 'meshd-system/no-web',
    reason: 'denied_by_policy',
  });
  // and legacy's plaintext turns STRICT when its namespace override goes
  state.apply({
    type: 'delete',
    ref: { kind: 'PeerAuthentication', namespace: 'legacy', name: 'default' },
    revision: 3,
  });
  assert.deepEqual(evaluate(inbound('legacy', 'old'), PLAIN), {
    allowed: false,
    policy: 'meshd-system/default',
    reason: 'mtls_required',
  });
});
