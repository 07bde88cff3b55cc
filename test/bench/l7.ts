/**
 * L7 benchmark (not part of npm test): HTTP/1.1 through a meshd waypoint against the same
 * traffic through nginx, haproxy and caddy as mTLS reverse proxies, and without any proxy, in
 * one meshed lab of two nodes, interleaved and repeated. Every case runs the same three hops
 * (test/bench/l7-peers.ts): node 1's edge → the middle in the waypoint's own workload on node 1
 * → node 2's edge → nginx serving 128 bytes in a workload on node 2. meshd: client agent →
 * HBONE → waypoint → HBONE → server agent.
 *
 * Usage: npm run bench:l7 [-- --rounds N] [--seconds S] [--cases direct,meshd,...]
 *          [--figures l7-keepalive,l7-close,l7-latency]
 *          [--waypoint-log-level info|warn] [--waypoint-flags="--v8-flag ..."] [--cpu-prof] [--docs]
 *        node dist/test/bench/l7.js --report A.json[,B.json] [--docs]   (the section again)
 * --cpu-prof: the waypoint runs with --cpu-prof; its top frames are printed and the profile
 * kept in test/bench/results/. --docs writes the section of docs/benchmarks.md and copies the
 * JSON to docs/bench/.
 */
import { execFileSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { loadavg } from 'node:os';
import { basename, join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DEMO_NAMESPACE, type Lab, withLab } from '../../ctl/lab/index.js';
import { cniSocket } from '../../ctl/lab/mesh.js';
import { MeshdError } from '../../daemon/errors.js';
import { packageRoot } from '../../daemon/paths.js';
import {
  capturedWorkloads,
  fileLimit,
  INDEX_BODY,
  meshctl,
  SYSCTLS,
  stopAll,
  until,
  waitListening,
  watch,
} from './bench-lab.js';
import { isAgent } from './cases.js';
import { L7_PEERS, type L7Layout, type L7Peer } from './l7-peers.js';
import {
  L7_FIGURES,
  type L7Document,
  type L7FigureId,
  type L7Run,
  MIDDLE,
  renderRun,
  summarizeL7,
  writeL7Section,
} from './l7-report.js';
import { machineFacts, packageVersions } from './machine.js';
import { makeCerts, originNginxConfig } from './peers.js';
import {
  commandLine,
  commandName,
  machineBusyShare,
  machineCpu,
  netnsPids,
  rssMiB,
  startSampling,
} from './proc-stats.js';
import { summarizeCpuProfile } from './profile-summary.js';
import { type Target, wrk } from './tools.js';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '6' },
    cases: { type: 'string' },
    figures: { type: 'string' },
    'waypoint-log-level': { type: 'string', default: 'info' },
    'waypoint-flags': { type: 'string' },
    'cpu-prof': { type: 'boolean', default: false },
    docs: { type: 'boolean', default: false },
    report: { type: 'string' },
  },
});

const options = {
  rounds: Number(args.rounds),
  seconds: Number(args.seconds),
  waypointLogLevel: args['waypoint-log-level'] ?? 'info',
};
if (!Number.isInteger(options.rounds) || options.rounds < 1 || options.rounds > 6)
  throw new MeshdError('MESHD_E_BAD_REQUEST', `--rounds must be 1 to 6, got ${args.rounds}`);
if (!Number.isInteger(options.seconds) || options.seconds < 1 || options.seconds > 30)
  throw new MeshdError('MESHD_E_BAD_REQUEST', `--seconds must be 1 to 30, got ${args.seconds}`);
/** Runs that would start after this are skipped (and recorded as errors). */
const BUDGET_SECONDS = 25 * 60;

const root = packageRoot();
const say = (line: string) => console.error(`bench-l7: ${line}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// The lab: named workloads. The plain pair and the waypoint's workload are never captured.
const CLIENT = 'client';
const SERVER = 'server';
const PLAIN_CLIENT = 'plain-client';
const PLAIN_SERVER = 'plain-server';
const WAYPOINT = 'waypoint';
const NONE = { 'meshd.io/dataplane-mode': 'none' };
const APPS: {
  name: string;
  nodeIndex: number;
  labels: Record<string, string>;
  serviceAccount: string;
}[] = [
  { name: CLIENT, nodeIndex: 1, labels: { app: CLIENT }, serviceAccount: CLIENT },
  { name: PLAIN_CLIENT, nodeIndex: 1, labels: { app: PLAIN_CLIENT, ...NONE }, serviceAccount: 'x' },
  { name: WAYPOINT, nodeIndex: 1, labels: { ...NONE }, serviceAccount: WAYPOINT },
  { name: SERVER, nodeIndex: 2, labels: { app: SERVER }, serviceAccount: SERVER },
  { name: PLAIN_SERVER, nodeIndex: 2, labels: { app: PLAIN_SERVER, ...NONE }, serviceAccount: 'y' },
];
const VIP = '10.96.70.70';
const ORIGIN_PORT = 8080;

function have(command: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

interface Case {
  name: string;
  description: string;
  target: Target;
  /** The hops' processes by side (n1, middle, n2); none for direct. */
  processes: () => Promise<Record<string, number[]>>;
}

const isWaypoint = (pid: number) => {
  const argv = commandLine(pid);
  return argv.some((a) => a.endsWith('daemon/main.js')) && argv.includes('waypoint');
};

async function sides(lab: Lab, match: (pid: number) => boolean) {
  return {
    n1: (await netnsPids(lab.member('n1').netns)).filter(match),
    [MIDDLE]: (await netnsPids(lab.member(WAYPOINT).netns)).filter(match),
    n2: (await netnsPids(lab.member('n2').netns)).filter(match),
  };
}

async function waypointPid(lab: Lab): Promise<number | undefined> {
  return (await netnsPids(lab.member(WAYPOINT).netns)).find(isWaypoint);
}

/** Registers nothing itself: the Waypoint, and the Service bound to it by label. */
async function applyMesh(lab: Lab, dir: string): Promise<void> {
  const file = join(dir, 'l7.yaml');
  writeFileSync(
    file,
    `apiVersion: meshd.io/v1alpha1
kind: Waypoint
metadata: { name: ${WAYPOINT}, namespace: ${DEMO_NAMESPACE} }
---
apiVersion: meshd.io/v1alpha1
kind: Service
metadata: { name: l7, namespace: ${DEMO_NAMESPACE}, labels: { meshd.io/use-waypoint: ${WAYPOINT} } }
spec:
  addresses: [${VIP}]
  ports: [{ port: 80, targetPort: ${ORIGIN_PORT}, protocol: HTTP }]
  selector: { matchLabels: { app: ${SERVER} } }
`,
  );
  await meshctl(lab, 'apply', '-f', file);
}

async function get(lab: Lab, client: string, url: string): Promise<string> {
  const { stdout } = await lab.exec(client, ['curl', '-sS', '-f', '-m', '5', url], {
    timeoutMs: 10_000,
  });
  return stdout;
}

async function measure(lab: Lab, c: Case, figure: L7FigureId, round: number): Promise<L7Run> {
  const f = L7_FIGURES.find((x) => x.id === figure);
  if (!f) throw new Error(`unknown figure ${figure}`);
  const record: L7Run = {
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
  try {
    const r = await wrk(lab, c.target, options.seconds, f.closeEachConnection, {
      threads: f.threads,
      connections: f.connections,
    });
    record.values = {
      requestsPerSecond: r.requestsPerSecond,
      requests: r.requests,
      p50Ms: r.p50Ms,
      p99Ms: r.p99Ms,
      socketErrors: Object.values(r.socketErrors).reduce((a, b) => a + b, 0),
      non2xx: r.non2xx,
    };
    record.raw = r.raw;
    if (r.non2xx > 0) record.error = `${r.non2xx} answers were not 2xx/3xx`;
  } catch (err) {
    record.error = (err as Error).message.slice(0, 1000);
  }
  record.seconds = Math.round((Date.now() - t0) / 100) / 10;
  record.machineBusy = machineBusyShare(cpuAtStart);
  if (sampling) record.usage = sampling.stop();
  return record;
}

function describe(r: L7Run): string {
  if (r.error) return `ERROR ${r.error.split('\n')[0]}`;
  const v = r.values;
  const u = r.usage;
  const per = (s: number | undefined) =>
    s === undefined || !v.requests ? '—' : Math.round((s * 1e6) / v.requests);
  return `${v.requestsPerSecond} req/s, p50/p99 ${v.p50Ms}/${v.p99Ms} ms${v.socketErrors ? `, ${v.socketErrors} socket errors` : ''}${
    u
      ? ` (hops ${per(u.cpuSeconds)} CPU µs/req, middle ${per(u.sides[MIDDLE]?.cpuSeconds)}, middle peak ${u.sides[MIDDLE]?.peakRssMiB} MiB)`
      : ''
  }`;
}

async function main(): Promise<void> {
  for (const tool of ['wrk', 'nginx', 'curl', 'ss', 'openssl'])
    if (!have(tool))
      throw new MeshdError('MESHD_E_LAB', `the L7 bench needs ${tool}`, {
        hint: 'run "sh scripts/bench-setup.sh" (as root) first, or use "npm run bench:l7"',
      });
  const started = Date.now();
  const startedAt = new Date(started).toISOString();
  const machine = machineFacts();
  machine.packages = { ...machine.packages, ...packageVersions(['caddy']) };
  const loadStart = loadavg().map((l) => Math.round(l * 100) / 100);
  const dir = mkdtempSync('/tmp/meshd-bench-l7-');
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  const wanted = args.cases?.split(',');
  const skipped: Record<string, string> = {};
  const peers: L7Peer[] = [];
  for (const p of L7_PEERS) {
    if (wanted && !wanted.includes(p.name)) continue;
    if (have(p.command)) peers.push(p);
    else {
      skipped[p.name] = `${p.command} is not installed (scripts/bench-setup.sh installs it)`;
      say(`skipping ${p.name}: ${skipped[p.name]}`);
    }
  }
  const runs: L7Run[] = [];
  const errors: string[] = [];
  const peerDocs: L7Document['peers'] = {};
  const caseDescriptions: Record<string, string> = {};
  const waypointEnv: Record<string, string> = {};
  const memory = { idleMiB: Number.NaN, afterMiB: Number.NaN };
  const profDir = join(dir, 'cpu-prof');
  const children: import('node:child_process').ChildProcess[] = [];
  let caseNames: string[] = [];
  const certs = await makeCerts(dir);
  say(`lab: 2 nodes, workloads ${APPS.map((a) => a.name).join(', ')}, mesh (${dir})`);
  await withLab(
    { nodes: 2, workloads: 0, apps: APPS, mesh: true, progress: (m) => say(`lab: ${m}`) },
    async (lab) => {
      try {
        for (const [workload, node] of [
          [CLIENT, 'n1'],
          [SERVER, 'n2'],
        ] as const) {
          const captured = await capturedWorkloads(lab, node);
          if (!captured.includes(`${DEMO_NAMESPACE}/${workload}`))
            throw new MeshdError('MESHD_E_LAB', `${workload} is not captured (${captured})`);
        }
        for (const member of lab.members())
          await lab.exec(member.name, [
            'sysctl',
            '-q',
            '-w',
            ...Object.entries(SYSCTLS).map(([k, v]) => `${k}=${v}`),
          ]);
        // The origins: nginx with a 128-byte file in both server workloads.
        for (const server of [SERVER, PLAIN_SERVER]) {
          const originDir = join(dir, `origin-${server}`);
          mkdirSync(join(originDir, 'www'), { recursive: true });
          writeFileSync(join(originDir, 'www', 'index.html'), INDEX_BODY);
          writeFileSync(
            join(originDir, 'nginx.conf'),
            originNginxConfig(originDir, ORIGIN_PORT, fileLimit()),
          );
          watch(
            lab.spawn(server, [
              ...['nginx', '-p', originDir, '-e', join(originDir, 'origin.log')],
              ...['-c', join(originDir, 'nginx.conf')],
            ]),
            `origin ${server}`,
            children,
          );
          await waitListening(lab, server, [`:${ORIGIN_PORT}`]);
        }

        // The waypoint: registered through node 1's agent, in its own workload.
        await applyMesh(lab, dir);
        Object.assign(waypointEnv, {
          MESHD_WAYPOINT: `${DEMO_NAMESPACE}/${WAYPOINT}`,
          MESHD_WAYPOINT_REPLICA: WAYPOINT,
          MESHD_AGENT_SOCKET: cniSocket(lab, 'n1'),
          MESHD_STATE_DIR: join(dir, 'waypoint-state'),
          MESHD_LOG_LEVEL: options.waypointLogLevel,
        });
        const flags = [args['waypoint-flags'] ?? ''];
        if (args['cpu-prof']) {
          mkdirSync(profDir, { recursive: true });
          flags.push(`--cpu-prof --cpu-prof-dir=${profDir}`);
        }
        if (flags.join('').trim()) waypointEnv.MESHD_NODE_FLAGS = flags.join(' ').trim();
        const waypointLog: string[] = [];
        const wp = watch(
          lab.spawn(WAYPOINT, [
            'env',
            ...Object.entries(waypointEnv).map(([k, v]) => `${k}=${v}`),
            join(root, 'bin', 'meshd'),
            'waypoint',
          ]),
          'waypoint',
          children,
        );
        wp.stderr?.on('data', (c: Buffer) => {
          if (waypointLog.length < 200) waypointLog.push(c.toString());
        });
        // Its readiness endpoint, not its log: MESHD_LOG_LEVEL=warn hides the "ready" line.
        await until(
          'waypoint ready',
          () => get(lab, WAYPOINT, 'http://127.0.0.1:15021/healthz/ready'),
          () => true,
          30_000,
        ).catch((err) => {
          throw new MeshdError(
            'MESHD_E_LAB',
            `${(err as Error).message}: ${waypointLog.join('').slice(-1500)}`,
          );
        });
        await until(
          'a GET through the waypoint',
          () => get(lab, CLIENT, `http://${VIP}/`),
          (body) => body === INDEX_BODY,
          20_000,
        );
        say('waypoint ready; a GET through it answered');

        // The peers' hops.
        const n1 = lab.member('n1').ipv4;
        const n2 = lab.member('n2').ipv4;
        for (const peer of peers) {
          const peerDir = join(dir, peer.name);
          mkdirSync(peerDir, { recursive: true });
          const layout: L7Layout = {
            certs,
            clientNodeAddress: n1,
            middleAddress: lab.member(WAYPOINT).ipv4,
            serverNodeAddress: n2,
            originAddress: lab.member(PLAIN_SERVER).ipv4,
            originPort: ORIGIN_PORT,
            fileLimit: fileLimit(),
            dir: peerDir,
          };
          const configs: Record<string, string> = {};
          try {
            for (const hop of [...peer.hops(layout)].reverse()) {
              const member =
                hop.role === 'edge-in' ? 'n1' : hop.role === 'middle' ? WAYPOINT : 'n2';
              const file = join(peerDir, hop.fileName);
              writeFileSync(file, hop.config);
              configs[hop.role] = hop.config;
              watch(
                lab.spawn(member, ['env', `HOME=${peerDir}`, ...hop.argv(file)]),
                `${peer.name} ${hop.role}`,
                children,
              );
              await waitListening(lab, member, [hop.listen]);
            }
            await until(
              `a GET through ${peer.name}`,
              () => get(lab, PLAIN_CLIENT, `http://${n1}:${peer.port}/`),
              (body) => body === INDEX_BODY,
              15_000,
            );
            peerDocs[peer.name] = { summary: peer.summary, configs };
            say(`${peer.name}: three hops up; a GET through them answered`);
          } catch (err) {
            skipped[peer.name] = `could not be started: ${(err as Error).message.slice(0, 300)}`;
            say(`skipping ${peer.name}: ${skipped[peer.name]}`);
          }
        }

        const cases: Case[] = [
          {
            name: 'direct',
            description: `${PLAIN_CLIENT} → ${PLAIN_SERVER}:${ORIGIN_PORT}, no proxy`,
            target: {
              client: PLAIN_CLIENT,
              host: lab.member(PLAIN_SERVER).ipv4,
              port: ORIGIN_PORT,
            },
            processes: async () => ({}),
          },
          {
            name: 'meshd',
            description: `${CLIENT} → Service VIP ${VIP}:80 bound to waypoint ${WAYPOINT}: agent n1 → HBONE → meshd waypoint (workload ${WAYPOINT} on n1) → HBONE → agent n2 → ${SERVER}:${ORIGIN_PORT}`,
            target: { client: CLIENT, host: VIP, port: 80 },
            processes: () => sides(lab, (pid) => isAgent(pid) || isWaypoint(pid)),
          },
          ...peers
            .filter((p) => peerDocs[p.name])
            .map(
              (p): Case => ({
                name: p.name,
                description: `${PLAIN_CLIENT} → ${p.name} edge-in on n1 → mTLS → ${p.name} middle in workload ${WAYPOINT} → mTLS → ${p.name} edge-out on n2 → ${PLAIN_SERVER}:${ORIGIN_PORT}`,
                target: { client: PLAIN_CLIENT, host: n1, port: p.port },
                processes: () => sides(lab, (pid) => commandName(pid) === p.comm),
              }),
            ),
        ].filter((c) => !wanted || wanted.includes(c.name));
        caseNames = cases.map((c) => c.name);
        for (const c of cases) caseDescriptions[c.name] = c.description;

        await sleep(3000);
        const pid = await waypointPid(lab);
        const idle: number[] = [];
        for (let i = 0; i < 5 && pid; i++) {
          idle.push(rssMiB(pid));
          await sleep(400);
        }
        memory.idleMiB = Math.round((idle.sort((a, b) => a - b)[2] ?? Number.NaN) * 10) / 10;
        say(`waypoint RSS idle: ${memory.idleMiB} MiB`);

        for (let round = 1; round <= options.rounds; round++) {
          const shift = (round - 1) % cases.length;
          const order = [...cases.slice(shift), ...cases.slice(0, shift)];
          for (const figure of L7_FIGURES) {
            if (args.figures && !args.figures.split(',').includes(figure.id)) continue;
            for (const c of order) {
              if ((Date.now() - started) / 1000 > BUDGET_SECONDS) {
                errors.push(`time budget reached: skipped round ${round} ${figure.id} ${c.name}`);
                continue;
              }
              const record = await measure(lab, c, figure.id, round);
              runs.push(record);
              say(`round ${round}/${options.rounds} ${figure.id} ${c.name}: ${describe(record)}`);
              if (record.error)
                errors.push(
                  `round ${round} ${figure.id} ${c.name}: ${record.error.split('\n')[0]}`,
                );
              await sleep(500);
            }
          }
        }
        await sleep(3000);
        const after = await waypointPid(lab);
        memory.afterMiB = after ? Math.round(rssMiB(after) * 10) / 10 : Number.NaN;
        say(`waypoint RSS after the runs: ${memory.afterMiB} MiB`);
      } finally {
        stopAll({ children, peerConfigs: {}, originConfig: '' });
        await sleep(args['cpu-prof'] ? 4000 : 1500); // the waypoint drains and writes its profile
      }
    },
  );

  const wallSeconds = Math.round((Date.now() - started) / 1000);
  const peerNames = peers.map((p) => p.name).filter((p) => caseNames.includes(p));
  const document: L7Document = {
    bench: 'meshd L7 through a waypoint',
    startedAt,
    wallSeconds,
    options,
    machine,
    loadAverage: { start: loadStart, end: loadavg().map((l) => Math.round(l * 100) / 100) },
    cases: caseDescriptions,
    skipped,
    peers: peerDocs,
    waypoint: { ...memory, env: waypointEnv },
    errors,
    runs,
    summary: summarizeL7(runs, caseNames, peerNames),
  };
  const resultsDir = join(root, 'test', 'bench', 'results');
  mkdirSync(resultsDir, { recursive: true });
  const stamp = startedAt.replace(/[:.]/g, '-');
  const resultFile = join(resultsDir, `l7-${stamp}.json`);
  writeFileSync(resultFile, `${JSON.stringify(document, null, 2)}\n`);
  formatJson(resultFile);
  say(`samples: ${relative(process.cwd(), resultFile)}`);
  if (args['cpu-prof'] && existsSync(profDir)) {
    for (const f of readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile'))) {
      const kept = join(resultsDir, `l7-waypoint-${stamp}.cpuprofile`);
      copyFileSync(join(profDir, f), kept);
      const summary = summarizeCpuProfile(JSON.parse(readFileSync(kept, 'utf8')), 30);
      writeFileSync(`${kept}.txt`, summary);
      console.log(`waypoint CPU profile (${relative(process.cwd(), kept)}):\n${summary}`);
    }
  }
  publish([document], [resultFile]);
}

/** Prints the runs' parts of the section; with --docs, writes it and copies the JSON files. */
function publish(docs: L7Document[], files: string[]): void {
  const paths = files.map((file) => {
    if (!args.docs) return relative(root, file);
    const target = join(root, 'docs', 'bench', basename(file));
    if (resolve(file) !== target) copyFileSync(file, target);
    return relative(root, target);
  });
  const parts = docs.map((doc, i) =>
    renderRun(doc, docs.length > 1 ? `Run ${i + 1} of ${docs.length}` : 'Run', paths[i] ?? ''),
  );
  const markdown = parts.join('\n');
  console.log(markdown);
  if (args.docs) {
    writeL7Section(join(root, 'docs', 'benchmarks.md'), markdown);
    say('wrote the L7 section of docs/benchmarks.md');
  }
}

function formatJson(file: string): void {
  const biome = join(root, 'node_modules', '.bin', 'biome');
  if (!existsSync(biome)) return;
  try {
    execFileSync(biome, ['format', '--write', file], { stdio: 'ignore', cwd: root });
  } catch {
    say(`biome could not format ${file}`);
  }
}

function reportFrom(list: string): void {
  const files = list.split(',').map((f) => resolve(f));
  publish(
    files.map((f) => JSON.parse(readFileSync(f, 'utf8')) as L7Document),
    files,
  );
}

(args.report ? Promise.resolve().then(() => reportFrom(args.report ?? '')) : main()).catch(
  (err) => {
    console.error(`bench-l7: ${(err as Error).stack ?? err}`);
    const cause = (err as { cause?: Error }).cause;
    if (cause) console.error(`bench-l7: cause: ${cause.stack ?? cause}`);
    process.exit(1);
  },
);
