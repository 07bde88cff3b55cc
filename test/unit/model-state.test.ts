// MeshState: indexes after a snapshot and after each kind of event, endpoints following label
// changes, policy scoping, enrollment, waypoint bindings, persistence, and incremental updates
// agreeing with a full rebuild.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  formatFieldErrors,
  type Labels,
  MeshState,
  type Resource,
  type ResourceRef,
  refToString,
  validateResource,
} from '../../daemon/model/index.js';

const V = 'meshd.io/v1alpha1';

function make<R extends Resource = Resource>(input: Record<string, unknown>): R {
  const r = validateResource(input);
  assert.ok(r.ok, r.ok ? '' : formatFieldErrors(r.errors));
  return r.resource as R;
}

const ns = (name: string, labels?: Labels) =>
  make({ apiVersion: V, kind: 'Namespace', metadata: { name, labels } });
const wl = (
  namespace: string,
  name: string,
  addresses: string[],
  labels?: Labels,
  node = 'node-1',
) =>
  make({
    apiVersion: V,
    kind: 'Workload',
    metadata: { name, namespace, labels },
    spec: { node, addresses, serviceAccount: name },
  });
const svc = (
  namespace: string,
  name: string,
  addresses: string[],
  selector: Record<string, unknown>,
  extra: Record<string, unknown> = {},
  labels?: Labels,
) =>
  make({
    apiVersion: V,
    kind: 'Service',
    metadata: { name, namespace, labels },
    spec: { addresses, ports: [{ port: 80, targetPort: 8080 }], selector, ...extra },
  });
const ap = (namespace: string, name: string, selector?: Record<string, unknown>) =>
  make({
    apiVersion: V,
    kind: 'AuthorizationPolicy',
    metadata: { name, namespace },
    spec: { ...(selector ? { selector } : {}), rules: [{}] },
  });
const pa = (
  namespace: string,
  name: string,
  mode: 'STRICT' | 'PERMISSIVE',
  selector?: Record<string, unknown>,
  creationTimestamp?: string,
) =>
  make({
    apiVersion: V,
    kind: 'PeerAuthentication',
    metadata: { name, namespace, ...(creationTimestamp ? { creationTimestamp } : {}) },
    spec: { ...(selector ? { selector } : {}), mtls: { mode } },
  });
const wp = (namespace: string, name: string, trafficType = 'service') =>
  make({ apiVersion: V, kind: 'Waypoint', metadata: { name, namespace }, spec: { trafficType } });
const route = (namespace: string, name: string, parents: string[]) =>
  make({
    apiVersion: V,
    kind: 'HTTPRoute',
    metadata: { name, namespace },
    spec: {
      parentRefs: parents.map((p) => ({ name: p })),
      rules: [{ backendRefs: [{ name: parents[0], port: 80 }] }],
    },
  });

const names = (rs: readonly { metadata: { name: string } }[]) => rs.map((r) => r.metadata.name);
const refs = (rs: readonly ResourceRef[]) => rs.map(refToString);
const W = (namespace: string, name: string) => ({ namespace, name });

function snapshot(): MeshState {
  const state = new MeshState();
  state.replaceAll(
    [
      ns('shop', { 'meshd.io/dataplane-mode': 'ambient' }),
      ns('other'),
      wl('shop', 'web-2', ['10.0.1.6', 'fd00::6'], { app: 'web', tier: 'front' }, 'node-2'),
      wl('shop', 'web-1', ['10.0.1.5', 'fd00::5'], { app: 'web', tier: 'front' }),
      wl('shop', 'db-1', ['10.0.1.9'], { app: 'db' }),
      wl('other', 'web-1', ['10.0.2.5'], { app: 'web' }),
      svc('shop', 'web', ['10.96.0.10', 'fd00:96::10'], { matchLabels: { app: 'web' } }),
      svc('shop', 'db', ['10.96.0.20'], {
        matchExpressions: [{ key: 'app', operator: 'In', values: ['db', 'cache'] }],
      }),
      svc('shop', 'all', ['10.96.0.30'], {}),
    ],
    7,
  );
  return state;
}

test('snapshot: lookups by IP, VIP:port, node, selector; sorted lists', () => {
  const state = snapshot();
  assert.equal(state.revision, 7);
  assert.equal(state.size(), 9);
  assert.equal(state.size('Workload'), 4);
  assert.equal(state.workloadByIp('10.0.1.5')?.metadata.name, 'web-1');
  assert.equal(state.workloadByIp('FD00:0::5')?.metadata.name, 'web-1');
  assert.equal(state.workloadByIp('::ffff:10.0.1.6')?.metadata.name, 'web-2');
  assert.equal(state.workloadByIp('10.0.9.9'), undefined);
  assert.equal(state.workloadByIp('not an ip'), undefined);
  const at = state.serviceAt('10.96.0.10', 80);
  assert.equal(at?.service.metadata.name, 'web');
  assert.deepEqual(at?.port, { port: 80, targetPort: 8080 });
  assert.equal(state.serviceAt('fd00:96:0::10', 80)?.service.metadata.name, 'web');
  assert.equal(state.serviceAt('10.96.0.10', 81), undefined);
  assert.deepEqual(names(state.servicesByVip('10.96.0.20')), ['db']);
  assert.deepEqual(names(state.endpoints(W('shop', 'web'))), ['web-1', 'web-2']);
  assert.deepEqual(names(state.endpoints(W('shop', 'db'))), ['db-1']);
  // {} selects every workload of the service's namespace, and only that namespace.
  assert.deepEqual(names(state.endpoints(W('shop', 'all'))), ['db-1', 'web-1', 'web-2']);
  assert.deepEqual(names(state.servicesOf(W('shop', 'web-1'))), ['all', 'web']);
  assert.deepEqual(names(state.servicesOf(W('other', 'web-1'))), []);
  assert.deepEqual(names(state.workloadsOnNode('node-1')), ['web-1', 'db-1', 'web-1']);
  assert.deepEqual(
    state.workloadsOnNode('node-1').map((w) => w.metadata.namespace),
    ['other', 'shop', 'shop'],
  );
  assert.deepEqual(names(state.list('Workload', 'shop')), ['db-1', 'web-1', 'web-2']);
  assert.deepEqual(names(state.list('Namespace')), ['other', 'shop']);
  assert.equal(
    state.get({ kind: 'Service', namespace: 'shop', name: 'db' })?.spec.addresses[0],
    '10.96.0.20',
  );
  assert.ok(Object.isFrozen(state.get({ kind: 'Service', namespace: 'shop', name: 'db' })?.spec));
});

test('events: endpoints follow label changes, addresses and nodes move, deletes clean up', () => {
  const state = snapshot();
  // web-1 relabelled from web to db: leaves web, joins db.
  let change = state.apply({
    type: 'put',
    resource: wl('shop', 'web-1', ['10.0.1.5', 'fd00::5'], { app: 'db' }),
    revision: 8,
  });
  assert.equal(change.applied, true);
  assert.equal(change.previous?.metadata.labels?.app, 'web');
  assert.deepEqual(refs(change.workloads), ['Workload shop/web-1']);
  assert.deepEqual(refs(change.services), [
    'Service shop/all',
    'Service shop/db',
    'Service shop/web',
  ]);
  assert.deepEqual(names(state.endpoints(W('shop', 'web'))), ['web-2']);
  assert.deepEqual(names(state.endpoints(W('shop', 'db'))), ['db-1', 'web-1']);
  // New address and node: the old ones no longer resolve.
  change = state.apply({
    type: 'put',
    resource: wl('shop', 'web-1', ['10.0.1.50'], { app: 'db' }, 'node-3'),
    revision: 9,
  });
  assert.equal(state.workloadByIp('10.0.1.5'), undefined);
  assert.equal(state.workloadByIp('fd00::5'), undefined);
  assert.equal(state.workloadByIp('10.0.1.50')?.metadata.name, 'web-1');
  assert.deepEqual(names(state.workloadsOnNode('node-3')), ['web-1']);
  assert.deepEqual(refs(change.services), ['Service shop/all', 'Service shop/db']);
  // A service's selector change moves its endpoints.
  change = state.apply({
    type: 'put',
    resource: svc('shop', 'web', ['10.96.0.11'], { matchLabels: { tier: 'front' } }),
    revision: 10,
  });
  assert.deepEqual(refs(change.services), ['Service shop/web']);
  assert.deepEqual(refs(change.workloads), []);
  assert.equal(state.serviceAt('10.96.0.10', 80), undefined);
  assert.equal(state.serviceAt('10.96.0.11', 80)?.service.metadata.name, 'web');
  change = state.apply({
    type: 'put',
    resource: svc('shop', 'web', ['10.96.0.11'], { matchLabels: { app: 'db' } }),
    revision: 10,
  });
  assert.deepEqual(refs(change.workloads), [
    'Workload shop/db-1',
    'Workload shop/web-1',
    'Workload shop/web-2',
  ]);
  assert.deepEqual(names(state.endpoints(W('shop', 'web'))), ['db-1', 'web-1']);
  // Deletes, by ref or by resource; deleting something absent changes nothing.
  change = state.apply({
    type: 'delete',
    ref: { kind: 'Workload', namespace: 'shop', name: 'db-1' },
    revision: 11,
  });
  assert.equal(change.previous?.metadata.name, 'db-1');
  assert.deepEqual(refs(change.services), [
    'Service shop/all',
    'Service shop/db',
    'Service shop/web',
  ]);
  assert.equal(state.workloadByIp('10.0.1.9'), undefined);
  assert.deepEqual(names(state.endpoints(W('shop', 'db'))), ['web-1']);
  const dbSvc = state.get({ kind: 'Service', namespace: 'shop', name: 'db' });
  assert.ok(dbSvc);
  change = state.apply({ type: 'delete', resource: dbSvc, revision: 12 });
  assert.deepEqual(refs(change.workloads), ['Workload shop/web-1']);
  assert.deepEqual(state.endpoints(W('shop', 'db')), []);
  assert.deepEqual(names(state.servicesOf(W('shop', 'web-1'))), ['all', 'web']);
  assert.equal(state.servicesByVip('10.96.0.20').length, 0);
  change = state.apply({
    type: 'delete',
    ref: { kind: 'Service', namespace: 'shop', name: 'gone' },
    revision: 12,
  });
  assert.equal(change.previous, undefined);
  assert.equal(state.revision, 12);
  // Older events are replays: ignored.
  change = state.apply({ type: 'put', resource: wl('shop', 'late', ['10.0.9.1']), revision: 3 });
  assert.equal(change.applied, false);
  assert.equal(state.workloadByIp('10.0.9.1'), undefined);
  assert.equal(state.revision, 12);
});

test('address conflicts resolve to the first by namespace and name, and heal on delete', () => {
  const state = new MeshState();
  state.replaceAll([wl('b', 'w', ['10.0.0.1']), wl('a', 'w', ['10.0.0.1'])], 1);
  assert.equal(state.workloadByIp('10.0.0.1')?.metadata.namespace, 'a');
  assert.equal(state.workloadsByIp('10.0.0.1').length, 2);
  state.apply({
    type: 'delete',
    ref: { kind: 'Workload', namespace: 'a', name: 'w' },
    revision: 2,
  });
  assert.equal(state.workloadByIp('10.0.0.1')?.metadata.namespace, 'b');
});

test('authorization policies: selector, namespace-wide, mesh-wide (root namespace), {} is namespace-wide', () => {
  const state = snapshot();
  state.apply({
    type: 'put',
    resource: ap('shop', 'web-only', { matchLabels: { app: 'web' } }),
    revision: 8,
  });
  state.apply({ type: 'put', resource: ap('shop', 'shop-wide'), revision: 8 });
  state.apply({ type: 'put', resource: ap('shop', 'empty-selector', {}), revision: 8 });
  state.apply({ type: 'put', resource: ap('meshd-system', 'mesh-wide'), revision: 8 });
  const change = state.apply({
    type: 'put',
    resource: ap('meshd-system', 'all-web', { matchLabels: { app: 'web' } }),
    revision: 8,
  });
  assert.deepEqual(refs(change.workloads), [
    'Workload other/web-1',
    'Workload shop/web-1',
    'Workload shop/web-2',
  ]);
  state.apply({
    type: 'put',
    resource: ap('other', 'other-web', { matchLabels: { app: 'web' } }),
    revision: 8,
  });
  const forWorkload = (n: string, w: string) =>
    state
      .authorizationPoliciesFor(W(n, w))
      .map((p) => `${p.metadata.namespace}/${p.metadata.name}`);
  assert.deepEqual(forWorkload('shop', 'web-1'), [
    'meshd-system/all-web',
    'meshd-system/mesh-wide',
    'shop/empty-selector',
    'shop/shop-wide',
    'shop/web-only',
  ]);
  assert.deepEqual(forWorkload('shop', 'db-1'), [
    'meshd-system/mesh-wide',
    'shop/empty-selector',
    'shop/shop-wide',
  ]);
  assert.deepEqual(forWorkload('other', 'web-1'), [
    'meshd-system/all-web',
    'meshd-system/mesh-wide',
    'other/other-web',
  ]);
  assert.deepEqual(
    names(
      state.workloadsSelectedBy({
        kind: 'AuthorizationPolicy',
        namespace: 'shop',
        name: 'shop-wide',
      }),
    ),
    ['db-1', 'web-1', 'web-2'],
  );
  assert.equal(
    state.workloadsSelectedBy({
      kind: 'AuthorizationPolicy',
      namespace: 'meshd-system',
      name: 'mesh-wide',
    }).length,
    4,
  );
  // Narrowing a policy reports the workloads it left and the ones it kept.
  const narrowed = state.apply({
    type: 'put',
    resource: ap('shop', 'web-only', { matchLabels: { app: 'web', tier: 'none' } }),
    revision: 9,
  });
  assert.deepEqual(refs(narrowed.workloads), ['Workload shop/web-1', 'Workload shop/web-2']);
  assert.ok(!forWorkload('shop', 'web-1').includes('shop/web-only'));
  // From namespace-wide to a selector, and deleted.
  const focused = state.apply({
    type: 'put',
    resource: ap('shop', 'shop-wide', { matchLabels: { app: 'db' } }),
    revision: 10,
  });
  assert.deepEqual(refs(focused.workloads), [
    'Workload shop/db-1',
    'Workload shop/web-1',
    'Workload shop/web-2',
  ]);
  assert.deepEqual(forWorkload('shop', 'web-2').includes('shop/shop-wide'), false);
  assert.deepEqual(forWorkload('shop', 'db-1').includes('shop/shop-wide'), true);
  const gone = state.apply({
    type: 'delete',
    ref: { kind: 'AuthorizationPolicy', namespace: 'meshd-system', name: 'mesh-wide' },
    revision: 11,
  });
  assert.equal(gone.workloads.length, 4);
  assert.ok(!forWorkload('other', 'web-1').includes('meshd-system/mesh-wide'));
  // A workload relabelled into a selector gets the policy.
  state.apply({
    type: 'put',
    resource: wl('shop', 'db-1', ['10.0.1.9'], { app: 'web' }),
    revision: 12,
  });
  assert.ok(forWorkload('shop', 'db-1').includes('meshd-system/all-web'));
});

test('peer authentication: workload selector > namespace > mesh-wide > PERMISSIVE; oldest wins ties', () => {
  const state = snapshot();
  assert.deepEqual(state.peerAuthenticationFor(W('shop', 'web-1')), {
    mode: 'PERMISSIVE',
    policy: undefined,
  });
  state.apply({ type: 'put', resource: pa('meshd-system', 'default', 'STRICT'), revision: 8 });
  assert.equal(state.peerAuthenticationFor(W('other', 'web-1')).mode, 'STRICT');
  state.apply({ type: 'put', resource: pa('shop', 'ns', 'PERMISSIVE'), revision: 8 });
  assert.equal(state.peerAuthenticationFor(W('shop', 'db-1')).policy?.metadata.name, 'ns');
  assert.equal(state.peerAuthenticationFor(W('other', 'web-1')).policy?.metadata.name, 'default');
  state.apply({
    type: 'put',
    resource: pa(
      'shop',
      'web-new',
      'STRICT',
      { matchLabels: { app: 'web' } },
      '2025-02-01T00:00:00Z',
    ),
    revision: 8,
  });
  state.apply({
    type: 'put',
    resource: pa(
      'shop',
      'web-old',
      'PERMISSIVE',
      { matchLabels: { tier: 'front' } },
      '2025-01-01T00:00:00Z',
    ),
    revision: 8,
  });
  const eff = state.peerAuthenticationFor(W('shop', 'web-1'));
  assert.equal(eff.mode, 'PERMISSIVE');
  assert.equal(eff.policy?.metadata.name, 'web-old');
  assert.equal(state.peerAuthenticationFor(W('shop', 'db-1')).policy?.metadata.name, 'ns');
});

test('enrollment: namespace label, workload opt-in and opt-out, live namespace relabel', () => {
  const state = snapshot();
  assert.equal(state.isEnrolled(W('shop', 'web-1')), true);
  assert.equal(state.isEnrolled(W('other', 'web-1')), false);
  assert.equal(state.isEnrolled(W('nowhere', 'x')), false);
  state.apply({
    type: 'put',
    resource: wl('shop', 'web-2', ['10.0.1.6'], { app: 'web', 'meshd.io/dataplane-mode': 'none' }),
    revision: 8,
  });
  assert.equal(state.isEnrolled(W('shop', 'web-2')), false);
  state.apply({
    type: 'put',
    resource: wl('other', 'solo', ['10.0.2.9'], { 'meshd.io/dataplane-mode': 'ambient' }),
    revision: 8,
  });
  assert.equal(state.isEnrolled(W('other', 'solo')), true);
  // Releasing the namespace tells which workloads to look at again.
  const change = state.apply({ type: 'put', resource: ns('shop'), revision: 9 });
  assert.deepEqual(refs(change.workloads), [
    'Workload shop/db-1',
    'Workload shop/web-1',
    'Workload shop/web-2',
  ]);
  assert.deepEqual(refs(change.services), [
    'Service shop/all',
    'Service shop/db',
    'Service shop/web',
  ]);
  assert.equal(state.isEnrolled(W('shop', 'web-1')), false);
  // Same labels again: nothing to do.
  assert.deepEqual(state.apply({ type: 'put', resource: ns('shop'), revision: 10 }).workloads, []);
  const deleted = state.apply({
    type: 'delete',
    ref: { kind: 'Namespace', namespace: '', name: 'other' },
    revision: 11,
  });
  assert.deepEqual(refs(deleted.workloads), ['Workload other/solo', 'Workload other/web-1']);
  assert.equal(state.isEnrolled(W('other', 'solo')), true);
  assert.deepEqual(state.namespaceLabels('other'), {});
});

test('waypoint bindings: service, workload and namespace labels, trafficType, none, missing', () => {
  const state = snapshot();
  assert.equal(state.waypointForService(W('shop', 'web')), undefined);
  state.apply({
    type: 'put',
    resource: ns('shop', { 'meshd.io/dataplane-mode': 'ambient', 'meshd.io/use-waypoint': 'wp' }),
    revision: 8,
  });
  // The Waypoint does not exist yet: bound, but with no resource (the agent fails closed).
  assert.deepEqual(state.waypointForService(W('shop', 'web')), {
    namespace: 'shop',
    name: 'wp',
    source: 'namespace',
    waypoint: undefined,
  });
  const change = state.apply({ type: 'put', resource: wp('shop', 'wp'), revision: 9 });
  assert.equal(change.services.length, 3);
  assert.equal(state.waypointForService(W('shop', 'web'))?.waypoint?.spec.trafficType, 'service');
  // A service-only waypoint does not take traffic addressed to workloads.
  assert.equal(state.waypointForWorkload(W('shop', 'web-1')), undefined);
  state.apply({ type: 'put', resource: wp('shop', 'wp', 'all'), revision: 10 });
  assert.equal(state.waypointForWorkload(W('shop', 'web-1'))?.source, 'namespace');
  state.apply({
    type: 'put',
    resource: wl('shop', 'web-1', ['10.0.1.5'], { app: 'web', 'meshd.io/use-waypoint': 'none' }),
    revision: 11,
  });
  assert.equal(state.waypointForWorkload(W('shop', 'web-1')), undefined);
  state.apply({
    type: 'put',
    resource: svc(
      'shop',
      'db',
      ['10.96.0.20'],
      {},
      { waypoint: 'db-wp' },
      { 'meshd.io/use-waypoint': 'ignored' },
    ),
    revision: 12,
  });
  assert.deepEqual(state.waypointForService(W('shop', 'db')), {
    namespace: 'shop',
    name: 'db-wp',
    source: 'service',
    waypoint: undefined,
  });
  state.apply({
    type: 'put',
    resource: svc('shop', 'all', ['10.96.0.30'], {}, {}, { 'meshd.io/use-waypoint': 'none' }),
    revision: 13,
  });
  assert.equal(state.waypointForService(W('shop', 'all')), undefined);
  assert.equal(state.waypointForService(W('shop', 'missing')), undefined);
});

test('routes by parent service', () => {
  const state = snapshot();
  let change = state.apply({
    type: 'put',
    resource: route('shop', 'r1', ['web', 'db']),
    revision: 8,
  });
  assert.deepEqual(refs(change.services), ['Service shop/db', 'Service shop/web']);
  state.apply({ type: 'put', resource: route('shop', 'r0', ['web']), revision: 8 });
  assert.deepEqual(names(state.routesFor(W('shop', 'web'))), ['r0', 'r1']);
  change = state.apply({ type: 'put', resource: route('shop', 'r1', ['all']), revision: 9 });
  assert.deepEqual(refs(change.services), [
    'Service shop/all',
    'Service shop/db',
    'Service shop/web',
  ]);
  assert.deepEqual(names(state.routesFor(W('shop', 'db'))), []);
  assert.deepEqual(names(state.routesFor(W('shop', 'all'))), ['r1']);
});

test('toJSON/fromJSON round trip; a corrupt saved state is refused with every problem', () => {
  const state = snapshot();
  state.apply({
    type: 'put',
    resource: ap('shop', 'p', { matchLabels: { app: 'web' } }),
    revision: 9,
  });
  const json = JSON.parse(JSON.stringify(state)) as unknown;
  const back = MeshState.fromJSON(json);
  assert.deepEqual(back.toJSON(), state.toJSON());
  assert.equal(back.revision, 9);
  assert.deepEqual(names(back.endpoints(W('shop', 'web'))), ['web-1', 'web-2']);
  assert.deepEqual(names(back.authorizationPoliciesFor(W('shop', 'web-2'))), ['p']);
  assert.deepEqual(
    state
      .toJSON()
      .resources.map((r) => `${r.kind} ${r.metadata.name}`)
      .slice(0, 3),
    ['Namespace other', 'Namespace shop', 'Workload web-1'],
  );
  const bad = state.toJSON() as unknown as { resources: Record<string, unknown>[] };
  bad.resources[0] = { ...bad.resources[0], kind: 'Nope' };
  bad.resources.push(bad.resources[1] as Record<string, unknown>);
  assert.throws(
    () => MeshState.fromJSON(bad),
    (err: Error & { code?: string }) => {
      assert.equal(err.code, 'MESHD_E_INVALID_RESOURCE');
      assert.match(
        err.message,
        /^saved state invalid:\n {2}resources\[0\]\.kind: unknown kind "Nope"/,
      );
      assert.match(err.message, /resources\[10\]: duplicate Namespace shop$/);
      return true;
    },
  );
  assert.throws(
    () => MeshState.fromJSON({ format: 'x' }),
    /saved state unreadable: format: must be meshd-state\/v1/,
  );
});

/** Small deterministic PRNG, so a failure can be replayed. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

test('incremental events agree with a full rebuild (random sequence)', () => {
  const rand = prng(42);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;
  const nss = ['a', 'b', 'meshd-system'];
  const apps = ['x', 'y', 'z'];
  const randomSelector = (): Record<string, unknown> =>
    pick([
      {},
      { matchLabels: { app: pick(apps) } },
      { matchExpressions: [{ key: 'app', operator: 'In', values: [pick(apps), pick(apps)] }] },
      { matchExpressions: [{ key: 'tier', operator: 'Exists' }] },
      { matchExpressions: [{ key: 'app', operator: 'NotIn', values: [pick(apps)] }] },
      {
        matchLabels: { app: pick(apps) },
        matchExpressions: [{ key: 'tier', operator: 'DoesNotExist' }],
      },
    ]);
  const randomResource = (): Resource => {
    const n = pick(nss);
    const i = Math.floor(rand() * 6);
    switch (pick(['wl', 'wl', 'wl', 'svc', 'ap', 'pa', 'ns'])) {
      case 'wl':
        return wl(n, `w${i}`, [`10.${nss.indexOf(n)}.0.${i + 1}`], {
          app: pick(apps),
          ...(rand() < 0.5 ? { tier: 't' } : {}),
        });
      case 'svc':
        return svc(n, `s${i}`, [`10.96.${nss.indexOf(n)}.${i + 1}`], randomSelector());
      case 'ap':
        return ap(n, `p${i}`, rand() < 0.3 ? undefined : randomSelector());
      case 'pa':
        return pa(
          n,
          `m${i}`,
          pick(['STRICT', 'PERMISSIVE'] as const),
          rand() < 0.3 ? undefined : randomSelector(),
        );
      default:
        return ns(n, rand() < 0.5 ? { 'meshd.io/dataplane-mode': 'ambient' } : {});
    }
  };
  const state = new MeshState();
  const truth = new Map<string, Resource>();
  const keyOf = (r: Resource) => `${r.kind}/${r.metadata.namespace ?? ''}/${r.metadata.name}`;
  const views = (s: MeshState) => {
    const out: Record<string, unknown> = {};
    for (const w of s.list('Workload')) {
      const id = W(w.metadata.namespace, w.metadata.name);
      out[`w:${keyOf(w)}`] = [
        names(s.servicesOf(id)),
        names(s.authorizationPoliciesFor(id)),
        s.peerAuthenticationFor(id).policy?.metadata.name,
        s.isEnrolled(id),
        s.workloadByIp(w.spec.addresses[0] ?? '')?.metadata.name,
      ];
    }
    for (const sv of s.list('Service')) {
      out[`s:${keyOf(sv)}`] = [
        names(s.endpoints(W(sv.metadata.namespace, sv.metadata.name))),
        s.serviceAt(sv.spec.addresses[0] ?? '', 80)?.service.metadata.name,
      ];
    }
    return out;
  };
  for (let step = 1; step <= 400; step++) {
    const r = randomResource();
    if (rand() < 0.25 && truth.has(keyOf(r))) {
      truth.delete(keyOf(r));
      state.apply({ type: 'delete', resource: r, revision: step });
    } else {
      truth.set(keyOf(r), r);
      state.apply({ type: 'put', resource: r, revision: step });
    }
    if (step % 50 === 0) {
      const rebuilt = new MeshState();
      rebuilt.replaceAll([...truth.values()], step);
      assert.deepEqual(views(state), views(rebuilt), `views differ after step ${step}`);
      assert.deepEqual(state.toJSON(), rebuilt.toJSON());
    }
  }
});

test('a targetRefs AuthorizationPolicy is a waypoint policy: it applies to no workload at L4', () => {
  const state = snapshot();
  const targeted = make({
    apiVersion: V,
    kind: 'AuthorizationPolicy',
    metadata: { name: 'api-l7', namespace: 'shop' },
    spec: { targetRefs: [{ kind: 'Service', name: 'api' }], rules: [{}] },
  });
  const change = state.apply({ type: 'put', resource: targeted, revision: 8 });
  assert.deepEqual(refs(change.workloads), []);
  assert.deepEqual(names(state.authorizationPoliciesFor(W('shop', 'web-1'))), []);
  assert.deepEqual(
    state.workloadsSelectedBy({ kind: 'AuthorizationPolicy', namespace: 'shop', name: 'api-l7' }),
    [],
  );
  // Turned into a namespace-wide policy, it applies to the namespace again.
  state.apply({ type: 'put', resource: ap('shop', 'api-l7'), revision: 9 });
  assert.deepEqual(names(state.authorizationPoliciesFor(W('shop', 'web-1'))), ['api-l7']);
});
