// The main thread's side of the agent's data-path threads (daemon/agent/threads.ts), with a
// stand-in thread script (test/support/fake-data-path-thread.ts): start, state forwarding,
// certificates, a thread that dies, a thread that never answers.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DataPathOptions } from '../../daemon/agent/data-path.js';
import { DataPathThreads } from '../../daemon/agent/threads.js';
import { MeshdError } from '../../daemon/errors.js';
import { MeshState, type Resource, type StateChange } from '../../daemon/model/index.js';
import { silentLogger } from '../../daemon/telemetry/index.js';

const script = new URL('../support/fake-data-path-thread.js', import.meta.url);
const options: DataPathOptions = {
  node: 'n1',
  trustDomain: 'cluster.local',
  mark: 0x539,
  connectTimeoutMs: 1_000,
  handshakeTimeoutMs: 1_000,
  idleTimeoutMs: 1_000,
  maxConnectionsPerWorkload: 10,
  maxPendingConnectsPerWorkload: 10,
  ownsRules: false,
  reusePort: true,
  defences: {
    maxHandshakes: 16,
    maxHandshakesPerSource: 4,
    cancelledStreamBurst: 20,
    cancelledStreamRate: 5,
    penaltyMs: 1_000,
    streamRatePerSource: 100,
    deadPeerTimeoutMs: 5_000,
  },
};

function fakeSync() {
  const state = new MeshState();
  const listeners = new Set<(c: StateChange | 'snapshot') => void>();
  return {
    state,
    onChange(l: (c: StateChange | 'snapshot') => void) {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    emit(c: StateChange | 'snapshot') {
      for (const l of listeners) l(c);
    },
  };
}

const certificates = {
  roots: ['ROOT-PEM'],
  certificate: async (id: string) => ({
    serial: '01',
    certChainPem: `CHAIN for ${id}`,
    keyPem: 'KEY',
    notBefore: new Date(),
    notAfter: new Date(Date.UTC(2030, 0, 1)),
    issuer: 'CA',
  }),
};

function start(
  mode: string,
  extra: { onFailure?: (err: Error) => void; count?: number; logger?: typeof silentLogger } = {},
) {
  process.env.FAKE_THREAD_MODE = mode;
  const sync = fakeSync();
  const threads = DataPathThreads.start({
    count: extra.count ?? 2,
    options,
    logLevel: 'error',
    sync,
    certificates,
    logger: extra.logger ?? silentLogger,
    onFailure: extra.onFailure ?? (() => {}),
    script,
    startTimeoutMs: 2_000,
    collectTimeoutMs: 300,
  });
  return { sync, threads };
}

test('threads get the state as a snapshot, then each applied change, and the trimmer’s notice; they get certificates from the main thread', async () => {
  const { sync, threads: starting } = start('mirror');
  const threads = await starting;
  try {
    const shop = {
      apiVersion: 'meshd.io/v1alpha1',
      kind: 'Namespace',
      metadata: { name: 'shop' },
    } as unknown as Resource;
    const change = { workloads: [], services: [] };
    sync.emit({ ...change, applied: false, previous: undefined, current: undefined });
    sync.emit({ ...change, applied: true, previous: undefined, current: shop });
    sync.emit({ ...change, applied: true, previous: shop, current: undefined });
    threads.trim();
    const { reports: collected, unanswered } = await threads.collect();
    assert.deepEqual(unanswered, []);
    const reports = collected as unknown as Array<{
      seen: Array<{ snapshot?: { revision: number }; event?: unknown }>;
      certificate: { cert: { certChainPem: string; notAfter: number }; roots: string[] };
    }>;
    assert.equal(reports.length, 2);
    for (const r of reports) {
      assert.deepEqual(r.seen, [
        { snapshot: { resources: [], revision: 0 } },
        { event: { type: 'put', resource: shop, revision: 0 } },
        {
          event: {
            type: 'delete',
            ref: { kind: 'Namespace', namespace: '', name: 'shop' },
            revision: 0,
          },
        },
        { trim: true },
      ]);
      assert.equal(r.certificate.cert.certChainPem, 'CHAIN for spiffe://cluster.local/ns/a/sa/b');
      assert.deepEqual(r.certificate.roots, ['ROOT-PEM']);
      assert.equal(r.certificate.cert.notAfter, Date.UTC(2030, 0, 1));
    }
  } finally {
    await threads.close(0);
  }
});

test('a thread that exits on its own is reported as MESHD_E_THREAD, naming it and its exit code', async () => {
  let failure: Error | undefined;
  const reported = new Promise<void>((resolve) => {
    const { threads } = start('exit-after-ready', {
      count: 1,
      onFailure: (err) => {
        failure = err;
        resolve();
      },
    });
    void threads.then((t) => reported.then(() => t.close(0)));
  });
  await reported;
  assert.ok(failure instanceof MeshdError);
  assert.equal(failure.code, 'MESHD_E_THREAD');
  assert.match(failure.message, /data-path thread 1 exited \(code 3\)/);
});

test('threads that do not answer in time fail the start with MESHD_E_THREAD, and are ended', async () => {
  let failures = 0;
  const started = Date.now();
  const { threads } = start('silent', { onFailure: () => failures++ });
  await assert.rejects(threads, (err: unknown) => {
    assert.ok(err instanceof MeshdError);
    assert.equal(err.code, 'MESHD_E_THREAD');
    assert.match(err.message, /data-path thread 1: no answer to ready within 2000 ms/);
    return true;
  });
  assert.ok(Date.now() - started < 4_000, 'the silent threads were terminated at once');
  assert.equal(failures, 0, 'ending them on purpose is no failure');
});

test('a thread that exits before it is ready fails the start, naming its exit code', async () => {
  const { threads } = start('exit-before-ready', { count: 1 });
  await assert.rejects(threads, (err: unknown) => {
    assert.ok(err instanceof MeshdError);
    assert.equal(err.code, 'MESHD_E_THREAD');
    assert.match(err.message, /data-path thread 1: it exited \(code 4\)/);
    assert.match(err.message, /MESHD_AGENT_THREADS=1/);
    return true;
  });
});

test('a thread that does not report in time is left out of collect, named, and logged', async () => {
  const warnings: string[] = [];
  const logger = { ...silentLogger, warn: (_f: unknown, msg: string) => warnings.push(msg) };
  const { threads: starting } = start('mute-collect', { count: 1, logger });
  const threads = await starting;
  try {
    assert.deepEqual(await threads.collect(), { reports: [], unanswered: [1] });
    assert.deepEqual(warnings, ['a data-path thread did not report its metrics and connections']);
  } finally {
    await threads.close(0);
  }
});
