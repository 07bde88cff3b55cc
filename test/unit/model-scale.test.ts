// Scale check for MeshState at the design target: 10,000 workloads, 1,000 services and 1,000
// policies. The bounds are generous (about 10x what this takes on the 2-core CI machine) so the
// test catches an accidental full rebuild or scan per event, not normal machine noise.
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { test } from 'node:test';
import type {
  AuthorizationPolicy,
  Namespace,
  PeerAuthentication,
  Resource,
  Service,
  Workload,
} from '../../daemon/model/index.js';
import { MeshState } from '../../daemon/model/index.js';

const V = 'meshd.io/v1alpha1';
const NAMESPACES = 100;
const WORKLOADS_PER_NS = 100;
const SERVICES_PER_NS = 10;

function workload(ns: number, i: number, app: string): Workload {
  return {
    apiVersion: V,
    kind: 'Workload',
    metadata: { name: `w-${i}`, namespace: `ns-${ns}`, labels: { app, version: `v${i % 3}` } },
    spec: {
      node: `node-${i % 20}`,
      addresses: [`10.${ns}.${Math.floor(i / 250)}.${(i % 250) + 1}`],
      serviceAccount: app,
    },
  };
}

function world(): Resource[] {
  const out: Resource[] = [];
  for (let n = 0; n < NAMESPACES; n++) {
    const namespace: Namespace = {
      apiVersion: V,
      kind: 'Namespace',
      metadata: { name: `ns-${n}`, labels: { 'meshd.io/dataplane-mode': 'ambient' } },
    };
    out.push(namespace);
    for (let i = 0; i < WORKLOADS_PER_NS; i++)
      out.push(workload(n, i, `app-${i % SERVICES_PER_NS}`));
    for (let s = 0; s < SERVICES_PER_NS; s++) {
      const service: Service = {
        apiVersion: V,
        kind: 'Service',
        metadata: { name: `svc-${s}`, namespace: `ns-${n}` },
        spec: {
          addresses: [`10.96.${n}.${s + 1}`],
          ports: [{ port: 80, targetPort: 8080 }],
          selector: { matchLabels: { app: `app-${s}` } },
        },
      };
      out.push(service);
    }
    // 10 policies per namespace: 8 by selector, 1 namespace-wide, 1 PeerAuthentication.
    for (let p = 0; p < 8; p++) {
      const policy: AuthorizationPolicy = {
        apiVersion: V,
        kind: 'AuthorizationPolicy',
        metadata: { name: `allow-${p}`, namespace: `ns-${n}` },
        spec: {
          action: 'ALLOW',
          selector:
            p % 2 === 0
              ? { matchLabels: { app: `app-${p}` } }
              : {
                  matchExpressions: [
                    { key: 'app', operator: 'In', values: [`app-${p}`, `app-${p + 1}`] },
                  ],
                },
          rules: [{ from: [{ source: { namespaces: [`ns-${(n + 1) % NAMESPACES}`] } }] }],
        },
      };
      out.push(policy);
    }
    out.push({
      apiVersion: V,
      kind: 'AuthorizationPolicy',
      metadata: { name: 'deny-legacy', namespace: `ns-${n}` },
      spec: { action: 'DENY', rules: [{ from: [{ source: { ipBlocks: ['192.0.2.0/24'] } }] }] },
    } satisfies AuthorizationPolicy);
    out.push({
      apiVersion: V,
      kind: 'PeerAuthentication',
      metadata: { name: 'strict-v2', namespace: `ns-${n}` },
      spec: { selector: { matchLabels: { version: 'v2' } }, mtls: { mode: 'STRICT' } },
    } satisfies PeerAuthentication);
  }
  return out;
}

test('10k workloads, 1k services, 1k policies: snapshot < 2 s, one label change < 5 ms', () => {
  const resources = world();
  assert.equal(resources.filter((r) => r.kind === 'Workload').length, 10_000);
  assert.equal(resources.filter((r) => r.kind === 'Service').length, 1_000);
  assert.equal(
    resources.filter((r) => r.kind === 'AuthorizationPolicy' || r.kind === 'PeerAuthentication')
      .length,
    1_000,
  );
  const state = new MeshState();
  const t0 = performance.now();
  state.replaceAll(resources, 1);
  const loadMs = performance.now() - t0;
  assert.ok(loadMs < 2_000, `snapshot load took ${loadMs.toFixed(0)} ms`);
  assert.equal(state.endpoints({ namespace: 'ns-7', name: 'svc-3' }).length, 10);

  // Move workloads from one app to another, one event each; time every event.
  const times: number[] = [];
  for (let k = 0; k < 200; k++) {
    const n = k % NAMESPACES;
    const i = (k * 7) % WORKLOADS_PER_NS;
    const moved = workload(n, i, 'app-moved');
    const t = performance.now();
    const change = state.apply({ type: 'put', resource: moved, revision: 2 + k });
    times.push(performance.now() - t);
    assert.equal(change.workloads.length, 1);
  }
  times.sort((a, b) => a - b);
  const median = times[times.length >> 1] ?? 0;
  assert.ok(median < 5, `median label change took ${median.toFixed(3)} ms`);
  const w = { namespace: 'ns-0', name: 'w-0' };
  assert.deepEqual(state.servicesOf(w), []);
  assert.deepEqual(
    state.authorizationPoliciesFor(w).map((p) => p.metadata.name),
    ['deny-legacy'],
  );
  assert.equal(state.workloadByIp('10.0.0.1')?.metadata.labels?.app, 'app-moved');

  // A policy change touches the workloads it selects, not the mesh. Medians, as above: one
  // event can meet a garbage-collection pause.
  const policyTimes: number[] = [];
  for (let k = 0; k < 20; k++) {
    const t = performance.now();
    const change = state.apply({
      type: 'put',
      resource: {
        apiVersion: V,
        kind: 'AuthorizationPolicy',
        metadata: { name: 'allow-0', namespace: 'ns-5' },
        spec: { action: 'ALLOW', selector: { matchLabels: { app: `app-${1 + (k % 2)}` } } },
      },
      revision: 500 + k,
    });
    policyTimes.push(performance.now() - t);
    assert.ok(change.workloads.length <= 20, `${change.workloads.length} workloads affected`);
  }
  policyTimes.sort((a, b) => a - b);
  const policyMedian = policyTimes[policyTimes.length >> 1] ?? 0;
  assert.ok(policyMedian < 5, `median policy change took ${policyMedian.toFixed(3)} ms`);
});
