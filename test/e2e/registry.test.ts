// The registry as processes: two meshd servers on one real etcd (an apply through one reaches
// an agent watching the other; a SIGKILLed server's agent fails over without losing a change),
// and the embedded file store surviving SIGKILL during a stream of applies.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { loadAdminCredentials } from '../../ctl/client.js';
import { StateSync } from '../../daemon/agent/index.js';
import { initCa } from '../../daemon/identity/index.js';
import { type ClientCredentials, RegistryClient } from '../../daemon/proto/index.js';
import { silentLogger } from '../../daemon/telemetry/index.js';
import { freePort, startEtcd, type TestEtcd } from '../support/etcd.js';
import { waitForOutput } from '../support/lab-helpers.js';
import { joinNode, json, TD, workload } from '../support/registry.js';

const MESHD = new URL('../../daemon/main.js', import.meta.url).pathname;
let dir: string;
let caDir: string;
let admin: ClientCredentials;
const children: ChildProcess[] = [];
const closers: { close(): void }[] = [];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'meshd-registry-e2e-'));
  caDir = join(dir, 'ca');
  await initCa({ dir: caDir, trustDomain: TD });
  admin = loadAdminCredentials(caDir);
});

after(() => {
  for (const c of closers) c.close();
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

interface RunningServer {
  address: string;
  child: ChildProcess;
}

async function startServerProcess(
  name: string,
  store: string,
  port?: number,
): Promise<RunningServer> {
  const grpcPort = port ?? (await freePort());
  const child = spawn(process.execPath, [MESHD, 'server'], {
    env: {
      ...process.env,
      MESHD_LISTEN_ADDRESS: '127.0.0.1',
      MESHD_GRPC_PORT: String(grpcPort),
      MESHD_MONITORING_PORT: '0',
      MESHD_CA_DIR: caDir,
      MESHD_DATA_DIR: join(dir, name),
      MESHD_STORE: store,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  await waitForOutput(child, /"msg":"meshd server listening"/, 20_000);
  return { address: `127.0.0.1:${grpcPort}`, child };
}

function registry(creds: ClientCredentials, address: string): RegistryClient {
  const client = new RegistryClient({ ...creds, server: address, timeoutMs: 10_000 });
  closers.push(client);
  return client;
}

async function eventually(what: string, pred: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function sync(node: string, creds: ClientCredentials, servers: string[]): StateSync {
  const s = new StateSync({
    servers,
    node,
    credentials: () => creds,
    stateFile: join(dir, `${node}-${servers.length}.json`),
    logger: silentLogger,
    backoff: { initialMs: 100, maxMs: 1000 },
  });
  s.start();
  closers.push(s);
  return s;
}

test("etcd: two servers share one etcd; agents follow either; a killed server's agent fails over without losing a change", async (t) => {
  let etcd: TestEtcd | undefined;
  t.after(async () => etcd?.stop());
  etcd = await startEtcd();
  const s1 = await startServerProcess('s1', `${etcd.url}/meshd`);
  const s2 = await startServerProcess('s2', `${etcd.url}/meshd`);
  const creds = await joinNode(admin, s1.address, 'n1');

  const onS2 = sync('n1', creds, [s2.address]);
  const failover = sync('n1', creds, [s1.address, s2.address]);
  await eventually(
    'both agents connected',
    () => onS2.source === 'server' && failover.connectedTo === s1.address,
  );

  const { revision } = await registry(admin, s1.address).apply({
    resources: json(workload('via-s1', 'n1', '10.40.1.2')),
    dryRun: false,
  });
  await eventually(
    'the apply through server 1 reaches the agent on server 2',
    () => onS2.state.revision >= revision,
  );
  assert.equal(onS2.state.workloadByIp('10.40.1.2')?.metadata.name, 'via-s1');

  s1.child.kill('SIGKILL');
  const c2 = registry(admin, s2.address);
  const names: string[] = [];
  let last = 0;
  for (let i = 0; i < 20; i++) {
    const name = `after-kill-${i}`;
    names.push(name);
    last = (
      await c2.apply({ resources: json(workload(name, 'n1', `10.40.1.${10 + i}`)), dryRun: false })
    ).revision;
  }
  await eventually(
    'the failed-over agent catches up',
    () => failover.state.revision >= last && failover.connectedTo === s2.address,
  );
  for (const [i, name] of names.entries()) {
    assert.equal(
      failover.state.workloadByIp(`10.40.1.${10 + i}`)?.metadata.name,
      name,
      `${name} reached the agent`,
    );
  }
  assert.equal(failover.state.workloadByIp('10.40.1.2')?.metadata.name, 'via-s1');
  s2.child.kill('SIGTERM');
});

test('file store: every acknowledged apply survives a SIGKILL of the server, and the store opens cleanly', async () => {
  const store = `file://${join(dir, 'file-store')}`;
  const port = await freePort();
  const acked: string[] = [];
  for (let round = 0; round < 3; round++) {
    const server = await startServerProcess(`file-${round}`, store, port);
    const client = registry(admin, server.address);
    const killAfter = 30 + Math.floor(Math.random() * 30);
    let inFlight = 0;
    const stream = (async () => {
      for (let i = 0; i < 10_000; i++) {
        const name = `r${round}-w${i}`;
        inFlight++;
        try {
          await client.apply({
            resources: json(workload(name, 'n1', `10.${round}.${Math.floor(i / 250)}.${i % 250}`)),
            dryRun: false,
          });
          acked.push(name);
        } catch {
          return; // the server died under this apply: it was not acknowledged
        } finally {
          inFlight--;
        }
      }
    })();
    await eventually(
      'enough acknowledged applies',
      () => acked.filter((n) => n.startsWith(`r${round}-`)).length >= killAfter,
      30_000,
    );
    server.child.kill('SIGKILL');
    await stream;
    assert.ok(inFlight === 0);
  }
  const server = await startServerProcess('file-final', store, port);
  const { resources } = await registry(admin, server.address).list({
    kind: 'Workload',
    namespace: 'shop',
  });
  const stored = new Set(resources.map((r) => JSON.parse(r).metadata.name as string));
  const lost = acked.filter((name) => !stored.has(name));
  assert.deepEqual(lost, [], `${lost.length} of ${acked.length} acknowledged applies lost`);
  server.child.kill('SIGTERM');
});
