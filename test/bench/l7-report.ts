/**
 * The L7 (waypoint) benchmark's figures: what one run measures, medians over its rounds, the
 * targets, and the markdown section of docs/benchmarks.md. Pure: everything is computed from
 * the runs kept in the JSON (test/bench/l7.ts writes them).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { MachineFacts } from './machine.js';
import type { Usage } from './proc-stats.js';
import { median } from './stats.js';

export type L7FigureId = 'l7-keepalive' | 'l7-close' | 'l7-latency';

export interface L7Figure {
  id: L7FigureId;
  label: string;
  closeEachConnection: boolean;
  threads: number;
  connections: number;
}

export const L7_FIGURES: L7Figure[] = [
  {
    id: 'l7-keepalive',
    label: 'keep-alive (wrk -t2 -c50)',
    closeEachConnection: false,
    threads: 2,
    connections: 50,
  },
  {
    id: 'l7-close',
    label: 'Connection: close (wrk -t2 -c50)',
    closeEachConnection: true,
    threads: 2,
    connections: 50,
  },
  {
    id: 'l7-latency',
    label: 'one connection, keep-alive (wrk -t1 -c1)',
    closeEachConnection: false,
    threads: 1,
    connections: 1,
  },
];

/** The hops' sides in a run's usage: node 1's edge, the middle (the waypoint), node 2's edge. */
export const MIDDLE = 'middle';

export interface L7Run {
  round: number;
  case: string;
  figure: L7FigureId;
  startedAt: string;
  seconds: number;
  error?: string;
  values: {
    requestsPerSecond?: number;
    requests?: number;
    p50Ms?: number;
    p99Ms?: number;
    socketErrors?: number;
    non2xx?: number;
  };
  usage?: Usage;
  machineBusy?: number;
  raw?: string;
}

export interface L7Targets {
  waypointCpuUsPerRequest: number;
  waypointRssMiB: number;
}

export const TARGETS: L7Targets = { waypointCpuUsPerRequest: 150, waypointRssMiB: 96 };

export interface CaseFigures {
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** Median over rounds of (all proxies' CPU seconds ÷ requests), µs. */
  cpuUsPerRequest: number;
  /** The same for the middle hop alone (meshd: the waypoint). */
  middleCpuUsPerRequest: number;
  /** Largest peak RSS of the middle hop over the rounds, MiB. */
  middlePeakRssMiB: number;
  machineBusy: number;
  busiestThread: number;
  /** Per round, in order. */
  rounds: number[];
}

export interface L7Summary {
  cases: string[];
  peers: string[];
  figures: Record<L7FigureId, Record<string, CaseFigures>>;
  /** Median minus direct's median, µs, per figure and case. */
  addedP50Us: Record<L7FigureId, Record<string, number>>;
  addedP99Us: Record<L7FigureId, Record<string, number>>;
}

const finite = (values: number[]) => values.filter(Number.isFinite);
const maxOf = (values: number[]) => {
  const f = finite(values);
  return f.length ? Math.max(...f) : Number.NaN;
};

export function cpuUsPerRequest(run: L7Run, side?: string): number {
  const requests = run.values.requests ?? 0;
  if (!run.usage || requests <= 0) return Number.NaN;
  const seconds = side ? (run.usage.sides[side]?.cpuSeconds ?? Number.NaN) : run.usage.cpuSeconds;
  return (seconds * 1e6) / requests;
}

export function summarizeL7(runs: L7Run[], cases: string[], peers: string[]): L7Summary {
  const figures = {} as L7Summary['figures'];
  const addedP50Us = {} as L7Summary['addedP50Us'];
  const addedP99Us = {} as L7Summary['addedP99Us'];
  for (const figure of L7_FIGURES) {
    const byCase: Record<string, CaseFigures> = {};
    for (const name of cases) {
      const ok = runs
        .filter((r) => r.case === name && r.figure === figure.id && !r.error)
        .sort((a, b) => a.round - b.round);
      const of = (f: (r: L7Run) => number | undefined) => median(ok.map((r) => f(r) ?? Number.NaN));
      byCase[name] = {
        requestsPerSecond: of((r) => r.values.requestsPerSecond),
        p50Ms: of((r) => r.values.p50Ms),
        p99Ms: of((r) => r.values.p99Ms),
        cpuUsPerRequest: of((r) => cpuUsPerRequest(r)),
        middleCpuUsPerRequest: of((r) => cpuUsPerRequest(r, MIDDLE)),
        middlePeakRssMiB: maxOf(ok.map((r) => r.usage?.sides[MIDDLE]?.peakRssMiB ?? Number.NaN)),
        machineBusy: of((r) => r.machineBusy),
        busiestThread: of((r) => r.usage?.busiestThreadShare),
        rounds: ok.map((r) => r.values.requestsPerSecond ?? Number.NaN),
      };
    }
    figures[figure.id] = byCase;
    const direct = byCase.direct;
    addedP50Us[figure.id] = Object.fromEntries(
      cases.map((c) => [c, ((byCase[c]?.p50Ms ?? NaN) - (direct?.p50Ms ?? NaN)) * 1000]),
    );
    addedP99Us[figure.id] = Object.fromEntries(
      cases.map((c) => [c, ((byCase[c]?.p99Ms ?? NaN) - (direct?.p99Ms ?? NaN)) * 1000]),
    );
  }
  return { cases, peers, figures, addedP50Us, addedP99Us };
}

/** The peer with the highest median keep-alive rate, and that rate. */
export function bestPeer(s: L7Summary, figure: L7FigureId = 'l7-keepalive') {
  let best: { name: string; rps: number } | undefined;
  for (const p of s.peers) {
    const rps = s.figures[figure]?.[p]?.requestsPerSecond ?? Number.NaN;
    if (Number.isFinite(rps) && (!best || rps > best.rps)) best = { name: p, rps };
  }
  return best;
}

/** Per round: meshd's keep-alive rate ÷ that round's best peer. */
export function perRoundRatios(runs: L7Run[], peers: string[]): number[] {
  const rounds = [...new Set(runs.map((r) => r.round))].sort((a, b) => a - b);
  const rate = (round: number, name: string) =>
    runs.find(
      (r) => r.round === round && r.case === name && r.figure === 'l7-keepalive' && !r.error,
    )?.values.requestsPerSecond ?? Number.NaN;
  return rounds.map((round) => rate(round, 'meshd') / maxOf(peers.map((p) => rate(round, p))));
}

export interface TargetRow {
  target: string;
  goal: string;
  value: string;
  met: boolean | undefined;
}

export interface WaypointMemory {
  /** Before any load (after start-up and the checks), MiB. */
  idleMiB: number;
  /** After all the runs and a quiet spell, MiB. */
  afterMiB: number;
}

export function l7Targets(s: L7Summary, runs: L7Run[], memory: WaypointMemory): TargetRow[] {
  const meshd = s.figures['l7-keepalive']?.meshd;
  const close = s.figures['l7-close']?.meshd;
  const cpu = meshd?.middleCpuUsPerRequest ?? Number.NaN;
  const best = bestPeer(s);
  const rps = meshd?.requestsPerSecond ?? Number.NaN;
  const rss = maxOf(
    runs
      .filter((r) => r.case === 'meshd' && !r.error)
      .map((r) => r.usage?.sides[MIDDLE]?.peakRssMiB ?? Number.NaN),
  );
  const known = (ok: boolean, ...values: number[]) =>
    values.every(Number.isFinite) ? ok : undefined;
  const rounds = perRoundRatios(runs, s.peers)
    .map((r) => (Number.isFinite(r) ? `${r.toFixed(2)}×` : '—'))
    .join(', ');
  return [
    {
      target: 'waypoint CPU per request, keep-alive',
      goal: `≤ ${TARGETS.waypointCpuUsPerRequest} µs`,
      value: `${fmt(cpu, 0)} µs (Connection: close: ${fmt(close?.middleCpuUsPerRequest, 0)} µs)`,
      met: known(cpu <= TARGETS.waypointCpuUsPerRequest, cpu),
    },
    {
      target: 'keep-alive requests/s',
      goal: '≥ the best of nginx, haproxy, caddy',
      value: `${fmt(rps, 0)} vs ${best ? `${fmt(best.rps, 0)} (${best.name})` : '—'}: ${
        best ? ratio(rps, best.rps) : '—'
      }; per round ${rounds}`,
      met: known(rps >= (best?.rps ?? Number.NaN), rps, best?.rps ?? Number.NaN),
    },
    {
      target: 'waypoint RSS under load',
      goal: `≤ ${TARGETS.waypointRssMiB} MiB`,
      value: `${fmt(rss, 1)} MiB peak (idle ${fmt(memory.idleMiB, 1)}, after the runs ${fmt(memory.afterMiB, 1)})`,
      met: known(rss <= TARGETS.waypointRssMiB, rss),
    },
  ];
}

export const fmt = (value: number | undefined, digits: number) =>
  value === undefined || !Number.isFinite(value)
    ? '—'
    : value.toLocaleString('en-US', {
        minimumFractionDigits: digits,
        maximumFractionDigits: digits,
      });
const ratio = (a: number | undefined, b: number | undefined) =>
  a === undefined || b === undefined || !Number.isFinite(a / b) ? '—' : `${(a / b).toFixed(2)}×`;
const row = (cells: string[]) => `| ${cells.join(' | ')} |`;
const table = (head: string[], rows: string[][]) =>
  [row(head), row(head.map(() => '---')), ...rows.map(row)].join('\n');
const yesNo = (met: boolean | undefined) => (met === undefined ? '—' : met ? 'yes' : 'no');

/** The main table of one run: one row per case. */
export function caseTable(s: L7Summary): string {
  const ka = s.figures['l7-keepalive'];
  const cl = s.figures['l7-close'];
  const one = s.figures['l7-latency'];
  const directKa = ka?.direct?.requestsPerSecond;
  const best = bestPeer(s);
  return table(
    [
      'case',
      'keep-alive req/s (÷ direct)',
      'Connection: close req/s',
      'added latency 1 conn p50 / p99 µs',
      'added latency -c50 keep-alive p50 / p99 µs',
      'CPU µs/req keep-alive: all hops / middle',
      'CPU µs/req close: all hops / middle',
      'middle peak RSS MiB (keep-alive, close)',
      'machine busy',
    ],
    s.cases.map((c) => {
      const direct = c === 'direct';
      const k = ka?.[c];
      const rate = `${fmt(k?.requestsPerSecond, 0)} (${ratio(k?.requestsPerSecond, directKa)})`;
      const both = (a: number | undefined, b: number | undefined, d: number) =>
        `${fmt(a, d)} / ${fmt(b, d)}`;
      return [
        c,
        best?.name === c ? `**${rate}**` : rate,
        fmt(cl?.[c]?.requestsPerSecond, 0),
        direct
          ? `(${both((one?.[c]?.p50Ms ?? NaN) * 1000, (one?.[c]?.p99Ms ?? NaN) * 1000, 0)} total)`
          : both(s.addedP50Us['l7-latency']?.[c], s.addedP99Us['l7-latency']?.[c], 0),
        direct
          ? `(${both((k?.p50Ms ?? NaN) * 1000, (k?.p99Ms ?? NaN) * 1000, 0)} total)`
          : both(s.addedP50Us['l7-keepalive']?.[c], s.addedP99Us['l7-keepalive']?.[c], 0),
        direct ? '—' : both(k?.cpuUsPerRequest, k?.middleCpuUsPerRequest, 0),
        direct ? '—' : both(cl?.[c]?.cpuUsPerRequest, cl?.[c]?.middleCpuUsPerRequest, 0),
        direct
          ? '—'
          : fmt(Math.max(k?.middlePeakRssMiB ?? NaN, cl?.[c]?.middlePeakRssMiB ?? NaN), 1),
        `${fmt((k?.machineBusy ?? NaN) * 100, 0)} %`,
      ];
    }),
  );
}

export function roundsTable(s: L7Summary): string {
  return table(
    ['figure', ...s.cases],
    L7_FIGURES.filter((f) => f.id !== 'l7-latency').map((f) => [
      `${f.label}, req/s`,
      ...s.cases.map((c) => (s.figures[f.id]?.[c]?.rounds ?? []).map((v) => fmt(v, 0)).join(', ')),
    ]),
  );
}

export function targetsTable(rows: TargetRow[]): string {
  return table(
    ['target', 'goal', 'figure', 'met'],
    rows.map((r) => [r.target, r.goal, r.value, yesNo(r.met)]),
  );
}

export interface L7Document {
  bench: 'meshd L7 through a waypoint';
  startedAt: string;
  wallSeconds: number;
  options: { rounds: number; seconds: number; waypointLogLevel: string };
  machine: MachineFacts;
  /** Load averages (1, 5, 15 min) when the runs started and when they ended. */
  loadAverage: { start: number[]; end: number[] };
  cases: Record<string, string>;
  skipped: Record<string, string>;
  peers: Record<string, { summary: string; configs: Record<string, string> }>;
  waypoint: WaypointMemory & { env: Record<string, string> };
  errors: string[];
  runs: L7Run[];
  summary: L7Summary;
}

/** One run's part of the section. */
export function renderRun(doc: L7Document, title: string, jsonPath: string): string {
  const s = doc.summary;
  const rows = l7Targets(s, doc.runs, doc.waypoint);
  const m = doc.machine;
  const la = (v: number[]) => v.map((x) => x.toFixed(2)).join(' / ');
  return [
    `### ${title}`,
    '',
    `${doc.startedAt.slice(0, 16).replace('T', ' ')} UTC, meshd ${m.meshdCommit}, Node ${m.node}, ${m.cores} cores; ` +
      `load average (1/5/15 min) ${la(doc.loadAverage.start)} at the start, ${la(doc.loadAverage.end)} at the end; ` +
      `${doc.options.rounds} rounds of ${doc.options.seconds} s per figure and case (case order rotated each round), ` +
      `medians; ${doc.wallSeconds} s in all. Samples: [${jsonPath}](${jsonPath.replace(/^docs\//, '')}).` +
      (Object.keys(doc.skipped).length
        ? ` Skipped: ${Object.entries(doc.skipped)
            .map(([k, v]) => `${k} (${v})`)
            .join('; ')}.`
        : '') +
      (doc.errors.length ? ` Errors: ${doc.errors.length} (in the JSON).` : ''),
    '',
    caseTable(s),
    '',
    targetsTable(rows),
    '',
    'Keep-alive and Connection: close requests/s of every round, in order:',
    '',
    roundsTable(s),
    '',
  ].join('\n');
}

export const L7_SECTION_START = '<!-- bench:l7:start -->';
export const L7_SECTION_END = '<!-- bench:l7:end -->';

/** Puts `section` between the L7 markers of `file` (appended when they are not there yet). */
export function writeL7Section(file: string, section: string): void {
  const text = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmarks\n';
  const block = `${L7_SECTION_START}\n${section.trimEnd()}\n${L7_SECTION_END}`;
  const start = text.indexOf(L7_SECTION_START);
  const end = text.indexOf(L7_SECTION_END);
  const next =
    start >= 0 && end > start
      ? `${text.slice(0, start)}${block}${text.slice(end + L7_SECTION_END.length)}`
      : `${text.trimEnd()}\n\n${block}\n`;
  writeFileSync(file, next);
}
