// Every kind: valid examples are accepted (with defaults applied), and each rule refuses bad
// input with the exact field path and reason.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  formatFieldErrors,
  KINDS,
  type Resource,
  validateResource,
  workloadIdentity,
} from '../../daemon/model/index.js';

const V = 'meshd.io/v1alpha1';
type Obj = Record<string, unknown>;

const examples: Record<string, Obj> = {
  Namespace: {
    apiVersion: V,
    kind: 'Namespace',
    metadata: {
      name: 'shop',
      labels: { 'meshd.io/dataplane-mode': 'ambient', 'meshd.io/use-waypoint': 'shop-wp' },
    },
  },
  Workload: {
    apiVersion: V,
    kind: 'Workload',
    metadata: { name: 'web-1', namespace: 'shop', labels: { app: 'web' } },
    spec: {
      node: 'node-1',
      addresses: ['10.0.1.5', 'fd00::5'],
      ports: [{ name: 'http', port: 8080, protocol: 'HTTP' }],
      netns: '/var/run/netns/web-1',
    },
  },
  Service: {
    apiVersion: V,
    kind: 'Service',
    metadata: { name: 'web', namespace: 'shop' },
    spec: {
      addresses: ['10.96.0.10'],
      ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'HTTP' }, { port: 443 }],
      selector: { matchLabels: { app: 'web' } },
      waypoint: 'shop-wp',
      loadBalancing: { mode: 'LeastConnections' },
    },
  },
  AuthorizationPolicy: {
    apiVersion: V,
    kind: 'AuthorizationPolicy',
    metadata: { name: 'web-allow', namespace: 'shop' },
    spec: {
      selector: { matchLabels: { app: 'web' } },
      rules: [
        {
          from: [
            {
              source: {
                principals: ['cluster.local/ns/shop/sa/front', '*/sa/admin'],
                notNamespaces: ['test-*'],
                ipBlocks: ['10.0.0.0/8', 'fd00::/8', '192.168.1.1'],
              },
            },
          ],
          to: [{ operation: { ports: [8080], methods: ['GET', 'POST'], paths: ['/api/*'] } }],
        },
        {},
      ],
    },
  },
  PeerAuthentication: {
    apiVersion: V,
    kind: 'PeerAuthentication',
    metadata: { name: 'default', namespace: 'meshd-system' },
    spec: { mtls: { mode: 'STRICT' } },
  },
  Waypoint: {
    apiVersion: V,
    kind: 'Waypoint',
    metadata: { name: 'shop-wp', namespace: 'shop' },
    spec: { trafficType: 'all', replicas: 2 },
  },
  HTTPRoute: {
    apiVersion: V,
    kind: 'HTTPRoute',
    metadata: { name: 'web-split', namespace: 'shop' },
    spec: {
      parentRefs: [{ name: 'web', port: 80 }],
      hostnames: ['web.shop', '*.example.com'],
      rules: [
        {
          matches: [
            {
              path: { type: 'Exact', value: '/login' },
              method: 'POST',
              headers: [{ name: 'x-canary', value: 'yes' }],
            },
          ],
          backendRefs: [
            { name: 'web-v2', port: 80, weight: 10 },
            { name: 'web-v1', port: 80 },
          ],
          timeouts: { request: '10s' },
          retry: { attempts: 3, perTryTimeout: '1m30s' },
        },
      ],
    },
  },
};

function clone(value: Obj): Obj {
  return JSON.parse(JSON.stringify(value)) as Obj;
}

/** A copy of `base` with the field at a dotted path (numbers index lists) set or removed. */
function withField(base: Obj, path: string, value: unknown): Obj {
  const out = clone(base);
  const parts = path.split('.');
  let cur: Record<string, unknown> = out;
  for (const p of parts.slice(0, -1)) {
    if (cur[p] === undefined) cur[p] = {};
    cur = cur[p] as Record<string, unknown>;
  }
  const last = parts.at(-1) ?? '';
  if (value === undefined) delete cur[last];
  else cur[last] = value;
  return out;
}

function accepted(input: Obj): Resource {
  const result = validateResource(input);
  assert.ok(result.ok, result.ok ? '' : formatFieldErrors(result.errors));
  return result.resource;
}

/** Refused with exactly these `path: message` lines. */
function refused(input: unknown, ...expected: string[]): void {
  const result = validateResource(input);
  assert.equal(result.ok, false, 'expected the resource to be refused');
  if (result.ok) return;
  assert.deepEqual(
    result.errors.map((e) => (e.path ? `${e.path}: ${e.message}` : e.message)),
    expected,
  );
}

test('the examples of every kind are accepted', () => {
  assert.deepEqual(Object.keys(examples).sort(), [...KINDS].sort());
  for (const example of Object.values(examples)) accepted(example);
});

test('defaults are applied: serviceAccount, targetPort, action, trafficType, weight, path type', () => {
  const w = accepted(examples.Workload!);
  assert.equal(w.kind === 'Workload' && w.spec.serviceAccount, 'default');
  assert.equal(
    w.kind === 'Workload' && workloadIdentity(w, 'cluster.local'),
    'spiffe://cluster.local/ns/shop/sa/default',
  );
  const s = accepted(examples.Service!);
  assert.deepEqual(s.kind === 'Service' && s.spec.ports, [
    { name: 'http', port: 80, targetPort: 8080, protocol: 'HTTP' },
    { port: 443, targetPort: 443 },
  ]);
  const lb = accepted(withField(examples.Service!, 'spec.loadBalancing', {}));
  assert.deepEqual(lb.kind === 'Service' && lb.spec.loadBalancing, { mode: 'RoundRobin' });
  const p = accepted(examples.AuthorizationPolicy!);
  assert.equal(p.kind === 'AuthorizationPolicy' && p.spec.action, 'ALLOW');
  const allowNothing = accepted(withField(examples.AuthorizationPolicy!, 'spec', undefined));
  assert.deepEqual(allowNothing.spec, { action: 'ALLOW' });
  const wp = accepted(withField(examples.Waypoint!, 'spec', undefined));
  assert.deepEqual(wp.spec, { trafficType: 'service' });
  const r = accepted(
    withField(examples.HTTPRoute!, 'spec.rules', [
      { matches: [{ path: { value: '/' } }], backendRefs: [{ name: 'web', port: 80 }] },
    ]),
  );
  assert.ok(r.kind === 'HTTPRoute');
  assert.deepEqual(r.spec.parentRefs[0], { kind: 'Service', name: 'web', port: 80 });
  assert.deepEqual(r.spec.rules[0]?.matches?.[0]?.path, { type: 'PathPrefix', value: '/' });
  assert.equal(r.spec.rules[0]?.backendRefs?.[0]?.weight, 1);
  const ns = accepted({ apiVersion: V, kind: 'Namespace', metadata: { name: 'x' }, spec: {} });
  assert.deepEqual(ns.metadata, { name: 'x' });
});

test('envelope: not an object, apiVersion, unknown kind (with a suggestion), top-level fields', () => {
  refused([], 'expected an object with apiVersion, kind, metadata and spec, got list');
  refused('x', 'expected an object with apiVersion, kind, metadata and spec, got string');
  refused(
    withField(examples.Service!, 'apiVersion', 'v1'),
    'apiVersion: must be meshd.io/v1alpha1, got "v1"',
  );
  refused(
    withField(examples.Service!, 'apiVersion', undefined),
    'apiVersion: required (meshd.io/v1alpha1)',
  );
  const known =
    'known kinds: Namespace, Workload, Service, AuthorizationPolicy, PeerAuthentication, Waypoint, HTTPRoute';
  refused(
    withField(examples.Service!, 'kind', 'Deployment'),
    `kind: unknown kind "Deployment"; ${known}`,
  );
  refused(
    withField(examples.Service!, 'kind', 'service'),
    `kind: unknown kind "service" (did you mean "Service"?); ${known}`,
  );
  refused(withField(examples.Service!, 'kind', undefined), `kind: required (${known})`);
  refused(
    withField(examples.Service!, 'status', {}),
    'status: unknown field (known fields: apiVersion, kind, metadata, spec)',
  );
  refused(withField(examples.Service!, 'spec', undefined), 'spec: required');
  refused(withField(examples.Service!, 'spec', 'x'), 'spec: expected object, got string');
});

test('metadata rules (every kind)', () => {
  const s = examples.Service!;
  refused(
    withField(s, 'metadata.name', 'Web'),
    'metadata.name: must be a DNS label: lowercase letters, digits and "-", starting and ending with a letter or digit',
  );
  refused(
    withField(s, 'metadata.name', 'a'.repeat(64)),
    'metadata.name: must be at most 63 characters (has 64)',
  );
  refused(withField(s, 'metadata.name', ''), 'metadata.name: must not be empty');
  refused(withField(s, 'metadata.name', undefined), 'metadata.name: required');
  refused(
    withField(s, 'metadata.namespace', undefined),
    'metadata.namespace: required: every kind except Namespace lives in a namespace',
  );
  refused(
    withField(s, 'metadata.namespace', '-x'),
    'metadata.namespace: must be a DNS label: lowercase letters, digits and "-", starting and ending with a letter or digit',
  );
  refused(
    withField(s, 'metadata.generation', 1),
    'metadata.generation: unknown field (known fields: annotations, creationTimestamp, labels, name, namespace, resourceVersion, uid)',
  );
  refused(
    withField(s, 'metadata.nmae', 'x'),
    'metadata.nmae: unknown field (did you mean "name"?)',
  );
  accepted(withField(s, 'metadata.labels', { 'app.kubernetes.io/name': 'web', tier: '' }));
  refused(
    withField(s, 'metadata.labels', { 'bad key': 'x' }),
    'metadata.labels["bad key"]: invalid key: name part must consist of letters, digits, "-", "_" or ".", starting and ending with a letter or digit',
  );
  refused(
    withField(s, 'metadata.labels', { 'Example.com/x': 'y' }),
    'metadata.labels[Example.com/x]: invalid key: prefix part must be a DNS subdomain: lowercase letters, digits, "-" and ".", each part starting and ending with a letter or digit',
  );
  refused(
    withField(s, 'metadata.labels', { app: 'a b' }),
    'metadata.labels[app]: must consist of letters, digits, "-", "_" or ".", starting and ending with a letter or digit (or be empty)',
  );
  refused(
    withField(s, 'metadata.labels', { app: 3 }),
    'metadata.labels[app]: expected string, got number',
  );
  refused(
    withField(s, 'metadata.labels', { 'meshd.io/dataplane-mode': 'Ambient' }),
    'metadata.labels[meshd.io/dataplane-mode]: must be ambient or none, got "Ambient"',
  );
  refused(
    withField(s, 'metadata.labels', { 'meshd.io/use-waypoint': 'WP' }),
    'metadata.labels[meshd.io/use-waypoint]: must name a Waypoint (or be "none"): must be a DNS label: lowercase letters, digits and "-", starting and ending with a letter or digit',
  );
  accepted(withField(s, 'metadata.annotations', { 'example.com/note': 'any text at all' }));
  accepted(withField(s, 'metadata.creationTimestamp', '2025-01-31T12:00:00.123Z'));
  refused(
    withField(s, 'metadata.creationTimestamp', 'yesterday'),
    'metadata.creationTimestamp: "yesterday" is not an RFC 3339 timestamp (like 2025-01-31T12:00:00Z)',
  );
  refused(
    withField(examples.Namespace!, 'metadata.namespace', 'x'),
    'metadata.namespace: must not be set: a Namespace does not live in a namespace',
  );
  refused(
    withField(examples.Namespace!, 'spec', { finalizers: [] }),
    'spec.finalizers: unknown field',
  );
});

test('Workload rules', () => {
  const w = examples.Workload!;
  const cases: [string, unknown, ...string[]][] = [
    ['spec.node', undefined, 'spec.node: required'],
    [
      'spec.node',
      'Node_1',
      'spec.node: must be a DNS label: lowercase letters, digits and "-", starting and ending with a letter or digit',
    ],
    ['spec.addresses', [], 'spec.addresses: must have at least 1 item'],
    ['spec.addresses', '10.0.0.1', 'spec.addresses: expected list, got string'],
    [
      'spec.addresses',
      ['10.0.0.256'],
      'spec.addresses[0]: "10.0.0.256" is not an IP address (IPv4 like 10.0.0.1 or IPv6 like fd00::1, no zone or prefix)',
    ],
    [
      'spec.addresses',
      ['10.0.0.0/24'],
      'spec.addresses[0]: "10.0.0.0/24" is not an IP address (IPv4 like 10.0.0.1 or IPv6 like fd00::1, no zone or prefix)',
    ],
    [
      'spec.addresses',
      ['fe80::1%eth0'],
      'spec.addresses[0]: "fe80::1%eth0" is not an IP address (IPv4 like 10.0.0.1 or IPv6 like fd00::1, no zone or prefix)',
    ],
    ['spec.addresses', ['0.0.0.0'], 'spec.addresses[0]: "0.0.0.0" is the unspecified address'],
    ['spec.addresses', ['127.0.0.1'], 'spec.addresses[0]: "127.0.0.1" is a loopback address'],
    ['spec.addresses', ['::1'], 'spec.addresses[0]: "::1" is a loopback address'],
    [
      'spec.addresses',
      ['224.0.0.1'],
      'spec.addresses[0]: "224.0.0.1" is a multicast or reserved address',
    ],
    [
      'spec.addresses',
      ['fd00::1', 'FD00:0::1'],
      'spec.addresses[1]: duplicate address "fd00::1" (already at index 0)',
    ],
    [
      'spec.serviceAccount',
      'Front',
      'spec.serviceAccount: must be a DNS subdomain: lowercase letters, digits, "-" and ".", each part starting and ending with a letter or digit',
    ],
    ['spec.ports', [{ port: 0 }], 'spec.ports[0].port: must be a port number 1..65535, got 0'],
    [
      'spec.ports',
      [{ port: 65536 }],
      'spec.ports[0].port: must be a port number 1..65535, got 65536',
    ],
    [
      'spec.ports',
      [{ port: 80.5 }],
      'spec.ports[0].port: must be a port number 1..65535, got 80.5',
    ],
    ['spec.ports', [{ port: '80' }], 'spec.ports[0].port: expected number, got string'],
    [
      'spec.ports',
      [{ port: 80, protocol: 'UDP' }],
      'spec.ports[0].protocol: must be one of TCP, HTTP, HTTP2, GRPC, got "UDP"',
    ],
    [
      'spec.ports',
      [{ port: 80, name: 'a-very-long-port-name' }],
      'spec.ports[0].name: must be at most 15 characters (has 21)',
    ],
    [
      'spec.ports',
      [{ port: 80 }, { port: 80 }],
      'spec.ports[1].port: duplicate port 80 (already at index 0)',
    ],
    [
      'spec.ports',
      [
        { port: 80, name: 'h' },
        { port: 81, name: 'h' },
      ],
      'spec.ports[1].name: duplicate port name "h" (already at index 0)',
    ],
    ['spec.hostNetwork', 'yes', 'spec.hostNetwork: expected boolean, got string'],
    ['spec.netns', 'netns/x', 'spec.netns: must be an absolute path'],
    [
      'spec.image',
      'nginx',
      'spec.image: unknown field (known fields: addresses, hostNetwork, netns, node, ports, serviceAccount, weight)',
    ],
  ];
  for (const [path, value, ...expected] of cases) refused(withField(w, path, value), ...expected);
  accepted(withField(w, 'spec.hostNetwork', true));
  const sa = accepted(withField(w, 'spec.serviceAccount', 'front.v2'));
  assert.equal(
    sa.kind === 'Workload' && workloadIdentity(sa, 'td'),
    'spiffe://td/ns/shop/sa/front.v2',
  );
});

test('Service rules', () => {
  const s = examples.Service!;
  const cases: [string, unknown, ...string[]][] = [
    ['spec.addresses', undefined, 'spec.addresses: required'],
    [
      'spec.addresses',
      ['10.96.0.1', '10.96.0.1'],
      'spec.addresses[1]: duplicate address "10.96.0.1" (already at index 0)',
    ],
    ['spec.ports', [], 'spec.ports: must have at least 1 item'],
    [
      'spec.ports',
      [{ port: 80, targetPort: 0 }],
      'spec.ports[0].targetPort: must be a port number 1..65535, got 0',
    ],
    [
      'spec.ports',
      [{ port: 80 }, { port: 80, targetPort: 81 }],
      'spec.ports[1].port: duplicate port 80 (already at index 0)',
    ],
    [
      'spec.ports',
      [{ port: 80, targtPort: 8080 }],
      'spec.ports[0].targtPort: unknown field (did you mean "targetPort"?)',
    ],
    ['spec.selector', undefined, 'spec.selector: required'],
    [
      'spec.selector',
      { app: 'web' },
      'spec.selector.app: unknown field (known fields: matchExpressions, matchLabels)',
    ],
    [
      'spec.waypoint',
      'WP',
      'spec.waypoint: must be a DNS label: lowercase letters, digits and "-", starting and ending with a letter or digit',
    ],
    [
      'spec.loadBalancing',
      { mode: 'Random' },
      'spec.loadBalancing.mode: must be one of RoundRobin, LeastConnections, got "Random"',
    ],
  ];
  for (const [path, value, ...expected] of cases) refused(withField(s, path, value), ...expected);
  accepted(withField(s, 'spec.selector', {}));
});

test('AuthorizationPolicy rules (ports are numbers)', () => {
  const p = examples.AuthorizationPolicy!;
  const rule = (r: unknown) => withField(p, 'spec.rules', [r]);
  refused(
    withField(p, 'spec.action', 'AUDIT'),
    'spec.action: must be one of ALLOW, DENY, got "AUDIT"',
  );
  refused(
    rule({ from: [{ source: {} }] }),
    'spec.rules[0].from[0].source: a source must set at least one of principals, notPrincipals, namespaces, notNamespaces, ipBlocks, notIpBlocks (omit it to match any)',
  );
  refused(rule({ from: [] }), 'spec.rules[0].from: must have at least 1 item');
  refused(
    rule({ from: [{ principals: ['a'] }] }),
    'spec.rules[0].from[0].source: required',
    'spec.rules[0].from[0].principals: unknown field (known fields: source)',
  );
  refused(
    rule({ to: [{ operation: {} }] }),
    'spec.rules[0].to[0].operation: an operation must set at least one of ports, notPorts, methods, notMethods, paths, notPaths, hosts, notHosts (omit it to match any)',
  );
  refused(
    rule({ to: [{ operation: { ports: ['8080'] } }] }),
    'spec.rules[0].to[0].operation.ports[0]: expected number, got string (ports are numbers here, unlike in Istio: write 8080, not "8080")',
  );
  refused(
    rule({ to: [{ operation: { notPorts: [0] } }] }),
    'spec.rules[0].to[0].operation.notPorts[0]: must be a port number 1..65535, got 0',
  );
  refused(
    rule({ to: [{ operation: { methods: ['get'] } }] }),
    'spec.rules[0].to[0].operation.methods[0]: "get" is not an HTTP method (upper case, like GET or POST, or *)',
  );
  refused(
    rule({ to: [{ operation: { paths: ['api'] } }] }),
    'spec.rules[0].to[0].operation.paths[0]: "api" must start with "/" (or "*" for a suffix match)',
  );
  refused(
    rule({ to: [{ operation: { hosts: ['a*b'] } }] }),
    'spec.rules[0].to[0].operation.hosts[0]: "a*b": "*" is allowed only alone, as a prefix or as a suffix',
  );
  refused(
    rule({ from: [{ source: { principals: ['spiffe://td/ns/a/sa/b'] } }] }),
    'spec.rules[0].from[0].source.principals[0]: "spiffe://td/ns/a/sa/b": write principals without "spiffe://", as <trust-domain>/ns/<namespace>/sa/<serviceaccount>',
  );
  refused(
    rule({ from: [{ source: { principals: [''] } }] }),
    'spec.rules[0].from[0].source.principals[0]: must not be empty',
  );
  refused(
    rule({ from: [{ source: { namespaces: ['Shop'] } }] }),
    'spec.rules[0].from[0].source.namespaces[0]: "Shop": must be a DNS label: lowercase letters, digits and "-", starting and ending with a letter or digit',
  );
  refused(
    rule({ from: [{ source: { ipBlocks: ['10.0.0.0/33'] } }] }),
    'spec.rules[0].from[0].source.ipBlocks[0]: "10.0.0.0/33": the prefix length must be 0..32',
  );
  refused(
    rule({ from: [{ source: { notIpBlocks: ['fd00::/129'] } }] }),
    'spec.rules[0].from[0].source.notIpBlocks[0]: "fd00::/129": the prefix length must be 0..128',
  );
  refused(
    rule({ from: [{ source: { ipBlocks: ['nine'] } }] }),
    'spec.rules[0].from[0].source.ipBlocks[0]: "nine" is not an IP address or CIDR block (like 10.0.0.0/8 or fd00::/8)',
  );
  refused(rule({ when: [] }), 'spec.rules[0].when: must have at least 1 item');
  refused(
    withField(p, 'spec.selector', { matchExpressions: [{ key: 'app', operator: 'In' }] }),
    'spec.selector.matchExpressions[0].values: operator In needs at least one value',
  );
  accepted(rule({ from: [{ source: { principals: ['*'], namespaces: ['*'] } }] }));
  accepted(withField(p, 'spec.rules', []));
});

test('PeerAuthentication, Waypoint and HTTPRoute rules', () => {
  const pa = examples.PeerAuthentication!;
  refused(withField(pa, 'spec.mtls', undefined), 'spec.mtls: required');
  refused(
    withField(pa, 'spec.mtls.mode', 'DISABLE'),
    'spec.mtls.mode: must be one of STRICT, PERMISSIVE, got "DISABLE"',
  );
  refused(
    withField(pa, 'spec.portLevelMtls', {}),
    'spec.portLevelMtls: unknown field (known fields: mtls, selector)',
  );

  const wp = examples.Waypoint!;
  refused(
    withField(wp, 'spec.trafficType', 'Service'),
    'spec.trafficType: must be one of service, workload, all, got "Service"',
  );
  refused(withField(wp, 'spec.replicas', 0), 'spec.replicas: must be at least 1, got 0');
  refused(
    withField(wp, 'metadata.name', 'none'),
    'metadata.name: "none" is reserved: meshd.io/use-waypoint=none means "no waypoint"',
  );

  const r = examples.HTTPRoute!;
  const ruleWith = (extra: Obj) =>
    withField(r, 'spec.rules', [{ backendRefs: [{ name: 'web', port: 80 }], ...extra }]);
  refused(withField(r, 'spec.parentRefs', []), 'spec.parentRefs: must have at least 1 item');
  refused(
    withField(r, 'spec.parentRefs', [{ kind: 'Gateway', name: 'gw' }]),
    'spec.parentRefs[0].kind: must be Service, got "Gateway"',
  );
  refused(withField(r, 'spec.rules', []), 'spec.rules: must have at least 1 item');
  refused(
    withField(r, 'spec.hostnames', ['Web.Shop']),
    'spec.hostnames[0]: "Web.Shop" is not a hostname (lowercase DNS name, optionally starting with "*.")',
  );
  refused(
    ruleWith({ matches: [{ path: { type: 'Regex', value: '/x' } }] }),
    'spec.rules[0].matches[0].path.type: must be one of Exact, PathPrefix, got "Regex"',
  );
  refused(
    ruleWith({ matches: [{ path: { value: 'x' } }] }),
    'spec.rules[0].matches[0].path.value: "x" must start with "/"',
  );
  refused(
    ruleWith({ matches: [{ method: 'get' }] }),
    'spec.rules[0].matches[0].method: must be one of GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH, got "get"',
  );
  refused(
    ruleWith({ matches: [{ headers: [{ name: 'bad header', value: 'x' }] }] }),
    'spec.rules[0].matches[0].headers[0].name: "bad header" is not an HTTP header name',
  );
  refused(
    withField(r, 'spec.rules', [{ backendRefs: [{ name: 'web' }] }]),
    'spec.rules[0].backendRefs[0].port: required',
  );
  refused(
    withField(r, 'spec.rules', [{ backendRefs: [{ name: 'web', port: 80, weight: 1_000_001 }] }]),
    'spec.rules[0].backendRefs[0].weight: must be at most 1000000, got 1000001',
  );
  refused(
    withField(r, 'spec.rules', [{ backendRefs: [{ name: 'web', port: 80, weight: -1 }] }]),
    'spec.rules[0].backendRefs[0].weight: must be at least 0, got -1',
  );
  refused(
    ruleWith({ timeouts: { request: '10' } }),
    'spec.rules[0].timeouts.request: "10" is not a duration (examples: 500ms, 10s, 1m30s, 1h)',
  );
  refused(ruleWith({ retry: { perTryTimeout: '1s' } }), 'spec.rules[0].retry.attempts: required');
  refused(
    ruleWith({ retry: { attempts: 1.5 } }),
    'spec.rules[0].retry.attempts: expected an integer, got 1.5',
  );
  accepted(ruleWith({ timeouts: { request: '500ms' }, retry: { attempts: 0 } }));
});

test('every problem of a resource is reported in one pass', () => {
  const bad = withField(
    withField(
      withField(examples.Workload!, 'spec.ports', [{ port: 1.5 }, { port: 'x' }]),
      'spec.addresses',
      ['10.0.0.1', '10.0.0.1'],
    ),
    'metadata.labels',
    { 'meshd.io/dataplane-mode': 'on' },
  );
  refused(
    bad,
    'metadata.labels[meshd.io/dataplane-mode]: must be ambient or none, got "on"',
    'spec.ports[0].port: must be a port number 1..65535, got 1.5',
    'spec.ports[1].port: expected number, got string',
    'spec.addresses[1]: duplicate address "10.0.0.1" (already at index 0)',
  );
});

test('Workload weight: an integer from 1 to 1000', async () => {
  const { validateResource } = await import('../../daemon/model/index.js');
  const base = {
    apiVersion: 'meshd.io/v1alpha1',
    kind: 'Workload',
    metadata: { name: 'w', namespace: 'shop' },
    spec: { node: 'n1', addresses: ['10.0.0.1'] },
  };
  const ok = validateResource({ ...base, spec: { ...base.spec, weight: 5 } });
  assert.ok(ok.ok);
  for (const weight of [0, 1001, 2.5]) {
    const bad = validateResource({ ...base, spec: { ...base.spec, weight } });
    assert.equal(bad.ok, false);
    if (!bad.ok)
      assert.equal(
        `${bad.errors[0]?.path}: ${bad.errors[0]?.message}`,
        'spec.weight: must be an integer from 1 to 1000',
      );
  }
});
