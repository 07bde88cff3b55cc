// The file store: the shared behaviour suite, then what only it has: durability across
// reopen and SIGKILL, WAL recovery (torn tail vs corrupt middle), the directory lock, and WAL
// compaction into snapshots.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  CompactedError,
  type FileStore,
  openFileStore,
  openStore,
  StoreError,
} from '../../daemon/server/store/index.js';
import type { Logger } from '../../daemon/telemetry/index.js';
import { storeSuite } from '../support/store-suite.js';

const root = mkdtempSync(join(tmpdir(), 'meshd-store-test-'));
after(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;
const newDir = () => join(root, `s${++dirs}`);

function recordingLogger(
  lines: { level: string; msg: string; fields: Record<string, unknown> }[],
): Logger {
  const make = (base: Record<string, unknown>): Logger => {
    const at = (level: string) => (fields: Record<string, unknown>, msg: string) =>
      lines.push({ level, msg, fields: { ...base, ...fields } });
    return {
      error: at('error'),
      warn: at('warn'),
      info: at('info'),
      debug: at('debug'),
      child: (fields) => make({ ...base, ...fields }),
    };
  };
  return make({});
}

storeSuite('file', {
  open: () => openFileStore(newDir()),
  compact: (store) => (store as FileStore).compact(),
});

const put = (key: string, value: unknown) =>
  ({ type: 'put', key, value: JSON.stringify(value) }) as const;

describe('file store on disk', () => {
  it('keeps everything across close and reopen (items, revisions, createRevision)', async () => {
    const dir = newDir();
    const a = await openStore(`file://${dir}`);
    assert.equal(a.kind, 'file');
    const r1 = await a.commit([put('x', 1), put('y', 1)]);
    const r2 = await a.commit([put('x', 2), { type: 'delete', key: 'y' }]);
    await a.close();
    assert.equal(existsSync(join(dir, 'LOCK')), false, 'close() releases the lock');
    const b = await openStore(dir);
    assert.equal(await b.revision(), r2);
    assert.deepEqual(await b.get('x'), {
      key: 'x',
      value: '2',
      modRevision: r2,
      createRevision: r1,
    });
    assert.equal(await b.get('y'), undefined);
    // The WAL still holds r1 and r2, so a watch can resume from before the reopen.
    const seen: number[] = [];
    b.watch('', r1, (_e, rev) => seen.push(rev), assert.fail);
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(seen, [r2]);
    await b.close();
  });

  it('stores files with mode 0600 in a 0700 directory', async () => {
    const dir = newDir();
    const s = await openFileStore(dir, { walMaxRecords: 2 });
    await s.commit([put('a', 1)]);
    await s.commit([put('a', 2)]);
    await s.commit([put('a', 3)]);
    await s.close();
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    assert.equal(statSync(join(dir, 'wal.log')).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, 'snapshot.json')).mode & 0o777, 0o600);
  });

  it('compacts the WAL into a snapshot past its threshold; history serves watches until it is trimmed', async () => {
    const dir = newDir();
    const lines: { level: string; msg: string; fields: Record<string, unknown> }[] = [];
    const s = await openFileStore(dir, {
      walMaxRecords: 5,
      historyRevisions: 8,
      logger: recordingLogger(lines),
    });
    let last = 0;
    for (let i = 1; i <= 12; i++) last = await s.commit([put(`k${i % 3}`, i)]);
    assert.equal(last, 12);
    assert.ok(lines.some((l) => l.msg.includes('snapshot written')));
    const snap = JSON.parse(readFileSync(join(dir, 'snapshot.json'), 'utf8'));
    assert.equal(snap.revision, 10);
    assert.equal(snap.items.length, 3);
    assert.equal(
      readFileSync(join(dir, 'wal.log')).length > 0,
      true,
      'revisions 11 and 12 are in the WAL',
    );
    // In memory: the last 8 revisions; a watch from 4 works across the WAL truncation at 5 and 10…
    assert.equal(s.compactRevision, 4);
    const seen: number[] = [];
    s.watch('', 4, (_e, rev) => seen.push(rev), assert.fail);
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(seen, [5, 6, 7, 8, 9, 10, 11, 12]);
    // …one from 3 does not.
    const errors: Error[] = [];
    s.watch('', 3, assert.fail, (err) => errors.push(err));
    await new Promise((r) => setTimeout(r, 20));
    assert.ok(errors[0] instanceof CompactedError);
    assert.equal((errors[0] as CompactedError).compactRevision, 4);
    await s.close();
    // After a reopen, the history is what the WAL holds: revisions after the snapshot.
    const t = await openFileStore(dir);
    assert.equal(t.compactRevision, 10);
    assert.deepEqual(
      (await t.list('')).items.map((i) => [i.key, i.value]),
      [
        ['k0', '12'],
        ['k1', '10'],
        ['k2', '11'],
      ],
    );
    await t.close();
  });

  it('recovers from a torn last record: truncates it, logs it, keeps every acknowledged commit', async () => {
    const dir = newDir();
    const s = await openFileStore(dir);
    await s.commit([put('a', 1)]);
    const r2 = await s.commit([put('b', 2)]);
    await s.close();
    const wal = join(dir, 'wal.log');
    const good = readFileSync(wal);
    for (const tail of [
      good.subarray(0, 5), // half a header
      Buffer.concat([good.subarray(0, 20)]), // a header and part of a record
      Buffer.alloc(4096), // zero-filled space (power loss after the size was updated)
      (() => {
        const whole = Buffer.from(good.subarray(0, good.readUInt32BE(0) + 8));
        whole[whole.length - 3]! ^= 0xff; // a whole last record with a bad checksum
        return whole;
      })(),
    ]) {
      writeFileSync(wal, Buffer.concat([good, tail]));
      const lines: { level: string; msg: string; fields: Record<string, unknown> }[] = [];
      const t = await openFileStore(dir, { logger: recordingLogger(lines) });
      assert.equal(await t.revision(), r2);
      assert.equal((await t.get('b'))?.value, '2');
      const warn = lines.find((l) => l.level === 'warn' && l.msg.includes('recovered'));
      assert.ok(warn, 'the recovery is logged');
      assert.equal(warn.fields.offset, good.length);
      assert.equal(readFileSync(wal).length, good.length, 'the torn tail is cut off');
      const r3 = await t.commit([put('c', 3)]);
      assert.equal(r3, r2 + 1);
      await t.close();
      const u = await openFileStore(dir);
      assert.equal((await u.get('c'))?.value, '3');
      await u.commit([{ type: 'delete', key: 'c' }]);
      await u.close();
      writeFileSync(wal, good); // back to the two records for the next variant
      rmSync(join(dir, 'snapshot.json'), { force: true });
    }
  });

  it('refuses a corrupt record in the middle of the WAL, naming the file and offset', async () => {
    const dir = newDir();
    const s = await openFileStore(dir);
    await s.commit([put('a', 'first')]);
    await s.commit([put('b', 'second')]);
    await s.commit([put('c', 'third')]);
    await s.close();
    const wal = join(dir, 'wal.log');
    const bytes = readFileSync(wal);
    const first = bytes.readUInt32BE(0) + 8;
    const damaged = Buffer.from(bytes);
    damaged[first + 12]! ^= 0x01; // inside the second record's payload
    writeFileSync(wal, damaged);
    await assert.rejects(openFileStore(dir), (err: StoreError) => {
      assert.ok(err instanceof StoreError);
      assert.equal(err.code, 'MESHD_E_STORE');
      assert.match(
        err.message,
        new RegExp(`${wal.replace(/[/.]/g, '\\$&')} is corrupt at byte offset ${first}`),
      );
      return true;
    });
    assert.deepEqual(readFileSync(wal), damaged, 'nothing was truncated');
    assert.equal(existsSync(join(dir, 'LOCK')), false, 'a failed open releases the lock');
  });

  it('refuses a WAL that skips revisions (a missing snapshot) instead of losing data', async () => {
    const dir = newDir();
    const s = await openFileStore(dir, { walMaxRecords: 2 });
    for (let i = 0; i < 3; i++) await s.commit([put('a', i)]);
    await s.close();
    rmSync(join(dir, 'snapshot.json'));
    await assert.rejects(openFileStore(dir), /record of revision 3 follows revision 0/);
  });

  it('refuses a damaged snapshot', async () => {
    const dir = newDir();
    const s = await openFileStore(dir);
    await s.compact();
    await s.close();
    writeFileSync(join(dir, 'snapshot.json'), '{"format":"meshd-store-snapshot/v1","revision":');
    await assert.rejects(openFileStore(dir), /snapshot\.json is invalid: not JSON/);
  });

  it('locks its directory: a second store on it gets a clear error; a stale lock is taken over', async () => {
    const dir = newDir();
    const s = await openFileStore(dir);
    await assert.rejects(openFileStore(dir), (err: StoreError) => {
      assert.equal(err.code, 'MESHD_E_STORE');
      assert.match(err.message, /is locked by this process/);
      return true;
    });
    // Another live process holds it.
    await s.close();
    writeFileSync(join(dir, 'LOCK'), `${process.ppid}\n`);
    await assert.rejects(openFileStore(dir), new RegExp(`locked by pid ${process.ppid}`));
    // A dead one does not.
    const child = spawn(process.execPath, ['-e', '0']);
    await new Promise((r) => child.once('exit', r));
    writeFileSync(join(dir, 'LOCK'), `${child.pid}\n`);
    const lines: { level: string; msg: string; fields: Record<string, unknown> }[] = [];
    const t = await openFileStore(dir, { logger: recordingLogger(lines) });
    assert.ok(lines.some((l) => l.msg.includes('stale store lock')));
    assert.equal(readFileSync(join(dir, 'LOCK'), 'utf8'), `${process.pid}\n`);
    await t.close();
  });

  it('keeps every acknowledged apply when SIGKILLed mid-stream (3 rounds, reopened each time)', async (t) => {
    const dir = newDir();
    const writer = fileURLToPath(new URL('../support/store-writer.js', import.meta.url));
    const kept = new Map<string, string>(); // key → value that must survive later rounds
    for (let round = 0; round < 3; round++) {
      const killAfter = 200 + Math.floor(Math.random() * 300);
      const child = spawn(process.execPath, [writer, dir, String(round)], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      let acks = 0;
      const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
        child.once('exit', (code, signal) => resolve({ code, signal })),
      );
      const killer = setTimeout(() => child.kill('SIGKILL'), 30_000); // bound, whatever happens
      child.stderr.on('data', (c: Buffer) => {
        err += c.toString();
      });
      child.stdout.on('data', (c: Buffer) => {
        out += c.toString();
        acks = out.split('\n').filter((l) => l.startsWith('ack ')).length;
        if (acks >= killAfter) {
          // A random moment after the threshold: usually with commits in flight.
          setTimeout(() => child.kill('SIGKILL'), Math.floor(Math.random() * 5));
        }
      });
      const { signal } = await exited;
      clearTimeout(killer);
      assert.equal(signal, 'SIGKILL', `writer exited by itself: ${err}`);
      // Only whole lines count: the last one may have been cut by the kill.
      const lines = out
        .split('\n')
        .slice(0, -1)
        .filter((l) => l.startsWith('ack '));
      assert.ok(lines.length >= 200, `only ${lines.length} acks before the kill: ${err}`);
      const lastAck = new Map<string, { revision: number; seq: number }>();
      let maxRevision = 0;
      for (const line of lines) {
        const [, rev, key, seq] = line.split(' ');
        const a = { revision: Number(rev), seq: Number(seq) };
        if ((lastAck.get(key!)?.revision ?? 0) < a.revision) lastAck.set(key!, a);
        maxRevision = Math.max(maxRevision, a.revision);
      }

      const log: { level: string; msg: string; fields: Record<string, unknown> }[] = [];
      const store = await openFileStore(dir, { logger: recordingLogger(log) }); // or this throws
      assert.deepEqual(
        log.filter((l) => l.level === 'error'),
        [],
      );
      const torn = log.some((l) => l.msg.includes('recovered'));
      assert.ok(
        (await store.revision()) >= maxRevision,
        'the store has every acknowledged revision',
      );
      for (const [key, ack] of lastAck) {
        const item = await store.get(key);
        assert.ok(item, `${key} (acknowledged at revision ${ack.revision}) is missing`);
        assert.ok(
          item.modRevision >= ack.revision,
          `${key}: revision ${item.modRevision} < acknowledged ${ack.revision}`,
        );
        const seq = JSON.parse(item.value).seq as number;
        if (item.modRevision === ack.revision) assert.equal(seq, ack.seq, key);
        else assert.ok(seq > ack.seq, `${key}: an older value than acknowledged`);
      }
      for (const [key, value] of kept) assert.equal((await store.get(key))?.value, value, key);
      for (const item of (await store.list(`r${round}/`)).items) kept.set(item.key, item.value);
      t.diagnostic(
        `round ${round}: killed after ${lines.length} acks (revision ${maxRevision}); reopened at revision ${await store.revision()}${torn ? ', torn WAL tail recovered' : ''}`,
      );
      await store.close();
    }
  });
});
