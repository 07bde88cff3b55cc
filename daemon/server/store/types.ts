/**
 * The store contract the registry is written against. Both backends (file, etcd) implement it
 * with etcd's revision model: one global counter, +1 per commit that changes something; an
 * item's modRevision is the revision of the commit that last wrote it.
 */

export interface StoredItem {
  key: string;
  /** JSON text (the store does not parse it). */
  value: string;
  modRevision: number;
  createRevision: number;
}

export type StoreOp =
  | {
      type: 'put';
      key: string;
      value: string;
      /** Compare-and-swap: the item's current modRevision; 0 = it must not exist. */
      expectModRevision?: number;
    }
  | { type: 'delete'; key: string; expectModRevision?: number };

export interface StoreEvent {
  type: 'put' | 'delete';
  key: string;
  /** The new value (puts only). */
  value?: string;
  modRevision: number;
  /** The value before this event, when there was one. */
  prevValue?: string;
}

export interface WatchHandle {
  cancel(): void;
}

export interface Store {
  readonly kind: 'file' | 'etcd';
  get(key: string): Promise<StoredItem | undefined>;
  /** Every item under prefix, sorted by key, and the store revision they were read at. */
  list(prefix: string): Promise<{ items: StoredItem[]; revision: number }>;
  /**
   * Atomic, all-or-nothing: every expectation is checked first; one new revision for the whole
   * batch. Throws ConflictError naming the key, expected and actual revision. Returns the new
   * revision (the current one when nothing changed: only deletes of missing keys).
   */
  commit(ops: StoreOp[]): Promise<number>;
  /**
   * Events with revision > fromRevision under prefix, in revision order, one callback per
   * revision. If fromRevision is older than the compaction point, onError gets a CompactedError
   * and the watch ends; onError also for a lost backend connection (the watch ends; the caller
   * watches again from the last revision it saw).
   */
  watch(
    prefix: string,
    fromRevision: number,
    onEvents: (events: StoreEvent[], revision: number) => void,
    onError: (err: Error) => void,
  ): WatchHandle;
  revision(): Promise<number>;
  /** Waits for commits in flight, cancels every watch (no callback runs afterwards). */
  close(): Promise<void>;
}
