/**
 * The server's in-memory copy of the registry: one list + watch of the store, fanned out to
 * every agent's Watch stream, with a bounded history of recent changes so a reconnecting
 * agent resumes instead of downloading a snapshot. Several servers on one etcd each keep
 * their own cache, fed by the same store.
 */
import type { Logger } from '../../telemetry/index.js';
import type { Store, StoreEvent, WatchHandle } from '../store/index.js';
import { REGISTRY_PREFIX, refOfKey } from './keys.js';

export interface CachedChange {
  type: 'put' | 'delete';
  /** The resource JSON with metadata.resourceVersion set (for delete: as it was last). */
  resource: string;
}

export interface ChangeBatch {
  revision: number;
  changes: CachedChange[];
}

export type CacheListener = (
  event: { type: 'changes'; batch: ChangeBatch } | { type: 'reset' },
) => void;

export interface CachedResource {
  json: string;
  object: Record<string, unknown>;
  modRevision: number;
}

const RETRY_MS = 1_000;

function nodeOf(entry: CachedResource): string | undefined {
  if (entry.object.kind !== 'Workload') return undefined;
  return (entry.object.spec as { node?: string } | undefined)?.node;
}

/** The stored JSON plus the version clients see. */
export function withVersion(
  value: string,
  modRevision: number,
): { json: string; object: Record<string, unknown> } {
  const object = JSON.parse(value) as Record<string, unknown>;
  const metadata = {
    ...((object.metadata as Record<string, unknown>) ?? {}),
    resourceVersion: String(modRevision),
  };
  const withRv = { ...object, metadata };
  return { json: JSON.stringify(withRv), object: withRv };
}

export class RegistryCache {
  readonly #store: Store;
  readonly #logger: Logger;
  readonly #historyLimit: number;
  readonly #items = new Map<string, CachedResource>();
  readonly #history: ChangeBatch[] = [];
  readonly #listeners = new Set<CacheListener>();
  /** Workload keys by spec.node, for node authorization. */
  readonly #workloadsByNode = new Map<string, Set<string>>();
  #revision = 0;
  /** Oldest revision a resume can start after. */
  #floor = 0;
  #watch: WatchHandle | undefined;
  #retry: NodeJS.Timeout | undefined;
  #closed = false;

  private constructor(store: Store, logger: Logger, historyLimit: number) {
    this.#store = store;
    this.#logger = logger;
    this.#historyLimit = historyLimit;
  }

  static async start(store: Store, logger: Logger, historyLimit = 1000): Promise<RegistryCache> {
    const cache = new RegistryCache(store, logger, historyLimit);
    await cache.#load();
    return cache;
  }

  get revision(): number {
    return this.#revision;
  }

  /** Every resource, sorted by key, at `revision`. */
  all(): CachedResource[] {
    return [...this.#items.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([, v]) => v);
  }

  /** The Workloads whose spec.node is `node`. */
  workloadsOn(node: string): CachedResource[] {
    const keys = this.#workloadsByNode.get(node) ?? new Set<string>();
    return [...keys].flatMap((k) => this.#items.get(k) ?? []);
  }

  /** Nodes with at least one Workload, and how many each has. */
  workloadCounts(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const [node, keys] of this.#workloadsByNode) if (keys.size) counts.set(node, keys.size);
    return counts;
  }

  /** The batches after `revision`, or undefined when they are no longer all in the history. */
  since(revision: number): ChangeBatch[] | undefined {
    if (revision > this.#revision) return undefined;
    if (revision < this.#floor) return undefined;
    return this.#history.filter((b) => b.revision > revision);
  }

  subscribe(listener: CacheListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  close(): void {
    this.#closed = true;
    this.#watch?.cancel();
    clearTimeout(this.#retry);
    this.#listeners.clear();
  }

  async #load(): Promise<void> {
    const { items, revision } = await this.#store.list(REGISTRY_PREFIX);
    this.#items.clear();
    this.#workloadsByNode.clear();
    for (const item of items) this.#put(item.key, item.value, item.modRevision);
    this.#revision = revision;
    this.#floor = revision;
    this.#history.length = 0;
    this.#watch = this.#store.watch(
      REGISTRY_PREFIX,
      revision,
      (events, rev) => this.#onEvents(events, rev),
      (err) => this.#onWatchError(err),
    );
  }

  #put(key: string, value: string, modRevision: number): CachedResource {
    this.#remove(key);
    const entry = { ...withVersion(value, modRevision), modRevision };
    this.#items.set(key, entry);
    const node = nodeOf(entry);
    if (node !== undefined) {
      const keys = this.#workloadsByNode.get(node) ?? new Set<string>();
      this.#workloadsByNode.set(node, keys);
      keys.add(key);
    }
    return entry;
  }

  #remove(key: string): CachedResource | undefined {
    const last = this.#items.get(key);
    if (!last) return undefined;
    this.#items.delete(key);
    const node = nodeOf(last);
    if (node !== undefined) this.#workloadsByNode.get(node)?.delete(key);
    return last;
  }

  #onEvents(events: StoreEvent[], revision: number): void {
    const changes: CachedChange[] = [];
    for (const event of events) {
      if (event.type === 'put' && event.value !== undefined) {
        changes.push({
          type: 'put',
          resource: this.#put(event.key, event.value, event.modRevision).json,
        });
      } else {
        const last = this.#remove(event.key);
        const resource =
          last?.json ??
          JSON.stringify({ ...refOfKey(event.key), metadata: { name: refOfKey(event.key).name } });
        changes.push({ type: 'delete', resource });
      }
    }
    this.#revision = revision;
    const batch = { revision, changes };
    this.#history.push(batch);
    if (this.#history.length > this.#historyLimit) {
      const dropped = this.#history.shift();
      if (dropped) this.#floor = dropped.revision;
    }
    for (const listener of this.#listeners) listener({ type: 'changes', batch });
  }

  /** Lost the store's watch (connection, compaction): reload and tell watchers to resnapshot. */
  #onWatchError(err: Error): void {
    if (this.#closed) return;
    this.#logger.warn({ err: err.message }, 'registry watch lost; reloading from the store');
    const reload = () => {
      this.#load().then(
        () => {
          for (const listener of this.#listeners) listener({ type: 'reset' });
        },
        (e: unknown) => {
          this.#logger.warn({ err: String(e) }, 'registry reload failed; retrying');
          if (!this.#closed) this.#retry = setTimeout(reload, RETRY_MS).unref();
        },
      );
    };
    reload();
  }
}
