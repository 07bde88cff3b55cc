// The etcd store against a real etcd (Debian's etcd-server, on 127.0.0.1 with free ports): the
// shared behaviour suite, then what only it has: several Store instances (several meshd
// servers) on one etcd, the key layout under the prefix, and a lost connection.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  type EtcdStore,
  follow,
  openStore,
  StoreError,
  type StoreEvent,
} from '../../daemon/server/store/index.js';
import { startEtcd, type TestEtcd } from '../support/etcd.js';
import { storeSuite, waitFor } from '../support/store-suite.js';

let etcd: TestEtcd;
let prefixes = 0;
const newPrefix = () => `/meshd-test-${process.pid}-${++prefixes}`;

before(async () => {
  etcd = await startEtcd();
});
after(async () => {
  await etcd?.stop();
});

storeSuite('etcd', {
  open: () => openStore(`${etcd.url}${newPrefix()}`),
  compact: (store) => (store as EtcdStore).compact(),
});

const put = (key: string, value: unknown) =>
  ({ type: 'put', key, value: JSON.stringify(value) }) as const;

describe('etcd store', () => {
  it("two servers on one etcd see each other's commits through watch, and CAS between them", async () => {
    const url = `${etcd.url}${newPrefix()}`;
    const a = await openStore(url);
    const b = await openStore(url);
    try {
      const start = await a.revision();
      const seenByB: StoreEvent[][] = [];
      b.watch('res/', start, (events) => seenByB.push(events), assert.fail);
      const seenByA: StoreEvent[][] = [];
      a.watch('res/', start, (events) => seenByA.push(events), assert.fail);
      const r1 = await a.commit([put('res/x', 'from-a')]);
      await waitFor('b to see a', () => seenByB.length === 1);
      assert.equal(seenByB[0]?.[0]?.value, '"from-a"');
      assert.equal((await b.get('res/x'))?.modRevision, r1);
      const r2 = await b.commit([{ ...put('res/x', 'from-b'), expectModRevision: r1 }]);
      await waitFor('a to see b', () => seenByA.length === 2);
      assert.equal(seenByA[1]?.[0]?.value, '"from-b"');
      // a's stale write loses: optimistic concurrency across servers.
      await assert.rejects(
        a.commit([{ ...put('res/x', 'stale'), expectModRevision: r1 }]),
        (err: Error & { actual?: number }) => err.name === 'ConflictError' && err.actual === r2,
      );
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('keeps keys under its prefix (default /meshd/) and does not see other prefixes', async () => {
    const parentPrefix = newPrefix();
    const s1 = await openStore(`${etcd.url}${parentPrefix}/child`);
    const s2 = await openStore(`${etcd.url}${newPrefix()}/`);
    const parent = await openStore(`${etcd.url}${parentPrefix}`);
    const def = await openStore(etcd.url);
    try {
      await s1.commit([put('k', 1)]);
      assert.equal(await s2.get('k'), undefined);
      assert.deepEqual((await s2.list('')).items, []);
      assert.equal((def as EtcdStore).prefix, '/meshd/');
      assert.equal((s1 as EtcdStore).prefix, `${parentPrefix}/child/`);
      // The etcd key is prefix + key: a store at the parent prefix sees it as child/k.
      assert.equal((await parent.get('child/k'))?.value, '1');
      assert.deepEqual(
        (await parent.list('')).items.map((i) => i.key),
        ['child/k'],
      );
    } finally {
      for (const s of [s1, s2, parent, def]) await s.close();
    }
  });

  it('lists more than one page at one revision', async () => {
    const s = await openStore(`${etcd.url}${newPrefix()}`, { listPageSize: 7 });
    try {
      const ops = Array.from({ length: 30 }, (_, i) =>
        put(`many/${String(i).padStart(2, '0')}`, i),
      );
      const rev = await s.commit(ops);
      const { items, revision } = await s.list('many/');
      assert.equal(items.length, 30);
      assert.equal(revision, rev);
      assert.deepEqual(
        items.map((i) => i.key),
        ops.map((o) => o.key),
      );
    } finally {
      await s.close();
    }
  });

  it('a lost connection ends watches with MESHD_E_STORE and fails calls within their deadline', async () => {
    const own = await startEtcd();
    try {
      const s = await openStore(own.url, { callTimeoutMs: 1500, connectTimeoutMs: 1500 });
      try {
        await s.commit([put('a', 1)]);
        const errors: Error[] = [];
        s.watch(
          '',
          await s.revision(),
          () => {},
          (err) => errors.push(err),
        );
        await new Promise((r) => setTimeout(r, 200)); // let the watch be created
        await own.stop();
        await waitFor('the watch error', () => errors.length === 1, 20_000);
        assert.ok(errors[0] instanceof StoreError, String(errors[0]));
        assert.equal((errors[0] as StoreError).code, 'MESHD_E_STORE');
        const started = Date.now();
        await assert.rejects(s.get('a'), (err: StoreError) => err.code === 'MESHD_E_STORE');
        assert.ok(Date.now() - started < 5000, 'bounded by the call deadline');
      } finally {
        await s.close();
      }
    } finally {
      await own.stop();
    }
  });

  it('follow() rides out an etcd crash and restart: resumes from its last revision', async () => {
    const own = await startEtcd();
    try {
      const s = await openStore(own.url, { callTimeoutMs: 2000, connectTimeoutMs: 2000 });
      try {
        await s.commit([put('a', 1)]);
        const seen: string[] = [];
        const retries: Error[] = [];
        const h = follow(
          s,
          '',
          {
            onSnapshot: (items, rev) => seen.push(`snapshot@${rev}:${items.length}`),
            onEvents: (events, rev) =>
              seen.push(`events@${rev}:${events.map((e) => e.key).join(',')}`),
            onRetry: (err) => retries.push(err),
          },
          { minDelayMs: 100, maxDelayMs: 1000 },
        );
        await waitFor('the snapshot', () => seen.length === 1);
        const r2 = await s.commit([put('b', 2)]);
        await waitFor('the first events', () => seen.length === 2);
        await own.kill();
        await waitFor('follow() to notice', () => retries.length >= 1, 20_000);
        await own.restart();
        // The channel reconnects by itself; commits fail until it has.
        let r3 = 0;
        for (const deadline = Date.now() + 20_000; r3 === 0; ) {
          try {
            r3 = await s.commit([put('c', 3)]);
          } catch (err) {
            if (Date.now() > deadline) throw err;
            await new Promise((r) => setTimeout(r, 200));
          }
        }
        await waitFor('the events after the restart', () => seen.length === 3, 20_000);
        h.cancel();
        assert.deepEqual(seen, [`snapshot@${r2 - 1}:1`, `events@${r2}:b`, `events@${r3}:c`]);
        assert.ok(retries.every((e) => e instanceof StoreError && e.code === 'MESHD_E_STORE'));
      } finally {
        await s.close();
      }
    } finally {
      await own.stop();
    }
  });

  it('opening an unreachable etcd fails within the connect timeout', async () => {
    const own = await startEtcd();
    await own.stop(); // its port is now (almost certainly) closed
    const started = Date.now();
    await assert.rejects(
      openStore(`etcd://127.0.0.1:${own.clientPort}`, { connectTimeoutMs: 1000 }),
      (err: StoreError) => {
        assert.equal(err.code, 'MESHD_E_STORE');
        assert.match(err.message, new RegExp(`cannot reach etcd at 127.0.0.1:${own.clientPort}`));
        return true;
      },
    );
    assert.ok(Date.now() - started < 4000);
  });
});
