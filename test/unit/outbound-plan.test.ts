// The agent's outbound decision, one row per path: service, workload, waypoint hand-off
// (fail closed when the waypoint is missing or has no replica), passthrough and refusals.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type OutboundPlan, planOutbound } from '../../daemon/agent/outbound-plan.js';
import {
  MeshState,
  type Resource,
  validateResource,
  type Workload,
} from '../../daemon/model/index.js';

const V = 'meshd.io/v1alpha1';
const r = (o: object) => {
  const v = validateResource({ apiVersion: V, ...o });
  assert.ok(v.ok, JSON.stringify(v));
  return v.resource as Resource;
};
const ambient = { 'meshd.io/dataplane-mode': 'ambient' };
const wl = (ns: string, name: string, ip: string, labels: Record<string, string> = {}) =>
  r({
    kind: 'Workload',
    metadata: { name, namespace: ns, labels },
    spec: { node: 'n1', addresses: [ip], serviceAccount: name },
  });
const svc = (ns: string, name: string, vip: string, app: string, extra: object = {}) =>
  r({
    kind: 'Service',
    metadata: { name, namespace: ns, ...extra },
    spec: {
      addresses: [vip],
      ports: [{ port: 80, targetPort: 8080 }],
      selector: { matchLabels: { app } },
    },
  });

function state(...extra: Resource[]): MeshState {
  const s = new MeshState();
  s.replaceAll(
    [
      r({ kind: 'Namespace', metadata: { name: 'shop', labels: ambient } }),
      r({ kind: 'Namespace', metadata: { name: 'legacy' } }),
      wl('shop', 'web', '10.0.0.1', { app: 'web' }),
      wl('shop', 'api', '10.0.0.2', { app: 'api' }),
      wl('legacy', 'old', '10.0.0.3', { app: 'old' }),
      svc('shop', 'api', '10.96.0.1', 'api'),
      svc('shop', 'empty', '10.96.0.2', 'nobody'),
      svc('shop', 'guarded', '10.96.0.3', 'api', { labels: { 'meshd.io/use-waypoint': 'wp' } }),
      ...extra,
    ],
    1,
  );
  return s;
}

const web = (s: MeshState) => s.workloadByIp('10.0.0.1') as Workload;
const waypoint = r({ kind: 'Waypoint', metadata: { name: 'wp', namespace: 'shop' } });
const replica = wl('shop', 'wp-1', '10.0.0.9', { 'meshd.io/waypoint': 'wp' });

/** The plan reduced to what a row asserts. */
function summary(plan: OutboundPlan): string {
  switch (plan.kind) {
    case 'refuse':
      return `refuse ${plan.reason} ${plan.flag}`;
    case 'service':
      return `service ${plan.service.metadata.name} :${plan.targetPort} [${plan.endpoints.map((w) => w.metadata.name)}]`;
    case 'workload':
      return `workload ${plan.workload.metadata.name}`;
    case 'waypoint':
      return `waypoint ${plan.binding.namespace}/${plan.binding.name} for ${plan.binding.target} [${plan.replicas.map((w) => w.metadata.name)}]`;
    case 'passthrough':
      return `passthrough ${plan.workload?.metadata.name ?? '-'}`;
  }
}

const rows: {
  name: string;
  extra?: Resource[];
  dst: [string, number];
  from?: string;
  want: string;
}[] = [
  {
    name: 'a service VIP goes to its endpoints at the target port',
    dst: ['10.96.0.1', 80],
    want: 'service api :8080 [api]',
  },
  {
    name: 'a service without endpoints is refused (no healthy upstream)',
    dst: ['10.96.0.2', 80],
    want: 'refuse no-endpoints UH',
  },
  {
    name: 'an enrolled workload by IP goes over HBONE to it',
    dst: ['10.0.0.2', 8080],
    want: 'workload api',
  },
  {
    name: 'a workload outside the mesh is passthrough',
    dst: ['10.0.0.3', 80],
    want: 'passthrough old',
  },
  { name: 'an unknown address is passthrough', dst: ['192.0.2.1', 443], want: 'passthrough -' },
  {
    name: "the agent's own ports are refused",
    dst: ['10.0.0.2', 15008],
    want: 'refuse agent-port DENY',
  },
  {
    name: 'a binding to a missing waypoint fails closed',
    dst: ['10.96.0.3', 80],
    want: 'refuse waypoint-missing UH',
  },
  {
    name: 'a binding to a waypoint with no replica fails closed',
    extra: [waypoint],
    dst: ['10.96.0.3', 80],
    want: 'refuse waypoint-unready UH',
  },
  {
    name: 'a bound service goes to the waypoint',
    extra: [waypoint, replica],
    dst: ['10.96.0.3', 80],
    want: 'waypoint shop/wp for service [wp-1]',
  },
  {
    name: "the waypoint's own traffic to its service goes direct",
    extra: [waypoint, replica],
    from: '10.0.0.9',
    dst: ['10.96.0.3', 80],
    want: 'service guarded :8080 [api]',
  },
  {
    name: 'a service waypoint does not take workload-addressed traffic',
    extra: [
      waypoint,
      replica,
      r({
        kind: 'Namespace',
        metadata: { name: 'shop', labels: { ...ambient, 'meshd.io/use-waypoint': 'wp' } },
      }),
    ],
    dst: ['10.0.0.2', 8080],
    want: 'workload api',
  },
  {
    name: 'a workload waypoint takes workload-addressed traffic',
    extra: [
      r({
        kind: 'Waypoint',
        metadata: { name: 'wp', namespace: 'shop' },
        spec: { trafficType: 'all' },
      }),
      replica,
      r({
        kind: 'Namespace',
        metadata: { name: 'shop', labels: { ...ambient, 'meshd.io/use-waypoint': 'wp' } },
      }),
    ],
    dst: ['10.0.0.2', 8080],
    want: 'waypoint shop/wp for workload [wp-1]',
  },
  {
    name: 'a replica of another waypoint is still sent via the bound one',
    extra: [waypoint, replica, wl('shop', 'other-1', '10.0.0.8', { 'meshd.io/waypoint': 'other' })],
    from: '10.0.0.8',
    dst: ['10.96.0.3', 80],
    want: 'waypoint shop/wp for service [wp-1]',
  },
];

for (const row of rows) {
  test(`outbound plan: ${row.name}`, () => {
    const s = state(...(row.extra ?? []));
    const source = row.from ? (s.workloadByIp(row.from) as Workload) : web(s);
    const plan = planOutbound(s, { dst: { ip: row.dst[0], port: row.dst[1] }, source });
    assert.equal(summary(plan), row.want);
  });
}

test('a fail-closed refusal names the service, the binding and what to do', () => {
  const s = state();
  const plan = planOutbound(s, { dst: { ip: '10.96.0.3', port: 80 }, source: web(s) });
  assert.equal(plan.kind, 'refuse');
  assert.match(
    plan.kind === 'refuse' ? plan.message : '',
    /service shop\/guarded is bound to waypoint shop\/wp .*does not exist: create it \(meshctl waypoint apply wp -n shop\)/,
  );
});
