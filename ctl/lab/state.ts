/**
 * The lab's record on disk (/run/meshd/lab/<id>/lab.json, tmpfs: gone after a reboot, as are
 * the namespaces it describes). Written as each piece is built so a crashed run can be removed.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { MeshdError } from '../../daemon/errors.js';
import { writeFileAtomic } from '../../daemon/files.js';
import { LAB_ID_PATTERN, type LabPlan } from './plan.js';

export const LAB_STATE_ROOT = process.env.MESHD_LAB_STATE_ROOT || '/run/meshd/lab';

export interface WorkloadAddresses {
  ipv4: string;
  ipv6?: string;
}

export interface LabState {
  id: string;
  createdAt: string;
  plan: LabPlan;
  /** Workloads whose CNI ADD succeeded, with the addresses from the CNI result. */
  workloads: Record<string, WorkloadAddresses>;
  /** Where the lab's control plane runs, when it has one. */
  mesh?: { serverAddress: string; caDir: string; serverNode: string };
  ready: boolean;
}

export const labDir = (id: string): string => join(LAB_STATE_ROOT, id);
export const ipamDir = (id: string, node: string): string => join(labDir(id), 'ipam', node);
const stateFile = (id: string): string => join(labDir(id), 'lab.json');

export function saveState(state: LabState): void {
  mkdirSync(labDir(state.id), { recursive: true, mode: 0o700 });
  writeFileAtomic(stateFile(state.id), `${JSON.stringify(state, null, 2)}\n`, 0o600);
}

export function loadState(id: string): LabState {
  try {
    return JSON.parse(readFileSync(stateFile(id), 'utf8')) as LabState;
  } catch (cause) {
    throw new MeshdError('MESHD_E_LAB', `lab "${id}" not found in ${labDir(id)}`, {
      cause,
      hint: 'run "meshctl lab status" to list labs',
    });
  }
}

export function listLabIds(): string[] {
  try {
    return readdirSync(LAB_STATE_ROOT)
      .filter((name) => LAB_ID_PATTERN.test(name))
      .sort();
  } catch {
    return [];
  }
}

export function removeStateDir(id: string): void {
  rmSync(labDir(id), { recursive: true, force: true });
}
