// A waypoint in the lab: the agent hands traffic for a bound Service to `meshd waypoint`
// (fail closed while the waypoint is missing or has no ready replica), the waypoint applies L7
// authorization per request and reaches the endpoint over HBONE as itself, and counts the
// request in Istio's metrics.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  collectLines,
  eventually,
  supportScript,
  waitForLine,
  waitForOutput,
} from '../support/lab-helpers.js';
import { MeshE2E } from '../support/mesh-e2e.js';

const VIP = '10.96.7.7';
let mesh: MeshE2E;
let waypoint: ChildProcess | undefined;
const waypointLog: string[] = [];

const curl = async (...args: string[]) => {
  try {
    const { stdout } = await mesh.lab.exec('n1-w1', ['curl', '-sS', '--max-time', '5', ...args]);
    return { code: 0, out: stdout };
  } catch (err) {
    const e = err as { code?: number; exitCode?: number; stderr?: string; message?: string };
    return { code: e.exitCode ?? e.code ?? -1, out: `${e.stderr ?? ''}${e.message ?? ''}` };
  }
};

function startWaypoint(): ChildProcess {
  const child = mesh.spawn('n1-w2', [
    'env',
    'MESHD_WAYPOINT=shop/wp',
    `MESHD_AGENT_SOCKET=${join(mesh.dir, 'cni-n1.sock')}`,
    `MESHD_STATE_DIR=${join(mesh.dir, 'waypoint')}`,
    process.execPath,
    join(new URL('../../..', import.meta.url).pathname, 'dist/daemon/main.js'),
    'waypoint',
  ]);
  collectLines(child.stderr, waypointLog);
  return child;
}

before(async () => {
  mesh = await MeshE2E.create({
    nodes: 2,
    workloads: 2,
    register: [
      ['n1-w1', 'web'],
      ['n2-w1', 'api'],
    ],
    name: 'waypoint',
  });
  const server = mesh.spawn('n2-w1', [process.execPath, supportScript('http-hello'), '8080']);
  await waitForLine(server, 'listening');
  await mesh.apply(`apiVersion: meshd.io/v1alpha1
kind: Service
metadata: { name: api, namespace: shop, labels: { meshd.io/use-waypoint: wp } }
spec:
  addresses: [${VIP}]
  ports: [{ port: 80, targetPort: 8080, protocol: HTTP }]
  selector: { matchLabels: { app: api } }
`);
});

after(() => {
  if (process.env.MESHD_TEST_DEBUG) console.error(waypointLog.slice(-40).join('\n'));
  mesh?.destroy();
});

test('a binding to a missing waypoint is refused, logged with the binding, never sent direct', async () => {
  const r = await curl(`http://${VIP}/`);
  assert.notEqual(r.code, 0, `curl must fail: ${r.out}`);
  assert.doesNotMatch(r.out, /hello/);
  await eventually(
    'the agent logs the missing waypoint',
    async () => (mesh.logs.n1 ?? []).join('\n'),
    (log) => /bound to waypoint shop\/wp .*which does not exist/.test(log),
  );
});

test('a waypoint without a ready replica is refused too', async () => {
  await mesh.apply(`apiVersion: meshd.io/v1alpha1
kind: Waypoint
metadata: { name: wp, namespace: shop }
`);
  await eventually(
    'the agent refuses for want of a replica',
    async () => {
      await curl(`http://${VIP}/`);
      return (mesh.logs.n1 ?? []).join('\n');
    },
    (log) => /bound to waypoint shop\/wp .*which has no ready replica/.test(log),
  );
});

test('through a ready waypoint: answered, both identities logged, counted in istio_requests_total', async () => {
  waypoint = startWaypoint();
  await waitForOutput(waypoint, /"msg":"waypoint ready"/, 30_000);
  const r = await eventually(
    'GET through the waypoint',
    () => curl(`http://${VIP}/hi`),
    (v) => v.code === 0,
  );
  assert.equal(r.out, 'hello GET /hi 0\n');
  const line = await eventually(
    'the waypoint logs the request',
    async () => waypointLog.find((l) => l.includes('"request complete"') && l.includes('/hi')),
    Boolean,
  );
  const rec = JSON.parse(line as string) as Record<string, unknown>;
  assert.equal(rec.src, 'cluster.local/ns/shop/sa/web');
  assert.equal(rec.waypoint, 'cluster.local/ns/shop/sa/wp');
  assert.equal(rec.status, 200);
  assert.equal(rec.endpoint, 'shop/n2-w1');
  await eventually(
    "the destination agent's access log names the waypoint as the source",
    async () => (mesh.logs.n2 ?? []).join('\n'),
    (log) => /"direction":"inbound".*cluster\.local\/ns\/shop\/sa\/wp/.test(log),
  );
  const { stdout } = await mesh.lab.exec('n1-w2', [
    'curl',
    '-sS',
    'http://127.0.0.1:15020/metrics',
  ]);
  assert.match(
    stdout,
    /istio_requests_total\{reporter="waypoint",source_workload="n1-w1",.*destination_workload="n2-w1",.*destination_service="api\.shop\.svc\.cluster\.local",.*response_code="200".*\} [1-9]/,
  );
});

test('L7 policy at the waypoint: GET allowed, POST denied 403 with the policy named; a change reaches the next request', async () => {
  await mesh.apply(`apiVersion: meshd.io/v1alpha1
kind: AuthorizationPolicy
metadata: { name: api-read-only, namespace: shop }
spec:
  targetRefs: [{ kind: Service, name: api }]
  action: ALLOW
  rules: [{ to: [{ operation: { methods: [GET] } }] }]
`);
  const denied = await eventually(
    'POST denied',
    () => curl('-X', 'POST', '-d', 'x', '-w', ' %{http_code}', `http://${VIP}/write`),
    (v) => v.out.endsWith(' 403'),
  );
  assert.equal(denied.out, 'RBAC: access denied 403');
  const get = await curl(`http://${VIP}/read`);
  assert.equal(get.out, 'hello GET /read 0\n');
  const line = await eventually(
    'the waypoint logs the denial with the policy',
    async () =>
      waypointLog.find(
        (l) =>
          l.includes('"request complete"') && l.includes('/write') && l.includes('"status":403'),
      ),
    Boolean,
  );
  assert.match(line as string, /"policy":"shop\/api-read-only"/);
  await mesh.apply(`apiVersion: meshd.io/v1alpha1
kind: AuthorizationPolicy
metadata: { name: api-read-only, namespace: shop }
spec:
  targetRefs: [{ kind: Service, name: api }]
  action: ALLOW
  rules: [{ to: [{ operation: { methods: [GET, POST] } }] }]
`);
  const allowed = await eventually(
    'POST allowed after the change',
    () => curl('-X', 'POST', '-d', 'xyz', `http://${VIP}/write`),
    (v) => v.code === 0 && v.out.startsWith('hello'),
  );
  assert.equal(allowed.out, 'hello POST /write 3\n');
});

test('with an L7 policy on the service, a direct call to the endpoint pod IP is refused by its agent', async () => {
  const pod = mesh.lab.member('n2-w1').ipv4;
  const r = await curl(`http://${pod}:8080/direct`);
  assert.notEqual(r.code, 0, `the direct call must fail: ${r.out}`);
  assert.doesNotMatch(r.out, /hello/);
  await eventually(
    "the endpoint's agent logs the refusal and names the policy",
    async () => (mesh.logs.n2 ?? []).join('\n'),
    (log) => /denied: waypoint_required.*"policy":"shop\/api-read-only"/.test(log),
  );
});

test('opaque TCP through the waypoint: its policies apply at L4 (a DENY by principal refuses the connection)', async () => {
  await mesh.apply(`apiVersion: meshd.io/v1alpha1
kind: Service
metadata: { name: api-tcp, namespace: shop, labels: { meshd.io/use-waypoint: wp } }
spec:
  addresses: [10.96.7.8]
  ports: [{ port: 81, targetPort: 8080, protocol: TCP }]
  selector: { matchLabels: { app: api } }
`);
  const open = await eventually(
    'TCP through the waypoint',
    () => curl('http://10.96.7.8:81/tcp'),
    (v) => v.code === 0,
  );
  assert.equal(open.out, 'hello GET /tcp 0\n');
  await mesh.apply(`apiVersion: meshd.io/v1alpha1
kind: AuthorizationPolicy
metadata: { name: no-web-tcp, namespace: shop }
spec:
  targetRefs: [{ kind: Service, name: api-tcp }]
  action: DENY
  rules: [{ from: [{ source: { principals: [cluster.local/ns/shop/sa/web] } }] }]
`);
  const refused = await eventually(
    'refused by the DENY',
    () => curl('http://10.96.7.8:81/tcp2'),
    (v) => v.code !== 0,
  );
  assert.doesNotMatch(refused.out, /hello/);
  await eventually(
    'the waypoint records the refusal with the policy',
    async () =>
      waypointLog.find((l) => l.includes('"protocol":"tcp"') && l.includes('"flags":"DENY"')),
    (l) => /"policy":"shop\/no-web-tcp"/.test(l ?? ''),
  );
});

test('a stopped replica: refused again, nothing goes direct', async () => {
  assert.ok(waypoint);
  waypoint.kill('SIGTERM');
  await new Promise((r) => waypoint?.once('exit', r));
  const r = await eventually(
    'refused after the stop',
    () => curl(`http://${VIP}/`),
    (v) => v.code !== 0,
  );
  assert.doesNotMatch(r.out, /hello/);
});
