/**
 * Workloads by address, by node and by label. The label index is shared: the service and
 * policy indexes match their selectors against it, so a workload's labels are filed once.
 */
import { ipKey } from '../ip.js';
import type { Workload } from '../kinds/workload.js';
import type { Labels } from '../selector.js';
import { type Scope, WorkloadLabelIndex } from '../selector-index.js';
import { addTo, EMPTY, removeFrom } from './key-sets.js';

export function sameLabels(a: Labels | undefined, b: Labels | undefined): boolean {
  const ea = Object.entries(a ?? {});
  const other = b ?? {};
  if (ea.length !== Object.keys(other).length) return false;
  return ea.every(([k, v]) => Object.hasOwn(other, k) && other[k] === v);
}

export class WorkloadIndex {
  readonly labels = new WorkloadLabelIndex();
  /** Canonical address (ipKey) → workload keys; more than one is a conflict. */
  readonly #byIp = new Map<string, Set<string>>();
  readonly #byNode = new Map<string, Set<string>>();

  /**
   * Files `now` in place of `old` (either may be absent). Returns whether the label index
   * changed for it: only then must the selector matchers re-match it, which is the costly part
   * of a workload event and needless when only addresses or the node moved.
   */
  update(key: string, old: Workload | undefined, now: Workload | undefined): boolean {
    if (old) {
      for (const a of old.spec.addresses) {
        const k = ipKey(a);
        if (k !== undefined) removeFrom(this.#byIp, k, key);
      }
      removeFrom(this.#byNode, old.spec.node, key);
    }
    if (!now) {
      this.labels.delete(key);
      return true;
    }
    for (const a of now.spec.addresses) {
      const k = ipKey(a);
      if (k !== undefined) addTo(this.#byIp, k, key);
    }
    addTo(this.#byNode, now.spec.node, key);
    if (old && sameLabels(old.metadata.labels, now.metadata.labels)) return false;
    this.labels.set(key, now.metadata.namespace, now.metadata.labels);
    return true;
  }

  /** Keys of the workloads claiming an address, in any spelling (none for a non-address). */
  keysByIp(ip: string): ReadonlySet<string> {
    const k = ipKey(ip);
    return k === undefined ? EMPTY : (this.#byIp.get(k) ?? EMPTY);
  }

  keysOnNode(node: string): ReadonlySet<string> {
    return this.#byNode.get(node) ?? EMPTY;
  }

  /** Keys of the workloads in a namespace, or in every namespace (ALL_NAMESPACES). */
  keysIn(scope: Scope): ReadonlySet<string> {
    return this.labels.inScope(scope);
  }
}
