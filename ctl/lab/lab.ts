/**
 * A handle on one lab: create (with guaranteed teardown on error and on signals), open an
 * existing one, look up its nodes and workloads, run commands inside them, destroy it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { type RunOptions, type RunResult, run } from '../../daemon/command.js';
import { MeshdError } from '../../daemon/errors.js';
import { type BuildHooks, buildLab, type Progress } from './build.js';
import { DEMO_APPS, startDemo } from './demo.js';
import { type LabMesh, meshdCniAdd, startControlPlane } from './mesh.js';
import { type AppPlacement, type LabPlan, planLab } from './plan.js';
import { type LabState, listLabIds, loadState, saveState } from './state.js';
import { destroyLabSync } from './teardown.js';

export interface LabOptions {
  nodes: number;
  workloads: number;
  /** Also run a mesh: control plane and agents first, then workloads through ptp + meshd-cni. */
  mesh?: boolean;
  /** Named workloads instead of `workloads` anonymous ones per node. */
  apps?: readonly AppPlacement[];
  /** The demo application (ctl/lab/demo.ts) on the mesh; implies its apps. */
  demo?: boolean;
  id?: string;
  progress?: Progress;
}

export interface LabMember {
  name: string;
  kind: 'node' | 'workload';
  node: string;
  netns: string;
  ipv4: string;
  ipv6?: string;
}

/** Labs this process built and has not destroyed or handed over; torn down on signals/exit. */
const owned = new Set<Lab>();
let handlersInstalled = false;

function installTeardownHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  const teardownAll = () => {
    for (const lab of owned) lab.destroy();
  };
  process.once('exit', teardownAll);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      teardownAll();
      process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1));
    });
  }
}

export class Lab {
  readonly state: LabState;
  /** The running mesh, when created with `mesh: true`. */
  mesh: LabMesh | undefined;

  private constructor(state: LabState) {
    this.state = state;
  }

  get id(): string {
    return this.state.id;
  }

  get plan(): LabPlan {
    return this.state.plan;
  }

  static async create(options: LabOptions): Promise<Lab> {
    const id = options.id ?? randomBytes(3).toString('hex');
    if (listLabIds().includes(id)) {
      throw new MeshdError('MESHD_E_LAB', `a lab with id "${id}" already exists`, {
        hint: `remove it with "meshctl lab down --lab ${id}" or pick another id`,
      });
    }
    if (options.demo && !options.mesh)
      throw new MeshdError('MESHD_E_LAB', 'the demo needs the mesh', {
        hint: 'drop --no-mesh, or add --no-demo',
      });
    const apps = options.demo ? DEMO_APPS : options.apps;
    const plan = planLab(id, options.nodes, options.workloads, apps);
    const state: LabState = {
      id,
      createdAt: new Date().toISOString(),
      plan,
      workloads: {},
      ready: false,
    };
    saveState(state);
    const lab = new Lab(state);
    installTeardownHandlers();
    owned.add(lab);
    const progress = options.progress ?? (() => {});
    try {
      const hooks: BuildHooks = {};
      if (options.mesh) {
        hooks.afterNetwork = async () => {
          lab.mesh = await startControlPlane(lab, progress);
          state.mesh = {
            serverAddress: lab.mesh.serverAddress,
            caDir: lab.mesh.caDir,
            serverNode: plan.nodes[0]?.name ?? 'n1',
          };
          saveState(state);
        };
        hooks.chain = (workload, prevResult) => {
          if (!lab.mesh) throw new Error('the control plane is not running');
          return meshdCniAdd(lab, workload, prevResult);
        };
      }
      await buildLab(state, progress, hooks);
      if (options.demo) await startDemo(lab, progress);
    } catch (cause) {
      const problems = lab.destroy();
      throw new MeshdError('MESHD_E_LAB', `building lab ${id} failed; it was removed again`, {
        cause,
        hint: problems.length ? `left behind: ${problems.join('; ')}` : undefined,
      });
    }
    state.ready = true;
    saveState(state);
    return lab;
  }

  /** Opens a recorded lab; without an id, $MESHCTL_LAB or else the only one there is. */
  static open(id = process.env.MESHCTL_LAB): Lab {
    if (id) return new Lab(loadState(id));
    const ids = listLabIds();
    if (ids.length === 1 && ids[0]) return new Lab(loadState(ids[0]));
    throw new MeshdError(
      'MESHD_E_LAB',
      ids.length === 0 ? 'no lab is running' : `${ids.length} labs are running (${ids.join(', ')})`,
      {
        hint:
          ids.length === 0
            ? 'start one with "meshctl lab up"'
            : 'choose one with --lab ID (or MESHCTL_LAB=ID)',
      },
    );
  }

  /** Stops tearing this lab down when the process exits (the CLI's `lab up` keeps it). */
  keep(): void {
    owned.delete(this);
  }

  members(): LabMember[] {
    const nodes: LabMember[] = this.plan.nodes.map((n) => ({
      name: n.name,
      kind: 'node',
      node: n.name,
      netns: n.netns,
      ipv4: n.ipv4,
      ipv6: n.ipv6,
    }));
    const workloads: LabMember[] = this.plan.workloads.flatMap((w) => {
      const addr = this.state.workloads[w.name];
      return addr
        ? [{ name: w.name, kind: 'workload' as const, node: w.node, netns: w.netns, ...addr }]
        : [];
    });
    return [...nodes, ...workloads];
  }

  member(name: string): LabMember {
    const found = this.members().find((m) => m.name === name);
    if (!found) {
      const names = this.members()
        .map((m) => m.name)
        .join(', ');
      throw new MeshdError('MESHD_E_LAB', `lab ${this.id} has no node or workload "${name}"`, {
        hint: `known: ${names}`,
      });
    }
    return found;
  }

  /** Runs a command inside a node's or workload's namespace and collects its output. */
  exec(name: string, argv: string[], options?: RunOptions): Promise<RunResult> {
    return run(['ip', 'netns', 'exec', this.member(name).netns, ...argv], options);
  }

  /** Starts a long-running process inside a namespace; destroy() stops it if still running. */
  spawn(name: string, argv: string[]): ChildProcess {
    return spawn('ip', ['netns', 'exec', this.member(name).netns, ...argv], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  }

  /** Removes everything of the lab; returns what could not be removed (empty when clean). */
  destroy(): string[] {
    owned.delete(this);
    return destroyLabSync(this.state);
  }
}

/** Builds a lab for `fn` and always removes it afterwards, whatever `fn` does. */
export async function withLab<T>(options: LabOptions, fn: (lab: Lab) => Promise<T>): Promise<T> {
  const lab = await Lab.create(options);
  try {
    return await fn(lab);
  } finally {
    const problems = lab.destroy();
    if (problems.length)
      console.error(`lab ${lab.id} teardown problems:\n  ${problems.join('\n  ')}`);
  }
}
