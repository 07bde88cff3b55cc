/**
 * Following a prefix of the store through trouble, the way every consumer (registry,
 * discovery) needs it: a snapshot (list), then events; after a lost connection, watch again
 * from the last revision seen (nothing missed, nothing twice); when that revision was
 * compacted away, a fresh snapshot replaces everything and the events continue from it.
 */
import { CompactedError } from './errors.js';
import type { Store, StoredItem, StoreEvent, WatchHandle } from './types.js';

export interface FollowHandlers {
  /** The whole state under the prefix at `revision`: at the start (unless fromRevision was
   * given) and after a compaction. It replaces everything known before. */
  onSnapshot(items: StoredItem[], revision: number): void;
  /** Events of one revision, in order, after the last snapshot or event. */
  onEvents(events: StoreEvent[], revision: number): void;
  /** A failure follow() recovers from by itself, and when it tries again. */
  onRetry?(err: Error, delayMs: number): void;
}

export interface FollowOptions {
  /** Resume after this revision instead of starting with a snapshot. */
  fromRevision?: number;
  /** First retry delay (default 200 ms); doubles up to maxDelayMs (default 10 s). */
  minDelayMs?: number;
  maxDelayMs?: number;
}

export function follow(
  store: Store,
  prefix: string,
  handlers: FollowHandlers,
  options: FollowOptions = {},
): WatchHandle {
  const minDelay = options.minDelayMs ?? 200;
  const maxDelay = options.maxDelayMs ?? 10_000;
  let last = options.fromRevision;
  let delay = minDelay;
  let stopped = false;
  let current: WatchHandle | undefined;
  let timer: NodeJS.Timeout | undefined;
  let compactedInARow = 0;

  const retry = (err: Error) => {
    if (stopped) return;
    const wait = Math.round(delay * (0.8 + 0.4 * Math.random()));
    delay = Math.min(delay * 2, maxDelay);
    handlers.onRetry?.(err, wait);
    timer = setTimeout(() => void start(), wait);
  };

  const start = async () => {
    timer = undefined;
    try {
      if (last === undefined) {
        const { items, revision } = await store.list(prefix);
        if (stopped) return;
        handlers.onSnapshot(items, revision);
        last = revision;
      }
      const startedAt = Date.now();
      current = store.watch(
        prefix,
        last,
        (events, revision) => {
          last = revision;
          compactedInARow = 0;
          delay = minDelay;
          handlers.onEvents(events, revision);
        },
        (err) => {
          current = undefined;
          if (stopped) return;
          if (Date.now() - startedAt > maxDelay) delay = minDelay; // it ran fine for a while
          if (err instanceof CompactedError) {
            last = undefined; // resume is impossible: a fresh snapshot
            compactedInARow++;
            if (compactedInARow === 1) {
              void start();
              return;
            }
          }
          retry(err);
        },
      );
    } catch (err) {
      retry(err as Error);
    }
  };

  void start();
  return {
    cancel() {
      stopped = true;
      clearTimeout(timer);
      current?.cancel();
    },
  };
}
