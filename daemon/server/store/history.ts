/**
 * The bounded in-memory event history a watch resumes from: the events of the most recent
 * revisions, at most `maxRevisions` of them and about `maxBytes`. `floor` is the compaction
 * point: every revision after it is here; a watch from before it gets a CompactedError.
 */
import type { StoreEvent } from './types.js';

export interface HistoryEntry {
  revision: number;
  events: StoreEvent[];
  bytes: number;
}

export function eventBytes(events: readonly StoreEvent[]): number {
  let bytes = 0;
  for (const e of events) {
    bytes += 64 + 2 * (e.key.length + (e.value?.length ?? 0) + (e.prevValue?.length ?? 0));
  }
  return bytes;
}

export class History {
  #entries: HistoryEntry[] = [];
  #head = 0;
  #bytes = 0;
  #floor: number;
  readonly #maxRevisions: number;
  readonly #maxBytes: number;

  constructor(floor: number, maxRevisions: number, maxBytes: number) {
    this.#floor = floor;
    this.#maxRevisions = maxRevisions;
    this.#maxBytes = maxBytes;
  }

  /** Events after this revision are all kept. */
  get floor(): number {
    return this.#floor;
  }

  get size(): number {
    return this.#entries.length - this.#head;
  }

  append(entry: HistoryEntry): void {
    this.#entries.push(entry);
    this.#bytes += entry.bytes;
    while (this.size > this.#maxRevisions || (this.#bytes > this.#maxBytes && this.size > 1)) {
      const dropped = this.#entries[this.#head]!;
      this.#head++;
      this.#bytes -= dropped.bytes;
      this.#floor = dropped.revision;
    }
    if (this.#head > 1024 && this.#head * 2 > this.#entries.length) {
      this.#entries = this.#entries.slice(this.#head);
      this.#head = 0;
    }
  }

  /** Forget everything up to and including `revision`. */
  compactTo(revision: number): void {
    while (this.size > 0 && this.#entries[this.#head]!.revision <= revision) {
      this.#bytes -= this.#entries[this.#head]!.bytes;
      this.#head++;
    }
    this.#entries = this.#entries.slice(this.#head);
    this.#head = 0;
    this.#floor = Math.max(this.#floor, revision);
  }

  /** The entries after fromRevision, or undefined when some of them were compacted away. */
  since(fromRevision: number): HistoryEntry[] | undefined {
    if (fromRevision < this.#floor) return undefined;
    let lo = this.#head;
    let hi = this.#entries.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#entries[mid]!.revision <= fromRevision) lo = mid + 1;
      else hi = mid;
    }
    return this.#entries.slice(lo);
  }
}
