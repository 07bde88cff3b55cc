// MeshState.waypointReplicas: the workloads labelled meshd.io/waypoint=<name> in the waypoint's
// namespace, kept up to date by events, and a replica event marking the services and workloads
// bound to that waypoint as affected (and nothing bound elsewhere).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  formatFieldErrors,
  LABEL_USE_WAYPOINT,
  LABEL_WAYPOINT,
  type Labels,
  MeshState,
  type Resource,
  type ResourceRef,
  refToString,
  validateResource,
} from '../../daemon/model/index.js';

const V = 'meshd.io/v1alpha1';

function make(input: Record<string, unknown>): Resource {
  const r = validateResource(input);
  assert.ok(r.ok, r.ok ? '' : formatFieldErrors(r.errors));
  return r.resource;
}

const ns = (name: string, labels?: Labels) =>
  make({ apiVersion: V, kind: 'Namespace', metadata: { name, labels } });
const wl = (namespace: string, name: string, ip: string, labels?: Labels) =>
  make({
    apiVersion: V,
    kind: 'Workload',
    metadata: { name, namespace, labels },
    spec: { node: 'node-1', addresses: [ip], serviceAccount: name },
  });
const svc = (namespace: string, name: string, ip: string, labels?: Labels) =>
  make({
    apiVersion: V,
    kind: 'Service',
    metadata: { name, namespace, labels },
    spec: { addresses: [ip], ports: [{ port: 80 }], selector: { matchLabels: { app: name } } },
  });
const wp = (namespace: string, name: string, trafficType = 'all') =>
  make({ apiVersion: V, kind: 'Waypoint', metadata: { name, namespace }, spec: { trafficType } });

const names = (rs: readonly { metadata: { name: string } }[]) => rs.map((r) => r.metadata.name);
const refs = (rs: readonly ResourceRef[]) => rs.map(refToString);
const W = (namespace: string, name: string) => ({ namespace, name });
const replica = (namespace: string, name: string, ip: string, waypoint: string) =>
  wl(namespace, name, ip, { [LABEL_WAYPOINT]: waypoint });

/**
 * shop binds to "wp" by namespace label; "api" and "worker" choose "other-wp" themselves and
 * "legacy" opts out; "far" (another namespace) also names a "wp", of its own namespace.
 */
function world(): MeshState {
  const state = new MeshState();
  state.replaceAll(
    [
      ns('shop', { [LABEL_USE_WAYPOINT]: 'wp' }),
      ns('far'),
      wp('shop', 'wp'),
      wp('shop', 'other-wp'),
      wp('far', 'wp'),
      svc('shop', 'web', '10.96.0.1'),
      svc('shop', 'api', '10.96.0.2', { [LABEL_USE_WAYPOINT]: 'other-wp' }),
      svc('shop', 'legacy', '10.96.0.3', { [LABEL_USE_WAYPOINT]: 'none' }),
      svc('far', 'web', '10.96.1.1', { [LABEL_USE_WAYPOINT]: 'wp' }),
      wl('shop', 'web-1', '10.0.0.1', { app: 'web' }),
      wl('shop', 'worker', '10.0.0.2', { [LABEL_USE_WAYPOINT]: 'other-wp' }),
      replica('shop', 'wp-b', '10.0.0.12', 'wp'),
      replica('shop', 'wp-a', '10.0.0.11', 'wp'),
      replica('shop', 'other-wp-a', '10.0.0.21', 'other-wp'),
      replica('far', 'wp-a', '10.0.1.11', 'wp'),
    ],
    1,
  );
  return state;
}

test('LABEL_WAYPOINT is meshd.io/waypoint', () => {
  assert.equal(LABEL_WAYPOINT, 'meshd.io/waypoint');
});

test('waypointReplicas: the waypoint namespace, its name, sorted by name', () => {
  const state = world();
  assert.deepEqual(names(state.waypointReplicas(W('shop', 'wp'))), ['wp-a', 'wp-b']);
  assert.deepEqual(names(state.waypointReplicas(W('shop', 'other-wp'))), ['other-wp-a']);
  assert.deepEqual(
    state.waypointReplicas(W('far', 'wp')).map((w) => w.metadata.namespace),
    ['far'],
  );
  // No Waypoint resource is needed, and an unknown waypoint has none.
  assert.deepEqual(state.waypointReplicas(W('shop', 'missing')), []);
  assert.deepEqual(state.waypointReplicas(W('nowhere', 'wp')), []);
  // The saved state rebuilds the index.
  const restored = MeshState.fromJSON(JSON.parse(JSON.stringify(state.toJSON())));
  assert.deepEqual(names(restored.waypointReplicas(W('shop', 'wp'))), ['wp-a', 'wp-b']);
});

test('waypointReplicas follows puts, relabels and deletes', () => {
  const state = world();
  state.apply({ type: 'put', resource: replica('shop', 'wp-0', '10.0.0.10', 'wp'), revision: 2 });
  assert.deepEqual(names(state.waypointReplicas(W('shop', 'wp'))), ['wp-0', 'wp-a', 'wp-b']);
  state.apply({
    type: 'put',
    resource: replica('shop', 'wp-a', '10.0.0.11', 'other-wp'),
    revision: 3,
  });
  assert.deepEqual(names(state.waypointReplicas(W('shop', 'wp'))), ['wp-0', 'wp-b']);
  assert.deepEqual(names(state.waypointReplicas(W('shop', 'other-wp'))), ['other-wp-a', 'wp-a']);
  state.apply({ type: 'put', resource: wl('shop', 'wp-b', '10.0.0.12'), revision: 4 });
  assert.deepEqual(names(state.waypointReplicas(W('shop', 'wp'))), ['wp-0']);
  state.apply({
    type: 'delete',
    ref: { kind: 'Workload', namespace: 'shop', name: 'wp-0' },
    revision: 5,
  });
  assert.deepEqual(state.waypointReplicas(W('shop', 'wp')), []);
  // A replica's new address is what the lookup returns.
  state.apply({
    type: 'put',
    resource: replica('shop', 'wp-a', '10.0.0.99', 'other-wp'),
    revision: 6,
  });
  assert.deepEqual(
    state.waypointReplicas(W('shop', 'other-wp')).map((w) => w.spec.addresses),
    [['10.0.0.21'], ['10.0.0.99']],
  );
});

test('a replica event marks what is bound to its waypoint, and nothing bound elsewhere', () => {
  const state = world();
  // Bound to shop/wp: service web and workload web-1 (namespace label; the Waypoint serves
  // "all") and the replicas themselves, which have no binding of their own.
  const boundToWp = [
    'Workload shop/other-wp-a',
    'Workload shop/web-1',
    'Workload shop/wp-a',
    'Workload shop/wp-b',
  ];
  let change = state.apply({
    type: 'put',
    resource: replica('shop', 'wp-a', '10.0.0.31', 'wp'),
    revision: 2,
  });
  assert.deepEqual(refs(change.services), ['Service shop/web']);
  assert.deepEqual(refs(change.workloads), boundToWp);

  // A relabel moves the replica: both waypoints' bindings are affected.
  change = state.apply({
    type: 'put',
    resource: replica('shop', 'wp-a', '10.0.0.31', 'other-wp'),
    revision: 3,
  });
  assert.deepEqual(refs(change.services), ['Service shop/api', 'Service shop/web']);
  assert.ok(refs(change.workloads).includes('Workload shop/worker'));
  assert.ok(refs(change.workloads).includes('Workload shop/web-1'));

  // A delete marks them too.
  change = state.apply({
    type: 'delete',
    ref: { kind: 'Workload', namespace: 'shop', name: 'other-wp-a' },
    revision: 4,
  });
  assert.deepEqual(refs(change.services), ['Service shop/api']);
  assert.deepEqual(refs(change.workloads), ['Workload shop/other-wp-a', 'Workload shop/worker']);

  // A waypoint that does not serve workloads has no workloads bound to it.
  state.apply({ type: 'put', resource: wp('shop', 'wp', 'service'), revision: 5 });
  change = state.apply({
    type: 'put',
    resource: replica('shop', 'wp-b', '10.0.0.12', 'wp'),
    revision: 6,
  });
  assert.deepEqual(refs(change.services), ['Service shop/web']);
  assert.deepEqual(refs(change.workloads), ['Workload shop/wp-b']);
});

test('a workload that is no replica marks only what it did before', () => {
  const state = world();
  const change = state.apply({
    type: 'put',
    resource: wl('shop', 'web-1', '10.0.0.41', { app: 'web' }),
    revision: 2,
  });
  assert.deepEqual(refs(change.services), ['Service shop/web']);
  assert.deepEqual(refs(change.workloads), ['Workload shop/web-1']);
});
