/**
 * Removing labs. Synchronous on purpose: it also runs from SIGINT/SIGTERM and exit handlers.
 * Best effort by step (one failure does not stop the rest); returns what could not be removed.
 */

import { workloadCniInvocation } from './build.js';
import { cniDelSync } from './cni.js';
import { deleteNetnsSync, killProcessesIn, listNetns } from './netns.js';
import { LAB_PREFIX, labNetnsPrefix } from './plan.js';
import { type LabState, listLabIds, loadState, removeStateDir } from './state.js';

export function destroyLabSync(state: LabState): string[] {
  const problems: string[] = [];
  const prefix = labNetnsPrefix(state.id);
  const present = listNetns().filter((ns) => ns.startsWith(prefix));
  killProcessesIn(present);
  for (const workload of state.plan.workloads) {
    if (!state.workloads[workload.name] || !present.includes(workload.netns)) continue;
    try {
      cniDelSync(workloadCniInvocation(state, workload, 'DEL'));
    } catch (err) {
      problems.push((err as Error).message);
    }
  }
  problems.push(...deleteAll(present));
  removeStateDir(state.id);
  return problems;
}

/** Workloads first, then nodes, then the underlay, so no veth outlives its peer's namespace. */
function deleteAll(namespaces: string[]): string[] {
  const rank = (ns: string) => (/-w\d+$/.test(ns) ? 0 : ns.endsWith('-ul') ? 2 : 1);
  const ordered = [...namespaces].sort((a, b) => rank(a) - rank(b));
  return ordered.flatMap((ns) => deleteNetnsSync(ns) ?? []);
}

/** `lab down --all`: every recorded lab, then any namespace left with the lab prefix. */
export function destroyAllLabsSync(): { removed: string[]; problems: string[] } {
  const removed: string[] = [];
  const problems: string[] = [];
  for (const id of listLabIds()) {
    try {
      problems.push(...destroyLabSync(loadState(id)));
    } catch (err) {
      problems.push((err as Error).message);
      removeStateDir(id);
    }
    removed.push(id);
  }
  const leftovers = listNetns().filter((ns) => ns.startsWith(LAB_PREFIX));
  killProcessesIn(leftovers);
  problems.push(...deleteAll(leftovers));
  removed.push(...leftovers);
  return { removed, problems };
}
