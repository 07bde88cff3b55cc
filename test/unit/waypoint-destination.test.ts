// Where the waypoint sends a tunnel's requests: the endpoints of a bound Service, one id per
// workload and port (the engine pools upstream connections by id).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MeshState, type Resource, validateResource } from '../../daemon/model/index.js';
import {
  endpointsOf,
  resolveDestination,
  workloadOfEndpoint,
} from '../../daemon/waypoint/destination.js';

const V = 'meshd.io/v1alpha1';
const r = (o: object) => {
  const v = validateResource({ apiVersion: V, ...o });
  assert.ok(v.ok, JSON.stringify(v));
  return v.resource as Resource;
};
const WP = { namespace: 'shop', name: 'wp' };

function state(): MeshState {
  const s = new MeshState();
  s.replaceAll(
    [
      r({
        kind: 'Namespace',
        metadata: { name: 'shop', labels: { 'meshd.io/dataplane-mode': 'ambient' } },
      }),
      r({ kind: 'Waypoint', metadata: { name: 'wp', namespace: 'shop' } }),
      r({
        kind: 'Workload',
        metadata: { name: 'api-1', namespace: 'shop', labels: { app: 'api' } },
        spec: { node: 'n2', addresses: ['10.0.0.2'], serviceAccount: 'api' },
      }),
      r({
        kind: 'Service',
        metadata: { name: 'api', namespace: 'shop', labels: { 'meshd.io/use-waypoint': 'wp' } },
        spec: {
          addresses: ['10.96.0.1'],
          ports: [
            { port: 80, targetPort: 8080, protocol: 'HTTP2' },
            { port: 50051, protocol: 'GRPC' },
          ],
          selector: { matchLabels: { app: 'api' } },
        },
      }),
    ],
    1,
  );
  return s;
}

test('two ports of one workload are two endpoints (no upstream pool shared between them)', () => {
  const s = state();
  const ids = [80, 50051].map((port) => {
    const d = resolveDestination(s, WP, { ip: '10.96.0.1', port });
    assert.notEqual(d.kind, 'refuse', JSON.stringify(d));
    if (d.kind === 'refuse') return [];
    return endpointsOf(s, d);
  });
  assert.deepEqual(ids, [
    [{ ip: '10.0.0.2', port: 8080, id: 'shop/api-1:8080' }],
    [{ ip: '10.0.0.2', port: 50051, id: 'shop/api-1:50051' }],
  ]);
  const direct = resolveDestination(s, WP, { ip: '10.0.0.2', port: 9090 });
  assert.equal(direct.kind, 'refuse', 'the workload itself is not bound');
});

test('workloadOfEndpoint reads the workload back from an endpoint id', () => {
  assert.deepEqual(workloadOfEndpoint('shop/api-1:8080'), { namespace: 'shop', name: 'api-1' });
  assert.equal(workloadOfEndpoint('shop/api-1'), undefined);
  assert.equal(workloadOfEndpoint(undefined), undefined);
});
