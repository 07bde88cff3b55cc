/** What one event may have changed, collected while the indexes update, for StateChange. */
import { keyToRef, type ResourceRef } from '../resource.js';

/**
 * Keys of the workloads and services whose view may have changed. A snapshot load does not
 * track (nobody reads the result, and collecting whole namespaces per resource would be slow):
 * `track` lets an index skip work whose only purpose is this collection.
 */
export class Affected {
  readonly workloads = new Set<string>();
  readonly services = new Set<string>();
  readonly track: boolean;
  constructor(track: boolean) {
    this.track = track;
  }
  addWorkloads(keys: Iterable<string>): void {
    if (this.track) for (const k of keys) this.workloads.add(k);
  }
  addServices(keys: Iterable<string>): void {
    if (this.track) for (const k of keys) this.services.add(k);
  }
}

export const sortedRefs = (keys: Set<string>): ResourceRef[] => [...keys].sort().map(keyToRef);
