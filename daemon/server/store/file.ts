/**
 * The embedded file store (the default): one directory, one server.
 *
 *   snapshot.json  every item at one revision (atomic rename; see snapshot.ts)
 *   wal.log        one checksummed record per commit after the snapshot (see wal.ts)
 *   LOCK           the owning server's pid (see lock.ts)
 *
 * Commits are serialized: each is checked against the state including the commits queued
 * before it, appended to the WAL and fdatasync'd (commits waiting together share one fdatasync),
 * and only then applied in memory, acknowledged and shown to watchers, so nothing a reader or
 * watcher sees can be lost by a crash. When the WAL passes a threshold, the state is written as
 * a new snapshot and the WAL truncated. Watches resume from a bounded in-memory history.
 */

import type { FileHandle } from 'node:fs/promises';
import { mkdir, open, readFile, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Logger } from '../../telemetry/index.js';
import { silentLogger } from '../../telemetry/index.js';
import { CompactedError, ConflictError, StoreError } from './errors.js';
import { eventBytes, History, type HistoryEntry } from './history.js';
import { type DirLock, lockDir } from './lock.js';
import { fsyncDir, readSnapshot, SNAPSHOT_FILE, writeSnapshot } from './snapshot.js';
import type { Store, StoredItem, StoreEvent, StoreOp, WatchHandle } from './types.js';
import { checkKey, checkOps, checkRevision } from './validate.js';
import { encodeRecord, scanWal, type WalOp } from './wal.js';

export const WAL_FILE = 'wal.log';

export interface FileStoreOptions {
  logger?: Logger;
  /** Snapshot and truncate the WAL once it holds this many records (default 10 000). */
  walMaxRecords?: number;
  /** … or this many bytes (default 64 MiB). */
  walMaxBytes?: number;
  /** Revisions of events kept in memory for watches to resume from (default 10 000). */
  historyRevisions?: number;
  /** … and at most about this many bytes of them (default 64 MiB). */
  historyMaxBytes?: number;
}

const DEFAULTS = {
  walMaxRecords: 10_000,
  walMaxBytes: 64 * 1024 * 1024,
  historyRevisions: 10_000,
  historyMaxBytes: 64 * 1024 * 1024,
};
/** Commits written with one fdatasync at most. */
const MAX_GROUP = 256;

interface PendingCommit {
  kind: 'commit';
  ops: StoreOp[];
  resolve: (revision: number) => void;
  reject: (err: Error) => void;
}

interface PendingTask {
  kind: 'task';
  run: () => Promise<void>;
  resolve: (value: undefined) => void;
  reject: (err: Error) => void;
}

interface Watcher {
  prefix: string;
  /** The last revision delivered (or the one the watch started from). */
  last: number;
  ready: boolean;
  done: boolean;
  onEvents: (events: StoreEvent[], revision: number) => void;
  onError: (err: Error) => void;
}

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new StoreError(
      `invalid file store option ${name}=${value}: a positive integer is needed`,
    );
  }
  return value;
}

function freezeItem(item: StoredItem): StoredItem {
  return Object.freeze({
    key: item.key,
    value: item.value,
    modRevision: item.modRevision,
    createRevision: item.createRevision,
  });
}

function event(
  type: 'put' | 'delete',
  key: string,
  rev: number,
  value?: string,
  prevValue?: string,
): StoreEvent {
  const e: StoreEvent = { type, key, modRevision: rev };
  if (value !== undefined) e.value = value;
  if (prevValue !== undefined) e.prevValue = prevValue;
  return e;
}

/** Applies one WAL record to items; returns its events (used by replay and by commit). */
function applyRecord(items: Map<string, StoredItem>, rev: number, ops: WalOp[]): StoreEvent[] {
  const events: StoreEvent[] = [];
  for (const op of ops) {
    const prev = items.get(op[1]);
    if (op[0] === 'p') {
      items.set(
        op[1],
        freezeItem({
          key: op[1],
          value: op[2],
          modRevision: rev,
          createRevision: prev ? prev.createRevision : rev,
        }),
      );
      events.push(event('put', op[1], rev, op[2], prev?.value));
    } else if (prev) {
      items.delete(op[1]);
      events.push(event('delete', op[1], rev, undefined, prev.value));
    }
  }
  return events;
}

export class FileStore implements Store {
  readonly kind = 'file' as const;
  readonly dir: string;
  readonly #log: Logger;
  readonly #opts: typeof DEFAULTS;
  readonly #items: Map<string, StoredItem>;
  readonly #history: History;
  readonly #watchers = new Set<Watcher>();
  readonly #queue: (PendingCommit | PendingTask)[] = [];
  #revision: number;
  #wal: FileHandle;
  #walRecords: number;
  #walBytes: number;
  /** After a failed compaction, the WAL record count at which to try again. */
  #compactRetryAt = 0;
  #lock: DirLock;
  #draining: Promise<void> | undefined;
  #running = false;
  #closed = false;
  #failed: StoreError | undefined;

  /** Use openFileStore. */
  constructor(init: {
    dir: string;
    logger: Logger;
    options: typeof DEFAULTS;
    items: Map<string, StoredItem>;
    revision: number;
    history: History;
    wal: FileHandle;
    walRecords: number;
    walBytes: number;
    lock: DirLock;
  }) {
    this.dir = init.dir;
    this.#log = init.logger;
    this.#opts = init.options;
    this.#items = init.items;
    this.#revision = init.revision;
    this.#history = init.history;
    this.#wal = init.wal;
    this.#walRecords = init.walRecords;
    this.#walBytes = init.walBytes;
    this.#lock = init.lock;
  }

  /** The oldest revision a watch can start from. */
  get compactRevision(): number {
    return this.#history.floor;
  }

  #usable(): void {
    if (this.#failed) throw this.#failed;
    if (this.#closed) throw new StoreError(`the file store ${this.dir} is closed`);
  }

  async get(key: string): Promise<StoredItem | undefined> {
    this.#usable();
    checkKey(key);
    return this.#items.get(key);
  }

  async list(prefix: string): Promise<{ items: StoredItem[]; revision: number }> {
    this.#usable();
    if (typeof prefix !== 'string') throw new StoreError('list needs a string prefix');
    const items: StoredItem[] = [];
    for (const [key, item] of this.#items) if (key.startsWith(prefix)) items.push(item);
    items.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    return { items, revision: this.#revision };
  }

  async revision(): Promise<number> {
    this.#usable();
    return this.#revision;
  }

  commit(ops: StoreOp[]): Promise<number> {
    try {
      this.#usable();
      checkOps(ops);
    } catch (err) {
      return Promise.reject(err);
    }
    const copy = ops.map((op) => ({ ...op }));
    return new Promise((resolve, reject) => {
      this.#queue.push({ kind: 'commit', ops: copy, resolve, reject });
      this.#kick();
    });
  }

  /**
   * Writes a snapshot, truncates the WAL and forgets the in-memory history: watches can then
   * only start from the current revision. Returns it. (Maintenance and tests; compaction of
   * the WAL alone happens by itself.)
   */
  compact(): Promise<number> {
    try {
      this.#usable();
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<undefined>((resolve, reject) => {
      this.#queue.push({
        kind: 'task',
        run: async () => {
          await this.#compactWal('requested');
          this.#history.compactTo(this.#revision);
        },
        resolve,
        reject,
      });
      this.#kick();
    }).then(() => this.#revision);
  }

  watch(
    prefix: string,
    fromRevision: number,
    onEvents: (events: StoreEvent[], revision: number) => void,
    onError: (err: Error) => void,
  ): WatchHandle {
    if (typeof prefix !== 'string') throw new StoreError('watch needs a string prefix');
    checkRevision('watch revision', fromRevision);
    const w: Watcher = { prefix, last: fromRevision, ready: false, done: false, onEvents, onError };
    const handle = {
      cancel: () => {
        w.done = true;
        this.#watchers.delete(w);
      },
    };
    this.#watchers.add(w);
    // Catch up from the history after watch() returned, then follow live commits.
    queueMicrotask(() => {
      if (w.done) return;
      if (this.#failed || this.#closed) {
        this.#endWatch(w, this.#failed ?? new StoreError(`the file store ${this.dir} is closed`));
        return;
      }
      const backlog = this.#history.since(w.last);
      if (!backlog) {
        this.#endWatch(w, new CompactedError(fromRevision, this.#history.floor));
        return;
      }
      w.ready = true;
      for (const entry of backlog) if (!this.#deliver(w, entry)) return;
    });
    return handle;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const w of this.#watchers) w.done = true;
    this.#watchers.clear();
    await this.#draining;
    for (const p of this.#queue.splice(0)) {
      p.reject(new StoreError(`the file store ${this.dir} is closed`));
    }
    await this.#wal.close().catch(() => {});
    await this.#lock.release().catch((err: Error) => {
      this.#log.warn({ dir: this.dir, err }, 'could not remove the store lock');
    });
  }

  // --- internals -------------------------------------------------------------------------------

  #kick(): void {
    if (this.#running) return;
    this.#running = true;
    this.#draining = this.#drain();
  }

  async #drain(): Promise<void> {
    // #running is cleared in the same tick the loop finds the queue empty (no await between),
    // so a commit queued from then on starts a new drain instead of being stranded.
    try {
      while (this.#queue.length > 0) {
        if (this.#failed) {
          for (const p of this.#queue.splice(0)) p.reject(this.#failed);
          return;
        }
        const head = this.#queue[0]!;
        if (head.kind === 'task') {
          this.#queue.shift();
          try {
            await head.run();
            head.resolve(undefined);
          } catch (err) {
            head.reject(err as Error);
          }
          continue;
        }
        const group: PendingCommit[] = [];
        while (group.length < MAX_GROUP && this.#queue[0]?.kind === 'commit') {
          group.push(this.#queue.shift() as PendingCommit);
        }
        try {
          await this.#commitGroup(group);
        } catch (cause) {
          // A bug, not an I/O error (those are handled inside): stop rather than guess.
          this.#fail(
            new StoreError(`internal error in the file store: ${(cause as Error).message}`, {
              cause,
            }),
          );
          for (const c of group) c.reject(this.#failed!); // no-op for those already settled
        }
        await this.#maybeCompact();
      }
    } finally {
      this.#running = false;
    }
  }

  /** Checks, writes (one fdatasync), then applies and acknowledges a group of commits. */
  async #commitGroup(group: PendingCommit[]): Promise<void> {
    const overlay = new Map<string, StoredItem | null>();
    const lookup = (key: string) => {
      const o = overlay.get(key);
      return o === undefined ? this.#items.get(key) : (o ?? undefined);
    };
    let rev = this.#revision;
    const records: { rev: number; ops: WalOp[] }[] = [];
    const outcomes: { commit: PendingCommit; revision?: number; error?: Error }[] = [];
    const buffers: Buffer[] = [];
    for (const commit of group) {
      const conflict = commit.ops.find(
        (op) =>
          op.expectModRevision !== undefined &&
          (lookup(op.key)?.modRevision ?? 0) !== op.expectModRevision,
      );
      if (conflict) {
        const actual = lookup(conflict.key)?.modRevision ?? 0;
        outcomes.push({
          commit,
          error: new ConflictError(conflict.key, conflict.expectModRevision!, actual),
        });
        continue;
      }
      const walOps: WalOp[] = [];
      for (const op of commit.ops) {
        if (op.type === 'put') walOps.push(['p', op.key, op.value]);
        else if (lookup(op.key)) walOps.push(['d', op.key]);
      }
      if (walOps.length === 0) {
        outcomes.push({ commit, revision: rev });
        continue;
      }
      let buf: Buffer;
      try {
        buf = encodeRecord({ rev: rev + 1, ops: walOps });
      } catch (err) {
        outcomes.push({ commit, error: err as Error });
        continue;
      }
      rev++;
      buffers.push(buf);
      records.push({ rev, ops: walOps });
      for (const op of walOps) {
        if (op[0] === 'p') {
          const prev = lookup(op[1]);
          overlay.set(op[1], {
            key: op[1],
            value: op[2],
            modRevision: rev,
            createRevision: prev ? prev.createRevision : rev,
          });
        } else {
          overlay.set(op[1], null);
        }
      }
      outcomes.push({ commit, revision: rev });
    }

    if (buffers.length > 0) {
      const data = buffers.length === 1 ? buffers[0]! : Buffer.concat(buffers);
      try {
        let written = 0;
        while (written < data.length) {
          const { bytesWritten } = await this.#wal.write(
            data,
            written,
            data.length - written,
            null,
          );
          written += bytesWritten;
        }
        await this.#wal.datasync();
      } catch (cause) {
        this.#fail(
          new StoreError(
            `cannot write the store's WAL ${join(this.dir, WAL_FILE)}: ${(cause as Error).message}`,
            {
              cause,
              hint: 'the store stopped; restart meshd server (commits not acknowledged may or may not be kept)',
            },
          ),
        );
        for (const o of outcomes) o.commit.reject(o.error ?? this.#failed!);
        return;
      }
      this.#walRecords += records.length;
      this.#walBytes += data.length;
    }

    // Durable: apply, remember for watches, acknowledge.
    const entries: HistoryEntry[] = [];
    for (const record of records) {
      const events = applyRecord(this.#items, record.rev, record.ops);
      this.#revision = record.rev;
      const entry = { revision: record.rev, events, bytes: eventBytes(events) };
      this.#history.append(entry);
      entries.push(entry);
    }
    for (const o of outcomes) {
      if (o.error) o.commit.reject(o.error);
      else o.commit.resolve(o.revision!);
    }
    if (entries.length > 0) {
      for (const w of [...this.#watchers]) {
        if (!w.ready) continue; // its catch-up reads the history, which has these entries
        for (const entry of entries) if (!this.#deliver(w, entry)) break;
      }
    }
  }

  /** Gives one revision's events under w's prefix to w; false when the watch ended. */
  #deliver(w: Watcher, entry: HistoryEntry): boolean {
    if (w.done) return false;
    if (entry.revision <= w.last) return true;
    w.last = entry.revision;
    const events =
      w.prefix === '' ? entry.events : entry.events.filter((e) => e.key.startsWith(w.prefix));
    if (events.length === 0) return true;
    try {
      w.onEvents(events, entry.revision);
    } catch (cause) {
      this.#log.error(
        { dir: this.dir, prefix: w.prefix, err: cause as Error },
        'a store watch callback threw; the watch ends',
      );
      this.#endWatch(
        w,
        new StoreError(`a watch callback threw: ${(cause as Error).message}`, { cause }),
      );
      return false;
    }
    return !w.done;
  }

  #endWatch(w: Watcher, err: Error): void {
    if (w.done) return;
    w.done = true;
    this.#watchers.delete(w);
    try {
      w.onError(err);
    } catch (cause) {
      this.#log.error({ dir: this.dir, err: cause as Error }, 'a store watch error callback threw');
    }
  }

  #fail(err: StoreError): void {
    if (this.#failed) return;
    this.#failed = err;
    this.#log.error({ dir: this.dir, err }, 'the file store failed; no more commits are accepted');
    for (const w of [...this.#watchers]) this.#endWatch(w, err);
  }

  async #maybeCompact(): Promise<void> {
    if (this.#failed || this.#walRecords < this.#compactRetryAt) return;
    if (this.#walRecords >= this.#opts.walMaxRecords || this.#walBytes >= this.#opts.walMaxBytes) {
      try {
        await this.#compactWal('threshold');
      } catch (err) {
        // The WAL still holds everything; try again after another threshold's worth of records.
        this.#compactRetryAt = this.#walRecords + this.#opts.walMaxRecords;
        this.#log.error(
          { dir: this.dir, err: err as Error },
          'store compaction failed; the WAL keeps growing',
        );
      }
    }
  }

  /** Snapshot of the current state, then an empty WAL. Runs inside the serial queue. */
  async #compactWal(reason: string): Promise<void> {
    const started = Date.now();
    const items = [...this.#items.values()].sort((a, b) =>
      a.key < b.key ? -1 : a.key > b.key ? 1 : 0,
    );
    await writeSnapshot(this.dir, {
      revision: this.#revision,
      compactRevision: this.#revision,
      items,
    });
    // From here the snapshot holds everything; WAL records up to its revision are skipped on
    // open, so a crash before the truncation is harmless.
    try {
      await this.#wal.truncate(0);
      await this.#wal.datasync();
    } catch (cause) {
      throw new StoreError(`cannot truncate the store's WAL: ${(cause as Error).message}`, {
        cause,
      });
    }
    const records = this.#walRecords;
    this.#walRecords = 0;
    this.#walBytes = 0;
    this.#compactRetryAt = 0;
    this.#log.info(
      {
        dir: this.dir,
        revision: this.#revision,
        items: items.length,
        walRecords: records,
        reason,
        ms: Date.now() - started,
      },
      'store snapshot written, WAL truncated',
    );
  }
}

/** Opens (creating if needed) the file store in dir: lock, snapshot, WAL replay, recovery. */
export async function openFileStore(
  dir: string,
  options: FileStoreOptions = {},
): Promise<FileStore> {
  const logger = options.logger ?? silentLogger;
  const opts = {
    walMaxRecords: positive('walMaxRecords', options.walMaxRecords, DEFAULTS.walMaxRecords),
    walMaxBytes: positive('walMaxBytes', options.walMaxBytes, DEFAULTS.walMaxBytes),
    historyRevisions: positive(
      'historyRevisions',
      options.historyRevisions,
      DEFAULTS.historyRevisions,
    ),
    historyMaxBytes: positive('historyMaxBytes', options.historyMaxBytes, DEFAULTS.historyMaxBytes),
  };
  try {
    const existed = await stat(dir).then(
      (s) => {
        if (!s.isDirectory()) throw new StoreError(`the store path ${dir} is not a directory`);
        return true;
      },
      () => false,
    );
    if (!existed) {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      await fsyncDir(dirname(dir));
    }
  } catch (err) {
    if (err instanceof StoreError) throw err;
    throw new StoreError(`cannot create the store directory ${dir}: ${(err as Error).message}`, {
      cause: err,
    });
  }

  const lock = await lockDir(dir, (pid) =>
    logger.warn(
      { dir, pid },
      'took over a stale store lock (the previous server did not stop cleanly)',
    ),
  );
  let wal: FileHandle | undefined;
  try {
    await rm(join(dir, `${SNAPSHOT_FILE}.tmp`), { force: true });
    const snapshot = await readSnapshot(dir);
    const items = new Map<string, StoredItem>();
    for (const item of snapshot?.items ?? []) items.set(item.key, freezeItem(item));
    let revision = snapshot?.revision ?? 0;
    const history = new History(
      snapshot?.compactRevision ?? 0,
      opts.historyRevisions,
      opts.historyMaxBytes,
    );
    if (snapshot) history.compactTo(snapshot.revision);

    const walPath = join(dir, WAL_FILE);
    let image: Buffer;
    let walExisted = true;
    try {
      image = await readFile(walPath);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      image = Buffer.alloc(0);
      walExisted = false;
    }
    const scan = scanWal(image, walPath);
    let replayed = 0;
    for (const { offset, record } of scan.records) {
      if (record.rev <= revision) continue; // already in the snapshot (crash before truncation)
      if (record.rev !== revision + 1) {
        throw new StoreError(
          `${walPath} is corrupt at byte offset ${offset}: record of revision ${record.rev} follows revision ${revision}`,
          {
            hint: 'commits are missing (was snapshot.json replaced or removed?); restore the directory from a backup',
          },
        );
      }
      const events = applyRecord(items, record.rev, record.ops);
      revision = record.rev;
      history.append({ revision, events, bytes: eventBytes(events) });
      replayed++;
    }
    if (scan.torn) {
      const t = scan.torn;
      const fix = await open(walPath, 'r+');
      try {
        await fix.truncate(scan.validLength);
        await fix.sync();
      } finally {
        await fix.close();
      }
      logger.warn(
        { dir, file: walPath, offset: t.offset, bytes: t.bytes, reason: t.reason, revision },
        'store recovered: truncated an incomplete record at the end of the WAL (a crash while it was written; it was never acknowledged)',
      );
    }
    wal = await open(walPath, 'a', 0o600);
    if (!walExisted) await fsyncDir(dir);
    const store = new FileStore({
      dir,
      logger,
      options: opts,
      items,
      revision,
      history,
      wal,
      walRecords: scan.records.length,
      walBytes: scan.validLength,
      lock,
    });
    logger.info(
      {
        dir,
        revision,
        items: items.size,
        snapshotRevision: snapshot?.revision ?? 0,
        walRecords: replayed,
      },
      'file store opened',
    );
    return store;
  } catch (err) {
    await wal?.close().catch(() => {});
    await lock.release().catch(() => {});
    if (err instanceof StoreError) throw err;
    throw new StoreError(`cannot open the file store ${dir}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}
