// meshctl check: each check is a pure function of the gathered facts, so every verdict a user
// relies on (×, ‼, √ and the hint) is tested here from a fixed picture of a cluster.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { type Facts, runChecks } from '../../ctl/check/index.js';
import { renderChecks } from '../../ctl/check-cmd.js';
import type { Resource } from '../../daemon/model/index.js';

const NOW = Date.parse('2026-06-01T12:00:00Z');
const iso = (ms: number) => new Date(ms).toISOString();
const HOUR = 3_600_000;

const workload = (name: string, node: string): Resource =>
  ({
    apiVersion: 'meshd.io/v1alpha1',
    kind: 'Workload',
    metadata: { name, namespace: 'demo', labels: { app: name } },
    spec: { node, addresses: [`10.40.${node.slice(1)}.${name.length}`], serviceAccount: name },
  }) as unknown as Resource;

const resources: Resource[] = [
  {
    apiVersion: 'meshd.io/v1alpha1',
    kind: 'Namespace',
    metadata: { name: 'demo', labels: { 'meshd.io/dataplane-mode': 'ambient' } },
  } as unknown as Resource,
  workload('client', 'n1'),
  workload('backend', 'n2'),
  {
    apiVersion: 'meshd.io/v1alpha1',
    kind: 'AuthorizationPolicy',
    metadata: { name: 'backend-allow-client', namespace: 'demo' },
    spec: { selector: { matchLabels: { app: 'backend' } }, action: 'ALLOW', rules: [{}] },
  } as unknown as Resource,
  // backend's Service goes through the waypoint demo/wp, one replica of it ready on n2.
  {
    apiVersion: 'meshd.io/v1alpha1',
    kind: 'Service',
    metadata: { name: 'backend', namespace: 'demo' },
    spec: {
      addresses: ['10.96.0.20'],
      ports: [{ port: 80, targetPort: 8080 }],
      selector: { matchLabels: { app: 'backend' } },
      waypoint: 'wp',
    },
  } as unknown as Resource,
  {
    apiVersion: 'meshd.io/v1alpha1',
    kind: 'Waypoint',
    metadata: { name: 'wp', namespace: 'demo' },
    spec: { trafficType: 'service' },
  } as unknown as Resource,
  {
    apiVersion: 'meshd.io/v1alpha1',
    kind: 'Workload',
    metadata: {
      name: 'wp-10-40-2-9',
      namespace: 'demo',
      labels: { 'meshd.io/dataplane-mode': 'none', 'meshd.io/waypoint': 'wp' },
      annotations: { 'meshd.io/waypoint-replica-of': 'wp' },
    },
    spec: { node: 'n2', addresses: ['10.40.2.9'], serviceAccount: 'wp' },
  } as unknown as Resource,
  {
    apiVersion: 'meshd.io/v1alpha1',
    kind: 'AuthorizationPolicy',
    metadata: { name: 'backend-get', namespace: 'demo' },
    spec: {
      targetRefs: [{ kind: 'Service', name: 'backend' }],
      rules: [{ to: [{ operation: { methods: ['GET'] } }] }],
    },
  } as unknown as Resource,
];

const cert = (identity: string, hoursLeft: number, lifeHours = 24) => ({
  identity,
  state: 'valid',
  notBefore: iso(NOW - (lifeHours - hoursLeft) * HOUR),
  notAfter: iso(NOW + hoursLeft * HOUR),
});

const node = (name: string, overrides: Partial<Facts['nodes'][number]> = {}) => ({
  name,
  connected: true,
  peer: 'ipv4:172.30.0.12:40000',
  connectedSince: iso(NOW - 60_000),
  disconnectedAt: '',
  revisionSent: 9,
  clockSkewMs: 12,
  workloads: 1,
  version: '0.1.0',
  server: '172.30.0.11:15012',
  serverRevision: 9,
  ...overrides,
});

const dump = (
  n: string,
  captured: string[],
  certs = [cert(`spiffe://cluster.local/node/${n}`, 20)],
) => ({
  dump: {
    node: n,
    captured: captured.map((w) => ({ workload: `demo/${w}`, identity: '', addresses: [] })),
    certificates: certs,
    registry: { revision: 9, source: 'server', connectedTo: '172.30.0.11:15012' },
  },
});

function healthy(): Facts {
  return {
    now: NOW,
    servers: [{ address: '172.30.0.11:15012', revision: 9, clockOffsetMs: 3 }],
    unreachable: [],
    readiness: [
      {
        address: '172.30.0.11:15012',
        url: 'http://172.30.0.11:15014/healthz/ready',
        ready: true,
        detail: 'HTTP 200',
      },
    ],
    nodes: [node('n1'), node('n2')],
    resources,
    trust: {
      caDir: '/etc/meshd/ca',
      localRoots: [
        { fingerprint: 'AA', subject: 'O=cluster.local', notAfter: NOW + 3650 * 24 * HOUR },
      ],
      serverRoots: ['AA'],
      admin: { notAfter: NOW + 365 * 24 * HOUR },
    },
    agents: { n1: dump('n1', ['client']), n2: dump('n2', ['backend']) },
    host: {
      iptables: { ok: true, detail: 'iptables v1.8.9 (nf_tables)' },
      ip6tables: { ok: true, detail: 'ip6tables v1.8.9 (nf_tables)' },
      conntrack: true,
      addon: { ok: true, detail: 'loaded' },
    },
    agentLogHint: (n) => `its log: journalctl -u meshd-agent on ${n}`,
  };
}

const problems = (facts: Facts) =>
  runChecks(facts)
    .filter((r) => r.status !== 'ok')
    .map((r) => `${r.status} ${r.check} ${r.subject}`);

test('a healthy cluster passes every check (golden output)', () => {
  const results = runChecks(healthy());
  assert.deepEqual(problems(healthy()), []);
  const golden = readFileSync(
    new URL('../../../test/golden/check-healthy.txt', import.meta.url),
    'utf8',
  );
  assert.equal(renderChecks(results), golden.trimEnd());
});

test('a stopped agent fails its node and its workloads, with a hint naming the node', () => {
  const f = healthy();
  f.nodes[1] = node('n2', { connected: false, disconnectedAt: iso(NOW - 5000) });
  f.agents.n2 = { error: 'connection refused' };
  assert.deepEqual(problems(f), ['fail agent n2', 'fail capture n2']);
  const agent = runChecks(f).find((r) => r.check === 'agent' && r.subject === 'n2');
  assert.match(agent?.message ?? '', /disconnected since/);
  assert.match(agent?.hint ?? '', /meshd agent on n2; its log: journalctl -u meshd-agent on n2/);
});

test('an enrolled workload its agent did not capture fails; an unreachable agent view warns', () => {
  const f = healthy();
  f.agents.n1 = dump('n1', []);
  f.agents.n2 = { error: 'admin endpoint only on loopback' };
  assert.deepEqual(problems(f), ['fail capture demo/client', 'warn capture n2']);
});

test('clock skew: under 1 s passes, over 1 s warns, over 30 s fails', () => {
  const f = healthy();
  f.nodes[0] = node('n1', { clockSkewMs: 2_500 });
  f.nodes[1] = node('n2', { clockSkewMs: -45_000 });
  assert.deepEqual(problems(f), ['warn clock n1', 'fail clock n2']);
});

test('certificates: a quarter of life left warns (renewal failing), expired fails', () => {
  const f = healthy();
  f.agents.n1 = dump('n1', ['client'], [cert('spiffe://cluster.local/ns/demo/sa/client', 3)]);
  f.agents.n2 = dump('n2', ['backend'], [cert('spiffe://cluster.local/ns/demo/sa/backend', -1)]);
  assert.deepEqual(problems(f), [
    'warn certificates n1: spiffe://cluster.local/ns/demo/sa/client',
    'fail certificates n2: spiffe://cluster.local/ns/demo/sa/backend',
  ]);
});

test('servers: unreachable or not ready fail; a behind agent and a differing bundle warn', () => {
  const f = healthy();
  f.unreachable = [{ address: '172.30.0.12:15012', error: 'connect ECONNREFUSED' }];
  f.readiness[0] = { ...f.readiness[0]!, ready: false, detail: 'HTTP 503: stopping' };
  f.nodes[0] = node('n1', { revisionSent: 7 });
  f.trust.serverRoots = ['AA', 'BB'];
  assert.deepEqual(problems(f), [
    'fail server 172.30.0.12:15012',
    'fail server 172.30.0.11:15012',
    'warn trust trust bundle',
    'warn agent n1',
  ]);
});

test('kernel features and L7-only policy rules are reported', () => {
  const f = healthy();
  f.host.conntrack = false;
  f.resources = [
    ...resources,
    {
      apiVersion: 'meshd.io/v1alpha1',
      kind: 'AuthorizationPolicy',
      metadata: { name: 'get-only', namespace: 'demo' },
      spec: { action: 'ALLOW', rules: [{ to: [{ operation: { methods: ['GET'] } }] }] },
    } as unknown as Resource,
  ];
  assert.deepEqual(problems(f), ['fail kernel conntrack', 'warn policy demo/get-only']);
});

const with_ = (...extra: object[]) => {
  const f = healthy();
  // Later entries replace earlier ones of the same kind, namespace and name.
  const key = (r: Resource) => `${r.kind}/${r.metadata.namespace}/${r.metadata.name}`;
  const added = extra as Resource[];
  f.resources = [...resources.filter((r) => !added.some((a) => key(a) === key(r))), ...added];
  return f;
};

const find = (f: Facts, subject: string) =>
  runChecks(f).find((r) => r.subject === subject && r.status !== 'ok');

test('waypoints: a binding to a missing or replica-less waypoint fails, naming the binding', () => {
  // The only replica stops serving: the Service bound by spec.waypoint is refused.
  const f = with_({
    apiVersion: 'meshd.io/v1alpha1',
    kind: 'Workload',
    metadata: {
      name: 'wp-10-40-2-9',
      namespace: 'demo',
      labels: { 'meshd.io/dataplane-mode': 'none' },
      annotations: { 'meshd.io/waypoint-replica-of': 'wp' },
    },
    spec: { node: 'n2', addresses: ['10.40.2.9'], serviceAccount: 'wp' },
  });
  assert.deepEqual(problems(f), [
    'fail waypoint service demo/backend',
    'warn policy demo/backend-get',
  ]);
  const row = find(f, 'service demo/backend');
  assert.equal(
    row?.message,
    'bound to waypoint demo/wp by its spec.waypoint, which has no ready replica: its traffic is refused',
  );
  assert.match(row?.hint ?? '', /systemctl start meshd-waypoint@demo_wp/);
  assert.match(
    find(f, 'demo/backend-get')?.message ?? '',
    /targetRef Service\/backend: service demo\/backend is bound to waypoint demo\/wp, which has no ready replica .*the policy protects nothing/,
  );

  // A namespace label naming a waypoint that does not exist: one row for the namespace.
  const g = with_({
    apiVersion: 'meshd.io/v1alpha1',
    kind: 'Namespace',
    metadata: {
      name: 'demo',
      labels: { 'meshd.io/dataplane-mode': 'ambient', 'meshd.io/use-waypoint': 'l7' },
    },
  });
  assert.deepEqual(problems(g), ['fail waypoint namespace demo']);
  assert.equal(
    find(g, 'namespace demo')?.message,
    'label meshd.io/use-waypoint=l7 binds 2 workloads to waypoint demo/l7, which does not exist: their traffic is refused',
  );
  assert.equal(
    find(g, 'namespace demo')?.hint,
    'create it (meshctl waypoint apply l7 -n demo) or remove the binding',
  );
});

test('waypoints: a targetRefs policy no waypoint enforces warns: it protects nothing', () => {
  const f = with_(
    {
      apiVersion: 'meshd.io/v1alpha1',
      kind: 'Service',
      metadata: { name: 'backend', namespace: 'demo' },
      spec: {
        addresses: ['10.96.0.20'],
        ports: [{ port: 80, targetPort: 8080 }],
        selector: { matchLabels: { app: 'backend' } },
      },
    },
    {
      apiVersion: 'meshd.io/v1alpha1',
      kind: 'AuthorizationPolicy',
      metadata: { name: 'via-ghost', namespace: 'demo' },
      spec: { targetRefs: [{ kind: 'Waypoint', name: 'ghost' }] },
    },
  );
  // Nothing is bound to wp any more and its replica still serves: fine, it passes.
  assert.deepEqual(problems(f), ['warn policy demo/backend-get', 'warn policy demo/via-ghost']);
  assert.match(
    find(f, 'demo/backend-get')?.message ?? '',
    /service demo\/backend is bound to no waypoint .*the policy protects nothing/,
  );
  assert.match(find(f, 'demo/backend-get')?.hint ?? '', /meshctl label service backend -n demo/);
  assert.match(
    find(f, 'demo/via-ghost')?.message ?? '',
    /targetRef Waypoint\/ghost: waypoint demo\/ghost does not exist/,
  );
});
