// The Registry API in process (file store): apply/get/list/delete with optimistic concurrency,
// whole-batch refusal, who may write what, Watch snapshot/changes/resume, node authorization
// read from the registry, and the agent's StateSync including static stability.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { StateSync } from '../../daemon/agent/index.js';
import { createCsr, generateKeyPair, parseSpiffeId } from '../../daemon/identity/index.js';
import {
  type ClientCredentials,
  grpc,
  IdentityClient,
  type WatchResponse,
} from '../../daemon/proto/index.js';
import { silentLogger } from '../../daemon/telemetry/index.js';
import {
  json,
  ns,
  service,
  startTestServer,
  type TestServer,
  workload,
} from '../support/registry.js';

let t: TestServer;
let n1: ClientCredentials;

before(async () => {
  t = await startTestServer({}, { registryHistory: 5 });
  n1 = await t.nodeCredentials('n1');
});
after(() => t.close());

const status = (code: grpc.status) => (err: { status?: grpc.status; message: string }) => {
  assert.equal(err.status, code, err.message);
  return true;
};

test('apply creates, leaves unchanged, configures; get, list and delete', async () => {
  const c = t.registry();
  const first = await c.apply({
    resources: json(
      ns('shop'),
      workload('web-1', 'n1', '10.40.1.2', { app: 'web' }),
      service('web', '10.96.0.10', 'web'),
    ),
    dryRun: false,
  });
  assert.deepEqual(
    first.results.map((r) => r.action),
    ['created', 'created', 'created'],
  );
  const again = await c.apply({ resources: json(ns('shop')), dryRun: false });
  assert.equal(again.results[0]?.action, 'unchanged');
  const changed = await c.apply({
    resources: json(ns('shop', { 'meshd.io/dataplane-mode': 'ambient' })),
    dryRun: false,
  });
  assert.equal(changed.results[0]?.action, 'configured');
  assert.ok(changed.revision > first.revision);
  const got = JSON.parse(
    (await c.get({ ref: { kind: 'Namespace', namespace: '', name: 'shop' } })).resource,
  );
  assert.equal(got.metadata.labels['meshd.io/dataplane-mode'], 'ambient');
  assert.equal(got.metadata.resourceVersion, String(changed.revision));
  const listed = await c.list({ kind: 'Workload', namespace: 'shop' });
  assert.deepEqual(
    listed.resources.map((r) => JSON.parse(r).metadata.name),
    ['web-1'],
  );
  await c.apply({ resources: json(workload('tmp', 'n1', '10.40.1.9')), dryRun: false });
  await c.delete({
    ref: { kind: 'Workload', namespace: 'shop', name: 'tmp' },
    resourceVersion: '',
  });
  await assert.rejects(
    c.get({ ref: { kind: 'Workload', namespace: 'shop', name: 'tmp' } }),
    status(grpc.status.NOT_FOUND),
  );
});

test('a stale resourceVersion is a conflict and nothing of that apply is stored', async () => {
  const c = t.registry();
  const read = JSON.parse(
    (await c.get({ ref: { kind: 'Service', namespace: 'shop', name: 'web' } })).resource,
  );
  // Someone else changes it after we read it.
  await c.apply({ resources: json(service('web', '10.96.0.12', 'web')), dryRun: false });
  const staleVersion = read.metadata.resourceVersion as string;
  const stale = { ...service('web', '10.96.0.11', 'web'), metadata: { ...read.metadata } };
  await assert.rejects(
    c.apply({ resources: json(workload('new-one', 'n1', '10.40.1.7'), stale), dryRun: false }),
    (err: { status: grpc.status; message: string }) => {
      assert.equal(err.status, grpc.status.ABORTED);
      assert.match(
        err.message,
        new RegExp(`Service shop/web: resourceVersion ${staleVersion} is stale`),
      );
      return true;
    },
  );
  await assert.rejects(
    c.get({ ref: { kind: 'Workload', namespace: 'shop', name: 'new-one' } }),
    status(grpc.status.NOT_FOUND),
  );
  const latest = JSON.parse(
    (await c.get({ ref: { kind: 'Service', namespace: 'shop', name: 'web' } })).resource,
  );
  const fresh = { ...service('web', '10.96.0.11', 'web'), metadata: { ...latest.metadata } };
  assert.equal(
    (await c.apply({ resources: json(fresh), dryRun: false })).results[0]?.action,
    'configured',
  );
});

test('invalid resources refuse the whole apply, naming each problem', async () => {
  const c = t.registry();
  const bad = { ...service('bad', 'not-an-ip', 'x') };
  await assert.rejects(
    c.apply({
      resources: [...json(workload('ok-1', 'n1', '10.40.1.5'), bad), '{"kind":"Frob"}'],
      dryRun: false,
    }),
    (err: { status: grpc.status; message: string }) => {
      assert.equal(err.status, grpc.status.INVALID_ARGUMENT);
      assert.match(err.message, /nothing was applied/);
      assert.match(err.message, /resource 2: .*spec\.addresses\[0\]/);
      assert.match(err.message, /resource 3: .*kind/);
      return true;
    },
  );
  await assert.rejects(
    c.get({ ref: { kind: 'Workload', namespace: 'shop', name: 'ok-1' } }),
    status(grpc.status.NOT_FOUND),
  );
});

test('a node may write only Workloads of its own node', async () => {
  const c = t.registry(n1);
  const ok = await c.apply({
    resources: json(workload('cni-1', 'n1', '10.40.1.20')),
    dryRun: false,
  });
  assert.equal(ok.results[0]?.action, 'created');
  await assert.rejects(
    c.apply({ resources: json(workload('cni-2', 'n2', '10.40.2.20')), dryRun: false }),
    (err: { status: grpc.status; message: string }) => {
      assert.equal(err.status, grpc.status.PERMISSION_DENIED);
      assert.match(err.message, /node n1 may only write Workloads of its own node/);
      return true;
    },
  );
  await assert.rejects(
    c.apply({ resources: json(service('evil', '10.96.0.99', 'x')), dryRun: false }),
    status(grpc.status.PERMISSION_DENIED),
  );
  await assert.rejects(
    t
      .registry({ trustDomain: 'cluster.local', bundlePem: t.admin.bundlePem })
      .list({ kind: '', namespace: '' }),
    status(grpc.status.UNAUTHENTICATED),
  );
});

test('node authorization reads the registry: a registered workload gets a certificate, a deleted one not', async () => {
  const id = parseSpiffeId('spiffe://cluster.local/ns/shop/sa/cni-1').id;
  const identity = new IdentityClient({ ...n1, server: t.address });
  try {
    const csr = Buffer.from(await createCsr(await generateKeyPair(), id));
    const issued = await identity.createCertificate({ csr, ttlSeconds: 600 });
    assert.equal(issued.certChain.length, 2);
    await t
      .registry(n1)
      .delete({ ref: { kind: 'Workload', namespace: 'shop', name: 'cni-1' }, resourceVersion: '' });
    await new Promise((r) => setTimeout(r, 100)); // the cache follows the store's watch
    await assert.rejects(
      identity.createCertificate({ csr, ttlSeconds: 600 }),
      status(grpc.status.PERMISSION_DENIED),
    );
  } finally {
    identity.close();
  }
});

function collect(creds: ClientCredentials, fromRevision: number) {
  const messages: WatchResponse[] = [];
  const stream = t.registry(creds).watch(
    { node: 'n1', fromRevision },
    (m) => messages.push(m),
    () => {},
  );
  const until = async (pred: () => boolean) => {
    const deadline = Date.now() + 5000;
    while (!pred()) {
      if (Date.now() > deadline)
        throw new Error(
          `watch: condition not met; got ${JSON.stringify(messages.map((m) => [m.type, m.revision]))}`,
        );
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  return { messages, stream, until };
}

test('Watch: a snapshot, then ordered changes; a resume gets only what it missed; a resume too old gets a snapshot', async () => {
  const w = collect(n1, 0);
  await w.until(() => w.messages.length >= 1);
  const snap = w.messages[0]!;
  assert.equal(snap.type, 'snapshot');
  assert.ok(snap.resources.some((r) => JSON.parse(r).metadata.name === 'web-1'));
  const c = t.registry();
  await c.apply({ resources: json(workload('w-a', 'n1', '10.40.1.30')), dryRun: false });
  const { revision } = await c.apply({
    resources: json(workload('w-b', 'n1', '10.40.1.31')),
    dryRun: false,
  });
  await w.until(() => w.messages.at(-1)?.revision === revision);
  const names = w.messages
    .slice(1)
    .flatMap((m) => m.changes.map((ch) => `${ch.type}:${JSON.parse(ch.resource).metadata.name}`));
  assert.deepEqual(names, ['put:w-a', 'put:w-b']);
  w.stream.cancel();

  const resumed = collect(n1, revision - 1);
  await resumed.until(() => resumed.messages.length >= 1);
  assert.equal(resumed.messages[0]?.type, 'changes');
  assert.equal(resumed.messages[0]?.revision, revision);
  resumed.stream.cancel();

  for (let i = 0; i < 6; i++)
    await c.apply({
      resources: json(workload(`churn-${i}`, 'n1', `10.40.1.${100 + i}`)),
      dryRun: false,
    });
  await new Promise((r) => setTimeout(r, 100));
  const old = collect(n1, revision - 1); // history keeps 5 batches: this one is gone
  await old.until(() => old.messages.length >= 1);
  assert.equal(old.messages[0]?.type, 'snapshot');
  old.stream.cancel();
});

test('StateSync follows the registry, saves its state, and serves from it when no server answers', async () => {
  const stateFile = join(t.dir, 'agent-state.json');
  const sync = new StateSync({
    servers: [t.address],
    node: 'n1',
    credentials: () => n1,
    stateFile,
    logger: silentLogger,
    saveDelayMs: 10,
  });
  sync.start();
  const wait = async (pred: () => boolean) => {
    const deadline = Date.now() + 5000;
    while (!pred()) {
      if (Date.now() > deadline) throw new Error('StateSync did not catch up');
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  await wait(() => sync.source === 'server' && sync.state.workloadByIp('10.40.1.2') !== undefined);
  const { revision } = await t.registry().apply({
    resources: json(workload('late', 'n1', '10.40.1.77', { app: 'web' })),
    dryRun: false,
  });
  await wait(() => sync.state.revision === revision);
  assert.equal(sync.state.workloadByIp('10.40.1.77')?.metadata.name, 'late');
  assert.deepEqual(
    sync.state
      .endpoints({ namespace: 'shop', name: 'web' })
      .map((w) => w.metadata.name)
      .sort(),
    ['late', 'web-1'],
  );
  await wait(() => existsSync(stateFile));
  sync.close();

  // Every server down: a fresh agent starts from the saved state.
  const offline = new StateSync({
    servers: ['127.0.0.1:1'],
    node: 'n1',
    credentials: () => n1,
    stateFile,
    logger: silentLogger,
  });
  offline.start();
  assert.equal(offline.source, 'disk');
  assert.equal(offline.state.revision, revision);
  assert.equal(offline.state.workloadByIp('10.40.1.77')?.metadata.name, 'late');
  offline.close();
});

test('ListNodes: a watching agent is connected and current, with its clock skew; then disconnected; admins only', async () => {
  const c = t.registry();
  const messages: WatchResponse[] = [];
  const skewed = Date.now() + 90_000; // the agent's clock runs 90 s ahead
  const stream = t.registry(n1).watch(
    { node: 'n1', fromRevision: 0, sentAtUnixMs: skewed, version: '9.9.9' },
    (m) => messages.push(m),
    () => {},
  );
  const until = async (pred: () => Promise<boolean> | boolean, what: string) => {
    const deadline = Date.now() + 5000;
    while (!(await pred())) {
      if (Date.now() > deadline) throw new Error(`ListNodes: ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  await until(() => messages.length >= 1, 'no snapshot');
  const listed = await c.listNodes();
  const n1Status = listed.nodes.find((n) => n.name === 'n1');
  assert.ok(n1Status, JSON.stringify(listed.nodes));
  assert.equal(n1Status.connected, true);
  assert.equal(n1Status.version, '9.9.9');
  assert.equal(n1Status.revisionSent, listed.revision);
  assert.ok(Math.abs(n1Status.clockSkewMs - 90_000) < 2000, String(n1Status.clockSkewMs));
  assert.ok(n1Status.workloads >= 1, 'n1 has registered workloads');
  assert.ok(Math.abs(listed.serverTimeUnixMs - Date.now()) < 2000);

  stream.cancel();
  await until(
    async () => (await c.listNodes()).nodes.find((n) => n.name === 'n1')?.connected === false,
    'n1 still connected after its stream ended',
  );
  const after = (await c.listNodes()).nodes.find((n) => n.name === 'n1');
  assert.ok(after?.disconnectedAt, 'the time it disconnected is kept');
  await assert.rejects(t.registry(n1).listNodes(), status(grpc.status.PERMISSION_DENIED));
});
