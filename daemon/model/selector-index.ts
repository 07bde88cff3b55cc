/**
 * Incremental selector matching between label selectors (owners: services, policies) and
 * workloads, kept both ways (owner → workloads, workload → owners). A change costs work in
 * proportion to what it can affect: candidates come from label buckets, not from full scans.
 */
import { type LabelSelector, type Labels, matches } from './selector.js';

/** Scope of an owner: one namespace, or every namespace (root-namespace policies). */
export const ALL_NAMESPACES: unique symbol = Symbol('all namespaces');
export type Scope = string | typeof ALL_NAMESPACES;

const GLOBAL = '\u0001';
const scopeTag = (scope: Scope) => (scope === ALL_NAMESPACES ? GLOBAL : scope);
// Bucket names: `<scope>\0<key>=<value>`, `<scope>\0<key>` (key present), `<scope>\0*` (all).
// Label keys hold neither "=" nor "*", so the three forms never collide.
const pairBucket = (tag: string, key: string, value: string) => `${tag}\u0000${key}=${value}`;
const keyBucket = (tag: string, key: string) => `${tag}\u0000${key}`;
const allBucket = (tag: string) => `${tag}\u0000*`;

function addTo<K, V>(map: Map<K, Set<V>>, key: K, value: V): void {
  let set = map.get(key);
  if (!set) {
    set = new Set();
    map.set(key, set);
  }
  set.add(value);
}

function removeFrom<K, V>(map: Map<K, Set<V>>, key: K, value: V): void {
  const set = map.get(key);
  if (!set) return;
  set.delete(value);
  if (set.size === 0) map.delete(key);
}

const EMPTY: ReadonlySet<string> = new Set();

interface IndexedWorkload {
  namespace: string;
  labels: Labels;
}

/** Workloads by namespace, by label pair and by label key, per namespace and mesh-wide. */
export class WorkloadLabelIndex {
  readonly #workloads = new Map<string, IndexedWorkload>();
  readonly #buckets = new Map<string, Set<string>>();

  #bucketsOf(w: IndexedWorkload): string[] {
    const out = [allBucket(w.namespace), allBucket(GLOBAL)];
    for (const [k, v] of Object.entries(w.labels)) {
      out.push(
        pairBucket(w.namespace, k, v),
        keyBucket(w.namespace, k),
        pairBucket(GLOBAL, k, v),
        keyBucket(GLOBAL, k),
      );
    }
    return out;
  }

  get(key: string): IndexedWorkload | undefined {
    return this.#workloads.get(key);
  }

  set(key: string, namespace: string, labels: Labels | undefined): void {
    this.delete(key);
    const w = { namespace, labels: labels ?? {} };
    this.#workloads.set(key, w);
    for (const b of this.#bucketsOf(w)) addTo(this.#buckets, b, key);
  }

  delete(key: string): void {
    const w = this.#workloads.get(key);
    if (!w) return;
    this.#workloads.delete(key);
    for (const b of this.#bucketsOf(w)) removeFrom(this.#buckets, b, key);
  }

  /** Every workload in a scope. */
  inScope(scope: Scope): ReadonlySet<string> {
    return this.#buckets.get(allBucket(scopeTag(scope))) ?? EMPTY;
  }

  /** A superset of the workloads in `scope` that `selector` matches: the smallest bucket found. */
  candidates(scope: Scope, selector: LabelSelector): Iterable<string> {
    const tag = scopeTag(scope);
    let best: Iterable<string> = this.inScope(scope);
    let bestSize = this.inScope(scope).size;
    const consider = (items: Iterable<string>, size: number) => {
      if (size < bestSize) {
        best = items;
        bestSize = size;
      }
    };
    for (const [k, v] of Object.entries(selector.matchLabels ?? {})) {
      const set = this.#buckets.get(pairBucket(tag, k, v)) ?? EMPTY;
      consider(set, set.size);
    }
    for (const req of selector.matchExpressions ?? []) {
      if (req.operator === 'Exists') {
        const set = this.#buckets.get(keyBucket(tag, req.key)) ?? EMPTY;
        consider(set, set.size);
      } else if (req.operator === 'In') {
        // One workload has one value per key, so the buckets of one In do not overlap.
        const sets = [...new Set(req.values ?? [])].map(
          (v) => this.#buckets.get(pairBucket(tag, req.key, v)) ?? EMPTY,
        );
        consider(
          (function* () {
            for (const s of sets) yield* s;
          })(),
          sets.reduce((n, s) => n + s.size, 0),
        );
      }
    }
    return best;
  }
}

interface Owner {
  scope: Scope;
  selector: LabelSelector;
  anchors: string[];
}

/** What a change did to the matching: workloads (or owners) that joined or left. */
export interface MatchDelta {
  added: string[];
  removed: string[];
}

/**
 * Owners (services, policies) with label selectors, matched against the workloads of a shared
 * WorkloadLabelIndex. Each owner is filed under one "anchor" (a label pair, a key or all) so
 * that a workload change looks only at owners that could select it.
 */
export class SelectorMatcher {
  readonly #labels: WorkloadLabelIndex;
  readonly #owners = new Map<string, Owner>();
  readonly #anchored = new Map<string, Set<string>>();
  readonly #selected = new Map<string, Set<string>>();
  readonly #selectedBy = new Map<string, Set<string>>();

  constructor(labels: WorkloadLabelIndex) {
    this.#labels = labels;
  }

  static anchorsOf(scope: Scope, selector: LabelSelector): string[] {
    const tag = scopeTag(scope);
    const pairs = Object.entries(selector.matchLabels ?? {}).sort(([a], [b]) => (a < b ? -1 : 1));
    const firstPair = pairs[0];
    if (firstPair) return [pairBucket(tag, firstPair[0], firstPair[1])];
    const exprs = selector.matchExpressions ?? [];
    const inExpr = exprs.find((e) => e.operator === 'In');
    if (inExpr) return [...new Set(inExpr.values ?? [])].map((v) => pairBucket(tag, inExpr.key, v));
    const exists = exprs.find((e) => e.operator === 'Exists');
    if (exists) return [keyBucket(tag, exists.key)];
    return [allBucket(tag)];
  }

  #inScope(owner: Owner, namespace: string): boolean {
    return owner.scope === ALL_NAMESPACES || owner.scope === namespace;
  }

  has(owner: string): boolean {
    return this.#owners.has(owner);
  }

  selected(owner: string): ReadonlySet<string> {
    return this.#selected.get(owner) ?? EMPTY;
  }

  selectedBy(workload: string): ReadonlySet<string> {
    return this.#selectedBy.get(workload) ?? EMPTY;
  }

  /** Adds or replaces an owner; returns the workloads whose membership changed. */
  setOwner(key: string, scope: Scope, selector: LabelSelector): MatchDelta {
    const before = new Set(this.selected(key));
    this.#detachOwner(key);
    const owner: Owner = { scope, selector, anchors: SelectorMatcher.anchorsOf(scope, selector) };
    this.#owners.set(key, owner);
    for (const a of owner.anchors) addTo(this.#anchored, a, key);
    const now = new Set<string>();
    for (const w of this.#labels.candidates(scope, selector)) {
      const indexed = this.#labels.get(w);
      if (indexed && this.#inScope(owner, indexed.namespace) && matches(selector, indexed.labels)) {
        now.add(w);
      }
    }
    for (const w of now) {
      addTo(this.#selected, key, w);
      addTo(this.#selectedBy, w, key);
    }
    return {
      added: [...now].filter((w) => !before.has(w)),
      removed: [...before].filter((w) => !now.has(w)),
    };
  }

  /** Removes an owner; returns the workloads it selected. */
  deleteOwner(key: string): MatchDelta {
    const before = [...this.selected(key)];
    this.#detachOwner(key);
    return { added: [], removed: before };
  }

  #detachOwner(key: string): void {
    const owner = this.#owners.get(key);
    if (!owner) return;
    for (const a of owner.anchors) removeFrom(this.#anchored, a, key);
    for (const w of this.selected(key)) removeFrom(this.#selectedBy, w, key);
    this.#selected.delete(key);
    this.#owners.delete(key);
  }

  /**
   * Re-matches one workload after the shared label index changed for it (or it was deleted
   * from it); returns the owners it joined and left.
   */
  updateWorkload(key: string): MatchDelta {
    const before = new Set(this.selectedBy(key));
    const indexed = this.#labels.get(key);
    const now = new Set<string>();
    if (indexed) {
      const { namespace, labels } = indexed;
      const buckets = [allBucket(namespace), allBucket(GLOBAL)];
      for (const [k, v] of Object.entries(labels)) {
        buckets.push(
          pairBucket(namespace, k, v),
          keyBucket(namespace, k),
          pairBucket(GLOBAL, k, v),
          keyBucket(GLOBAL, k),
        );
      }
      for (const b of buckets) {
        for (const o of this.#anchored.get(b) ?? EMPTY) {
          const owner = this.#owners.get(o);
          if (owner && this.#inScope(owner, namespace) && matches(owner.selector, labels))
            now.add(o);
        }
      }
    }
    for (const o of before) {
      if (now.has(o)) continue;
      removeFrom(this.#selected, o, key);
      removeFrom(this.#selectedBy, key, o);
    }
    for (const o of now) {
      if (before.has(o)) continue;
      addTo(this.#selected, o, key);
      addTo(this.#selectedBy, key, o);
    }
    return {
      added: [...now].filter((o) => !before.has(o)),
      removed: [...before].filter((o) => !now.has(o)),
    };
  }
}
