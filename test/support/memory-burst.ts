/**
 * The "memory after a burst" measurement, shared by `npm run bench:memory -- --burst N` and the
 * e2e check: both agents' RSS idle, then N concurrent meshed TCP connections from n1-w1 to an
 * echo server on n2-w1 (opened, 1 KiB each way, held, all closed), then RSS every second for a
 * while after the last one closed. Every step is bounded in time.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Lab } from '../../ctl/lab/index.js';
import { LAB_STATE_ROOT } from '../../ctl/lab/index.js';
import { run } from '../../daemon/command.js';
import { supportScript, waitForLine } from './lab-helpers.js';

export interface MemorySample {
  rssMiB: number;
  anonMiB: number;
  fileMiB: number;
  hwmMiB: number;
}

function statusField(status: string, field: string): number {
  const kib = Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN);
  return Math.round((kib / 1024) * 10) / 10;
}

/** VmRSS of /proc/PID/status, split into anonymous and file-backed pages. */
export function sample(pid: number): MemorySample {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return {
    rssMiB: statusField(status, 'VmRSS'),
    anonMiB: statusField(status, 'RssAnon'),
    fileMiB: statusField(status, 'RssFile'),
    hwmMiB: statusField(status, 'VmHWM'),
  };
}

/** The pid of `meshd agent` in a lab node's namespace (bin/meshd execs node: same pid). */
export async function agentPid(lab: Lab, node: string): Promise<number> {
  const { stdout } = await run(['ip', 'netns', 'pids', lab.member(node).netns]);
  for (const pid of stdout.split(/\s+/).filter(Boolean).map(Number)) {
    let argv: string[] = [];
    try {
      argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    } catch {
      continue; // exited meanwhile
    }
    if (argv.some((a) => a.endsWith('daemon/main.js')) && argv.includes('agent')) return pid;
  }
  throw new Error(`no meshd agent process in ${lab.member(node).netns}`);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const BURST_PORT = 9300;
const AGENTS = ['n1', 'n2'] as const;

export interface AgentBurstFigures {
  node: string;
  idleMiB: number;
  peakMiB: number;
  /** RSS n seconds after the last connection closed, n = index + 1. */
  afterMiB: number[];
  /** `memory trimmed` lines the agent logged at debug level during the run. */
  trims: string[];
}

export interface BurstResult {
  connections: number;
  held: number;
  failed: number;
  openMs: number;
  closeMs: number;
  agents: AgentBurstFigures[];
}

export interface BurstOptions {
  connections: number;
  /** How long all connections stay open together. */
  holdMs: number;
  /** Idle time before the idle figure is read. */
  settleMs: number;
  /** Seconds sampled after the last connection closed. */
  afterSeconds: number;
}

/**
 * With the soft descriptor limit raised to the hard one, so one process holds every connection
 * of the burst (20,000 on the bench machine; raising the hard limit needs CAP_SYS_RESOURCE).
 */
const withNofile = (argv: string[]) => [
  'sh',
  '-c',
  'ulimit -n "$(ulimit -Hn)" && exec "$@"',
  'sh',
  ...argv,
];

function setDebug(lab: Lab, node: string): Promise<unknown> {
  return lab.exec(node, ['curl', '-sf', 'http://127.0.0.1:15000/logging?level=debug'], {
    timeoutMs: 5_000,
  });
}

function trimLines(lab: Lab, node: string, fromByte: number): string[] {
  const log = readFileSync(join(LAB_STATE_ROOT, lab.id, `agent-${node}.log`));
  return log
    .subarray(fromByte)
    .toString()
    .split('\n')
    .filter((l) => l.includes('"memory trimmed"'));
}

const logSize = (lab: Lab, node: string) =>
  readFileSync(join(LAB_STATE_ROOT, lab.id, `agent-${node}.log`)).length;

/** Runs one burst in a 2-node mesh lab whose workloads n1-w1 and n2-w1 exist. */
export async function measureBurst(lab: Lab, options: BurstOptions): Promise<BurstResult> {
  const pids = await Promise.all(AGENTS.map((n) => agentPid(lab, n)));
  await Promise.all(AGENTS.map((n) => setDebug(lab, n)));
  const logFrom = AGENTS.map((n) => logSize(lab, n));
  await sleep(options.settleMs);
  const idle = pids.map((pid) => sample(pid).rssMiB);
  const peak = [...idle];
  const sampleAll = () =>
    pids.map((pid, i) => {
      const rss = sample(pid).rssMiB;
      peak[i] = Math.max(peak[i] ?? 0, rss);
      return rss;
    });
  const server = lab.spawn(
    'n2-w1',
    withNofile([process.execPath, supportScript('tcp-server'), 'echo', String(BURST_PORT)]),
  );
  try {
    await waitForLine(server, 'listening');
    const sampler = setInterval(sampleAll, 1000);
    let stdout: string;
    try {
      const argv = [process.execPath, supportScript('tcp-client'), 'burst'];
      argv.push(String(options.connections), String(options.holdMs));
      argv.push(lab.member('n2-w1').ipv4, String(BURST_PORT));
      ({ stdout } = await lab.exec('n1-w1', withNofile(argv), { timeoutMs: 150_000 }));
    } finally {
      clearInterval(sampler);
    }
    const done = JSON.parse(stdout) as Omit<BurstResult, 'agents' | 'connections'>;
    const after: number[][] = AGENTS.map(() => []);
    for (let s = 0; s < options.afterSeconds; s++) {
      await sleep(1000);
      sampleAll().forEach((rss, i) => {
        after[i]?.push(rss);
      });
    }
    const agents = AGENTS.map((node, i) => ({
      node,
      idleMiB: idle[i] ?? Number.NaN,
      peakMiB: peak[i] ?? Number.NaN,
      afterMiB: after[i] ?? [],
      trims: trimLines(lab, node, logFrom[i] ?? 0),
    }));
    return { connections: options.connections, ...done, agents };
  } finally {
    server.kill();
  }
}
