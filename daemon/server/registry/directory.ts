/** Node authorization read from the registry: the identities of the Workloads on a node. */
import { type Workload, workloadIdentity } from '../../model/index.js';
import type { WorkloadDirectory } from '../workloads.js';
import type { RegistryCache } from './cache.js';

export class RegistryWorkloadDirectory implements WorkloadDirectory {
  readonly #cache: RegistryCache;
  readonly #trustDomain: string;

  constructor(cache: RegistryCache, trustDomain: string) {
    this.#cache = cache;
    this.#trustDomain = trustDomain;
  }

  async identitiesOn(node: string): Promise<ReadonlySet<string>> {
    const ids = new Set<string>();
    for (const entry of this.#cache.workloadsOn(node)) {
      ids.add(workloadIdentity(entry.object as unknown as Workload, this.#trustDomain));
    }
    return ids;
  }
}

/** The union of several directories (the registry, plus the optional static file). */
export class CombinedWorkloadDirectory implements WorkloadDirectory {
  readonly #parts: () => WorkloadDirectory[];

  constructor(parts: () => WorkloadDirectory[]) {
    this.#parts = parts;
  }

  async identitiesOn(node: string): Promise<ReadonlySet<string>> {
    const all = await Promise.all(this.#parts().map((d) => d.identitiesOn(node)));
    return new Set(all.flatMap((s) => [...s]));
  }
}
