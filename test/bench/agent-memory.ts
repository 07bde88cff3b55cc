/**
 * Agent memory benchmark (not part of npm test): the resident memory of `meshd agent` in a
 * meshed lab, idle with N enrolled workloads on its node, and under a 4-stream iperf3 run
 * between two enrolled workloads on different nodes. Every lab it builds is removed again.
 *
 * Usage: npm run bench:memory -- [--idle 0,10,20,32] [--load 20] [--rounds 1] [--seconds 10]
 *   --idle N,...  one 1-node lab per count: the agent's RSS once the lab has settled
 *   --load N      one 2-node lab with N workloads per node: RSS idle, peak during and after
 *                 iperf3 -P 4 from n1-w1 to n2-w1, and both agents' CPU per GiB (0 skips it)
 *   --rounds R    iperf3 runs one after another in the load lab (throughput is noisy here)
 *   --settle S    seconds a lab idles before (and after the load) RSS is read (default 20)
 *   --burst N     one 2-node lab with 2 workloads per node: both agents' RSS idle, then N
 *                 concurrent TCP connections n1-w1 -> n2-w1 (1 KiB each way, held 2 s, all
 *                 closed), then RSS every second for --after seconds (default 60); 0 skips it
 *   --bursts B    bursts in that lab, one after another (each one's idle read afresh)
 * RSS is VmRSS of /proc/PID/status, shown as anonymous (V8 heap, malloc) + file-backed (the
 * pages of the node binary touched so far). MESHD_NODE_FLAGS (read by bin/meshd) adds Node/V8
 * flags to the lab's processes, to compare flags without editing anything.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Lab } from '../../ctl/lab/index.js';
import { formatTable } from '../../ctl/output.js';
import { run } from '../../daemon/command.js';
import {
  agentPid,
  type BurstResult,
  type MemorySample,
  measureBurst,
  sample,
  sleep,
} from '../support/memory-burst.js';

const IPERF_PORT = 5201;
const SAMPLE_MS = 250;

/** CPU seconds the process has used (/proc/PID/stat utime + stime, in USER_HZ = 100). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Samples until `settleMs` passed; the last sample is the idle figure. */
async function settle(pid: number, settleMs: number): Promise<MemorySample> {
  const deadline = Date.now() + settleMs;
  let last = sample(pid);
  while (Date.now() < deadline) {
    await sleep(1000);
    last = sample(pid);
  }
  return last;
}

async function withMeshLab<T>(nodes: number, workloads: number, fn: (lab: Lab) => Promise<T>) {
  const id = `mem${Math.random().toString(36).slice(2, 8)}`;
  const lab = await Lab.create({ id, nodes, workloads, mesh: true });
  try {
    return await fn(lab);
  } finally {
    const problems = lab.destroy();
    if (problems.length) console.error(`lab ${id} teardown problems: ${problems.join('; ')}`);
  }
}

interface IdleRow {
  workloads: number;
  idle: MemorySample;
}

async function idleRun(workloads: number, settleMs: number): Promise<IdleRow> {
  return withMeshLab(1, workloads, async (lab) => {
    const idle = await settle(await agentPid(lab, 'n1'), settleMs);
    return { workloads, idle };
  });
}

interface LoadRow {
  workloads: number;
  idle: MemorySample;
  peak: MemorySample;
  after: MemorySample;
  peerPeakMiB: number;
  gbitsPerSecond: number[];
  /** CPU seconds of both agents together per GiB carried (lower is better). */
  cpuSecondsPerGiB: number;
}

interface IperfResult {
  gbitsPerSecond: number;
  bytes: number;
}

async function iperf(lab: Lab, seconds: number): Promise<IperfResult> {
  const server = lab.spawn('n2-w1', ['iperf3', '-s', '-1', '-p', String(IPERF_PORT)]);
  try {
    await sleep(500); // iperf3 -s listens within milliseconds; retried below if not
    const target = lab.member('n2-w1').ipv4;
    const argv = ['iperf3', '-c', target, '-p', String(IPERF_PORT), '-P', '4'];
    const { stdout } = await lab.exec('n1-w1', [...argv, '-t', String(seconds), '-J'], {
      timeoutMs: (seconds + 30) * 1000,
    });
    const report = JSON.parse(stdout) as {
      end?: { sum_received?: { bits_per_second?: number; bytes?: number } };
    };
    const received = report.end?.sum_received;
    return {
      gbitsPerSecond: Math.round((received?.bits_per_second ?? 0) / 1e7) / 100,
      bytes: received?.bytes ?? 0,
    };
  } finally {
    server.kill();
  }
}

async function loadRun(
  workloads: number,
  seconds: number,
  rounds: number,
  settleMs: number,
): Promise<LoadRow> {
  return withMeshLab(2, Math.max(1, workloads), async (lab) => {
    const pid = await agentPid(lab, 'n1');
    const peer = await agentPid(lab, 'n2');
    const idle = await settle(pid, settleMs);
    let peak = idle;
    let peerPeakMiB = sample(peer).rssMiB;
    const sampler = setInterval(() => {
      const now = sample(pid);
      if (now.rssMiB > peak.rssMiB) peak = now;
      peerPeakMiB = Math.max(peerPeakMiB, sample(peer).rssMiB);
    }, SAMPLE_MS);
    const gbitsPerSecond: number[] = [];
    let bytes = 0;
    const cpuBefore = cpuSeconds(pid) + cpuSeconds(peer);
    try {
      for (let round = 0; round < rounds; round++) {
        const result = await iperf(lab, seconds);
        gbitsPerSecond.push(result.gbitsPerSecond);
        bytes += result.bytes;
      }
    } finally {
      clearInterval(sampler);
    }
    const cpu = cpuSeconds(pid) + cpuSeconds(peer) - cpuBefore;
    const cpuSecondsPerGiB = Math.round((cpu / (bytes / 2 ** 30)) * 1000) / 1000;
    const after = await settle(pid, settleMs);
    return { workloads, idle, peak, after, peerPeakMiB, gbitsPerSecond, cpuSecondsPerGiB };
  });
}

async function burstRuns(
  count: number,
  options: Parameters<typeof measureBurst>[1],
): Promise<BurstResult[]> {
  return withMeshLab(2, 2, async (lab) => {
    const results: BurstResult[] = [];
    for (let i = 0; i < count; i++) {
      results.push(await measureBurst(lab, options));
      console.error(`burst ${i + 1}/${count} done`);
    }
    return results;
  });
}

/** RSS n seconds after the burst, or the last sample when the run was shorter. */
const at = (after: number[], seconds: number) => after[Math.min(seconds, after.length) - 1];

function printBursts(results: BurstResult[]): void {
  console.log(`flags: MESHD_NODE_FLAGS=${JSON.stringify(process.env.MESHD_NODE_FLAGS ?? '')}`);
  const rows = results.flatMap((r, i) =>
    r.agents.map((a) => {
      const at30 = at(a.afterMiB, 30) ?? Number.NaN;
      return [
        String(i + 1),
        a.node,
        `${r.held}/${r.connections}`,
        String(a.idleMiB),
        String(a.peakMiB),
        String(at(a.afterMiB, 10)),
        String(at30),
        String(at(a.afterMiB, 60)),
        (at30 / a.idleMiB).toFixed(3),
        String(a.trims.length),
      ];
    }),
  );
  console.log('agent RSS in MiB around a burst of concurrent connections (n1-w1 -> n2-w1):');
  console.log(
    formatTable(
      ['burst', 'agent', 'held', 'idle', 'peak', '+10 s', '+30 s', '+60 s', '+30 s/idle', 'trims'],
      rows,
    ),
  );
  console.log(`\n${JSON.stringify(results)}`);
}

const mib = (s: MemorySample) => `${s.rssMiB} (${s.anonMiB} + ${s.fileMiB})`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      idle: { type: 'string', default: '0,10,20,32' },
      load: { type: 'string', default: '20' },
      seconds: { type: 'string', default: '10' },
      rounds: { type: 'string', default: '1' },
      settle: { type: 'string', default: '20' },
      burst: { type: 'string', default: '0' },
      bursts: { type: 'string', default: '1' },
      after: { type: 'string', default: '60' },
    },
  });
  const burst = Number(values.burst);
  if (burst > 0) {
    const options = {
      connections: burst,
      holdMs: 2_000,
      settleMs: Number(values.settle) * 1000,
      afterSeconds: Number(values.after),
    };
    printBursts(await burstRuns(Number(values.bursts), options));
    return;
  }
  await run(['iperf3', '--version']).catch(() => {
    throw new Error('iperf3 is not installed (apt-get install -y iperf3)');
  });
  const settleMs = Number(values.settle) * 1000;
  const counts = values.idle
    .split(',')
    .filter(Boolean)
    .map((n) => Number(n));
  const idleRows: IdleRow[] = [];
  for (const n of counts) {
    idleRows.push(await idleRun(n, settleMs));
    console.error(`idle, ${n} workloads: ${mib(idleRows.at(-1)?.idle as MemorySample)} MiB`);
  }
  const load = Number(values.load);
  const loadRow =
    load > 0
      ? await loadRun(load, Number(values.seconds), Number(values.rounds), settleMs)
      : undefined;
  console.log(`flags: MESHD_NODE_FLAGS=${JSON.stringify(process.env.MESHD_NODE_FLAGS ?? '')}`);
  console.log('agent RSS in MiB (anonymous + file-backed), idle after the lab settled:');
  console.log(
    formatTable(
      ['workloads', 'rss', 'peak so far'],
      idleRows.map((r) => [String(r.workloads), mib(r.idle), String(r.idle.hwmMiB)]),
    ),
  );
  if (loadRow) {
    console.log(
      `\nunder iperf3 -P 4 -t ${values.seconds} (n1-w1 -> n2-w1), ${loadRow.workloads} workloads per node:`,
    );
    console.log(
      formatTable(
        ['idle', 'peak', 'after', 'peer agent peak', 'gbit/s', 'agents cpu s/GiB'],
        [
          [
            mib(loadRow.idle),
            mib(loadRow.peak),
            mib(loadRow.after),
            String(loadRow.peerPeakMiB),
            loadRow.gbitsPerSecond.join(' '),
            String(loadRow.cpuSecondsPerGiB),
          ],
        ],
      ),
    );
  }
  console.log(`\n${JSON.stringify({ idle: idleRows, load: loadRow })}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
