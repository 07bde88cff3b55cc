// meshctl why: the same evaluation as the agents, explained, for workloads and services.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { explain } from '../../ctl/why-cmd.js';
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
  } finally {
    await t.close();
  }
});
