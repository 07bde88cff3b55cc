// No bypass: the ports of a Service an L7 policy protects at its waypoint take traffic only
// from that waypoint; the facts come from the mesh state (guardedPorts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { guardedPorts } from '../../daemon/discovery/index.js';
import { MeshState, type Resource, validateResource } from '../../daemon/model/index.js';
import { checkWaypointOnly, type GuardedPort } from '../../daemon/policy/index.js';

const WP = 'spiffe://cluster.local/ns/shop/sa/wp';
const guarded: GuardedPort[] = [
  { targetPort: 8080, service: 'shop/api', waypointIdentity: WP, policies: ['shop/api-l7'] },
];
const conn = (sourceIdentity: string | undefined, destinationPort: number) => ({
  sourceIdentity,
  sourceIp: '10.0.0.1',
  destinationIp: '10.0.0.2',
  destinationPort,
});

const rows: [string, string | undefined, number, string][] = [
  ['the waypoint reaches the guarded port', WP, 8080, 'through'],
  [
    'a workload calling the pod IP directly is refused',
    'spiffe://cluster.local/ns/shop/sa/web',
    8080,
    'waypoint_required shop/api-l7',
  ],
  ['plaintext to the guarded port is refused', undefined, 8080, 'waypoint_required shop/api-l7'],
  [
    'another port of the workload is not guarded',
    'spiffe://cluster.local/ns/shop/sa/web',
    9090,
    'through',
  ],
  [
    'another waypoint is refused',
    'spiffe://cluster.local/ns/shop/sa/other',
    8080,
    'waypoint_required shop/api-l7',
  ],
];
for (const [name, source, port, want] of rows) {
  test(`waypoint only: ${name}`, () => {
    const d = checkWaypointOnly(guarded, conn(source, port));
    assert.equal(d ? `${d.reason} ${d.policy}` : 'through', want);
  });
}

const V = 'meshd.io/v1alpha1';
const r = (o: object) => {
  const v = validateResource({ apiVersion: V, ...o });
  assert.ok(v.ok, JSON.stringify(v));
  return v.resource as Resource;
};

function state(...extra: Resource[]): MeshState {
  const s = new MeshState();
  s.replaceAll(
    [
      r({
        kind: 'Namespace',
        metadata: { name: 'shop', labels: { 'meshd.io/dataplane-mode': 'ambient' } },
      }),
      r({
        kind: 'Workload',
        metadata: { name: 'api-1', namespace: 'shop', labels: { app: 'api' } },
        spec: { node: 'n1', addresses: ['10.0.0.2'], serviceAccount: 'api' },
      }),
      r({
        kind: 'Service',
        metadata: { name: 'api', namespace: 'shop', labels: { 'meshd.io/use-waypoint': 'wp' } },
        spec: {
          addresses: ['10.96.0.1'],
          ports: [{ port: 80, targetPort: 8080 }],
          selector: { matchLabels: { app: 'api' } },
        },
      }),
      ...extra,
    ],
    1,
  );
  return s;
}
const l7 = (targetRefs: object[]) =>
  r({
    kind: 'AuthorizationPolicy',
    metadata: { name: 'api-l7', namespace: 'shop' },
    spec: { targetRefs, rules: [{ to: [{ operation: { methods: ['GET'] } }] }] },
  });
const api = { namespace: 'shop', name: 'api-1' };

test('guardedPorts: a bound service without an L7 policy guards nothing', () => {
  assert.deepEqual(guardedPorts(state(), api, 'cluster.local'), []);
});

test('guardedPorts: an L7 policy on the service, or on its waypoint, guards its target ports', () => {
  for (const ref of [
    { kind: 'Service', name: 'api' },
    { kind: 'Waypoint', name: 'wp' },
  ]) {
    assert.deepEqual(guardedPorts(state(l7([ref])), api, 'cluster.local'), guarded);
  }
});

test('guardedPorts: an L7 policy on a service that is not bound to a waypoint guards nothing', () => {
  const s = state(
    l7([{ kind: 'Service', name: 'api' }]),
    r({
      kind: 'Service',
      metadata: { name: 'api', namespace: 'shop', labels: { 'meshd.io/use-waypoint': 'none' } },
      spec: {
        addresses: ['10.96.0.1'],
        ports: [{ port: 80, targetPort: 8080 }],
        selector: { matchLabels: { app: 'api' } },
      },
    }),
  );
  assert.deepEqual(guardedPorts(s, api, 'cluster.local'), []);
});
