// meshctl why: the same evaluation as the agents, explained, for workloads and services.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { explain } from '../../ctl/why-cmd.js';
import {
  DEFAULT_REQUEST,
  needsHops,
  parseHeaders,
  tracePath,
  traceText,
  type WhyHop,
  type WhyTrace,
} from '../../ctl/why-path.js';
import { MeshState, type Resource, validateResource } from '../../daemon/model/index.js';
import { startTestServer } from '../support/registry.js';

const r = (o: object) => {
  const v = validateResource(o);
  assert.ok(v.ok, JSON.stringify(v));
  return v.resource as Resource;
};
const wl = (name: string, ns: string, ip: string, app: string) =>
  r({
    apiVersion: 'meshd.io/v1alpha1',
    kind: 'Workload',
    metadata: { name, namespace: ns, labels: { app } },
    spec: { node: 'n1', addresses: [ip], serviceAccount: name },
  });

function state(): MeshState {
  const s = new MeshState();
  s.replaceAll(
    [
      r({
        apiVersion: 'meshd.io/v1alpha1',
        kind: 'Namespace',
        metadata: { name: 'shop', labels: { 'meshd.io/dataplane-mode': 'ambient' } },
      }),
      r({ apiVersion: 'meshd.io/v1alpha1', kind: 'Namespace', metadata: { name: 'legacy' } }),
      wl('web', 'shop', '10.0.0.1', 'web'),
      wl('api', 'shop', '10.0.0.2', 'api'),
      wl('old', 'legacy', '10.0.0.3', 'old'),
      r({
        apiVersion: 'meshd.io/v1alpha1',
        kind: 'Service',
        metadata: { name: 'api', namespace: 'shop' },
        spec: {
          addresses: ['10.96.0.1'],
          ports: [{ port: 80, targetPort: 8080 }],
          selector: { matchLabels: { app: 'api' } },
        },
      }),
      r({
        apiVersion: 'meshd.io/v1alpha1',
        kind: 'AuthorizationPolicy',
        metadata: { name: 'deny-old', namespace: 'shop' },
        spec: {
          selector: { matchLabels: { app: 'api' } },
          action: 'DENY',
          rules: [{ to: [{ operation: { ports: [9090] } }] }],
        },
      }),
    ],
    1,
  );
  return s;
}

const TD = { trustDomain: 'cluster.local' };

test('mesh to mesh: HBONE, allowed by default; a DENY policy is named', () => {
  const s = state();
  assert.deepEqual(explain(s, 'shop/web', '10.0.0.2:8080', TD), {
    source: 'shop/web',
    destination: 'shop/api:8080',
    path: 'hbone',
    allowed: true,
    reason: 'allowed_by_default',
  });
  const denied = explain(s, 'web', '10.0.0.2:9090', { ...TD, namespace: 'shop' });
  assert.equal(denied.allowed, false);
  assert.equal(denied.policy, 'shop/deny-old');
  assert.equal(denied.reason, 'denied_by_policy');
});

test('a service VIP resolves to its endpoint and target port', () => {
  const a = explain(state(), 'shop/web', '10.96.0.1:80', TD);
  assert.equal(a.service, 'shop/api');
  assert.equal(a.endpoint, '10.0.0.2:8080');
  assert.equal(a.path, 'hbone');
});

test('paths to and from workloads outside the mesh', () => {
  const s = state();
  assert.equal(explain(s, 'shop/web', '10.0.0.3:80', TD).path, 'passthrough');
  const inbound = explain(s, 'legacy/old', '10.0.0.2:8080', TD);
  assert.equal(inbound.path, 'plaintext-inbound');
  assert.equal(inbound.allowed, true, 'PERMISSIVE by default');
  assert.throws(
    () => explain(s, 'shop/nobody', '10.0.0.2:80', TD),
    /source shop\/nobody is neither/,
  );
  assert.throws(() => explain(s, 'shop/web', '10.0.0.2', TD), /is not HOST:PORT/);
});

test('meshctl why against a server', async () => {
  const t = await startTestServer();
  try {
    const file = join(t.dir, 'r.yaml');
    writeFileSync(
      file,
      'apiVersion: meshd.io/v1alpha1\nkind: Namespace\nmetadata: { name: shop, labels: { meshd.io/dataplane-mode: ambient } }\n---\napiVersion: meshd.io/v1alpha1\nkind: Workload\nmetadata: { name: web, namespace: shop }\nspec: { node: n1, addresses: [10.0.0.1], serviceAccount: web }\n---\napiVersion: meshd.io/v1alpha1\nkind: Workload\nmetadata: { name: api, namespace: shop }\nspec: { node: n1, addresses: [10.0.0.2], serviceAccount: api }\n---\napiVersion: meshd.io/v1alpha1\nkind: AuthorizationPolicy\nmetadata: { name: only-db, namespace: shop }\nspec: { action: ALLOW, rules: [{ from: [{ source: { principals: [cluster.local/ns/shop/sa/db] } }] }] }\n',
    );
    const ctl = new URL('../../ctl/main.js', import.meta.url).pathname;
    const env = {
      ...process.env,
      MESHCTL_SERVER: t.address,
      MESHCTL_CA_DIR: t.caDir,
      MESHCTL_CONFIG: join(t.dir, 'none.yaml'),
    };
    await promisify(execFile)(process.execPath, [ctl, 'apply', '-f', file], { env });
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [ctl, 'why', 'shop/web', '10.0.0.2:8080'],
      { env },
    );
    assert.equal(
      stdout,
      'shop/web -> shop/api:8080\npath:     hbone\ndecision: DENY (no_matching_allow)\n',
    );
    // Through a waypoint: POST stops at its L7 policy; GET passes it and meets the namespace's
    // L4 ALLOW policy, which does not list the waypoint's identity.
    writeFileSync(
      file,
      'apiVersion: meshd.io/v1alpha1\nkind: Waypoint\nmetadata: { name: wp, namespace: shop }\n---\napiVersion: meshd.io/v1alpha1\nkind: Workload\nmetadata: { name: wp-a, namespace: shop, labels: { meshd.io/dataplane-mode: none, meshd.io/waypoint: wp } }\nspec: { node: n3, addresses: [10.0.0.9], serviceAccount: wp }\n---\napiVersion: meshd.io/v1alpha1\nkind: Workload\nmetadata: { name: orders, namespace: shop, labels: { app: orders } }\nspec: { node: n2, addresses: [10.0.0.4], serviceAccount: orders }\n---\napiVersion: meshd.io/v1alpha1\nkind: Service\nmetadata: { name: orders, namespace: shop }\nspec: { addresses: [10.96.0.4], ports: [{ port: 80, targetPort: 8080 }], selector: { matchLabels: { app: orders } }, waypoint: wp }\n---\napiVersion: meshd.io/v1alpha1\nkind: AuthorizationPolicy\nmetadata: { name: get-only, namespace: shop }\nspec: { targetRefs: [{ kind: Service, name: orders }], action: ALLOW, rules: [{ to: [{ operation: { methods: [GET] } }] }] }\n',
    );
    await promisify(execFile)(process.execPath, [ctl, 'apply', '-f', file], { env });
    const why = async (...args: string[]) =>
      (await promisify(execFile)(process.execPath, [ctl, 'why', 'shop/web', ...args], { env }))
        .stdout;
    const post = JSON.parse(
      await why('10.96.0.4:80', '--method', 'POST', '--header', 'X-Team=a', '-o', 'json'),
    );
    assert.equal(post.deniedAt, 'waypoint');
    assert.equal(post.policy, 'shop/get-only');
    assert.deepEqual(post.hops[1].request.headers, { 'x-team': 'a' });
    const get = await why('10.96.0.4:80');
    assert.match(get, /note: +no --method\/--path given/);
    assert.match(get, /shop\/orders 10.0.0.4:8080: DENY by shop\/only-db \(no_matching_allow\)/);
    assert.match(get, /\ndecision: DENY at the destination agent by shop\/only-db/);
  } finally {
    await t.close();
  }
});

// Through waypoints: the source agent's plan, the waypoint's L7 decision, the destination
// agent's L4 decision on the waypoint's identity. One row per path.
const wp = (name: string, extra: object = {}) =>
  r({
    apiVersion: 'meshd.io/v1alpha1',
    kind: 'Waypoint',
    metadata: { name, namespace: 'shop' },
    spec: extra,
  });
const replica = (name: string, of: string, ip: string, labels: Record<string, string> = {}) =>
  r({
    apiVersion: 'meshd.io/v1alpha1',
    kind: 'Workload',
    metadata: {
      name,
      namespace: 'shop',
      labels: { 'meshd.io/dataplane-mode': 'none', ...labels },
      annotations: { 'meshd.io/waypoint-replica-of': of },
    },
    spec: { node: 'n3', addresses: [ip], serviceAccount: of },
  });
const ready = (name: string, of: string, ip: string) =>
  replica(name, of, ip, { 'meshd.io/waypoint': of });
const guarded = (waypoint: string, ports: object[] = [{ port: 80, targetPort: 8080 }]) =>
  r({
    apiVersion: 'meshd.io/v1alpha1',
    kind: 'Service',
    metadata: { name: 'guarded', namespace: 'shop' },
    spec: {
      addresses: ['10.96.0.5'],
      ports,
      selector: { matchLabels: { app: 'api' } },
      waypoint,
    },
  });
const getOnly = r({
  apiVersion: 'meshd.io/v1alpha1',
  kind: 'AuthorizationPolicy',
  metadata: { name: 'get-only', namespace: 'shop' },
  spec: {
    targetRefs: [{ kind: 'Service', name: 'guarded' }],
    action: 'ALLOW',
    rules: [{ to: [{ operation: { methods: ['GET'] } }] }],
  },
});
const onlyWeb = r({
  apiVersion: 'meshd.io/v1alpha1',
  kind: 'AuthorizationPolicy',
  metadata: { name: 'only-web', namespace: 'shop' },
  spec: {
    selector: { matchLabels: { app: 'api' } },
    action: 'ALLOW',
    rules: [{ from: [{ source: { principals: ['cluster.local/ns/shop/sa/web'] } }] }],
  },
});

function stateWith(...extra: Resource[]): MeshState {
  const s = state();
  for (const resource of extra) s.apply({ type: 'put', resource, revision: s.revision + 1 });
  return s;
}

/** A hop reduced to what a row asserts. */
function hopLine(h: WhyHop): string {
  const v = h.allowed ? 'ALLOW' : 'DENY';
  switch (h.hop) {
    case 'source-agent':
      return `source ${h.plan}${h.waypoint ? ` ${h.waypoint} by ${h.boundBy} [${h.replicas}]` : ''}${h.reason ? ` ${h.reason}` : ''} ${v}`;
    case 'waypoint':
      return `waypoint ${h.waypoint} ${h.destination ?? '-'} ${v}${h.policy ? ` by ${h.policy}` : ''}${h.rule !== undefined ? ` rule ${h.rule}` : ''} (${h.reason})`;
    case 'destination-agent':
      return `destination as ${h.sourceIdentity}: ${h.endpoints.map((e) => `${e.endpoint} ${e.address} ${e.allowed ? 'ALLOW' : 'DENY'}${e.policy ? ` by ${e.policy}` : ''} (${e.reason})`)}`;
  }
}

const WP_ID = 'spiffe://cluster.local/ns/shop/sa/wp';
const WEB_ID = 'spiffe://cluster.local/ns/shop/sa/web';
const REPLICA = 'shop/wp-a 10.0.0.9 (node n3)';

const rows: {
  name: string;
  extra: Resource[];
  dst?: string;
  request?: Partial<typeof DEFAULT_REQUEST>;
  hops: string[];
  answer: Partial<WhyTrace>;
}[] = [
  {
    name: 'service via waypoint: allowed at every hop',
    extra: [wp('wp'), ready('wp-a', 'wp', '10.0.0.9'), guarded('wp'), getOnly],
    hops: [
      `source waypoint shop/wp by the Service's spec.waypoint [${REPLICA}] ALLOW`,
      'waypoint shop/wp service shop/guarded ALLOW by shop/get-only rule 0 (allowed_by_policy)',
      `destination as ${WP_ID}: shop/api 10.0.0.2:8080 ALLOW (allowed_by_default)`,
    ],
    answer: { allowed: true, waypoint: 'shop/wp', service: 'shop/guarded' },
  },
  {
    name: 'POST denied at the waypoint by an ALLOW-GET policy, named',
    extra: [wp('wp'), ready('wp-a', 'wp', '10.0.0.9'), guarded('wp'), getOnly],
    request: { method: 'POST', path: '/orders', given: true },
    hops: [
      `source waypoint shop/wp by the Service's spec.waypoint [${REPLICA}] ALLOW`,
      'waypoint shop/wp service shop/guarded DENY by shop/get-only (no_matching_allow)',
    ],
    answer: {
      allowed: false,
      deniedAt: 'waypoint',
      policy: 'shop/get-only',
      reason: 'no_matching_allow',
    },
  },
  {
    name: "denied at the destination agent: its L4 policy does not allow the waypoint's identity",
    extra: [wp('wp'), ready('wp-a', 'wp', '10.0.0.9'), guarded('wp'), onlyWeb],
    hops: [
      `source waypoint shop/wp by the Service's spec.waypoint [${REPLICA}] ALLOW`,
      'waypoint shop/wp service shop/guarded ALLOW (allowed_by_default)',
      `destination as ${WP_ID}: shop/api 10.0.0.2:8080 DENY by shop/only-web (no_matching_allow)`,
    ],
    answer: {
      allowed: false,
      deniedAt: 'destination-agent',
      policy: 'shop/only-web',
      reason: 'no_matching_allow',
    },
  },
  {
    name: "the namespace's label binds, and a workload addressed directly goes via the waypoint too",
    extra: [
      r({
        apiVersion: 'meshd.io/v1alpha1',
        kind: 'Namespace',
        metadata: {
          name: 'shop',
          labels: { 'meshd.io/dataplane-mode': 'ambient', 'meshd.io/use-waypoint': 'wp' },
        },
      }),
      wp('wp', { trafficType: 'all' }),
      ready('wp-a', 'wp', '10.0.0.9'),
    ],
    dst: '10.0.0.2:8080',
    hops: [
      `source waypoint shop/wp by namespace shop's meshd.io/use-waypoint label [${REPLICA}] ALLOW`,
      'waypoint shop/wp workload shop/api ALLOW (allowed_by_default)',
      `destination as ${WP_ID}: shop/api 10.0.0.2:8080 ALLOW (allowed_by_default)`,
    ],
    answer: { allowed: true, destination: '10.0.0.2:8080' },
  },
  {
    name: 'a TCP port: opaque at the waypoint, no L7 policy applies',
    extra: [
      wp('wp'),
      ready('wp-a', 'wp', '10.0.0.9'),
      guarded('wp', [{ port: 80, targetPort: 8080, protocol: 'TCP' }]),
      getOnly,
    ],
    request: { method: 'POST', given: true },
    hops: [
      `source waypoint shop/wp by the Service's spec.waypoint [${REPLICA}] ALLOW`,
      'waypoint shop/wp service shop/guarded ALLOW (opaque_tcp)',
      `destination as ${WP_ID}: shop/api 10.0.0.2:8080 ALLOW (allowed_by_default)`,
    ],
    answer: { allowed: true },
  },
  {
    name: 'bound to a missing waypoint: refused at the source agent',
    extra: [guarded('ghost')],
    hops: ['source refuse waypoint-missing DENY'],
    answer: { allowed: false, deniedAt: 'source-agent', reason: 'waypoint-missing' },
  },
  {
    name: 'a waypoint without a ready replica: refused at the source agent',
    extra: [wp('wp'), replica('wp-a', 'wp', '10.0.0.9'), guarded('wp')],
    hops: ['source refuse waypoint-unready DENY'],
    answer: { allowed: false, deniedAt: 'source-agent', reason: 'waypoint-unready' },
  },
  {
    name: 'a service without a waypoint: straight to its endpoints, as the source',
    extra: [],
    dst: '10.96.0.1:80',
    hops: [
      'source service ALLOW',
      `destination as ${WEB_ID}: shop/api 10.0.0.2:8080 ALLOW (allowed_by_default)`,
    ],
    answer: { allowed: true, service: 'shop/api' },
  },
];

for (const row of rows) {
  test(`why through waypoints: ${row.name}`, () => {
    const s = stateWith(...row.extra);
    const request = { ...DEFAULT_REQUEST, ...row.request };
    const t = tracePath(s, 'shop/web', row.dst ?? '10.96.0.5:80', { ...TD, request });
    assert.ok(t);
    assert.deepEqual(t.hops.map(hopLine), row.hops);
    for (const [k, v] of Object.entries(row.answer)) {
      assert.deepEqual(t[k as keyof WhyTrace], v, k);
    }
    assert.equal(
      needsHops(t),
      row.dst !== '10.96.0.1:80',
      'hops are shown for waypoints and refusals',
    );
  });
}

test('why through a waypoint: the text names each hop, the request and the policy', () => {
  const s = stateWith(wp('wp'), ready('wp-a', 'wp', '10.0.0.9'), guarded('wp'), getOnly);
  const post = tracePath(s, 'shop/web', '10.96.0.5:80', {
    ...TD,
    request: { method: 'POST', path: '/orders', headers: parseHeaders(['X-Team=a']), given: true },
  });
  assert.ok(post);
  assert.equal(
    traceText(post),
    [
      'shop/web -> 10.96.0.5:80 (service shop/guarded)',
      `source agent (node n1): shop/web as ${WEB_ID}`,
      "  plan:     waypoint shop/wp, bound by the Service's spec.waypoint",
      `  replicas: ${REPLICA}`,
      '  decision: ALLOW',
      `waypoint shop/wp as ${WP_ID}`,
      '  destination: service shop/guarded (protocol detect)',
      `  request:  POST /orders host 10.96.0.5:80 x-team=a from ${WEB_ID}`,
      '  decision: DENY by shop/get-only (no_matching_allow)',
      'decision: DENY at the waypoint by shop/get-only (no_matching_allow)',
    ].join('\n'),
  );
  const get = tracePath(s, 'shop/web', '10.96.0.5:80', TD);
  assert.ok(get);
  const text = traceText(get);
  assert.match(text, /decision: ALLOW by shop\/get-only rule 0 \(allowed_by_policy/);
  assert.match(text, /note: +no --method\/--path given: this is for GET \//);
  assert.match(
    text,
    /destination agent: source spiffe:\/\/cluster.local\/ns\/shop\/sa\/wp \(the waypoint's identity\)/,
  );
  assert.match(text, /\ndecision: ALLOW at every hop$/);
  const l4 = tracePath(
    stateWith(wp('wp'), ready('wp-a', 'wp', '10.0.0.9'), guarded('wp'), onlyWeb),
    'shop/web',
    '10.96.0.5:80',
    TD,
  );
  assert.ok(l4);
  assert.match(traceText(l4), /decision: ALLOW \(allowed_by_default: no ALLOW policy applies\)/);
  assert.match(
    traceText(l4),
    /shop\/api 10.0.0.2:8080: DENY by shop\/only-web \(no_matching_allow\)/,
  );
  const missing = tracePath(stateWith(guarded('ghost')), 'shop/web', '10.96.0.5:80', TD);
  assert.ok(missing);
  assert.match(
    traceText(missing),
    /plan: +refuse \(waypoint-missing\): service shop\/guarded is bound to waypoint shop\/ghost \(bound by its spec.waypoint or label\), which does not exist/,
  );
});

test('why: no trace for a source outside the mesh; headers parse NAME=VALUE', () => {
  const s = stateWith(wp('wp'), ready('wp-a', 'wp', '10.0.0.9'), guarded('wp'));
  assert.equal(tracePath(s, 'legacy/old', '10.96.0.5:80', TD), undefined);
  assert.deepEqual(parseHeaders(['A=1', 'a=2', 'b=x=y']), { a: '1, 2', b: 'x=y' });
  assert.throws(() => parseHeaders(['novalue']), /is not NAME=VALUE/);
});
