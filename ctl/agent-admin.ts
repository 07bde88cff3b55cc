/**
 * Reaching one agent's admin endpoint (127.0.0.1:15000 on the agent's host, DESIGN §3) from
 * meshctl: explicitly by `--admin host:port`, or by node name. A lab node's agent listens on
 * the loopback of that node's network namespace, so the socket is made inside the namespace
 * (daemon/net), which works from any shell on the lab's host without curl or `ip netns exec`.
 * Shared by `meshctl agent …`, `meshctl certs` and `meshctl check`: keep the signature stable.
 */
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { hostname } from 'node:os';
import { MeshdError } from '../daemon/errors.js';
import { connectFromNetns, netnsPath } from '../daemon/net/index.js';
import { listLabIds, loadState } from './lab/index.js';

export interface AgentTarget {
  /** A node name: a lab's node, or this host's own node. */
  node?: string;
  /** Which lab, when several have a node of that name. */
  lab?: string;
  /** An explicit admin address; wins over node. */
  admin?: string;
}

export const ADMIN_HOST = '127.0.0.1';
export const ADMIN_PORT = 15000;

/** Where the admin endpoint of a target is, and how to describe it in messages. */
export type ResolvedAgent =
  | { via: 'tcp'; host: string; port: number; describe: string }
  | { via: 'netns'; netns: string; lab: string; node: string; describe: string };

/** The node name of this host's agent, as the agent itself defaults it. */
export function localNodeName(env: NodeJS.ProcessEnv = process.env): string {
  return env.MESHD_NODE_NAME || hostname();
}

export function parseAdminAddress(value: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(value) ?? /^([^:]+):(\d+)$/.exec(value);
  const port = Number(m?.[2]);
  if (!m?.[1] || !Number.isInteger(port) || port < 1 || port > 65_535) {
    throw new MeshdError(
      'MESHD_E_AGENT_ADMIN',
      `--admin ${JSON.stringify(value)} is not host:port`,
      {
        hint: `write it like ${ADMIN_HOST}:${ADMIN_PORT} or [::1]:${ADMIN_PORT}`,
      },
    );
  }
  return { host: m[1], port };
}

export interface LabNodes {
  id: string;
  nodes: { name: string; netns: string }[];
}

/** The nodes of the named lab, or of every lab here (skipping records that cannot be read). */
function labNodes(only: string | undefined): LabNodes[] {
  if (only) return [{ id: only, nodes: loadState(only).plan.nodes }];
  return listLabIds().flatMap((id) => {
    try {
      return [{ id, nodes: loadState(id).plan.nodes }];
    } catch {
      return [];
    }
  });
}

/**
 * Resolution: --admin; else --node N: a lab's node N (the only lab that has one, or the lab
 * --lab or $MESHCTL_LAB names), else this host's node; else this host's agent. Pure apart from
 * reading the labs' records (`labs`, replaceable in tests).
 */
export function resolveAgent(
  target: AgentTarget,
  env: NodeJS.ProcessEnv = process.env,
  labs: (only: string | undefined) => LabNodes[] = labNodes,
): ResolvedAgent {
  if (target.admin) {
    const { host, port } = parseAdminAddress(target.admin);
    return { via: 'tcp', host, port, describe: target.admin };
  }
  const local = `${ADMIN_HOST}:${ADMIN_PORT}`;
  if (!target.node) {
    if (target.lab) {
      throw new MeshdError('MESHD_E_AGENT_ADMIN', `--lab ${target.lab} names no node`, {
        hint: 'add --node NAME (meshctl lab status lists the nodes)',
      });
    }
    return { via: 'tcp', host: ADMIN_HOST, port: ADMIN_PORT, describe: local };
  }
  const node = target.node;
  // $MESHCTL_LAB picks the lab as it does for the rest of meshctl; --lab wins over it.
  const found = labs(target.lab ?? (env.MESHCTL_LAB || undefined)).flatMap((lab) =>
    lab.nodes.filter((n) => n.name === node).map((n) => ({ lab: lab.id, netns: n.netns })),
  );
  if (found.length > 1) {
    throw new MeshdError(
      'MESHD_E_AGENT_ADMIN',
      `node ${node} exists in ${found.length} labs (${found.map((f) => f.lab).join(', ')})`,
      { hint: 'choose one with --lab ID (or MESHCTL_LAB=ID)' },
    );
  }
  const [inLab] = found;
  if (inLab) {
    return {
      via: 'netns',
      netns: netnsPath(inLab.netns),
      lab: inLab.lab,
      node,
      describe: `node ${node} of lab ${inLab.lab} (${local} in netns ${inLab.netns})`,
    };
  }
  if (target.lab) {
    throw new MeshdError('MESHD_E_AGENT_ADMIN', `lab ${target.lab} has no node ${node}`, {
      hint: 'meshctl lab status lists its nodes',
    });
  }
  if (node === localNodeName(env)) {
    return { via: 'tcp', host: ADMIN_HOST, port: ADMIN_PORT, describe: `node ${node} (${local})` };
  }
  throw new MeshdError(
    'MESHD_E_AGENT_ADMIN',
    `node ${node} is neither this host's node (${localNodeName(env)}) nor a node of a lab here`,
    {
      hint:
        `the admin endpoint listens only on ${local} of each agent's host: run meshctl there ` +
        `(ssh ${node} meshctl agent …), or save its /config_dump there ` +
        `(curl -s ${local}/config_dump > ${node}.json) and pass -f ${node}.json`,
    },
  );
}

function openSocket(where: ResolvedAgent, timeoutMs: number): Promise<Socket> {
  if (where.via === 'netns') {
    return connectFromNetns({
      netns: where.netns,
      family: 4,
      host: ADMIN_HOST,
      port: ADMIN_PORT,
      timeoutMs,
    });
  }
  return new Promise((resolve, reject) => {
    const socket = connect({ host: where.host, port: where.port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no connection within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

function httpGet(
  socket: Socket,
  path: string,
  timeoutMs: number,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        method: 'GET',
        path,
        headers: { host: `${ADMIN_HOST}:${ADMIN_PORT}`, connection: 'close' },
        createConnection: () => socket,
        signal: AbortSignal.timeout(timeoutMs),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.once('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
        );
        res.once('error', reject);
      },
    );
    req.once('error', reject);
    req.end();
  });
}

async function fetchOver(
  where: ResolvedAgent,
  path: string,
  timeoutMs: number,
): Promise<{ status: number; body: string }> {
  const socket = await openSocket(where, timeoutMs);
  try {
    return await httpGet(socket, path, timeoutMs);
  } finally {
    socket.destroy();
  }
}

/** GET `path` from the agent's admin endpoint; the parsed JSON answer. */
export async function agentAdminGet(
  target: AgentTarget,
  path: string,
  timeoutMs = 5000,
): Promise<unknown> {
  const where = resolveAgent(target);
  const reachHint =
    where.via === 'netns'
      ? `is the agent of ${where.node} running? "meshctl lab status --lab ${where.lab}"; its log is in the lab's directory`
      : "is the agent running on that host? The endpoint listens on loopback only: run meshctl on the agent's host, or pass -f with a saved /config_dump";
  let answer: { status: number; body: string };
  try {
    answer = await fetchOver(where, path, timeoutMs);
  } catch (cause) {
    throw new MeshdError(
      'MESHD_E_AGENT_ADMIN',
      `cannot read ${path} from the agent's admin endpoint at ${where.describe}`,
      { cause, hint: reachHint },
    );
  }
  if (answer.status !== 200) {
    throw new MeshdError(
      'MESHD_E_AGENT_ADMIN',
      `${path} at ${where.describe} answered ${answer.status}: ${answer.body.trim().split('\n')[0]}`,
      { hint: 'an agent older than this meshctl may not serve it; compare versions' },
    );
  }
  try {
    return JSON.parse(answer.body) as unknown;
  } catch (cause) {
    throw new MeshdError(
      'MESHD_E_AGENT_ADMIN',
      `${path} at ${where.describe} did not answer JSON`,
      { cause, hint: `is ${where.describe} really a meshd agent's admin endpoint?` },
    );
  }
}
