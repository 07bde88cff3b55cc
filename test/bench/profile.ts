/**
 * Profiling aid for the data path (not part of npm test, not a benchmark): one 2-node meshed
 * lab (n1-w1 → n2-w1, both enrolled), one or more loads from the bench's tools, and what the
 * agents did meanwhile: the rate, the machine's busy share, the agents' busiest thread, and on
 * request V8 CPU profiles, `perf record` of both agents, or their --trace-gc lines. The A/B
 * figures in docs/benchmarks.md ("Where the agent's time goes") were taken this way.
 *
 * Usage: npm run bench:profile -- [--load iperf,keepalive,close,rtt] [--seconds 10]
 *          [--cpu-prof] [--perf] [--trace-gc] [--flags="--v8-flag ..."] [--hold 0]
 *   --load      loads run one after the other (iperf: iperf3 -P 1, iperf4: -P 4; keepalive and close: wrk
 *               -c50; rtt: 1-byte round trips)
 *   --flags=…   Node/V8 flags for the agents (MESHD_NODE_FLAGS), to compare settings (with
 *               "=": a value starting with "--" is otherwise taken for an option)
 *   --cpu-prof  the agents' .cpuprofile files, and their top functions by self time
 *   --perf      perf record -g of both agents during each load (with --perf-basic-prof)
 *   --trace-gc  the agents' GC lines; the number of Mark-Compacts per agent is printed
 *   --alloc-prof  bytes the agents allocate, by function, collected objects included (what
 *               drives the young generation's scavenges); per connection for --load close
 *   --strace    2 s of each agent's read/write syscalls during each load: calls and sizes
 *               (strace slows the agent down meanwhile; the rate printed is disturbed)
 *   --hold S    after the loads, the agents' RSS every 5 s for S seconds (memory given back?
 *               not with --cpu-prof: the profiler's own CPU keeps the agent from looking quiet)
 * Everything lands in test/bench/results/profile-<time>/; the lab is removed at the end.
 */
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { type Lab, withLab } from '../../ctl/lab/index.js';
import { labDir } from '../../ctl/lab/state.js';
import { run } from '../../daemon/command.js';
import { packageRoot } from '../../daemon/paths.js';
import { fileLimit } from './bench-lab.js';
import { isAgent } from './cases.js';
import { originNginxConfig } from './peers.js';
import {
  machineBusyShare,
  machineCpu,
  netnsPids,
  processCounters,
  rssMiB,
  startSampling,
} from './proc-stats.js';
import {
  type HeapProfileNode,
  summarizeCpuProfile,
  summarizeHeapProfile,
} from './profile-summary.js';
import { summarizeStrace } from './strace-summary.js';
import { iperf3, pingpong, pingpongScript, type Target, wrk } from './tools.js';

const { values: args } = parseArgs({
  options: {
    load: { type: 'string', default: 'iperf,keepalive,close,rtt' },
    seconds: { type: 'string', default: '10' },
    'cpu-prof': { type: 'boolean', default: false },
    perf: { type: 'boolean', default: false },
    'trace-gc': { type: 'boolean', default: false },
    strace: { type: 'boolean', default: false },
    'alloc-prof': { type: 'boolean', default: false },
    flags: { type: 'string', default: '' },
    hold: { type: 'string', default: '0' },
  },
});

const LOADS = ['iperf', 'iperf4', 'keepalive', 'close', 'rtt'] as const;
type Load = (typeof LOADS)[number];
const loads = (args.load ?? '').split(',').filter(Boolean) as Load[];
for (const load of loads)
  if (!LOADS.includes(load)) throw new Error(`--load: unknown load ${load} (${LOADS.join(', ')})`);
const seconds = Number(args.seconds);
if (!(seconds >= 3 && seconds <= 120)) throw new Error('--seconds: 3 to 120');
const holdSeconds = Math.min(Number(args.hold) || 0, 300);

const out = join(
  packageRoot(),
  'test',
  'bench',
  'results',
  `profile-${new Date().toISOString().replace(/[:.]/g, '-')}`,
);
mkdirSync(out, { recursive: true });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

process.env.MESHD_NODE_FLAGS = [
  args.flags,
  args['cpu-prof'] ? `--cpu-prof --cpu-prof-dir=${out}` : '',
  args.perf ? '--perf-basic-prof' : '',
  args['trace-gc'] ? '--trace-gc' : '',
  args['alloc-prof'] ? `--import=${join(import.meta.dirname, 'alloc-profile-preload.js')}` : '',
]
  .filter(Boolean)
  .join(' ');
if (args['alloc-prof']) process.env.MESHD_ALLOC_PROFILE_DIR = out;

async function agents(lab: Lab): Promise<Record<string, number[]>> {
  const sides: Record<string, number[]> = {};
  for (const node of ['n1', 'n2'])
    sides[node] = (await netnsPids(lab.member(node).netns)).filter(isAgent);
  return sides;
}

async function startServers(lab: Lab): Promise<void> {
  const dir = join(out, 'origin');
  mkdirSync(join(dir, 'www'), { recursive: true });
  writeFileSync(join(dir, 'www', 'index.html'), `${'meshd profile '.repeat(9).slice(0, 127)}\n`);
  writeFileSync(join(dir, 'nginx.conf'), originNginxConfig(dir, 8080, fileLimit()));
  lab.spawn('n2-w1', [
    'nginx',
    '-p',
    dir,
    '-e',
    join(dir, 'error.log'),
    '-c',
    join(dir, 'nginx.conf'),
  ]);
  lab.spawn('n2-w1', ['iperf3', '-s', '-p', '5201']);
  lab.spawn('n2-w1', [process.execPath, pingpongScript, 'server', '7000']);
  await sleep(2_000);
}

/** Units of work each load completed (requests or round trips), for per-unit figures. */
const completed: Partial<Record<Load, number>> = {};

async function runLoad(lab: Lab, load: Load, target: (port: number) => Target): Promise<string> {
  switch (load) {
    case 'iperf':
      return `${(await iperf3(lab, target(5201), 1, seconds)).gbps} Gb/s`;
    case 'iperf4':
      return `${(await iperf3(lab, target(5201), 4, seconds)).gbps} Gb/s`;
    case 'keepalive':
    case 'close': {
      const result = await wrk(lab, target(8080), seconds, load === 'close');
      completed[load] = result.requests;
      const errors = Object.entries(result.socketErrors).filter(([, n]) => n > 0);
      const shown = errors.map(([kind, n]) => `${kind} ${n}`).join(', ');
      return `${result.requestsPerSecond} req/s${shown ? ` (wrk socket errors: ${shown})` : ''}`;
    }
    case 'rtt': {
      const r = await pingpong(lab, target(7000), 1, seconds, 10_000_000);
      completed.rtt = r.count;
      return `p50 ${r.p50} µs, ${r.count} round trips`;
    }
  }
}

async function perfRecord(pids: number[], name: string): Promise<void> {
  const file = join(out, `perf-${name}.data`);
  await run(
    [
      'perf',
      'record',
      '-F',
      '499',
      '-g',
      '-p',
      pids.join(','),
      '-o',
      file,
      '--',
      'sleep',
      String(seconds - 3),
    ],
    {
      timeoutMs: (seconds + 30) * 1000,
    },
  );
  console.log(`  perf: ${file} (perf report -i ${file} --no-children --sort dso,sym)`);
}

async function straceAgents(sides: Record<string, number[]>, name: string): Promise<void> {
  for (const [node, pids] of Object.entries(sides))
    for (const pid of pids) {
      const file = join(out, `strace-${name}-${node}-${pid}.txt`);
      const argv = ['strace', '-f', '-qq', '-e', 'trace=read,write,readv,writev', '-o', file];
      await run(['timeout', '-s', 'INT', '2', ...argv, '-p', String(pid)], {
        timeoutMs: 15_000,
        okStatuses: [124, 130],
      });
      console.log(`  strace ${node} agent ${pid}:\n${summarizeStrace(readFileSync(file, 'utf8'))}`);
    }
}

/** Per agent, its user and system CPU seconds and minor faults from now until the call. */
function userSystemSplit(sides: Record<string, number[]>): () => string {
  const before = new Map(
    Object.values(sides)
      .flat()
      .map((pid) => [pid, processCounters(pid)]),
  );
  return () =>
    Object.entries(sides)
      .flatMap(([node, pids]) =>
        pids.map((pid) => {
          const from = before.get(pid);
          const to = processCounters(pid);
          if (!from) return `${node} (started during the load)`;
          const user = (to.userSeconds - from.userSeconds).toFixed(2);
          const system = (to.systemSeconds - from.systemSeconds).toFixed(2);
          return `${node} user ${user} s, system ${system} s, ${to.minorFaults - from.minorFaults} minor faults`;
        }),
      )
      .join('; ');
}

async function profileLoad(lab: Lab, load: Load, target: (port: number) => Target): Promise<void> {
  const sides = await agents(lab);
  const split = userSystemSplit(sides);
  const sampling = startSampling(sides);
  const cpu = machineCpu();
  const rate = runLoad(lab, load, target);
  if (args.perf) {
    await sleep(1_000);
    await perfRecord(Object.values(sides).flat(), load);
  }
  if (args.strace) {
    await sleep(1_000);
    await straceAgents(sides, load);
  }
  const result = await rate;
  const usage = sampling.stop();
  console.log(`  agents: ${split()}`);
  console.log(
    `${load}: ${result}; machine ${Math.round(machineBusyShare(cpu) * 100)} % busy; agents ${usage.cpuSeconds} CPU s, busiest thread ${Math.round(usage.busiestThreadShare * 100)} % of a core, peak ${usage.peakRssMiB} MiB`,
  );
}

async function stopAgents(lab: Lab): Promise<void> {
  // SIGTERM and wait: V8 writes --cpu-prof files only on a normal exit.
  const pids = Object.values(await agents(lab)).flat();
  for (const pid of pids) process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline && pids.some((pid) => existsSync(`/proc/${pid}`))) await sleep(100);
}

function report(lab: Lab): void {
  for (const file of readdirSync(labDir(lab.id)).filter(
    (f) => f.startsWith('agent-') && f.endsWith('.log'),
  )) {
    copyFileSync(join(labDir(lab.id), file), join(out, file));
    if (args['trace-gc']) {
      const text = readFileSync(join(out, file), 'utf8');
      const count = (kind: string) => text.split('\n').filter((l) => l.includes(kind)).length;
      console.log(
        `${file}: ${count('Mark-Compact')} Mark-Compacts, ${count('Scavenge')} scavenges`,
      );
    }
  }
  for (const file of readdirSync(out).filter((f) => f.endsWith('.heapprofile'))) {
    const head = (JSON.parse(readFileSync(join(out, file), 'utf8')) as { head: HeapProfileNode })
      .head;
    const summary = summarizeHeapProfile(head, 25, completed.close);
    writeFileSync(join(out, `${file}.txt`), summary);
    console.log(`\n${file}\n${summary}`);
  }
  for (const file of readdirSync(out).filter((f) => f.endsWith('.cpuprofile'))) {
    const summary = summarizeCpuProfile(JSON.parse(readFileSync(join(out, file), 'utf8')), 25);
    writeFileSync(join(out, `${file}.txt`), summary);
    console.log(`\n${file}\n${summary}`);
  }
}

await withLab({ nodes: 2, workloads: 1, mesh: true, progress: () => {} }, async (lab) => {
  for (const m of lab.members())
    await lab.exec(m.name, [
      'sysctl',
      '-q',
      '-w',
      'net.ipv4.tcp_tw_reuse=1',
      'net.ipv4.ip_local_port_range=16000 64999',
    ]);
  await startServers(lab);
  const host = lab.member('n2-w1').ipv4;
  const target = (port: number): Target => ({ client: 'n1-w1', host, port });
  console.log(
    `lab ${lab.id}; MESHD_NODE_FLAGS="${process.env.MESHD_NODE_FLAGS}"; output in ${out}`,
  );
  for (const load of loads) await profileLoad(lab, load, target);
  const sides = await agents(lab);
  for (let held = 0; held < holdSeconds; held += 5) {
    const rss = Object.entries(sides).map(
      ([n, pids]) => `${n} ${pids.map((p) => rssMiB(p).toFixed(1)).join('+')} MiB`,
    );
    console.log(`+${held} s after the loads: ${rss.join(', ')}`);
    await sleep(5_000);
  }
  await stopAgents(lab);
  report(lab);
});
