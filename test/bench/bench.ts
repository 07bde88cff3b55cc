/**
 * Data-path benchmark (not part of npm test): meshd against no mesh (`direct`) and against the
 * mTLS tunnels an operator would otherwise deploy (stunnel4, haproxy, nginx stream), in one
 * meshed lab, interleaved and repeated. Then the agent's idle memory with 20 enrolled workloads
 * in a second, one-node lab. Writes every sample as JSON, prints a markdown table of medians and
 * (unless --quick or --no-docs) rewrites its section of docs/benchmarks.md.
 *
 * Usage: npm run bench [-- --rounds N] [--quick] [--no-docs] [--docs] [--cases a,b] [--skip-idle]
 *        node dist/test/bench/bench.js --report FILE.json [--docs]   (the table again from a JSON)
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { type Lab, withLab } from '../../ctl/lab/index.js';
import { MeshdError } from '../../daemon/errors.js';
import { packageRoot } from '../../daemon/paths.js';
import { prepareLab, type RunningLab, SYSCTLS, stopAll } from './bench-lab.js';
import { type BenchCase, benchCases, CLIENT_NODE, isAgent, SERVER_NODE } from './cases.js';
import { FIGURES, type FigureId, type RunRecord } from './figures.js';
import { idleAgentMemory } from './idle.js';
import { machineFacts } from './machine.js';
import { makeCerts, PEERS, SERVICES } from './peers.js';
import { machineBusyShare, machineCpu, netnsPids, rssMiB, startSampling } from './proc-stats.js';
import {
  type BenchDocument,
  figureLabel,
  type IdleMemory,
  renderDocument,
  summarize,
  writeSection,
} from './report.js';
import { proveTls, type TlsProof } from './tls-proof.js';
import { iperf3, pingpong, wrk } from './tools.js';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string' },
    quick: { type: 'boolean', default: false },
    docs: { type: 'boolean' },
    'no-docs': { type: 'boolean', default: false },
    cases: { type: 'string' },
    'skip-idle': { type: 'boolean', default: false },
    report: { type: 'string' },
  },
});

const quick = args.quick ?? false;
const options = {
  quick,
  rounds: Number(args.rounds ?? (quick ? 1 : 3)),
  seconds: quick ? 2 : 5,
  rttSeconds: quick ? 1 : 3,
  maxRoundTrips: 100_000,
  /** Runs that would start after this are skipped (and recorded as skipped). */
  budgetSeconds: quick ? 300 : 13 * 60,
};
if (!Number.isInteger(options.rounds) || options.rounds < 1 || options.rounds > 10)
  throw new MeshdError('MESHD_E_BAD_REQUEST', `--rounds must be 1 to 10, got ${args.rounds}`);
// A --report re-render writes the docs only when asked (--docs).
const writeDocs = args['no-docs'] ? false : (args.docs ?? (!quick && !args.report));
const DOCS_JSON = join(packageRoot(), 'docs', 'bench', 'data-path.json');
const root = packageRoot();
const service = (name: string) => SERVICES.find((s) => s.name === name) ?? { name, port: 0 };
const say = (line: string) => console.error(`bench: ${line}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function checkTools(): void {
  const missing = [
    'iperf3',
    'wrk',
    'stunnel4',
    'haproxy',
    'nginx',
    'tcpdump',
    'openssl',
    'ss',
  ].filter((tool) => {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
      return false;
    } catch {
      return true;
    }
  });
  if (!existsSync('/usr/lib/nginx/modules/ngx_stream_module.so'))
    missing.push('libnginx-mod-stream');
  if (missing.length)
    throw new MeshdError('MESHD_E_LAB', `the bench needs ${missing.join(', ')}`, {
      hint: 'run "sh scripts/bench-setup.sh" (as root) first, or use "npm run bench"',
    });
}

async function measure(lab: Lab, c: BenchCase, figure: FigureId, round: number) {
  const record: RunRecord = {
    round,
    case: c.name,
    figure,
    startedAt: new Date().toISOString(),
    seconds: 0,
    values: {},
  };
  const processes = await c.processes();
  const sampling = Object.keys(processes).length ? startSampling(processes) : undefined;
  const cpuAtStart = machineCpu();
  const t0 = Date.now();
  // GB for throughput, millions of round trips or requests otherwise (→ CPU µs per one).
  let work = 0;
  try {
    switch (figure) {
      case 'throughput-1':
      case 'throughput-4': {
        const r = await iperf3(
          lab,
          c.target(service('iperf3')),
          figure === 'throughput-1' ? 1 : 4,
          options.seconds,
        );
        record.values = { gbps: r.gbps, retransmits: r.retransmits };
        work = r.totalBytes / 1e9;
        record.raw = r;
        break;
      }
      case 'rtt-1B':
      case 'rtt-1KiB': {
        const size = figure === 'rtt-1B' ? 1 : 1024;
        const r = await pingpong(
          lab,
          c.target(service('pingpong')),
          size,
          options.rttSeconds,
          options.maxRoundTrips,
        );
        record.values = { p50: r.p50, p99: r.p99, p999: r.p999, mean: r.mean, count: r.count };
        work = (r.count + r.warmup) / 1e6;
        record.raw = r;
        break;
      }
      case 'http-keepalive':
      case 'http-close': {
        const r = await wrk(
          lab,
          c.target(service('http')),
          options.seconds,
          figure === 'http-close',
        );
        record.values = {
          requestsPerSecond: r.requestsPerSecond,
          requests: r.requests,
          p50Ms: r.p50Ms,
          p99Ms: r.p99Ms,
          socketErrors: Object.values(r.socketErrors).reduce((a, b) => a + b, 0),
          non2xx: r.non2xx,
        };
        work = r.requests / 1e6;
        record.raw = r;
        break;
      }
    }
  } catch (err) {
    record.error = (err as Error).message.slice(0, 1000);
  }
  record.seconds = Math.round((Date.now() - t0) / 100) / 10;
  record.machineBusy = machineBusyShare(cpuAtStart);
  if (sampling) {
    record.usage = sampling.stop();
    if (work > 0 && !record.error)
      record.values.cpuPerUnit = Math.round((record.usage.cpuSeconds / work) * 100) / 100;
  }
  return record;
}

const describe = (r: RunRecord) => {
  if (r.error) return `ERROR ${r.error.split('\n')[0]}`;
  const v = r.values;
  const main =
    v.gbps !== undefined
      ? `${v.gbps} Gb/s`
      : v.p50 !== undefined
        ? `p50/p99/p99.9 ${v.p50}/${v.p99}/${v.p999} µs`
        : `${v.requestsPerSecond} req/s, p99 ${v.p99Ms} ms${v.socketErrors ? `, ${v.socketErrors} socket errors` : ''}`;
  const usage = r.usage
    ? ` (proxies ${r.usage.cpuSeconds} CPU s, peak ${r.usage.peakRssMiB} MiB)`
    : '';
  return main + usage;
};

async function agentRss(lab: Lab): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const node of [CLIENT_NODE, SERVER_NODE]) {
    const pid = (await netnsPids(lab.member(node).netns)).find(isAgent);
    if (pid) out[node] = Math.round(rssMiB(pid) * 10) / 10;
  }
  return out;
}

async function main(): Promise<void> {
  checkTools();
  const started = Date.now();
  const startedAt = new Date(started).toISOString();
  const machine = machineFacts();
  const dir = mkdtempSync('/tmp/meshd-bench-');
  // The lab tears itself down on SIGINT/SIGTERM and exits; the certificates go with it.
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  const runs: RunRecord[] = [];
  const proofs: TlsProof[] = [];
  const errors: string[] = [];
  const skipped: string[] = [];
  let caseNames: string[] = [];
  let running: RunningLab | undefined;
  let agentIdleInBenchLab: Record<string, number> = {};
  let agentAfterRuns: Record<string, number> = {};
  let caseDescriptions: Record<string, string> = {};
  try {
    const certs = await makeCerts(dir);
    say(`lab: 2 nodes, 2 workloads each, mesh (${dir})`);
    await withLab(
      { nodes: 2, workloads: 2, mesh: true, progress: (m) => say(`lab: ${m}`) },
      async (lab) => {
        running = await prepareLab(lab, dir, certs);
        try {
          const wanted = args.cases?.split(',');
          const all = benchCases(lab);
          const unknown = wanted?.filter((w) => !all.some((c) => c.name === w)) ?? [];
          if (unknown.length)
            throw new MeshdError('MESHD_E_BAD_REQUEST', `unknown case ${unknown.join(', ')}`, {
              hint: `cases: ${all.map((c) => c.name).join(', ')}`,
            });
          const cases = all.filter((c) => !wanted || wanted.includes(c.name));
          caseNames = cases.map((c) => c.name);
          caseDescriptions = Object.fromEntries(cases.map((c) => [c.name, c.description]));
          await sleep(2000);
          agentIdleInBenchLab = await agentRss(lab);
          say(
            `agent RSS idle (1 enrolled + 1 released workload per node): ${JSON.stringify(agentIdleInBenchLab)} MiB`,
          );
          for (const c of cases) {
            try {
              const proof = await proveTls(lab, c, dir, certs);
              proofs.push(proof);
              say(
                `underlay for ${c.name}: ${proof.seen}${proof.tls13 ? ' (TLS 1.3)' : ''}, marker in clear: ${proof.markerInClear}${proof.withoutClientCertificate ? `, without a client certificate: ${proof.withoutClientCertificate}` : ''} → ${proof.ok ? 'ok' : 'NOT AS EXPECTED'}`,
              );
              if (!proof.ok)
                errors.push(
                  `underlay proof for ${c.name} not as expected (see tlsProofs in the JSON)`,
                );
            } catch (err) {
              errors.push(`underlay proof for ${c.name}: ${(err as Error).message}`);
              say(errors.at(-1) ?? '');
            }
          }
          for (let round = 1; round <= options.rounds; round++) {
            const shift = (round - 1) % cases.length;
            const order = [...cases.slice(shift), ...cases.slice(0, shift)];
            for (const figure of FIGURES) {
              for (const c of order) {
                if ((Date.now() - started) / 1000 > options.budgetSeconds) {
                  skipped.push(`round ${round} ${figure.id} ${c.name}`);
                  continue;
                }
                const record = await measure(lab, c, figure.id, round);
                runs.push(record);
                say(
                  `round ${round}/${options.rounds} ${figureLabel(figure.id)} ${c.name}: ${describe(record)}`,
                );
                if (record.error)
                  errors.push(
                    `round ${round} ${figure.id} ${c.name}: ${record.error.split('\n')[0]}`,
                  );
                await sleep(500);
              }
            }
          }
          agentAfterRuns = await agentRss(lab);
        } finally {
          if (running) stopAll(running);
        }
      },
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  if (skipped.length)
    errors.push(`time budget (${options.budgetSeconds} s) reached; skipped: ${skipped.join('; ')}`);

  let idle: IdleMemory | undefined;
  if (!args['skip-idle']) {
    say('idle: a one-node lab with 20 enrolled workloads');
    idle = await idleAgentMemory(20, (m) => say(`idle lab: ${m}`)).catch((err) => ({
      workloads: 20,
      captured: 0,
      rssSamplesMiB: [],
      medianRssMiB: Number.NaN,
      maxRssMiB: Number.NaN,
      error: (err as Error).message,
    }));
    if (idle.error) errors.push(`idle phase: ${idle.error}`);
    say(`idle: agent RSS ${idle.medianRssMiB} MiB with ${idle.captured} captured workloads`);
  }

  const wallSeconds = (Date.now() - started) / 1000;
  const peers = PEERS.map((p) => p.name).filter((p) => caseNames.includes(p));
  const summary = summarize(runs, caseNames, peers);
  const stamp = startedAt.replace(/[:.]/g, '-');
  const resultsDir = join(root, 'test', 'bench', 'results');
  mkdirSync(resultsDir, { recursive: true });
  const resultFile = join(resultsDir, `${stamp}.json`);
  const document: BenchDocument = {
    bench: 'meshd data path',
    startedAt,
    wallSeconds: Math.round(wallSeconds),
    options,
    machine,
    sysctls: SYSCTLS,
    cases: caseDescriptions,
    peers: Object.fromEntries(
      PEERS.filter((p) => caseNames.includes(p.name)).map((p) => [
        p.name,
        { summary: p.summary, config: running?.peerConfigs[p.name] },
      ]),
    ),
    originNginxConfig: running?.originConfig,
    tlsProofs: proofs,
    agentRssMiB: { idleInBenchLab: agentIdleInBenchLab, afterRuns: agentAfterRuns },
    idleWith20Workloads: idle,
    errors,
    runs,
    summary,
  };
  // Pairs such as histogram bins on one line each, as biome lays them out.
  const json = `${JSON.stringify(document, null, 2).replace(/\[\n\s+(-?[\d.e+-]+),\n\s+(-?[\d.e+-]+)\n\s+\]/g, '[$1, $2]')}\n`;
  writeFileSync(resultFile, json);
  formatJson(resultFile);
  say(`samples: ${relative(process.cwd(), resultFile)}`);
  if (writeDocs) {
    mkdirSync(dirname(DOCS_JSON), { recursive: true });
    writeFileSync(DOCS_JSON, json);
    formatJson(DOCS_JSON);
  }
  publish(renderDocument(document, relative(root, writeDocs ? DOCS_JSON : resultFile)));
  if (proofs.some((p) => !p.ok) || proofs.length < caseNames.length) {
    say('a case did not show on the underlay what it should: its figures compare nothing');
    process.exitCode = 1;
  }
}

/** Prints the section and, when asked, puts it into docs/benchmarks.md. */
function publish(markdown: string): void {
  console.log(markdown);
  if (writeDocs) {
    writeSection(join(root, 'docs', 'benchmarks.md'), markdown);
    say('wrote its section of docs/benchmarks.md');
  }
}

/** --report FILE: the markdown again from a bench's JSON, without running anything. */
function reportFrom(file: string): void {
  const doc = JSON.parse(readFileSync(file, 'utf8')) as BenchDocument;
  publish(renderDocument(doc, relative(root, resolve(file))));
}

/** `biome ci .` checks JSON files in the tree; let biome lay them out when it is installed. */
function formatJson(file: string): void {
  const biome = join(root, 'node_modules', '.bin', 'biome');
  if (!existsSync(biome)) return;
  try {
    execFileSync(biome, ['format', '--write', file], { stdio: 'ignore', cwd: root });
  } catch {
    say(`biome could not format ${file}`);
  }
}

(args.report ? Promise.resolve().then(() => reportFrom(args.report ?? '')) : main()).catch(
  (err) => {
    console.error(`bench: ${(err as Error).stack ?? err}`);
    process.exit(1);
  },
);
