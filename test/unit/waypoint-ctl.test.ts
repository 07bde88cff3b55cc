// meshctl waypoint: list, status, delete's refusal, apply's resources and generate's Deployment,
// all computed from a registry snapshot with the agents' own binding rules (golden where text).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { render } from '../../ctl/resource-cmd.js';
import { namespaceToEnroll, parseTrafficType, waypointToApply } from '../../ctl/waypoint/apply.js';
import { waypointDeployment } from '../../ctl/waypoint/generate.js';
import { waypointListTable, waypointStatusText } from '../../ctl/waypoint/render.js';
import {
  allBindings,
  unenforcedTargets,
  waypointReadyContext,
  waypointRows,
  waypointView,
} from '../../ctl/waypoint/view.js';
import { unbindHints } from '../../ctl/waypoint-cmd.js';
import {
  type AuthorizationPolicy,
  MeshState,
  type Namespace,
  type Resource,
  validateResource,
  type Waypoint,
} from '../../daemon/model/index.js';

// biome-ignore lint/suspicious/noExplicitAny: a manifest, checked by the schema and below
type Doc = any;

const golden = (name: string) =>
  readFileSync(new URL(`../../../test/golden/${name}`, import.meta.url), 'utf8').trimEnd();

const V = 'meshd.io/v1alpha1';
const r = (o: object) => {
  const v = validateResource({ apiVersion: V, ...o });
  assert.ok(v.ok, JSON.stringify(v));
  return v.resource as Resource;
};
const ambient = { 'meshd.io/dataplane-mode': 'ambient' };
const wl = (
  name: string,
  ip: string,
  labels: Record<string, string> = {},
  extra: { node?: string; annotations?: Record<string, string> } = {},
) =>
  r({
    kind: 'Workload',
    metadata: {
      name,
      namespace: 'shop',
      labels,
      ...(extra.annotations ? { annotations: extra.annotations } : {}),
    },
    spec: { node: extra.node ?? 'n1', addresses: [ip], serviceAccount: name },
  });
const svc = (name: string, vip: string, app: string, extra: object = {}, spec: object = {}) =>
  r({
    kind: 'Service',
    metadata: { name, namespace: 'shop', ...extra },
    spec: {
      addresses: [vip],
      ports: [{ port: 80, targetPort: 8080 }],
      selector: { matchLabels: { app } },
      ...spec,
    },
  });
const waypoint = (name: string, trafficType = 'service', ns = 'shop') =>
  r({ kind: 'Waypoint', metadata: { name, namespace: ns }, spec: { trafficType } });
/** A replica as the agent registers it: ready ones carry meshd.io/waypoint. */
const replica = (name: string, of: string, ip: string, ready: boolean, node = 'n3') =>
  wl(
    name,
    ip,
    { 'meshd.io/dataplane-mode': 'none', ...(ready ? { 'meshd.io/waypoint': of } : {}) },
    { node, annotations: { 'meshd.io/waypoint-replica-of': of } },
  );
const policy = (name: string, targetRefs: object[], action = 'ALLOW') =>
  r({
    kind: 'AuthorizationPolicy',
    metadata: { name, namespace: 'shop' },
    spec: { targetRefs, action, rules: [{ to: [{ operation: { methods: ['GET'] } }] }] },
  });

/**
 * shop is enrolled and bound to waypoint wp by its label; api follows the namespace, pay names
 * wp itself (spec.waypoint), db opts out, old names a waypoint that does not exist; the workload
 * cart names wp by label but wp serves services only; idle is a workload waypoint with a replica.
 */
function fixture(...extra: Resource[]): MeshState {
  const s = new MeshState();
  s.replaceAll(
    [
      r({
        kind: 'Namespace',
        metadata: { name: 'shop', labels: { ...ambient, 'meshd.io/use-waypoint': 'wp' } },
      }),
      waypoint('wp'),
      waypoint('idle', 'workload'),
      wl('api-1', '10.40.1.2', { app: 'api' }),
      wl('cart-1', '10.40.1.3', { app: 'cart', 'meshd.io/use-waypoint': 'wp' }),
      svc('api', '10.96.0.1', 'api'),
      svc('pay', '10.96.0.2', 'pay', {}, { waypoint: 'wp' }),
      svc('db', '10.96.0.3', 'db', { labels: { 'meshd.io/use-waypoint': 'none' } }),
      svc('old', '10.96.0.4', 'old', { labels: { 'meshd.io/use-waypoint': 'gone' } }),
      replica('wp-10-40-3-9', 'wp', '10.40.3.9', true),
      replica('wp-10-40-2-9', 'wp', '10.40.2.9', false, 'n2'),
      replica('idle-10-40-1-8', 'idle', '10.40.1.8', true, 'n1'),
      policy('api-get', [{ kind: 'Service', name: 'api' }]),
      policy('wp-deny-post', [{ kind: 'Waypoint', name: 'wp' }], 'DENY'),
      policy('db-get', [{ kind: 'Service', name: 'db' }]),
      ...extra,
    ],
    1,
  );
  return s;
}

test('bindings: as the agents resolve them, with how each came to be', () => {
  const got = allBindings(fixture()).map(
    (b) => `${b.kind} ${b.name} -> ${b.waypoint.name} (${b.via})`,
  );
  assert.deepEqual(got, [
    'Service api -> wp (namespace label)',
    'Service old -> gone (label)',
    'Service pay -> wp (spec.waypoint)',
  ]);
  // A workload waypoint: enrolled workloads (not the replicas) are bound through the namespace.
  const s = fixture(
    r({
      kind: 'Namespace',
      metadata: { name: 'shop', labels: { ...ambient, 'meshd.io/use-waypoint': 'idle' } },
    }),
  );
  assert.deepEqual(
    allBindings(s)
      .filter((b) => b.kind === 'Workload')
      .map((b) => `${b.name} -> ${b.waypoint.name} (${b.via})`),
    ['api-1 -> idle (namespace label)'],
  );
});

test('waypoint list: ready/registered replicas and what is bound (golden)', () => {
  const rows = waypointRows(fixture());
  assert.equal(waypointListTable(rows), golden('waypoint-list.txt'));
  assert.equal(waypointListTable([]), 'no waypoints found');
  assert.deepEqual(
    waypointRows(fixture(), 'other').map((w) => w.name),
    [],
  );
});

test('waypoint status: replicas, bindings, policies and problems (golden)', () => {
  const view = waypointView(fixture(), { namespace: 'shop', name: 'wp' });
  assert.deepEqual(
    view.policies.map((p) => `${p.name} ${p.targets}`),
    ['api-get Service/api', 'wp-deny-post Waypoint/wp'],
  );
  assert.equal(waypointStatusText(view), golden('waypoint-status.txt'));
});

test('waypoint status: no ready replica fails when something is bound, naming what is refused', () => {
  const s = fixture(replica('wp-10-40-3-9', 'wp', '10.40.3.9', false));
  const problems = waypointView(s, { namespace: 'shop', name: 'wp' }).problems;
  const fail = problems.find((p) => p.severity === 'fail');
  assert.match(
    fail?.message ?? '',
    /^no ready replica \(2 registered, none serving\): traffic to the 2 services bound to it is refused$/,
  );
  assert.match(fail?.hint ?? '', /systemctl start meshd-waypoint@shop_wp/);
  // A missing waypoint that something names: fail, with how to create it.
  const gone = waypointView(s, { namespace: 'shop', name: 'gone' });
  assert.equal(gone.trafficType, undefined);
  assert.deepEqual(
    gone.problems.map((p) => `${p.severity} ${p.message} / ${p.hint}`),
    [
      'fail the Waypoint does not exist: traffic to the 1 service bound to it is refused / create it: meshctl waypoint apply gone -n shop',
    ],
  );
  // Nothing bound, a ready replica: a warning only.
  const idle = waypointView(s, { namespace: 'shop', name: 'idle' });
  assert.deepEqual(
    idle.problems.map((p) => p.severity),
    ['warn'],
  );
  assert.match(idle.problems[0]?.message ?? '', /nothing is bound/);
});

test('delete: what is bound, and how to undo each binding', () => {
  const { bound } = waypointView(fixture(), { namespace: 'shop', name: 'wp' });
  assert.deepEqual(unbindHints({ namespace: 'shop', name: 'wp' }, bound), [
    'meshctl label namespace shop meshd.io/use-waypoint-',
    'remove spec.waypoint from service pay and re-apply it',
  ]);
});

test('policies no waypoint enforces: a Service bound to none, a missing or unready waypoint', () => {
  const s = fixture(
    replica('idle-10-40-1-8', 'idle', '10.40.1.8', false, 'n1'),
    policy('on-idle', [{ kind: 'Waypoint', name: 'idle' }]),
    policy('on-ghost', [
      { kind: 'Waypoint', name: 'ghost' },
      { kind: 'Service', name: 'nosuch' },
    ]),
    policy('old-get', [{ kind: 'Service', name: 'old' }]),
  );
  const problems = (name: string) =>
    unenforcedTargets(
      s,
      s.get({ kind: 'AuthorizationPolicy', namespace: 'shop', name }) as AuthorizationPolicy,
    ).map((u) => `${u.target}: ${u.why}`);
  assert.deepEqual(problems('api-get'), []);
  assert.deepEqual(problems('wp-deny-post'), []);
  assert.deepEqual(problems('db-get'), [
    'Service/db: service shop/db is bound to no waypoint (agents do not apply targetRefs policies)',
  ]);
  assert.deepEqual(problems('on-idle'), ['Waypoint/idle: waypoint shop/idle has no ready replica']);
  assert.deepEqual(problems('on-ghost'), [
    'Waypoint/ghost: waypoint shop/ghost does not exist',
    'Service/nosuch: service shop/nosuch does not exist',
  ]);
  assert.deepEqual(problems('old-get'), [
    'Service/old: service shop/old is bound to waypoint shop/gone, which does not exist (its traffic is refused meanwhile)',
  ]);
});

test('apply: a new Waypoint, an update keeping what it had, the namespace label added once', () => {
  const ref = { namespace: 'shop', name: 'wp' };
  assert.equal(waypointToApply(ref, undefined, undefined).spec.trafficType, 'service');
  assert.equal(waypointToApply(ref, undefined, 'all').spec.trafficType, 'all');
  const existing = {
    ...(waypoint('wp', 'workload') as Waypoint),
    metadata: { name: 'wp', namespace: 'shop', resourceVersion: '7', labels: { team: 'a' } },
  } as Waypoint;
  existing.spec.replicas = 3;
  const kept = waypointToApply(ref, existing, undefined);
  assert.equal(kept.spec.trafficType, 'workload');
  assert.equal(kept.spec.replicas, 3);
  assert.equal(kept.metadata.resourceVersion, '7');
  assert.deepEqual(kept.metadata.labels, { team: 'a' });
  assert.equal(waypointToApply(ref, existing, 'service').spec.trafficType, 'service');
  assert.throws(
    () => waypointToApply({ namespace: 'shop', name: 'none' }, undefined, undefined),
    /waypoint shop\/none: metadata.name: "none" is reserved/,
  );
  assert.throws(() => parseTrafficType('http'), /--for "http": unknown.*service, workload, all/);

  const ns = r({
    kind: 'Namespace',
    metadata: { name: 'shop', resourceVersion: '4', labels: ambient },
  }) as Namespace;
  const labelled = namespaceToEnroll('shop', ns, 'wp');
  assert.deepEqual(labelled?.metadata.labels, { ...ambient, 'meshd.io/use-waypoint': 'wp' });
  assert.equal(labelled?.metadata.resourceVersion, '4');
  assert.equal(namespaceToEnroll('shop', labelled, 'wp'), undefined);
  assert.deepEqual(namespaceToEnroll('new', undefined, 'wp')?.metadata, {
    name: 'new',
    labels: { 'meshd.io/use-waypoint': 'wp' },
  });
});

test('get waypoints: a READY column from the replicas', () => {
  const s = fixture();
  const table = render(
    'Waypoint',
    s.list('Waypoint'),
    'table',
    false,
    waypointReadyContext(s.list('Workload')),
  );
  assert.equal(
    table,
    [
      'NAMESPACE   NAME   TRAFFIC TYPE   READY   VERSION',
      'shop        idle   workload       1/1',
      'shop        wp     service        1/2',
    ].join('\n'),
  );
});

test('generate: a Deployment valid for Kubernetes, registering through the node agent', () => {
  const doc: Doc = waypointDeployment({
    waypoint: { namespace: 'shop', name: 'wp' },
    replicas: 2,
    image: 'ghcr.io/meshd/meshd:0.1.0',
  });
  new Deployment(doc).validate();
  const pod = doc.spec.template.spec;
  const [c] = pod.containers;
  const env = Object.fromEntries(
    c.env.map(
      (e: { name: string; value?: string; valueFrom?: { fieldRef: { fieldPath: string } } }) => [
        e.name,
        e.value ?? `<${e.valueFrom?.fieldRef.fieldPath}>`,
      ],
    ),
  );
  assert.deepEqual(env, {
    MESHD_WAYPOINT: 'shop/wp',
    MESHD_WAYPOINT_REPLICA: '<metadata.name>',
    MESHD_WAYPOINT_ADDRESS: '<status.podIP>',
    MESHD_AGENT_SOCKET: '/run/meshd/cni.sock',
    MESHD_STATE_DIR: '/var/lib/meshd/waypoint',
    MESHD_DRAIN_TIMEOUT: '5s',
  });
  assert.equal(doc.metadata.namespace, 'shop');
  assert.equal(doc.spec.replicas, 2);
  assert.equal(pod.hostNetwork, false);
  assert.ok(pod.terminationGracePeriodSeconds > 5);
  assert.deepEqual(
    c.ports.map((p: { containerPort: number }) => p.containerPort),
    [15008, 15020, 15021],
  );
  assert.deepEqual(c.readinessProbe.httpGet, { path: '/healthz/ready', port: 15021 });
  assert.equal(doc.spec.template.metadata.labels['meshd.io/dataplane-mode'], 'none');
  // Never the ready label: the replica sets it on its registration once it serves.
  assert.equal(doc.spec.template.metadata.labels['meshd.io/waypoint'], undefined);
  const socket = pod.volumes.find((v: { name: string }) => v.name === 'agent-socket');
  assert.deepEqual(socket.hostPath, { path: '/run/meshd', type: 'Directory' });
  assert.ok(c.volumeMounts.some((m: { mountPath: string }) => m.mountPath === '/run/meshd'));
  // The schema check is not vacuous.
  doc.spec.template.spec.containers[0].ports[0].containerPort = 'hbone';
  assert.throws(() => new Deployment(doc).validate(), /containerPort must be integer/);
  assert.throws(
    () =>
      waypointDeployment({
        waypoint: { namespace: 'shop', name: 'wp' },
        replicas: 2,
        image: 'bad image',
      }),
    /--image "bad image": empty or with spaces/,
  );
});
