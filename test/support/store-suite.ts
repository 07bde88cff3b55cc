/**
 * The behaviour every store backend shares, as one suite run against each (file, etcd):
 * revisions, compare-and-swap, atomic commits, list/get, watch from a revision, compaction and
 * the follow() helper's resume. A backend's test file calls storeSuite() with a factory.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import {
  CompactedError,
  ConflictError,
  follow,
  type Store,
  type StoredItem,
  StoreError,
  type StoreEvent,
} from '../../daemon/server/store/index.js';

export interface StoreFactory {
  /** A new, empty store (its own directory or etcd prefix). */
  open(): Promise<Store>;
  /** Compacts the store's history up to its current revision; returns that revision. */
  compact(store: Store): Promise<number>;
}

export async function waitFor(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const put = (key: string, value: unknown, expectModRevision?: number) =>
  ({ type: 'put', key, value: JSON.stringify(value), expectModRevision }) as const;
const del = (key: string, expectModRevision?: number) =>
  ({ type: 'delete', key, expectModRevision }) as const;

interface Batch {
  revision: number;
  events: StoreEvent[];
}

function recorder() {
  const batches: Batch[] = [];
  const errors: Error[] = [];
  return {
    batches,
    errors,
    onEvents: (events: StoreEvent[], revision: number) => batches.push({ revision, events }),
    onError: (err: Error) => errors.push(err),
  };
}

export function storeSuite(name: string, factory: StoreFactory): void {
  describe(`store behaviour: ${name}`, () => {
    const open: Store[] = [];
    const fresh = async () => {
      const store = await factory.open();
      open.push(store);
      return store;
    };
    afterEach(async () => {
      for (const s of open.splice(0)) await s.close();
    });

    it('starts empty', async () => {
      const store = await fresh();
      assert.equal(await store.get('a'), undefined);
      const listed = await store.list('');
      assert.deepEqual(listed.items, []);
      assert.equal(listed.revision, await store.revision());
    });

    it('puts, gets and lists sorted by key, with revisions', async () => {
      const store = await fresh();
      const before = await store.revision();
      const r1 = await store.commit([put('b/2', { n: 2 }), put('a', 'x'), put('b/1', { n: 1 })]);
      assert.equal(r1, before + 1, 'one revision for the whole commit');
      const r2 = await store.commit([put('b/10', { n: 10 })]);
      assert.equal(r2, r1 + 1);
      assert.deepEqual(await store.get('a'), {
        key: 'a',
        value: '"x"',
        modRevision: r1,
        createRevision: r1,
      });
      const { items, revision } = await store.list('b/');
      assert.deepEqual(
        items.map((i) => [i.key, i.value, i.modRevision]),
        [
          ['b/1', '{"n":1}', r1],
          ['b/10', '{"n":10}', r2],
          ['b/2', '{"n":2}', r1],
        ],
      );
      assert.equal(revision, r2);
      assert.deepEqual(
        (await store.list('')).items.map((i) => i.key),
        ['a', 'b/1', 'b/10', 'b/2'],
      );
      assert.equal(await store.revision(), r2);
    });

    it('an update keeps createRevision; a delete bumps the revision', async () => {
      const store = await fresh();
      const r1 = await store.commit([put('k', 1)]);
      const r2 = await store.commit([put('k', 2)]);
      assert.deepEqual(await store.get('k'), {
        key: 'k',
        value: '2',
        modRevision: r2,
        createRevision: r1,
      });
      const r3 = await store.commit([del('k')]);
      assert.equal(r3, r2 + 1);
      assert.equal(await store.get('k'), undefined);
      const r4 = await store.commit([put('k', 3)]);
      assert.equal((await store.get('k'))?.createRevision, r4, 'a re-created key starts anew');
    });

    it('compare-and-swap on modRevision: create-only, update, delete', async () => {
      const store = await fresh();
      const r1 = await store.commit([put('x', 1, 0)]);
      await assert.rejects(store.commit([put('x', 2, 0)]), (err: ConflictError) => {
        assert.ok(err instanceof ConflictError);
        assert.equal(err.code, 'MESHD_E_CONFLICT');
        assert.deepEqual([err.key, err.expected, err.actual], ['x', 0, r1]);
        assert.match(err.message, /"x"/);
        return true;
      });
      const r2 = await store.commit([put('x', 2, r1)]);
      await assert.rejects(store.commit([put('x', 3, r1)]), (err: ConflictError) => {
        assert.deepEqual([err.key, err.expected, err.actual], ['x', r1, r2]);
        return true;
      });
      await assert.rejects(store.commit([del('x', r1)]), ConflictError);
      await assert.rejects(store.commit([put('missing', 1, r2)]), (err: ConflictError) => {
        assert.deepEqual([err.key, err.expected, err.actual], ['missing', r2, 0]);
        return true;
      });
      assert.equal((await store.get('x'))?.value, '2');
      const r3 = await store.commit([del('x', r2)]);
      assert.equal(r3, r2 + 1);
      assert.equal(await store.get('x'), undefined);
    });

    it('a commit is all-or-nothing: one failed expectation changes nothing', async () => {
      const store = await fresh();
      const r1 = await store.commit([put('keep', 'old')]);
      await assert.rejects(
        store.commit([
          put('new', 1),
          put('keep', 'changed', r1),
          del('keep2'),
          put('other', 2, 99_999),
        ]),
        (err: ConflictError) => {
          assert.equal(err.key, 'other');
          assert.equal(err.expected, 99_999);
          assert.equal(err.actual, 0);
          return true;
        },
      );
      assert.equal(await store.revision(), r1);
      assert.equal(await store.get('new'), undefined);
      assert.equal((await store.get('keep'))?.value, '"old"');
    });

    it('deleting a missing key is a no-op; a commit of only no-ops makes no revision', async () => {
      const store = await fresh();
      const r0 = await store.commit([put('there', 1)]);
      assert.equal(await store.commit([del('never-was')]), r0);
      assert.equal(await store.commit([del('never-was', 0)]), r0);
      assert.equal(await store.commit([]), r0);
      assert.equal(await store.revision(), r0);
      const r1 = await store.commit([del('never-was'), put('b', 1)]);
      assert.equal(r1, r0 + 1);
    });

    it('refuses bad operations with MESHD_E_STORE and changes nothing', async () => {
      const store = await fresh();
      const r0 = await store.revision();
      const isStoreError = (err: StoreError) =>
        err instanceof StoreError && err.code === 'MESHD_E_STORE';
      await assert.rejects(store.commit([put('d', 1), put('d', 2)]), isStoreError);
      await assert.rejects(store.commit([put('', 1)]), isStoreError);
      await assert.rejects(
        store.commit([{ type: 'put', key: 'v', value: undefined as unknown as string }]),
        isStoreError,
      );
      await assert.rejects(store.commit([put('n', 1, -1)]), isStoreError);
      await assert.rejects(
        store.commit([{ type: 'put', key: 's', value: '"\ud800"' }]),
        isStoreError,
      );
      await assert.rejects(store.commit([put('\udc00', 1)]), isStoreError);
      assert.equal(await store.revision(), r0);
    });

    it('serializes concurrent compare-and-swap writers (no lost update)', async () => {
      const store = await fresh();
      await store.commit([put('counter', 0)]);
      const increment = async () => {
        for (let attempt = 0; attempt < 200; attempt++) {
          const item = (await store.get('counter')) as StoredItem;
          try {
            await store.commit([put('counter', JSON.parse(item.value) + 1, item.modRevision)]);
            return;
          } catch (err) {
            if (!(err instanceof ConflictError)) throw err;
          }
        }
        throw new Error('no progress');
      };
      await Promise.all(Array.from({ length: 12 }, increment));
      assert.equal((await store.get('counter'))?.value, '12');
    });

    it('watches from a revision: history then live, one callback per revision, under the prefix', async () => {
      const store = await fresh();
      const r1 = await store.commit([put('w/a', 1)]);
      const r2 = await store.commit([put('w/a', 2), put('w/b', 1), put('other', 1)]);
      const r3 = await store.commit([del('w/b')]);
      const rec = recorder();
      const handle = store.watch('w/', r1, rec.onEvents, rec.onError);
      await waitFor('the history', () => rec.batches.length >= 2);
      const r4 = await store.commit([put('other', 2)]); // not under w/
      const r5 = await store.commit([put('w/c', 'c'), del('w/a')]);
      await waitFor('the live commit', () => rec.batches.length >= 3);
      assert.deepEqual(rec.errors, []);
      assert.deepEqual(rec.batches, [
        {
          revision: r2,
          events: [
            { type: 'put', key: 'w/a', value: '2', prevValue: '1', modRevision: r2 },
            { type: 'put', key: 'w/b', value: '1', modRevision: r2 },
          ],
        },
        { revision: r3, events: [{ type: 'delete', key: 'w/b', prevValue: '1', modRevision: r3 }] },
        {
          revision: r5,
          events: [
            { type: 'put', key: 'w/c', value: '"c"', modRevision: r5 },
            { type: 'delete', key: 'w/a', prevValue: '2', modRevision: r5 },
          ],
        },
      ]);
      assert.ok(r4 < r5);
      handle.cancel();
      await store.commit([put('w/d', 1)]);
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(rec.batches.length, 3, 'no events after cancel()');
    });

    it('a watch from the current revision sees only what comes next; two watches agree', async () => {
      const store = await fresh();
      await store.commit([put('p/x', 1)]);
      const now = await store.revision();
      const a = recorder();
      const b = recorder();
      store.watch('p/', now, a.onEvents, a.onError);
      store.watch('', now, b.onEvents, b.onError);
      const r = await store.commit([put('p/y', 2)]);
      await waitFor('both watches', () => a.batches.length === 1 && b.batches.length === 1);
      assert.deepEqual(a.batches, b.batches);
      assert.equal(a.batches[0]?.revision, r);
    });

    it('a watch from a compacted revision ends with CompactedError; from the new one it works', async () => {
      const store = await fresh();
      const r1 = await store.commit([put('c/a', 1)]);
      await store.commit([put('c/a', 2)]);
      await store.commit([put('c/a', 3)]);
      const compactedAt = await factory.compact(store);
      const rec = recorder();
      store.watch('c/', r1, rec.onEvents, rec.onError);
      await waitFor('the error', () => rec.errors.length === 1);
      const err = rec.errors[0] as CompactedError;
      assert.ok(err instanceof CompactedError, String(err));
      assert.equal(err.code, 'MESHD_E_COMPACTED');
      assert.equal(err.compactRevision, compactedAt);
      assert.deepEqual(rec.batches, []);
      // The state survives compaction, and a watch from the compaction point follows on.
      assert.equal((await store.get('c/a'))?.value, '3');
      const live = recorder();
      store.watch('c/', compactedAt, live.onEvents, live.onError);
      const r = await store.commit([put('c/a', 4)]);
      await waitFor('the live event', () => live.batches.length === 1);
      assert.equal(live.batches[0]?.revision, r);
      assert.deepEqual(live.errors, []);
    });

    it('follow(): a snapshot, then events; resumes from a revision; a fresh snapshot after compaction', async () => {
      const store = await fresh();
      await store.commit([put('f/1', 1), put('g/1', 1)]);
      const seen: string[] = [];
      const h1 = follow(store, 'f/', {
        onSnapshot: (items, rev) =>
          seen.push(`snapshot@${rev}:${items.map((i) => i.key).join(',')}`),
        onEvents: (events, rev) => seen.push(`events@${rev}:${events.map((e) => e.key).join(',')}`),
      });
      await waitFor('the snapshot', () => seen.length === 1);
      const r2 = await store.commit([put('f/2', 2)]);
      await waitFor('the events', () => seen.length === 2);
      h1.cancel();
      const r1 = r2 - 1;
      assert.deepEqual(seen, [`snapshot@${r1}:f/1`, `events@${r2}:f/2`]);

      // Resume from a revision still in the history: events only, none missed, none twice.
      const r3 = await store.commit([put('f/3', 3)]);
      const resumed: string[] = [];
      const h2 = follow(
        store,
        'f/',
        {
          onSnapshot: (_items, rev) => resumed.push(`snapshot@${rev}`),
          onEvents: (_events, rev) => resumed.push(`events@${rev}`),
        },
        { fromRevision: r2 },
      );
      await waitFor('the resumed events', () => resumed.length === 1);
      h2.cancel();
      assert.deepEqual(resumed, [`events@${r3}`]);

      // Resume from a compacted revision: a fresh snapshot, then events again.
      const at = await factory.compact(store);
      const retries: Error[] = [];
      const after: string[] = [];
      const h3 = follow(
        store,
        'f/',
        {
          onSnapshot: (items, rev) =>
            after.push(`snapshot@${rev}:${items.map((i) => i.key).join(',')}`),
          onEvents: (events, rev) =>
            after.push(`events@${rev}:${events.map((e) => e.key).join(',')}`),
          onRetry: (err) => retries.push(err),
        },
        { fromRevision: r1 },
      );
      await waitFor('the fresh snapshot', () => after.length === 1);
      const r4 = await store.commit([put('f/4', 4)]);
      await waitFor('events after the snapshot', () => after.length === 2);
      h3.cancel();
      assert.ok(after[0]?.startsWith('snapshot@'));
      assert.ok(Number(after[0]?.split(/[@:]/)[1]) >= at);
      assert.equal(after[0]?.split(':')[1], 'f/1,f/2,f/3');
      assert.equal(after[1], `events@${r4}:f/4`);
      assert.deepEqual(retries, []);
    });

    it('follow(): after a lost watch, resumes from the last revision (no snapshot, nothing twice)', async () => {
      const store = await fresh();
      let breakWatch: ((err: Error) => void) | undefined;
      const flaky: Store = {
        kind: store.kind,
        get: (key) => store.get(key),
        list: (prefix) => store.list(prefix),
        commit: (ops) => store.commit(ops),
        revision: () => store.revision(),
        close: () => store.close(),
        watch: (prefix, from, onEvents, onError) => {
          const handle = store.watch(prefix, from, onEvents, onError);
          breakWatch = (err) => {
            handle.cancel();
            onError(err);
          };
          return handle;
        },
      };
      await store.commit([put('f/1', 1)]);
      const seen: string[] = [];
      const retries: Error[] = [];
      const h = follow(
        flaky,
        'f/',
        {
          onSnapshot: (_items, rev) => seen.push(`snapshot@${rev}`),
          onEvents: (_events, rev) => seen.push(`events@${rev}`),
          onRetry: (err) => retries.push(err),
        },
        { minDelayMs: 20 },
      );
      await waitFor('the snapshot', () => seen.length === 1);
      const r2 = await store.commit([put('f/2', 2)]);
      await waitFor('the first events', () => seen.length === 2);
      breakWatch!(new StoreError('connection lost (injected)'));
      const r3 = await store.commit([put('f/3', 3)]); // while nobody watches
      await waitFor('the events after the resume', () => seen.length === 3);
      const r4 = await store.commit([put('f/4', 4)]);
      await waitFor('live events', () => seen.length === 4);
      h.cancel();
      assert.deepEqual(seen, [
        `snapshot@${r2 - 1}`,
        `events@${r2}`,
        `events@${r3}`,
        `events@${r4}`,
      ]);
      assert.equal(retries.length, 1);
      assert.match(retries[0]!.message, /injected/);
    });

    it('refuses to work after close()', async () => {
      const store = await factory.open();
      await store.commit([put('a', 1)]);
      await store.close();
      await assert.rejects(store.get('a'), StoreError);
      await assert.rejects(store.commit([put('a', 2)]), StoreError);
      await store.close(); // twice is fine
    });
  });
}
