/**
 * The etcd store (`--store etcd://host:port[,host:port…][/prefix]`): several meshd servers
 * share one etcd cluster. Every key lives under the prefix (default /meshd/); the store
 * revision is etcd's revision; a commit is one etcd Txn whose compares are the mod_revision
 * expectations; a watch is one etcd Watch stream from start_revision = fromRevision + 1.
 * The watch does not reconnect by itself: on a lost connection it reports the error and ends,
 * and the caller watches again from the last revision it saw (see follow.ts).
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { Logger } from '../../telemetry/index.js';
import { silentLogger } from '../../telemetry/index.js';
import { CompactedError, ConflictError, StoreError } from './errors.js';
import {
  type Compare,
  EtcdClient,
  type KeyValue,
  type RequestOp,
  statusName,
  type WatchEvent,
  type WatchResponse,
} from './etcd-client.js';
import type { Store, StoredItem, StoreEvent, StoreOp, WatchHandle } from './types.js';
import type { EtcdEndpoint } from './url.js';
import { checkKey, checkOps, checkRevision } from './validate.js';

export interface EtcdStoreOptions {
  logger?: Logger;
  /** Bound on connecting at open and on etcd confirming a new watch (default 5 s). */
  connectTimeoutMs?: number;
  /** Deadline of every Range/Txn/Compact call (default 5 s). */
  callTimeoutMs?: number;
  /** Keys per Range page when listing (default 1000). */
  listPageSize?: number;
}

/** gRPC statuses after which a Txn may have been applied: CANCELLED, UNKNOWN,
 * DEADLINE_EXCEEDED, INTERNAL, UNAVAILABLE. */
const UNCERTAIN = new Set([1, 2, 4, 13, 14]);
const COMPACTED_MESSAGE = 'required revision has been compacted';
const LIST_ATTEMPTS = 3;

/** The first key after every key starting with `prefix` (etcd's "prefix end"). */
export function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]); // all 0xff: no upper bound
}

interface GrpcError extends Error {
  code?: number;
  details?: string;
}

async function resolveEndpoints(
  endpoints: readonly EtcdEndpoint[],
  timeoutMs: number,
): Promise<EtcdEndpoint[]> {
  if (endpoints.length === 1 || endpoints.every((e) => isIP(e.host) !== 0)) return [...endpoints];
  // Several endpoints with host names: gRPC takes a list of addresses only as IP literals, so
  // resolve once here (a changed DNS record is seen at the next start).
  const out: EtcdEndpoint[] = [];
  for (const e of endpoints) {
    if (isIP(e.host) !== 0) {
      out.push(e);
      continue;
    }
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      const { address } = await Promise.race([lookup(e.host), timeout]);
      out.push({ host: address, port: e.port });
    } catch (cause) {
      throw new StoreError(`cannot resolve etcd endpoint ${e.host}: ${(cause as Error).message}`, {
        cause,
      });
    } finally {
      clearTimeout(timer);
    }
  }
  return out;
}

export class EtcdStore implements Store {
  readonly kind = 'etcd' as const;
  readonly prefix: string;
  readonly endpoints: string;
  readonly #client: EtcdClient;
  readonly #log: Logger;
  readonly #connectTimeoutMs: number;
  readonly #pageSize: number;
  readonly #watches = new Set<() => void>();
  #closed = false;

  /** Use openEtcdStore. */
  constructor(init: {
    client: EtcdClient;
    prefix: string;
    endpoints: string;
    logger: Logger;
    connectTimeoutMs: number;
    pageSize: number;
  }) {
    this.#client = init.client;
    this.prefix = init.prefix;
    this.endpoints = init.endpoints;
    this.#log = init.logger;
    this.#connectTimeoutMs = init.connectTimeoutMs;
    this.#pageSize = init.pageSize;
  }

  #key(key: string): Buffer {
    return Buffer.from(this.prefix + key, 'utf8');
  }

  #item(kv: KeyValue): StoredItem {
    return Object.freeze({
      key: kv.key.toString('utf8').slice(this.prefix.length),
      value: kv.value.toString('utf8'),
      modRevision: kv.modRevision,
      createRevision: kv.createRevision,
    });
  }

  /** `write`: a commit, which may have been applied when the answer was lost. */
  #error(what: string, cause: unknown, write = false): StoreError {
    const err = cause as GrpcError;
    const status = typeof err?.code === 'number' ? `${statusName(err.code)}: ` : '';
    const detail = err?.details || err?.message || String(cause);
    const lostAnswer = typeof err?.code !== 'number' || UNCERTAIN.has(err.code);
    return new StoreError(`etcd ${what} at ${this.endpoints} failed: ${status}${detail}`, {
      cause,
      hint:
        write && lostAnswer
          ? 'the commit may or may not have been applied; read the item again before retrying'
          : undefined,
    });
  }

  #usable(): void {
    if (this.#closed) throw new StoreError(`the etcd store at ${this.endpoints} is closed`);
  }

  async get(key: string): Promise<StoredItem | undefined> {
    this.#usable();
    checkKey(key);
    try {
      const res = await this.#client.range({ key: this.#key(key) });
      const kv = res.kvs[0];
      return kv ? this.#item(kv) : undefined;
    } catch (err) {
      throw this.#error(`get ${JSON.stringify(key)}`, err);
    }
  }

  async list(prefix: string): Promise<{ items: StoredItem[]; revision: number }> {
    this.#usable();
    if (typeof prefix !== 'string') throw new StoreError('list needs a string prefix');
    const start = this.#key(prefix);
    const end = prefixEnd(start);
    for (let attempt = 1; ; attempt++) {
      // Pages at one revision, so the list is one consistent cut even when it is long.
      const items: StoredItem[] = [];
      let revision = 0;
      let from = start;
      try {
        for (;;) {
          const res = await this.#client.range({
            key: from,
            rangeEnd: end,
            limit: this.#pageSize,
            revision,
          });
          if (revision === 0) revision = res.header.revision;
          for (const kv of res.kvs) items.push(this.#item(kv));
          const last = res.kvs.at(-1);
          if (!res.more || !last) break;
          from = Buffer.concat([last.key, Buffer.from([0])]);
        }
        return { items, revision };
      } catch (err) {
        // Compacted between two pages: start again at the newest revision.
        const compacted = String((err as GrpcError).details ?? '').includes(COMPACTED_MESSAGE);
        if (!compacted || attempt >= LIST_ATTEMPTS) {
          throw this.#error(`list ${JSON.stringify(prefix)}`, err);
        }
      }
    }
  }

  async revision(): Promise<number> {
    this.#usable();
    try {
      const res = await this.#client.range({ key: this.#key(''), countOnly: true });
      return res.header.revision;
    } catch (err) {
      throw this.#error('revision', err);
    }
  }

  async commit(ops: StoreOp[]): Promise<number> {
    this.#usable();
    checkOps(ops);
    if (ops.length === 0) return this.revision();
    const checked = ops.filter((op) => op.expectModRevision !== undefined);
    const compare: Compare[] = checked.map((op) => ({
      result: 'EQUAL',
      target: 'MOD',
      key: this.#key(op.key),
      modRevision: op.expectModRevision!,
    }));
    const success: RequestOp[] = ops.map((op) =>
      op.type === 'put'
        ? { requestPut: { key: this.#key(op.key), value: Buffer.from(op.value, 'utf8') } }
        : { requestDeleteRange: { key: this.#key(op.key) } },
    );
    // When a compare fails, read the keys compared so the error can name what was found.
    const failure: RequestOp[] = checked.map((op) => ({
      requestRange: { key: this.#key(op.key), keysOnly: true },
    }));
    let res: Awaited<ReturnType<EtcdClient['txn']>>;
    try {
      res = await this.#client.txn({ compare, success, failure });
    } catch (err) {
      throw this.#error('commit', err, true);
    }
    if (res.succeeded) return res.header.revision;
    for (const [i, op] of checked.entries()) {
      const actual = res.responses[i]?.responseRange?.kvs[0]?.modRevision ?? 0;
      if (actual !== op.expectModRevision) {
        throw new ConflictError(op.key, op.expectModRevision!, actual);
      }
    }
    const first = checked[0]!;
    throw new ConflictError(first.key, first.expectModRevision!, -1);
  }

  /**
   * Compacts etcd's history up to revision (default: the current one), as etcd's own
   * --auto-compaction does. For tests and maintenance: it affects every user of this etcd.
   */
  async compact(revision?: number): Promise<number> {
    this.#usable();
    const rev = revision ?? (await this.revision());
    try {
      await this.#client.compact(rev, true);
    } catch (err) {
      if (!String((err as GrpcError).details ?? '').includes(COMPACTED_MESSAGE)) {
        throw this.#error('compact', err);
      }
    }
    return rev;
  }

  watch(
    prefix: string,
    fromRevision: number,
    onEvents: (events: StoreEvent[], revision: number) => void,
    onError: (err: Error) => void,
  ): WatchHandle {
    if (typeof prefix !== 'string') throw new StoreError('watch needs a string prefix');
    checkRevision('watch revision', fromRevision);
    let done = false;
    let stream: ReturnType<EtcdClient['watchStream']> | undefined;
    let timer: NodeJS.Timeout | undefined;
    const stop = () => {
      done = true;
      clearTimeout(timer);
      this.#watches.delete(stop);
      stream?.removeAllListeners('data');
      stream?.cancel();
    };
    const finish = (err: Error) => {
      if (done) return;
      stop();
      try {
        onError(err);
      } catch (cause) {
        this.#log.error({ err: cause as Error }, 'a store watch error callback threw');
      }
    };
    this.#watches.add(stop);
    if (this.#closed) {
      queueMicrotask(() => finish(new StoreError(`the etcd store at ${this.endpoints} is closed`)));
      return { cancel: stop };
    }
    const key = this.#key(prefix);
    stream = this.#client.watchStream();
    stream.on('data', (res: WatchResponse) => {
      if (done) return;
      if (res.compactRevision > 0) {
        finish(new CompactedError(fromRevision, res.compactRevision));
        return;
      }
      if (res.canceled) {
        finish(
          new StoreError(
            `etcd at ${this.endpoints} canceled the watch on ${JSON.stringify(prefix)}: ${res.cancelReason || 'no reason given'}`,
          ),
        );
        return;
      }
      if (res.created) clearTimeout(timer);
      this.#deliver(res.events, onEvents, finish, () => done);
    });
    stream.on('error', (err: GrpcError) => {
      finish(this.#error(`watch on ${JSON.stringify(prefix)}`, err));
    });
    stream.on('end', () => {
      finish(
        new StoreError(`etcd at ${this.endpoints} ended the watch on ${JSON.stringify(prefix)}`),
      );
    });
    stream.write({
      createRequest: {
        key,
        rangeEnd: prefixEnd(key),
        startRevision: fromRevision + 1,
        prevKv: true,
      },
    });
    timer = setTimeout(() => {
      finish(
        new StoreError(
          `etcd at ${this.endpoints} did not confirm a watch within ${this.#connectTimeoutMs} ms`,
        ),
      );
    }, this.#connectTimeoutMs);
    return { cancel: stop };
  }

  /** One callback per revision (etcd never splits a revision across responses). */
  #deliver(
    raw: WatchEvent[],
    onEvents: (events: StoreEvent[], revision: number) => void,
    finish: (err: Error) => void,
    isDone: () => boolean,
  ): void {
    let i = 0;
    while (i < raw.length && !isDone()) {
      const revision = raw[i]!.kv.modRevision;
      const events: StoreEvent[] = [];
      for (; i < raw.length && raw[i]!.kv.modRevision === revision; i++) {
        const e = raw[i]!;
        const out: StoreEvent = {
          type: e.type === 'DELETE' ? 'delete' : 'put',
          key: e.kv.key.toString('utf8').slice(this.prefix.length),
          modRevision: revision,
        };
        if (e.type !== 'DELETE') out.value = e.kv.value.toString('utf8');
        if (e.prevKv) out.prevValue = e.prevKv.value.toString('utf8');
        events.push(out);
      }
      try {
        onEvents(events, revision);
      } catch (cause) {
        this.#log.error({ err: cause as Error }, 'a store watch callback threw; the watch ends');
        finish(new StoreError(`a watch callback threw: ${(cause as Error).message}`, { cause }));
      }
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const stop of [...this.#watches]) stop();
    this.#client.close();
  }
}

/** Connects (bounded by connectTimeoutMs) and checks etcd answers before returning. */
export async function openEtcdStore(
  endpoints: readonly EtcdEndpoint[],
  prefix: string,
  options: EtcdStoreOptions = {},
): Promise<EtcdStore> {
  const connectTimeoutMs = options.connectTimeoutMs ?? 5_000;
  const callTimeoutMs = options.callTimeoutMs ?? 5_000;
  const pageSize = options.listPageSize ?? 1_000;
  const logger = options.logger ?? silentLogger;
  const named = endpoints
    .map((e) => `${e.host.includes(':') ? `[${e.host}]` : e.host}:${e.port}`)
    .join(',');
  const resolved = await resolveEndpoints(endpoints, connectTimeoutMs);
  const client = new EtcdClient(resolved, callTimeoutMs);
  const store = new EtcdStore({
    client,
    prefix,
    endpoints: named,
    logger,
    connectTimeoutMs,
    pageSize,
  });
  try {
    await client.waitForReady(connectTimeoutMs);
    const revision = await store.revision();
    logger.info({ endpoints: named, prefix, revision }, 'etcd store opened');
    return store;
  } catch (cause) {
    client.close();
    const reason = cause instanceof StoreError ? cause.message : (cause as Error).message;
    throw new StoreError(`cannot reach etcd at ${named}: ${reason}`, {
      cause,
      hint: 'check that etcd runs and listens on that address (etcdctl --endpoints … endpoint health)',
    });
  }
}
