/**
 * The resources themselves, by kind and key and by namespace; the indexes hold only keys and
 * resolve them here, so a resource lives in exactly one place.
 */
import {
  isNamespaced,
  KINDS,
  type Kind,
  type Resource,
  type ResourceOf,
  type ResourceRef,
  refKey,
  resourceRef,
} from '../resource.js';
import { addTo, EMPTY, removeFrom } from './key-sets.js';

// Readers get the stored objects themselves (no copies, for speed): freezing them keeps a
// reader from changing the state behind the indexes' back.
function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

export interface StoredChange<R extends Resource = Resource> {
  key: string;
  old: R | undefined;
}

export class ResourceStore {
  readonly #byKind = new Map<Kind, Map<string, Resource>>(KINDS.map((k) => [k, new Map()]));
  /** namespace → kind → keys, for the namespaced kinds. */
  readonly #byNamespace = new Map<string, Map<Kind, Set<string>>>();

  get(kind: Kind, key: string): Resource | undefined {
    return this.#byKind.get(kind)?.get(key);
  }

  /** Keys of a kind, or of a kind in one namespace (ignored for cluster-scoped kinds); unsorted. */
  keys(kind: Kind, namespace?: string): Iterable<string> {
    if (namespace === undefined || !isNamespaced(kind)) return this.#byKind.get(kind)?.keys() ?? [];
    return this.#byNamespace.get(namespace)?.get(kind) ?? EMPTY;
  }

  /** The resources of a kind under these keys, sorted by key (namespace, then name); unknown keys are skipped. */
  resolve<K extends Kind>(kind: K, keys: Iterable<string>): ResourceOf<K>[] {
    const map = this.#byKind.get(kind);
    const out: ResourceOf<K>[] = [];
    for (const k of [...keys].sort()) {
      const r = map?.get(k);
      if (r) out.push(r as ResourceOf<K>);
    }
    return out;
  }

  size(kind?: Kind): number {
    if (kind) return this.#byKind.get(kind)?.size ?? 0;
    let n = 0;
    for (const map of this.#byKind.values()) n += map.size;
    return n;
  }

  /** Stores a resource (frozen) in place of the one with its ref; returns the one replaced. */
  put(resource: Resource): StoredChange {
    const r = deepFreeze(resource);
    const ref = resourceRef(r);
    const key = refKey(ref);
    const map = this.#byKind.get(r.kind);
    const old = map?.get(key);
    map?.set(key, r);
    if (!old && isNamespaced(r.kind)) {
      let kinds = this.#byNamespace.get(ref.namespace);
      if (!kinds) {
        kinds = new Map();
        this.#byNamespace.set(ref.namespace, kinds);
      }
      addTo(kinds, r.kind, key);
    }
    return { key, old };
  }

  /** Removes the resource with this ref; returns it (undefined: there was none). */
  delete(ref: ResourceRef): StoredChange {
    const key = refKey(ref);
    const map = this.#byKind.get(ref.kind);
    const old = map?.get(key);
    if (!old) return { key, old };
    map?.delete(key);
    if (isNamespaced(ref.kind)) {
      const kinds = this.#byNamespace.get(ref.namespace);
      if (kinds) {
        removeFrom(kinds, ref.kind, key);
        if (kinds.size === 0) this.#byNamespace.delete(ref.namespace);
      }
    }
    return { key, old };
  }
}
