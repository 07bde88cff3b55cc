// Manifests: multi-document YAML or JSON in, resources or every error (file, document, resource,
// field path, reason, line) out — never some resources and some errors.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import {
  formatManifestError,
  InvalidResourceError,
  type ManifestResult,
  parseManifestSet,
  parseManifests,
} from '../../daemon/model/index.js';

const service = (name: string, extra = '') => `apiVersion: meshd.io/v1alpha1
kind: Service
metadata:
  name: ${name}
  namespace: shop
spec:
  addresses: [10.96.0.10]
  ports:
    - port: 80
  selector:
    matchLabels: { app: ${name} }
${extra}`;

function errors(result: ManifestResult): string[] {
  assert.equal(result.ok, false, 'expected errors');
  return result.ok ? [] : result.errors.map(formatManifestError);
}

test('valid multi-document YAML: resources in order, empty documents skipped, origins kept', () => {
  const text = `# leading comment\n---\n${service('web')}---\n---\n# only a comment\n---\n${service('api')}`;
  const result = parseManifests(text, 'shop.yaml');
  assert.ok(result.ok);
  assert.deepEqual(
    result.resources.map((r) => r.metadata.name),
    ['web', 'api'],
  );
  assert.deepEqual(result.origins, [
    // The comment and "---" before the first document belong to it (YAML streams).
    { source: 'shop.yaml', document: 1, line: 3 },
    { source: 'shop.yaml', document: 4, line: 18 },
  ]);
  assert.deepEqual(parseManifests('', 'empty.yaml'), { ok: true, resources: [], origins: [] });
  assert.deepEqual(parseManifests('# nothing\n', 'c.yaml'), {
    ok: true,
    resources: [],
    origins: [],
  });
});

test('wrong type: the message names file, document, resource, field path and line', () => {
  const text = `${service('web')}---\n${service('api').replace('- port: 80', '- port: "80"')}`;
  assert.deepEqual(errors(parseManifests(text, 'shop.yaml')), [
    'shop.yaml: document 2 (Service shop/api): spec.ports[0].port: expected number, got string (line 21)',
  ]);
});

test('malformed YAML is reported with line and column; nothing is returned', () => {
  const text = `${service('web')}---\nkind: Service\nmetadata: { name: [\n`;
  const [first, ...rest] = errors(parseManifests(text, 'bad.yaml'));
  assert.match(first ?? '', /^bad\.yaml: document 2: malformed YAML: .+ \(line \d+, column \d+\)$/);
  assert.ok(rest.every((e) => e.startsWith('bad.yaml: document 2: malformed YAML')));
  assert.deepEqual(errors(parseManifests('a: 1\na: 2\n', 'dup-key.yaml')), [
    'dup-key.yaml: document 1: malformed YAML: Map keys must be unique (line 2, column 1)',
  ]);
  assert.deepEqual(errors(parseManifests('just text', 's.yaml')), [
    's.yaml: document 1: expected an object with apiVersion, kind, metadata and spec, got string (line 1)',
  ]);
});

test('unknown kind, unknown field, invalid selector: each with its path', () => {
  const text = [
    'apiVersion: meshd.io/v1alpha1\nkind: Deployment\nmetadata: { name: x, namespace: shop }\nspec: {}\n',
    service('web', '  sessionAffinity: ClientIP\n'),
    service('api').replace(
      'matchLabels: { app: api }',
      'matchExpressions: [{ key: app, operator: In }]',
    ),
  ].join('---\n');
  assert.deepEqual(errors(parseManifests(text, 'shop.yaml')), [
    'shop.yaml: document 1 (Deployment shop/x): kind: unknown kind "Deployment"; known kinds: Namespace, Workload, Service, AuthorizationPolicy, PeerAuthentication, Waypoint, HTTPRoute (line 2)',
    'shop.yaml: document 2 (Service shop/web): spec.sessionAffinity: unknown field (known fields: addresses, loadBalancing, ports, selector, waypoint) (line 17)',
    'shop.yaml: document 3 (Service shop/api): spec.selector.matchExpressions[0].values: operator In needs at least one value (line 29)',
  ]);
});

test('duplicate name in one file: the later document names the earlier one', () => {
  const text = `${service('web')}---\n${service('api')}---\n${service('web')}`;
  assert.deepEqual(errors(parseManifests(text, 'shop.yaml')), [
    'shop.yaml: document 3 (Service shop/web): metadata.name: duplicate Service shop/web: already defined in document 1 (line 28)',
  ]);
  // Same name, other kind or namespace: no conflict.
  const other = service('web').replace('namespace: shop', 'namespace: other');
  assert.ok(parseManifests(`${service('web')}---\n${other}`, 'x.yaml').ok);
});

test('every error of every document is reported together, in document order', () => {
  const text = [
    service('web').replace('- port: 80', '- port: 0'),
    service('api').replace('name: api', 'name: API'),
    service('db').replace('addresses: [10.96.0.10]', 'addresses: []'),
  ].join('---\n');
  const result = parseManifests(text, 'shop.yaml');
  assert.deepEqual(errors(result), [
    'shop.yaml: document 1 (Service shop/web): spec.ports[0].port: must be a port number 1..65535, got 0 (line 9)',
    'shop.yaml: document 2 (Service shop/API): metadata.name: must be a DNS label: lowercase letters, digits and "-", starting and ending with a letter or digit (line 16)',
    'shop.yaml: document 3 (Service shop/db): spec.addresses: must have at least 1 item (line 31)',
  ]);
  assert.equal('resources' in result, false);
});

test('JSON: one object, or a list of resources (errors name the item)', () => {
  const svc = {
    apiVersion: 'meshd.io/v1alpha1',
    kind: 'Service',
    metadata: { name: 'web', namespace: 'shop' },
    spec: { addresses: ['10.96.0.10'], ports: [{ port: 80 }], selector: {} },
  };
  const one = parseManifests(JSON.stringify(svc), 'web.json');
  assert.ok(one.ok);
  assert.deepEqual(one.resources[0]?.spec, { ...svc.spec, ports: [{ port: 80, targetPort: 80 }] });
  const list = JSON.stringify(
    [
      svc,
      {
        ...svc,
        metadata: { name: 'api', namespace: 'shop' },
        spec: { ...svc.spec, ports: [{ port: 'x' }] },
      },
    ],
    null,
    2,
  );
  assert.deepEqual(errors(parseManifests(list, 'all.json')), [
    'all.json: document 1, item 2 (Service shop/api): spec.ports[0].port: expected number, got string (line 34)',
  ]);
  const listOk = parseManifests(JSON.stringify([svc]), 'all.json');
  assert.ok(listOk.ok);
  assert.deepEqual(listOk.origins, [{ source: 'all.json', document: 1, item: 1, line: 1 }]);
});

test('parseManifestSet: duplicates across files name the other file; errors in file order', () => {
  const result = parseManifestSet([
    { source: 'a.yaml', text: service('web') },
    {
      source: 'b.yaml',
      text: `${service('api').replace('- port: 80', '- port: x')}---\n${service('web')}`,
    },
  ]);
  assert.deepEqual(errors(result), [
    'b.yaml: document 1 (Service shop/api): spec.ports[0].port: expected number, got string (line 9)',
    'b.yaml: document 2 (Service shop/web): metadata.name: duplicate Service shop/web: already defined in a.yaml document 1 (line 16)',
  ]);
  const ok = parseManifestSet([
    { source: 'a.yaml', text: service('web') },
    { source: 'b.yaml', text: service('api') },
  ]);
  assert.ok(ok.ok);
  assert.deepEqual(
    ok.origins.map((o) => o.source),
    ['a.yaml', 'b.yaml'],
  );
});

test('defaultNamespace fills a missing metadata.namespace of namespaced kinds only', () => {
  const text = `${service('web').replace('  namespace: shop\n', '')}---
apiVersion: meshd.io/v1alpha1
kind: Namespace
metadata: { name: shop }
`;
  assert.deepEqual(errors(parseManifests(text, 'x.yaml')), [
    'x.yaml: document 1 (Service web): metadata.namespace: required: every kind except Namespace lives in a namespace (line 3)',
  ]);
  const result = parseManifests(text, 'x.yaml', { defaultNamespace: 'shop' });
  assert.ok(result.ok);
  assert.equal(
    result.resources[0]?.kind === 'Service' && result.resources[0].metadata.namespace,
    'shop',
  );
  assert.deepEqual(result.resources[1]?.metadata, { name: 'shop' });
});

test('alias bombs are refused, not expanded', () => {
  const bomb = `a: &a [x, x, x, x, x, x, x, x, x, x]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
e: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
`;
  const [only] = errors(parseManifests(bomb, 'bomb.yaml'));
  assert.match(only ?? '', /^bomb\.yaml: document 1: malformed YAML: .*alias/i);
});

test('InvalidResourceError carries the code and one line per problem', () => {
  const result = parseManifests(
    `${service('web').replace('- port: 80', '- port: 0')}---\nkind: X\n`,
    's.yaml',
  );
  assert.ok(!result.ok);
  const err = InvalidResourceError.fromManifestErrors(result.errors);
  assert.equal(err.code, 'MESHD_E_INVALID_RESOURCE');
  assert.equal(err.problems.length, 3);
  assert.equal(
    err.message,
    `3 problems in the manifests; nothing was applied:\n  ${result.errors.map(formatManifestError).join('\n  ')}`,
  );
});

test('every YAML example in docs/resources.md is valid', () => {
  const doc = readFileSync(new URL('../../../docs/resources.md', import.meta.url), 'utf8');
  const blocks = [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1] ?? '');
  assert.ok(blocks.length >= 7, `${blocks.length} examples`);
  const result = parseManifestSet(blocks.map((text, i) => ({ source: `example ${i + 1}`, text })));
  assert.deepEqual(result.ok ? [] : result.errors.map(formatManifestError), []);
  assert.ok(result.ok);
  assert.deepEqual([...new Set(result.resources.map((r) => r.kind))].sort(), [
    'AuthorizationPolicy',
    'HTTPRoute',
    'Namespace',
    'PeerAuthentication',
    'Service',
    'Waypoint',
    'Workload',
  ]);
});
