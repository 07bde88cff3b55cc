/**
 * meshctl's fallback connection: with no server configured anywhere (flag, config file,
 * environment) and a lab with a mesh running on this machine, meshctl talks to the lab's
 * server, as kubectl talks to the cluster `kind create cluster` just made. The lab's server
 * listens inside the lab's namespaces only, so meshctl re-runs itself inside the server's node
 * namespace; the host's own namespace gets no route into the lab.
 */
import { spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { MeshdError } from '../daemon/errors.js';
import {
  type ConnectionFlags,
  type CtlConfig,
  configPath,
  readCtlConfig,
  resolveConnection,
} from './config.js';
import { listLabIds, loadState } from './lab/index.js';

export interface LabContext {
  id: string;
  servers: string[];
  caDir: string;
  netns: string;
}

/** The running lab meshctl should use: $MESHCTL_LAB, else the only lab with a mesh. */
export function labContext(env = process.env): LabContext | undefined {
  const ids = env.MESHCTL_LAB ? [env.MESHCTL_LAB] : listLabIds();
  const meshed = ids.map((id) => loadState(id)).filter((s) => s.mesh && s.ready);
  if (meshed.length > 1) {
    throw new MeshdError(
      'MESHD_E_CONFIG',
      `${meshed.length} labs with a mesh are running (${meshed.map((s) => s.id).join(', ')}) and no server is configured`,
      { hint: 'choose one with MESHCTL_LAB=ID, or pass --server and --ca-dir' },
    );
  }
  const state = meshed[0];
  if (!state?.mesh) return undefined;
  const node = state.plan.nodes.find((n) => n.name === state.mesh?.serverNode);
  if (!node) return undefined;
  return {
    id: state.id,
    servers: [state.mesh.serverAddress],
    caDir: state.mesh.caDir,
    netns: node.netns,
  };
}

/** True when nothing names a server or CA, so a running lab is used. */
export function usesLab(flags: ConnectionFlags, env: NodeJS.ProcessEnv = process.env): boolean {
  const file = readCtlConfig(configPath(flags.config, env));
  return !(
    flags.server ||
    flags.caDir ||
    file.servers ||
    file.caDir ||
    env.MESHCTL_SERVER ||
    env.MESHCTL_CA_DIR
  );
}

const inode = (path: string) => {
  const s = statSync(path);
  return `${s.dev}:${s.ino}`;
};

/** True when this process already runs in the namespace (so it does not re-run forever). */
function inNetns(netns: string): boolean {
  try {
    return inode('/proc/self/ns/net') === inode(`/var/run/netns/${netns}`);
  } catch {
    return false;
  }
}

/**
 * The connection to use. With nothing configured and a lab running, this may not return:
 * it re-runs the same meshctl command inside the lab and exits with its status.
 */
export function connectionOrLab(flags: ConnectionFlags, env = process.env): CtlConfig {
  if (!usesLab(flags, env)) return resolveConnection(flags, env);
  const lab = labContext(env);
  if (!lab) return resolveConnection(flags, env);
  if (!inNetns(lab.netns)) {
    const argv = [
      process.execPath,
      ...process.execArgv,
      process.argv[1] ?? '',
      ...process.argv.slice(2),
    ];
    const child = spawnSync('ip', ['netns', 'exec', lab.netns, ...argv], {
      stdio: 'inherit',
      env: { ...env, MESHCTL_LAB: lab.id },
    });
    process.exit(child.status ?? 1);
  }
  return { servers: lab.servers, caDir: lab.caDir };
}
