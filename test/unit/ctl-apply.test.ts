// meshctl apply/get/delete against an in-process server: good files apply, bad files are
// refused whole with file, document and field path, and a stale resourceVersion is a conflict.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import YAML from 'yaml';
import { startTestServer, type TestServer } from '../support/registry.js';

const exec = promisify(execFile);
const CTL = new URL('../../ctl/main.js', import.meta.url).pathname;
let t: TestServer;

before(async () => {
  t = await startTestServer();
});
after(() => t.close());

function meshctl(...args: string[]) {
  return exec(process.execPath, [CTL, ...args], {
    env: {
      ...process.env,
      MESHCTL_SERVER: t.address,
      MESHCTL_CA_DIR: t.caDir,
      MESHCTL_CONFIG: join(t.dir, 'none.yaml'),
    },
  });
}

async function refused(args: string[]): Promise<string> {
  try {
    await meshctl(...args);
  } catch (err) {
    const e = err as { code: number; stderr: string };
    assert.equal(e.code, 1);
    return e.stderr;
  }
  assert.fail(`meshctl ${args.join(' ')} should have failed`);
}

const file = (name: string, text: string) => {
  const path = join(t.dir, name);
  writeFileSync(path, text);
  return path;
};

const GOOD = `apiVersion: meshd.io/v1alpha1
kind: Namespace
metadata: { name: shop, labels: { meshd.io/dataplane-mode: ambient } }
---
apiVersion: meshd.io/v1alpha1
kind: Workload
metadata: { name: web-1, namespace: shop, labels: { app: web } }
spec: { node: n1, addresses: [10.40.1.2], serviceAccount: web }
---
apiVersion: meshd.io/v1alpha1
kind: Service
metadata: { name: web, namespace: shop }
spec:
  addresses: [10.96.0.10]
  ports: [{ port: 80, targetPort: 8080 }]
  selector: { matchLabels: { app: web } }
`;

test('apply a multi-document file, then get as table, json and yaml, then delete', async () => {
  const { stdout } = await meshctl('apply', '-f', file('good.yaml', GOOD));
  assert.equal(
    stdout,
    'namespace/shop created\nworkload/web-1 -n shop created\nservice/web -n shop created\n',
  );
  assert.match(
    (await meshctl('apply', '-f', join(t.dir, 'good.yaml'))).stdout,
    /service\/web -n shop unchanged/,
  );
  const table = (await meshctl('get', 'svc', '-n', 'shop')).stdout;
  assert.match(table, /^NAMESPACE\s+NAME\s+ADDRESSES\s+PORTS\s+SELECTOR\s+WAYPOINT\s+VERSION$/m);
  assert.match(table, /^shop\s+web\s+10\.96\.0\.10\s+80:8080\s+app=web\s+-\s+\d+$/m);
  const one = JSON.parse(
    (await meshctl('get', 'workload', 'web-1', '-n', 'shop', '-o', 'json')).stdout,
  );
  assert.equal(one.spec.node, 'n1');
  assert.equal(
    YAML.parse((await meshctl('get', 'ns', 'shop', '-o', 'yaml')).stdout).metadata.name,
    'shop',
  );
  await meshctl(
    'apply',
    '-f',
    file('tmp.yaml', GOOD.replaceAll('web-1', 'web-2').replace('10.40.1.2', '10.40.1.3')),
  );
  assert.match(
    (await meshctl('delete', 'workload', 'web-2', '-n', 'shop')).stdout,
    /workload\/web-2 -n shop deleted/,
  );
  assert.match(
    await refused(['get', 'workload', 'web-2', '-n', 'shop']),
    /NOT_FOUND: MESHD_E_NOT_FOUND: Workload shop\/web-2 not found/,
  );
});

test('bad input is refused whole with file, document and field path; nothing from the file is applied', async () => {
  const cases: [string, string, RegExp][] = [
    [
      'malformed.yaml',
      'apiVersion: meshd.io/v1alpha1\nkind: Namespace\nmetadata: { name: a\n',
      /malformed\.yaml: document 1.*line \d+/,
    ],
    [
      'kind.yaml',
      'apiVersion: meshd.io/v1alpha1\nkind: Frobnicator\nmetadata: { name: a }\n',
      /kind\.yaml: document 1.*kind: unknown kind "Frobnicator"/,
    ],
    [
      'field.yaml',
      `${GOOD}---\napiVersion: meshd.io/v1alpha1\nkind: Namespace\nmetadata: { name: extra, colour: blue }\n`,
      /field\.yaml: document 4 \(Namespace extra\): metadata\.colour: unknown field/,
    ],
    [
      'type.yaml',
      GOOD.replace('port: 80,', 'port: "eighty",'),
      /type\.yaml: document 3 \(Service shop\/web\): spec\.ports\[0\]\.port: expected number/,
    ],
    [
      'selector.yaml',
      GOOD.replace(
        '{ matchLabels: { app: web } }',
        '{ matchExpressions: [{ key: app, operator: Near }] }',
      ),
      /selector\.yaml: document 3 \(Service shop\/web\): spec\.selector\.matchExpressions\[0\]\.operator/,
    ],
    [
      'dup.yaml',
      `${GOOD}---\n${GOOD.split('---\n')[1]}`,
      /dup\.yaml: document 4 \(Workload shop\/web-1\): .*duplicate.*document 2/i,
    ],
  ];
  for (const [name, text, reason] of cases) {
    // Each case in its own namespace, so "nothing applied" is checked per file.
    const space = `ns-${name.split('.')[0]}`;
    const stderr = await refused(['apply', '-f', file(name, text.replaceAll('shop', space))]);
    assert.match(
      stderr,
      new RegExp(reason.source.replaceAll('shop', space), reason.flags),
      `${name}: ${stderr}`,
    );
    assert.match(stderr, /nothing was applied/);
    assert.match(await refused(['get', 'ns', space]), /not found/, `${name}: nothing applied`);
  }
});

test('a stale resourceVersion is refused as a conflict', async () => {
  const current = YAML.parse(
    (await meshctl('get', 'service', 'web', '-n', 'shop', '-o', 'yaml')).stdout,
  );
  current.spec.addresses = ['10.96.0.20'];
  await meshctl('apply', '-f', file('edit1.yaml', YAML.stringify(current)));
  current.spec.addresses = ['10.96.0.30'];
  const stderr = await refused(['apply', '-f', file('edit2.yaml', YAML.stringify(current))]);
  assert.match(
    stderr,
    /ABORTED: MESHD_E_CONFLICT: Service shop\/web: resourceVersion \d+ is stale/,
  );
  const now = JSON.parse(
    (await meshctl('get', 'service', 'web', '-n', 'shop', '-o', 'json')).stdout,
  );
  assert.deepEqual(now.spec.addresses, ['10.96.0.20']);
});
