/**
 * Maps from a key to a set of resource keys, the shape of every MeshState index. Empty sets
 * are dropped so an index holds only what the state holds, and a long-running agent does not
 * keep one entry per address or node it ever saw.
 */

export const EMPTY: ReadonlySet<string> = new Set();

export function addTo<K, V>(map: Map<K, Set<V>>, key: K, value: V): void {
  let set = map.get(key);
  if (!set) {
    set = new Set();
    map.set(key, set);
  }
  set.add(value);
}

export function removeFrom<K, V>(map: Map<K, Set<V>>, key: K, value: V): void {
  const set = map.get(key);
  if (!set) return;
  set.delete(value);
  if (set.size === 0) map.delete(key);
}

/**
 * The smallest key: keys are `Kind namespace name`, so within one kind this is the first by
 * namespace and name, the rule that settles a conflict (two owners of one address).
 */
export function minKey(keys: ReadonlySet<string> | undefined): string | undefined {
  let best: string | undefined;
  for (const k of keys ?? EMPTY) if (best === undefined || k < best) best = k;
  return best;
}
