/**
 * Registry scale benchmark (not part of npm test): a meshd server process on loopback with the
 * file store, loaded with 10,000 workloads, 1,000 services and 1,000 policies. Measures the
 * time to send a full snapshot to an agent (received and loaded into MeshState), the time for
 * one change to reach 20 watching agents (p50/p99 over 100 changes), and the server's RSS.
 * Usage: npm run bench:registry  (writes the figures to stdout as JSON and markdown)
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadAdminCredentials } from '../../ctl/client.js';
import { initCa } from '../../daemon/identity/index.js';
import { MeshState, validateResource } from '../../daemon/model/index.js';
import { RegistryClient, type WatchResponse } from '../../daemon/proto/index.js';
import { freePort } from '../support/etcd.js';
import { waitForOutput } from '../support/lab-helpers.js';
import { TD } from '../support/registry.js';

const WORKLOADS = 10_000;
const SERVICES = 1_000;
const POLICIES = 1_000;
const WATCHERS = 20;
const CHANGES = 100;
const CHUNK = 2_000;

const ip = (i: number) =>
  `10.${40 + Math.floor(i / 65536)}.${Math.floor(i / 256) % 256}.${i % 256}`;
const resources = () => {
  const out: object[] = [
    {
      apiVersion: 'meshd.io/v1alpha1',
      kind: 'Namespace',
      metadata: { name: 'bench', labels: { 'meshd.io/dataplane-mode': 'ambient' } },
    },
  ];
  for (let i = 0; i < WORKLOADS; i++) {
    out.push({
      apiVersion: 'meshd.io/v1alpha1',
      kind: 'Workload',
      metadata: { name: `w-${i}`, namespace: 'bench', labels: { app: `app-${i % SERVICES}` } },
      spec: { node: `node-${i % 50}`, addresses: [ip(i)], serviceAccount: `sa-${i % SERVICES}` },
    });
  }
  for (let i = 0; i < SERVICES; i++) {
    out.push({
      apiVersion: 'meshd.io/v1alpha1',
      kind: 'Service',
      metadata: { name: `svc-${i}`, namespace: 'bench' },
      spec: {
        addresses: [`10.96.${Math.floor(i / 256)}.${i % 256}`],
        ports: [{ port: 80, targetPort: 8080 }],
        selector: { matchLabels: { app: `app-${i}` } },
      },
    });
  }
  for (let i = 0; i < POLICIES; i++) {
    out.push({
      apiVersion: 'meshd.io/v1alpha1',
      kind: 'AuthorizationPolicy',
      metadata: { name: `pol-${i}`, namespace: 'bench' },
      spec: {
        selector: { matchLabels: { app: `app-${i}` } },
        action: 'ALLOW',
        rules: [
          { from: [{ source: { namespaces: ['bench'] } }], to: [{ operation: { ports: [8080] } }] },
        ],
      },
    });
  }
  return out;
};

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
};
const rssMiB = (pid: number) =>
  Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'meshd-bench-registry-'));
  const caDir = join(dir, 'ca');
  await initCa({ dir: caDir, trustDomain: TD });
  const port = await freePort();
  const server = spawn(
    process.execPath,
    [new URL('../../daemon/main.js', import.meta.url).pathname, 'server'],
    {
      env: {
        ...process.env,
        MESHD_LISTEN_ADDRESS: '127.0.0.1',
        MESHD_GRPC_PORT: String(port),
        MESHD_MONITORING_PORT: '0',
        MESHD_CA_DIR: caDir,
        MESHD_DATA_DIR: join(dir, 'data'),
        MESHD_LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const clients: RegistryClient[] = [];
  try {
    await waitForOutput(server, /"level":"warn"|listening/, 20_000).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 500));
    const admin = loadAdminCredentials(caDir);
    const client = new RegistryClient({
      ...admin,
      server: `127.0.0.1:${port}`,
      timeoutMs: 120_000,
    });
    clients.push(client);
    const idleRss = rssMiB(server.pid ?? 0);
    const all = resources().map((r) => JSON.stringify(r));
    const loadStart = performance.now();
    for (let i = 0; i < all.length; i += CHUNK)
      await client.apply({ resources: all.slice(i, i + CHUNK), dryRun: false });
    const loadMs = performance.now() - loadStart;
    await new Promise((r) => setTimeout(r, 1000));

    // Full snapshot to one agent: from Watch to a loaded MeshState.
    const snapshotStart = performance.now();
    const snapshot = await new Promise<WatchResponse>((resolve, reject) => {
      const stream = client.watch(
        { node: 'bench', fromRevision: 0 },
        (m) => {
          stream.cancel();
          resolve(m);
        },
        (err) => err && reject(err),
      );
    });
    const receivedMs = performance.now() - snapshotStart;
    const state = new MeshState();
    state.replaceAll(
      snapshot.resources.flatMap((t) => {
        const r = validateResource(JSON.parse(t));
        return r.ok ? [r.resource] : [];
      }),
      snapshot.revision,
    );
    const snapshotMs = performance.now() - snapshotStart;
    const snapshotBytes = snapshot.resources.reduce((n, r) => n + r.length, 0);

    // 20 watchers; each change timed until every watcher has it.
    const seen: number[] = new Array(WATCHERS).fill(0);
    const streams = Array.from({ length: WATCHERS }, (_, i) => {
      const c = new RegistryClient({ ...admin, server: `127.0.0.1:${port}` });
      clients.push(c);
      return c.watch(
        { node: `watcher-${i}`, fromRevision: 0 },
        (m) => {
          seen[i] = m.revision;
        },
        () => {},
      );
    });
    const deadline = Date.now() + 60_000;
    while (seen.some((r) => r < snapshot.revision) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    const peakRss = rssMiB(server.pid ?? 0);
    const latencies: number[] = [];
    for (let i = 0; i < CHANGES; i++) {
      const w = JSON.parse(all[1 + ((i * 97) % WORKLOADS)] ?? '{}');
      w.metadata.labels.rollout = String(i);
      const start = performance.now();
      const { revision } = await client.apply({ resources: [JSON.stringify(w)], dryRun: false });
      while (seen.some((r) => r < revision)) {
        if (performance.now() - start > 10_000)
          throw new Error(`change ${i} did not reach every watcher in 10 s`);
        await new Promise((r) => setImmediate(r));
      }
      latencies.push(performance.now() - start);
    }
    for (const s of streams) s.cancel();
    const result = {
      workloads: WORKLOADS,
      services: SERVICES,
      policies: POLICIES,
      watchers: WATCHERS,
      loadSeconds: +(loadMs / 1000).toFixed(2),
      snapshotBytes,
      snapshotReceivedMs: Math.round(receivedMs),
      snapshotLoadedMs: Math.round(snapshotMs),
      changeToAllWatchersMs: {
        p50: +percentile(latencies, 50).toFixed(1),
        p99: +percentile(latencies, 99).toFixed(1),
        max: +Math.max(...latencies).toFixed(1),
      },
      serverRssMiB: {
        idle: Math.round(idleRss),
        loadedWith20Watchers: Math.round(peakRss),
        afterChanges: Math.round(rssMiB(server.pid ?? 0)),
      },
      node: process.version,
      date: new Date().toISOString(),
    };
    console.log(JSON.stringify(result, null, 2));
    console.log(`
| figure | value |
|---|---|
| load ${WORKLOADS} workloads + ${SERVICES} services + ${POLICIES} policies (Apply in chunks of ${CHUNK}) | ${result.loadSeconds} s |
| full snapshot to one agent: received / loaded into MeshState | ${result.snapshotReceivedMs} ms / ${result.snapshotLoadedMs} ms (${(snapshotBytes / 1048576).toFixed(1)} MiB of JSON) |
| one change to all ${WATCHERS} watching agents, p50 / p99 / max (${CHANGES} changes) | ${result.changeToAllWatchersMs.p50} / ${result.changeToAllWatchersMs.p99} / ${result.changeToAllWatchersMs.max} ms |
| server RSS: idle / loaded with ${WATCHERS} watchers / after the changes | ${result.serverRssMiB.idle} / ${result.serverRssMiB.loadedWith20Watchers} / ${result.serverRssMiB.afterChanges} MiB |`);
  } finally {
    for (const c of clients) c.close();
    server.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 500));
    if (server.exitCode === null) server.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
