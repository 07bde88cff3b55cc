/**
 * Medians of the runs, ratios to `direct` and to the best peer, and the markdown section of
 * docs/benchmarks.md that shows them. Everything here is computed from the JSON's runs.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { COSTS, FIGURES, type FigureId, METRICS, type Metric, type RunRecord } from './figures.js';
import type { MachineFacts } from './machine.js';
import { median } from './stats.js';
import type { TlsProof } from './tls-proof.js';

export interface MetricSummary {
  median: number;
  samples: { round: number; value: number }[];
}

export interface UsageSummary {
  cpuSeconds: number;
  peakRssMiB: number;
}

export interface IdleMemory {
  workloads: number;
  captured: number;
  rssSamplesMiB: number[];
  medianRssMiB: number;
  maxRssMiB: number;
  error?: string;
}

export interface Summary {
  cases: string[];
  peers: string[];
  metrics: Record<string, Record<string, MetricSummary>>;
  /** Per metric, the peer with the best median. */
  bestPeer: Record<string, string | undefined>;
  /** Median p50 minus direct's median p50, µs. */
  addedP50: Record<'1B' | '1KiB', Record<string, number>>;
  usage: Record<string, Record<string, UsageSummary>>;
  /** Median over the rounds of each run's CPU per unit of work (see COSTS). */
  costs: Record<string, Record<string, number>>;
  /** Per figure and case: median share (0..1) of the machine's CPU busy during the run. */
  machineBusy: Record<string, Record<string, number>>;
  /** Per figure and proxied case: median share of one core used by the busiest proxy thread. */
  busiestThread: Record<string, Record<string, number>>;
}

/**
 * Per figure and case, the median of one value over the rounds' runs without errors; a case
 * without any finite value is left out.
 */
function medianPerCase(
  runs: RunRecord[],
  cases: string[],
  value: (r: RunRecord) => number | undefined,
): Record<string, Record<string, number>> {
  const result: Record<string, Record<string, number>> = {};
  for (const figure of FIGURES) {
    const byCase: Record<string, number> = {};
    for (const name of cases) {
      const values = runs
        .filter((r) => r.case === name && r.figure === figure.id && !r.error)
        .map((r) => value(r) ?? Number.NaN);
      if (values.some(Number.isFinite)) byCase[name] = median(values);
    }
    result[figure.id] = byCase;
  }
  return result;
}

export function summarize(runs: RunRecord[], cases: string[], peers: string[]): Summary {
  const metrics: Summary['metrics'] = {};
  const bestPeer: Summary['bestPeer'] = {};
  for (const metric of METRICS) {
    const byCase: Record<string, MetricSummary> = {};
    for (const name of cases) {
      const samples = runs
        .filter((r) => r.case === name && r.figure === metric.figure && !r.error)
        .map((r) => ({ round: r.round, value: r.values[metric.key] ?? Number.NaN }));
      byCase[name] = { median: median(samples.map((s) => s.value)), samples };
    }
    metrics[metric.id] = byCase;
    const ranked = peers
      .filter((p) => Number.isFinite(byCase[p]?.median))
      .sort((a, b) => {
        const d = (byCase[a]?.median ?? 0) - (byCase[b]?.median ?? 0);
        return metric.better === 'higher' ? -d : d;
      });
    bestPeer[metric.id] = ranked[0];
  }
  const added = (id: string) => {
    const direct = metrics[id]?.direct?.median ?? Number.NaN;
    return Object.fromEntries(cases.map((c) => [c, (metrics[id]?.[c]?.median ?? NaN) - direct]));
  };
  const usage: Summary['usage'] = {};
  for (const figure of FIGURES) {
    usage[figure.id] = {};
    for (const name of cases) {
      const used = runs.filter((r) => r.case === name && r.figure === figure.id && r.usage);
      if (used.length === 0) continue;
      (usage[figure.id] as Record<string, UsageSummary>)[name] = {
        cpuSeconds: median(used.map((r) => r.usage?.cpuSeconds ?? NaN)),
        peakRssMiB: median(used.map((r) => r.usage?.peakRssMiB ?? NaN)),
      };
    }
  }
  const perCase = (value: (r: RunRecord) => number | undefined) =>
    medianPerCase(runs, cases, value);
  const costs = perCase((r) => r.values.cpuPerUnit);
  const machineBusy = perCase((r) => r.machineBusy);
  const busiestThread = perCase((r) => r.usage?.busiestThreadShare);
  return {
    cases,
    peers,
    metrics,
    costs,
    machineBusy,
    busiestThread,
    bestPeer,
    addedP50: { '1B': added('rtt1-p50'), '1KiB': added('rtt1k-p50') },
    usage,
  };
}

const fmt = (value: number | undefined, digits: number) =>
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

function mediansTable(s: Summary): string {
  return table(
    ['metric', 'better', ...s.cases],
    METRICS.map((m: Metric) => [
      m.label,
      m.better,
      ...s.cases.map((c) => {
        const value = fmt(s.metrics[m.id]?.[c]?.median, m.digits);
        return s.bestPeer[m.id] === c ? `**${value}**` : value;
      }),
    ]),
  );
}

function ratiosTable(s: Summary): string {
  const others = s.cases.filter((c) => c !== 'direct');
  return table(
    ['metric', 'best peer', ...others.map((c) => `${c} ÷ direct / ÷ best peer`)],
    METRICS.map((m) => {
      const direct = s.metrics[m.id]?.direct?.median;
      const best = s.bestPeer[m.id];
      const bestValue = best ? s.metrics[m.id]?.[best]?.median : undefined;
      return [
        m.label,
        best ?? '—',
        ...others.map((c) => {
          const v = s.metrics[m.id]?.[c]?.median;
          return `${ratio(v, direct)} / ${ratio(v, bestValue)}`;
        }),
      ];
    }),
  );
}

function usageTable(s: Summary): string {
  const proxied = s.cases.filter((c) => c !== 'direct');
  return table(
    ['run', ...proxied.map((c) => `${c} CPU s / peak MiB`)],
    FIGURES.map((f) => [
      f.label,
      ...proxied.map((c) => {
        const u = s.usage[f.id]?.[c];
        return u ? `${fmt(u.cpuSeconds, 2)} / ${fmt(u.peakRssMiB, 0)}` : '—';
      }),
    ]),
  );
}

function costTable(s: Summary): string {
  const proxied = s.cases.filter((c) => c !== 'direct');
  return table(
    ['run', 'unit', ...proxied],
    COSTS.map((c) => [
      FIGURES.find((f) => f.id === c.figure)?.label ?? c.figure,
      c.unit,
      ...proxied.map((name) => fmt(s.costs[c.figure]?.[name], c.digits)),
    ]),
  );
}

function busyTable(s: Summary): string {
  const percent = (share: number | undefined) =>
    share === undefined ? '—' : `${fmt(share * 100, 0)} %`;
  return table(
    ['run', ...s.cases.map((c) => (c === 'direct' ? 'direct: machine' : `${c}: machine / thread`))],
    FIGURES.map((f) => [
      f.label,
      ...s.cases.map((c) => {
        const machine = percent(s.machineBusy[f.id]?.[c]);
        return c === 'direct' ? machine : `${machine} / ${percent(s.busiestThread[f.id]?.[c])}`;
      }),
    ]),
  );
}

function driftTable(s: Summary): string {
  return table(
    ['metric', ...s.cases],
    METRICS.map((m) => [
      m.label,
      ...s.cases.map(
        (c) => s.metrics[m.id]?.[c]?.samples.map((x) => fmt(x.value, m.digits)).join(', ') || '—',
      ),
    ]),
  );
}

/** The agents' memory seen by the report: idle figures and the first 4-stream run. */
export interface AgentMemory {
  idle: IdleMemory | undefined;
  /** Peak of the larger agent in round 1's 4-stream run (only a 1-stream run before it). */
  firstFourStreamPeakMiB: number | undefined;
  idleInBenchLabMiB: Record<string, number>;
  afterRunsMiB: Record<string, number>;
}

/** A metric's value per round for one case (NaN for a round without one). */
function byRound(s: Summary, id: string, name: string, rounds: number[]): number[] {
  const samples = s.metrics[id]?.[name]?.samples ?? [];
  return rounds.map((r) => samples.find((x) => x.round === r)?.value ?? Number.NaN);
}

/**
 * Per round, meshd against the best peer of that same round: the figures of one round ran
 * back to back, so these ratios move less with the machine's load than ratios of medians.
 * `cost` turns a value into what is compared (for added latency: minus direct's).
 */
function perRoundRatios(
  s: Summary,
  id: string,
  better: 'higher' | 'lower',
  cost: (value: number, round: number) => number = (v) => v,
): string {
  const rounds = [
    ...new Set(Object.values(s.metrics[id] ?? {}).flatMap((m) => m.samples.map((x) => x.round))),
  ].sort((a, b) => a - b);
  const meshd = byRound(s, id, 'meshd', rounds);
  const peers = s.peers.map((p) => byRound(s, id, p, rounds));
  const ratios = rounds.map((round, i) => {
    const values = peers.map((v) => cost(v[i] ?? Number.NaN, round)).filter(Number.isFinite);
    if (values.length === 0) return '—';
    const best = better === 'higher' ? Math.max(...values) : Math.min(...values);
    return ratio(cost(meshd[i] ?? Number.NaN, round), best);
  });
  return ratios.length > 0 ? ratios.join(', ') : '—';
}

/** "yes" or "no" by the issue's rule (medians), "—" when a figure is missing. */
function met(value: number | undefined, bound: number, rule: 'atLeast' | 'atMost'): string {
  if (value === undefined || !Number.isFinite(value)) return '—';
  return (rule === 'atLeast' ? value >= bound : value <= bound) ? 'yes' : 'no';
}

export function targetsTable(s: Summary, memory: AgentMemory): string {
  const { idle } = memory;
  const best = (id: string) => s.bestPeer[id];
  const value = (id: string, c: string | undefined) => (c ? s.metrics[id]?.[c]?.median : undefined);
  const versus = (id: string, label: string, digits: number, atLeast: number) => {
    const peer = best(id);
    const mine = value(id, 'meshd');
    const theirs = value(id, peer);
    return [
      label,
      `≥ ${atLeast}× the best peer`,
      fmt(mine, digits),
      peer ? `${fmt(theirs, digits)} (${peer})` : '—',
      ratio(mine, theirs),
      met(mine !== undefined && theirs ? mine / theirs : undefined, atLeast, 'atLeast'),
      perRoundRatios(s, id, 'higher'),
    ];
  };
  const directP50 = (round: number) =>
    s.metrics['rtt1-p50']?.direct?.samples.find((x) => x.round === round)?.value ?? Number.NaN;
  const addedPeers = s.peers.filter((p) => Number.isFinite(s.addedP50['1B'][p]));
  const bestAdded = addedPeers.sort(
    (a, b) => (s.addedP50['1B'][a] ?? 0) - (s.addedP50['1B'][b] ?? 0),
  )[0];
  const addedMine = s.addedP50['1B'].meshd;
  const addedBest = bestAdded ? s.addedP50['1B'][bestAdded] : undefined;
  const fourStream = s.usage['throughput-4']?.meshd?.peakRssMiB;
  const fourStreamWorst =
    memory.firstFourStreamPeakMiB !== undefined && fourStream !== undefined
      ? Math.max(memory.firstFourStreamPeakMiB, fourStream)
      : undefined;
  return table(
    [
      'target',
      'goal',
      'meshd',
      'best peer',
      'meshd ÷ best peer',
      'met',
      "per round: ÷ that round's best peer",
    ],
    [
      versus('keepalive-rps', 'HTTP keep-alive requests/s', 0, 1.1),
      versus('close-cps', 'new connections/s', 0, 2),
      versus('gbps-1', '1-stream throughput, Gb/s', 2, 1),
      [
        'p50 added latency, 1 B round trip, µs',
        '≤ the best peer',
        fmt(addedMine, 0),
        bestAdded ? `${fmt(addedBest, 0)} (${bestAdded})` : '—',
        ratio(addedMine, addedBest),
        met(addedMine !== undefined && addedBest ? addedMine / addedBest : undefined, 1, 'atMost'),
        perRoundRatios(s, 'rtt1-p50', 'lower', (v, round) => v - directP50(round)),
      ],
      [
        `agent RSS idle, ${idle?.workloads ?? 20} enrolled workloads, MiB`,
        '≤ 80 MiB',
        idle?.error ? `error: ${idle.error}` : fmt(idle?.medianRssMiB, 0),
        '—',
        '—',
        met(idle?.error ? undefined : idle?.medianRssMiB, 80, 'atMost'),
        '—',
      ],
      [
        'agent peak RSS during the 4-stream run, MiB: round 1 / median of rounds',
        '≤ 128 MiB',
        `${fmt(memory.firstFourStreamPeakMiB, 0)} / ${fmt(fourStream, 0)}`,
        '—',
        '—',
        met(fourStreamWorst, 128, 'atMost'),
        '—',
      ],
    ],
  );
}

function proofTable(proofs: TlsProof[]): string {
  return table(
    [
      'case',
      'expected',
      'seen on the underlay',
      'TLS 1.3',
      'marker in clear',
      'no client cert',
      'ok',
    ],
    proofs.map((p) => [
      p.case,
      p.expected,
      `${p.seen} (${p.flows.length} flow${p.flows.length === 1 ? '' : 's'}${p.flows.some((f) => f.tls) ? `: ${summarizeRecords(p)}` : ''})`,
      p.tls13 ? 'yes' : 'no',
      p.markerInClear ? 'yes' : 'no',
      p.withoutClientCertificate ?? '—',
      p.ok ? 'yes' : '**NO**',
    ]),
  );
}

function summarizeRecords(p: TlsProof): string {
  const totals: Record<string, number> = {};
  for (const f of p.flows)
    for (const [k, v] of Object.entries(f.records)) totals[k] = (totals[k] ?? 0) + v;
  return `${totals.handshake ?? 0} handshake, ${totals.application_data ?? 0} application-data records`;
}

const agentRss = (byNode: Record<string, number>) => {
  const parts = Object.entries(byNode).map(([node, mib]) => `${node} ${fmt(mib, 0)}`);
  return parts.length ? `${parts.join(', ')} MiB` : '—';
};

export interface ReportInput {
  summary: Summary;
  machine: MachineFacts;
  options: { rounds: number; seconds: number; rttSeconds: number; quick: boolean };
  proofs: TlsProof[];
  memory: AgentMemory;
  peerSummaries: Record<string, string>;
  sysctls: Record<string, string | number>;
  jsonPath: string;
  startedAt: string;
  wallSeconds: number;
  errors: string[];
}

export function markdownReport(r: ReportInput): string {
  const m = r.machine;
  const lines = [
    '## Data-path benchmark (`npm run bench`)',
    '',
    'One meshed lab of two nodes; the client workload is on node 1, the server workload on',
    'node 2, and every byte crosses the underlay bridge. Cases: `direct` (a workload pair outside',
    'the mesh, no proxy: the ceiling), `meshd` (an enrolled pair: captured by the node agents,',
    'HBONE across the underlay), and the peers an operator would pick for an mTLS tunnel between',
    'hosts, each with a client side on node 1 and a server side on node 2 (TLS 1.3 only,',
    'certificates verified on both ends, ECDSA P-256 like meshd). The two cores are shared by the',
    'load generator, the server, and both proxies.',
    '',
    '`npm run bench` installs the peers and load generators (scripts/bench-setup.sh), runs for',
    'about 10 minutes and rewrites this section; `npm run bench -- --quick` is a 2–3 minute smoke',
    'run (one round, shorter runs) that leaves this file alone. Options: `--rounds N`,',
    '`--cases direct,meshd,…`, `--skip-idle`, `--docs`/`--no-docs`; `node dist/test/bench/bench.js',
    '--report FILE.json [--docs]` computes these tables again from a saved run.',
    '',
    `Run on ${r.startedAt.slice(0, 10)}: meshd ${m.meshdCommit}, Node ${m.node} (OpenSSL`,
    `${m.openssl}), ${m.cpuModel}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.os}, kernel`,
    `${m.kernel.split(' ')[0]}. ${r.options.rounds} round${r.options.rounds === 1 ? '' : 's'}; each round runs every figure for`,
    'every case in turn (case order rotated each round); the tables show medians over the rounds.',
    `${r.options.quick ? '**Quick run (shorter durations).** ' : ''}The bench took ${Math.round(r.wallSeconds)} s. Every figure comes from the`,
    `samples in [${r.jsonPath}](${r.jsonPath.replace(/^docs\//, '')}). Bold: the best peer.`,
    '',
    mediansTable(r.summary),
    '',
    'Ratios: case ÷ `direct`, and case ÷ the best peer (for throughput and requests/s, above 1',
    'is better; for latency, below 1 is better).',
    '',
    ratiosTable(r.summary),
    '',
    '### Targets',
    '',
    targetsTable(r.summary, r.memory),
    '',
    '### Proxy CPU and memory',
    '',
    'CPU seconds used by the proxies of both nodes during the run, and the peak resident memory',
    '(VmRSS sampled every 100 ms; nginx: master and workers summed) of the larger node. meshd:',
    'the two agents. Medians over the rounds. The agents keep what they grew to: RSS idle before',
    `the runs ${agentRss(r.memory.idleInBenchLabMiB)}, after all runs ${agentRss(r.memory.afterRunsMiB)} (each`,
    "run's starting RSS is in the JSON).",
    ...(r.memory.idle
      ? [
          `Agent RSS idle with ${r.memory.idle.workloads} enrolled workloads on one node (a second lab): ${fmt(r.memory.idle.medianRssMiB, 1)} MiB`,
          `(median of ${r.memory.idle.rssSamplesMiB.length} samples, max ${fmt(r.memory.idle.maxRssMiB, 1)}).`,
        ]
      : []),
    '',
    usageTable(r.summary),
    '',
    'The same CPU per unit of work (both nodes; GB counted over the whole iperf3 run, warm-up',
    'round trips included), which contention for the two cores distorts less than the rates.',
    '',
    costTable(r.summary),
    '',
    'How busy the whole machine (both cores: load generator, server, proxies, kernel) was during',
    "each run (/proc/stat), and the busiest single thread of the case's proxies (% of one core);",
    "medians. A machine near 100 % means the rates measure CPU cost per request (a proxy's extra",
    'threads could only take cores from the load generator and the server); a busiest thread near',
    '100 % means that thread is the bottleneck and more threads would help.',
    '',
    busyTable(r.summary),
    '',
    '### Every round',
    '',
    'Rounds in order, to show drift and noise.',
    '',
    driftTable(r.summary),
    '',
    '### What the underlay carries',
    '',
    'A tcpdump on the underlay bridge during one HTTP GET per case whose answer holds a marker;',
    'each TCP flow is parsed as TLS records from its first byte. For the peers, `openssl',
    's_client` without a client certificate against the server side shows that it is refused.',
    '',
    proofTable(r.proofs),
    '',
    '### Settings',
    '',
    `- iperf3 ${r.options.seconds} s after 1 s omitted (\`-O 1\`), 1 and 4 streams (\`-P\`);`,
    `  receiver-side rate.`,
    `- Round trips: test/bench/pingpong.ts (Node, one TCP connection, TCP_NODELAY, exact 1 B`,
    `  and 1024 B messages; Debian's sockperf cannot send under 14 B), ${r.options.rttSeconds} s`,
    '  per run after 200 warm-up round trips; 1 µs histogram bins in the JSON.',
    `- wrk -t2 -c50 -d${r.options.seconds}s --latency against nginx (1 worker, 128-byte static`,
    '  file, keepalive_requests 1000000) in the server workload; new connections with',
    "  `-H 'Connection: close'` (one request per connection).",
    `- Namespaces: ${Object.entries(r.sysctls)
      .map(([k, v]) => `\`${k}=${v}\``)
      .join(', ')} (many short connections).`,
    ...Object.entries(r.peerSummaries).map(([name, text]) => `- ${name}: ${text}.`),
    '- Full configuration text of each peer, versions of every package: in the JSON.',
    ...(r.errors.length ? ['', '### Errors', '', ...r.errors.map((e) => `- ${e}`)] : []),
    '',
  ];
  return lines.join('\n');
}

export const SECTION_START = '<!-- bench:data-path:start -->';
export const SECTION_END = '<!-- bench:data-path:end -->';

/** Replaces the bench's own section of the file (appended the first time), nothing else. */
export function writeSection(file: string, section: string): void {
  const text = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmarks\n';
  const block = `${SECTION_START}\n${section.trimEnd()}\n${SECTION_END}`;
  const start = text.indexOf(SECTION_START);
  const end = text.indexOf(SECTION_END);
  const next =
    start >= 0 && end > start
      ? `${text.slice(0, start)}${block}${text.slice(end + SECTION_END.length)}`
      : `${text.trimEnd()}\n\n${block}\n`;
  writeFileSync(file, next);
}

export const figureLabel = (id: FigureId) => FIGURES.find((f) => f.id === id)?.label ?? id;

/** The bench's JSON: everything the report is computed from. */
export interface BenchDocument {
  bench: string;
  startedAt: string;
  wallSeconds: number;
  options: ReportInput['options'];
  machine: MachineFacts;
  sysctls: Record<string, string | number>;
  cases: Record<string, string>;
  peers: Record<string, { summary: string; config?: { client: string; server: string } }>;
  originNginxConfig?: string;
  tlsProofs: TlsProof[];
  agentRssMiB: { idleInBenchLab: Record<string, number>; afterRuns: Record<string, number> };
  idleWith20Workloads?: IdleMemory;
  errors: string[];
  runs: RunRecord[];
  summary: Summary;
}

/** The markdown section, computed again from the document's runs (not from its summary). */
export function renderDocument(doc: BenchDocument, jsonPath: string): string {
  const caseNames = Object.keys(doc.cases);
  const peers = Object.keys(doc.peers).filter((p) => caseNames.includes(p));
  return markdownReport({
    summary: summarize(doc.runs, caseNames, peers),
    machine: doc.machine,
    options: doc.options,
    proofs: doc.tlsProofs,
    memory: {
      idle: doc.idleWith20Workloads,
      firstFourStreamPeakMiB: doc.runs.find(
        (r) => r.round === 1 && r.case === 'meshd' && r.figure === 'throughput-4',
      )?.usage?.peakRssMiB,
      idleInBenchLabMiB: doc.agentRssMiB.idleInBenchLab,
      afterRunsMiB: doc.agentRssMiB.afterRuns,
    },
    peerSummaries: Object.fromEntries(Object.entries(doc.peers).map(([n, p]) => [n, p.summary])),
    sysctls: doc.sysctls,
    jsonPath,
    startedAt: doc.startedAt,
    wallSeconds: doc.wallSeconds,
    errors: doc.errors,
  });
}
