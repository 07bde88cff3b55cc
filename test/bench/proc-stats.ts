/**
 * CPU seconds and resident memory of the proxies during one run, read from /proc: utime+stime
 * before and after (all threads), and VmRSS sampled every 100 ms (the peak of a run, which
 * VmHWM cannot give for a process that was busier in an earlier run).
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { run } from '../../daemon/command.js';

const SAMPLE_EVERY_MS = 100;
const clockTicks = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** Processes whose network namespace is `netns`. */
export async function netnsPids(netns: string): Promise<number[]> {
  const { stdout } = await run(['ip', 'netns', 'pids', netns]);
  return stdout.split(/\s+/).filter(Boolean).map(Number);
}

export function commandLine(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return [];
  }
}

export function commandName(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

/** utime + stime in seconds; NaN once the process is gone. */
export function cpuSeconds(pid: number): number {
  return statCpuSeconds(`/proc/${pid}/stat`);
}

/** CPU seconds of every thread of the processes, by "pid/tid". */
export function threadCpuSeconds(pids: number[]): Map<string, number> {
  const threads = new Map<string, number>();
  for (const pid of pids) {
    let tids: string[] = [];
    try {
      tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue; // gone
    }
    for (const tid of tids)
      threads.set(`${pid}/${tid}`, statCpuSeconds(`/proc/${pid}/task/${tid}/stat`));
  }
  return threads;
}

/** Fields of a /proc stat file after the command name (field 3 is index 0); throws if gone. */
function statFields(file: string): string[] {
  const stat = readFileSync(file, 'utf8');
  // The command name may hold spaces and parentheses: fields start after the last ')'.
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

function statCpuSeconds(file: string): number {
  try {
    const fields = statFields(file);
    return (Number(fields[11]) + Number(fields[12])) / clockTicks;
  } catch {
    return Number.NaN;
  }
}

export interface ProcessCounters {
  userSeconds: number;
  systemSeconds: number;
  minorFaults: number;
}

/** A process's user and system CPU seconds and minor page faults so far; throws if gone. */
export function processCounters(pid: number): ProcessCounters {
  const fields = statFields(`/proc/${pid}/stat`);
  return {
    userSeconds: Number(fields[11]) / clockTicks,
    systemSeconds: Number(fields[12]) / clockTicks,
    minorFaults: Number(fields[7]),
  };
}

function statusKiB(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? Number.NaN);
  } catch {
    return Number.NaN;
  }
}

export const rssMiB = (pid: number) => statusKiB(pid, 'VmRSS') / 1024;

/** What one side (a node) of a case used during a run; processes summed (nginx: master + workers). */
export interface SideUsage {
  pids: number[];
  cpuSeconds: number;
  /** VmRSS when the run started: what earlier runs left behind. */
  rssAtStartMiB: number;
  peakRssMiB: number;
  /** VmHWM at the end: the peak since each process started, not only this run. */
  hwmMiB: number;
}

export interface Usage {
  /** Both sides together. */
  cpuSeconds: number;
  /** The larger side's peak: one proxy's footprint. */
  peakRssMiB: number;
  /** The busiest single thread of all the proxies' processes: its CPU time ÷ the run's time. */
  busiestThreadShare: number;
  sides: Record<string, SideUsage>;
}

const round = (n: number, digits = 2) => Math.round(n * 10 ** digits) / 10 ** digits;
const sum = (values: number[]) => values.reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0);

/** Starts sampling the given processes (by side); `stop()` returns what they used meanwhile. */
export function startSampling(sides: Record<string, number[]>): { stop: () => Usage } {
  const cpuAtStart = new Map<number, number>();
  const peak = new Map<string, number>();
  const atStart = new Map<string, number>();
  const allPids = Object.values(sides).flat();
  const threadsAtStart = threadCpuSeconds(allPids);
  const startedAt = performance.now();
  for (const pids of Object.values(sides))
    for (const pid of pids) cpuAtStart.set(pid, cpuSeconds(pid));
  // Threads are read on every sample too: stunnel runs one per connection, gone by the end.
  const threadsLastSeen = new Map<string, number>();
  const sample = () => {
    for (const [thread, seconds] of threadCpuSeconds(allPids))
      if (Number.isFinite(seconds)) threadsLastSeen.set(thread, seconds);
    for (const [side, pids] of Object.entries(sides)) {
      const rss = sum(pids.map(rssMiB));
      peak.set(side, Math.max(peak.get(side) ?? 0, rss));
    }
  };
  sample();
  for (const [side, rss] of peak) atStart.set(side, rss);
  const timer = setInterval(sample, SAMPLE_EVERY_MS);
  return {
    stop: () => {
      clearInterval(timer);
      sample();
      const result: Record<string, SideUsage> = {};
      for (const [side, pids] of Object.entries(sides)) {
        result[side] = {
          pids,
          cpuSeconds: round(sum(pids.map((pid) => cpuSeconds(pid) - (cpuAtStart.get(pid) ?? 0)))),
          rssAtStartMiB: round(atStart.get(side) ?? Number.NaN, 1),
          peakRssMiB: round(peak.get(side) ?? Number.NaN, 1),
          hwmMiB: round(sum(pids.map((pid) => statusKiB(pid, 'VmHWM'))) / 1024, 1),
        };
      }
      const values = Object.values(result);
      const elapsed = (performance.now() - startedAt) / 1000;
      let busiest = 0;
      for (const [thread, seconds] of threadsLastSeen) {
        const used = seconds - (threadsAtStart.get(thread) ?? 0);
        if (Number.isFinite(used)) busiest = Math.max(busiest, used);
      }
      return {
        cpuSeconds: round(sum(values.map((v) => v.cpuSeconds))),
        busiestThreadShare: round(busiest / elapsed, 3),
        peakRssMiB: round(Math.max(...values.map((v) => v.peakRssMiB)), 1),
        sides: result,
      };
    },
  };
}

/** The machine's CPU time counters (/proc/stat, all CPUs, clock ticks). */
export interface MachineCpu {
  busy: number;
  total: number;
}

export function machineCpu(): MachineCpu {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  // cpu user nice system idle iowait irq softirq steal ...
  const ticks = line.trim().split(/\s+/).slice(1).map(Number);
  const total = ticks.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = (ticks[3] ?? 0) + (ticks[4] ?? 0);
  return { busy: total - idle, total };
}

/** Share (0..1) of the machine's CPU time that was busy since `from`. */
export function machineBusyShare(from: MachineCpu, to: MachineCpu = machineCpu()): number {
  const total = to.total - from.total;
  return total > 0 ? round((to.busy - from.busy) / total, 3) : Number.NaN;
}
