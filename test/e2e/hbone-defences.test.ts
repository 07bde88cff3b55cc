// The HBONE layer as an attacker and a failing network would try it, in the lab: a peer agent
// killed mid-transfer, HTTP/2 rapid reset, thousands of handshakes that never finish, a
// node's certificate used to open a tunnel. Each must be noticed or refused, cheaply, while
// meshed traffic between other workloads goes on.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  createCsr,
  exportPrivateKeyPem,
  generateKeyPair,
  leafValidity,
  loadCa,
  parseCsr,
  parseSpiffeId,
  signSvid,
  toPem,
} from '../../daemon/identity/index.js';
import { eventually, supportScript, waitForLine, waitForOutput } from '../support/lab-helpers.js';
import { MeshE2E } from '../support/mesh-e2e.js';

type NodeName = 'n1' | 'n2';
const TRANSFER_PORT = 9400;
const ECHO_PORT = 9401;
/** Where the rapid-reset attacker's CONNECTs point: nothing may ever connect to it. */
const BAIT_PORT = 9402;

let mesh: MeshE2E;
const logs = (node: NodeName): string[] => mesh.logs[node] ?? [];
const spawnIn = (member: string, argv: string[]) => mesh.spawn(member, argv);
const admin = <T>(node: string, path: string) => mesh.admin<T>(node, path);

/** Starts the agent of `node` again (from its saved state); resolves once it is ready. */
async function startAgent(node: NodeName): Promise<{ child: ChildProcess; readyAt: number }> {
  const agent = mesh.startAgent(node);
  await waitForOutput(agent, /"msg":"agent ready"/, 30_000);
  // Ready for traffic: /healthz/ready answers 200 once the node's workloads are captured.
  await eventually(`${node}'s agent is ready`, () => ready(node), Boolean, 30_000, 50);
  return { child: agent, readyAt: Date.now() };
}

function killAgent(node: NodeName): Promise<void> {
  const agent = mesh.agents[node];
  if (!agent || agent.exitCode !== null || agent.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    agent.once('exit', () => resolve());
    agent.kill('SIGKILL');
  });
}

/** Parses every JSON line a child printed so far. */
function jsonLines(text: string): Record<string, unknown>[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

function collect(child: ChildProcess): { text: string } {
  const sink = { text: '' };
  child.stdout?.on('data', (c: Buffer) => {
    sink.text += c.toString();
  });
  return sink;
}

function exited(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

before(async () => {
  // n1-w3 stays outside the mesh: the attacker's place.
  mesh = await MeshE2E.create({
    nodes: 2,
    workloads: 3,
    name: 'hbone-defences',
    register: [
      ['n1-w1', 'web'],
      ['n2-w1', 'api'],
      ['n1-w2', 'web2'],
      ['n2-w2', 'api2'],
    ],
    agentEnv: { MESHD_LOG_LEVEL: process.env.MESHD_TEST_AGENT_LOG_LEVEL ?? 'info' },
  });
  for (const w of ['n2-w1', 'n2-w2']) {
    const transfer = spawnIn(w, [
      process.execPath,
      supportScript('transfer'),
      'server',
      String(TRANSFER_PORT),
    ]);
    await waitForLine(transfer, 'listening');
    const echo = spawnIn(w, [
      process.execPath,
      supportScript('tcp-server'),
      'echo',
      String(ECHO_PORT),
    ]);
    await waitForLine(echo, 'listening');
  }
});

after(() => mesh.destroy());

/** A round trip on a new meshed connection from n1-w1 to n2-w1; resolves with its time. */
async function roundTrip(): Promise<number> {
  const started = Date.now();
  const { stdout } = await mesh.lab.exec('n1-w1', [
    process.execPath,
    supportScript('tcp-client'),
    'twice',
    '0',
    mesh.lab.member('n2-w1').ipv4,
    String(ECHO_PORT),
  ]);
  assert.match(stdout, /"second"/);
  return Date.now() - started;
}

test('the receiving agent SIGKILLed mid-transfer, 20 times: every client, uploading or downloading, sees a reset within 5 s; a new connection works within 1 s of the agent being back', async () => {
  const runs = Number(process.env.MESHD_TEST_DEAD_PEER_RUNS ?? 20);
  const detections: number[] = [];
  const returns: number[] = [];
  for (let run = 0; run < runs; run++) {
    const target = mesh.lab.member('n2-w1').ipv4;
    const clients = (['up', 'down'] as const).map((kind) => {
      const child = spawnIn('n1-w1', [
        process.execPath,
        supportScript('transfer'),
        'client',
        kind,
        '1',
        target,
        String(TRANSFER_PORT),
        '30',
      ]);
      return { kind, child, out: collect(child) };
    });
    await Promise.all(
      clients.map((c) =>
        waitForLine(c.child, '{"moving":1}', 15_000).catch((err: Error) => {
          throw new Error(
            `run ${run}: the ${c.kind} transfer did not start: ${err.message} ${c.out.text}`,
          );
        }),
      ),
    );
    const killedAt = Date.now();
    await killAgent('n2');
    for (const c of clients) {
      const ended = await exited(c.child, 10_000);
      if (!ended) {
        const { stdout } = await mesh.lab.exec('n1-w1', ['ss', '-tnieo']);
        console.log(`# hung: sockets in n1-w1:\n${stdout}`);
        const dump = await admin<{ pool: unknown }>('n1', '/config_dump');
        console.log(`# hung: pool ${JSON.stringify(dump.pool)}`);
        console.log(`# hung: connections ${JSON.stringify(await admin('n1', '/connections'))}`);
      }
      const lines = jsonLines(c.out.text).filter((l) => l.side === 'client');
      assert.ok(ended, `run ${run}: the ${c.kind} client hangs: ${c.out.text}`);
      assert.equal(lines[0]?.ended, 'reset', `run ${run}: ${c.kind}: ${c.out.text}`);
      const after = Number(lines[0]?.at) - killedAt;
      assert.ok(after < 5_000, `run ${run}: ${c.kind} noticed after ${after} ms`);
      detections.push(after);
    }
    const { readyAt } = await startAgent('n2');
    await roundTrip();
    returns.push(Date.now() - readyAt);
    assert.ok(
      Date.now() - readyAt < 1_000,
      `run ${run}: the first connection after the agent came back took ${Date.now() - readyAt} ms from its readiness`,
    );
  }
  const pool = await admin<{ pool: { connections: number } }>('n1', '/config_dump');
  assert.ok(
    pool.pool.connections <= 2,
    `dead sessions left in the pool: ${JSON.stringify(pool.pool)}`,
  );
  console.log(
    `# dead peer: detection ms max ${Math.max(...detections)}, median ${detections.sort((a, b) => a - b)[detections.length >> 1]}; back ms max ${Math.max(...returns)}`,
  );
});

/** A certificate for `id` from the lab's CA, written as cert/key/ca files for a test client. */
async function issueFiles(
  id: string,
  name: string,
): Promise<{ cert: string; key: string; ca: string }> {
  const ca = await loadCa(mesh.caDir);
  const keys = await generateKeyPair();
  const csr = await parseCsr(await createCsr(keys, parseSpiffeId(id).id), ca.trustDomain);
  const cert = await signSvid(
    ca.signer,
    csr.spiffeId,
    csr.publicKeyInfo,
    leafValidity(Date.now(), 3_600_000, ca.signer.cert),
  );
  const files = {
    cert: join(mesh.dir, `${name}.pem`),
    key: join(mesh.dir, `${name}.key`),
    ca: join(mesh.dir, `${name}-ca.pem`),
  };
  writeFileSync(
    files.cert,
    toPem('CERTIFICATE', cert.toSchema().toBER(false)) + ca.intermediatePem,
  );
  writeFileSync(files.key, await exportPrivateKeyPem(keys.privateKey), { mode: 0o600 });
  writeFileSync(files.ca, ca.roots.join(''));
  return files;
}

/** Meshed requests from n1-w2 to n2-w2 (other workloads than the attacked one), each a new connection. */
function probe(count: number): ChildProcess {
  return spawnIn('n1-w2', [
    process.execPath,
    supportScript('rtt-probe'),
    mesh.lab.member('n2-w2').ipv4,
    String(ECHO_PORT),
    String(count),
  ]);
}

async function probeResult(
  child: ChildProcess,
  out: { text: string },
): Promise<{ ms: number[]; failed: number }> {
  assert.ok(await exited(child, 120_000), 'the probe finished');
  const [result] = jsonLines(out.text) as unknown as { ms: number[]; failed: number }[];
  assert.ok(result, `probe output: ${out.text}`);
  return result;
}

const p99 = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.ceil(values.length * 0.99) - 1] ?? Infinity;

function rssMiB(child: ChildProcess | undefined): number {
  const status = readFileSync(`/proc/${child?.pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? Number.NaN) / 1024;
}

async function ready(node: NodeName): Promise<boolean> {
  const { stdout } = await mesh.lab.exec(node, [
    'curl',
    '-s',
    '-m',
    '1',
    '-o',
    '/dev/null',
    '-w',
    '%{http_code}',
    'http://127.0.0.1:15021/healthz/ready',
  ]);
  return stdout === '200';
}

test("a node's certificate cannot open an HBONE tunnel: refused and logged with the identity", async () => {
  const files = await issueFiles('spiffe://cluster.local/node/n1', 'node-n1');
  const before = logs('n2').length;
  const { stdout } = await mesh.lab
    .exec('n1', [
      'curl',
      '-sS',
      '-m',
      '5',
      '--http2-prior-knowledge',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code}',
      '--cert',
      files.cert,
      '--key',
      files.key,
      '--cacert',
      files.ca,
      '-k',
      `https://${mesh.lab.member('n2-w1').ipv4}:15008/`,
    ])
    .catch((err: { stdout?: string }) => ({ stdout: err.stdout ?? '' }));
  assert.notEqual(stdout, '200');
  const line = await eventually(
    "the refusal in n2's log",
    async () =>
      logs('n2')
        .slice(before)
        .find((l) => l.includes('not-a-workload-identity')),
    (l) => l !== undefined,
  );
  assert.match(line ?? '', /"msg":"HBONE connection refused"/);
  assert.match(line ?? '', /"peer":"spiffe:\/\/cluster.local\/node\/n1"/);
});

test('4,000 handshakes that never finish: agent RSS at most 128 MiB, meshed traffic unaffected, all released after', async () => {
  const target = mesh.lab.member('n2-w1').ipv4;
  const idleRss = rssMiB(mesh.agents.n2);
  const flood = spawnIn('n1-w3', [
    'sh',
    '-c',
    `ulimit -n 8192 && exec ${process.execPath} ${supportScript('hold-handshakes')} ${target} 15008 4000 20`,
  ]);
  const flooded = collect(flood);
  await waitForOutput(flood, /"held"/, 60_000);
  let peak = rssMiB(mesh.agents.n2);
  const prober = probe(200);
  const probed = collect(prober);
  while (prober.exitCode === null) {
    peak = Math.max(peak, rssMiB(mesh.agents.n2));
    await new Promise((r) => setTimeout(r, 250));
  }
  const result = await probeResult(prober, probed);
  const [counts] = jsonLines(flooded.text) as unknown as { held: number; refused: number }[];
  console.log(
    `# slow handshakes: ${JSON.stringify(counts)}; n2 RSS idle ${idleRss.toFixed(1)} MiB, peak ${peak.toFixed(1)} MiB; probe p99 ${p99(result.ms)} ms`,
  );
  assert.equal((counts?.held ?? 0) + (counts?.refused ?? 0), 4000);
  assert.ok(peak <= 128, `peak RSS ${peak} MiB`);
  assert.equal(result.failed, 0);
  assert.ok(p99(result.ms) < 100, `p99 ${p99(result.ms)} ms`);
  assert.ok(await exited(flood, 60_000), 'the flood ends by itself');
  // Released: nothing of the flood left in n2-w1's HBONE port.
  await eventually(
    "the flood's connections are gone",
    async () =>
      (await mesh.lab.exec('n2-w1', ['ss', '-Htn', 'state', 'established', '( sport = :15008 )']))
        .stdout,
    (out) => !out.includes(mesh.lab.member('n1-w3').ipv4),
    15_000,
  );
});

test('rapid reset from 32 connections: GOAWAY, no upstream connect, readiness up and other meshed requests under 100 ms p99', async () => {
  const files = await issueFiles('spiffe://cluster.local/ns/shop/sa/web', 'attacker');
  const target = mesh.lab.member('n2-w1').ipv4;
  const before = logs('n2').length;
  const bait = spawnIn('n2-w1', [
    process.execPath,
    supportScript('tcp-server'),
    'echo',
    String(BAIT_PORT),
  ]);
  await waitForLine(bait, 'listening');
  const attacker = spawnIn('n1-w3', [
    process.execPath,
    supportScript('rapid-reset'),
    target,
    '15008',
    `${target}:${BAIT_PORT}`,
    files.cert,
    files.key,
    files.ca,
    '32',
    '15',
    '50',
  ]);
  const attack = collect(attacker);
  await new Promise((r) => setTimeout(r, 1_000));
  const prober = probe(300);
  const probed = collect(prober);
  const readiness: boolean[] = [];
  while (attacker.exitCode === null && readiness.length < 20) {
    readiness.push(await ready('n2'));
    await new Promise((r) => setTimeout(r, 500));
  }
  const result = await probeResult(prober, probed);
  assert.ok(await exited(attacker, 30_000), 'the attack ends by itself');
  const [report] = jsonLines(attack.text) as unknown as {
    sessions: number;
    refused: number;
    streamsSent: number;
    answered: number;
    goaways: Record<string, number>;
    endedByDeadline: number;
    sessionsWithGoaway: number;
  }[];
  assert.ok(report, `attacker output: ${attack.text}`);
  console.log(
    `# rapid reset: ${JSON.stringify(report)}; probe p99 ${p99(result.ms)} ms, failed ${result.failed}`,
  );
  // Every connection that got as far as a session was cut with GOAWAY ENHANCE_YOUR_CALM; the
  // others were refused before their handshake (the source's penalty).
  assert.ok(report.sessions >= 1 && report.refused >= 1, JSON.stringify(report));
  // (a session can also be cut as a dead peer when its writes stall: any GOAWAY ends it; and
  // the sessions still open when the attack's own time ran out end without one)
  assert.equal(
    report.sessionsWithGoaway,
    report.sessions - report.endedByDeadline,
    JSON.stringify(report),
  );
  assert.ok(report.endedByDeadline <= 32, JSON.stringify(report));
  assert.ok((report.goaways['11'] ?? 0) >= report.sessions / 2, JSON.stringify(report));
  assert.equal(report.answered, 0, 'no cancelled stream was answered');
  assert.ok(readiness.length > 0 && readiness.every(Boolean), `readiness: ${readiness}`);
  assert.equal(result.failed, 0);
  assert.ok(p99(result.ms) < 100, `p99 ${p99(result.ms)} ms`);
  // No upstream connect for a cancelled stream: no access record, no socket to the bait port.
  assert.equal(
    logs('n2')
      .slice(before)
      .filter((l) => l.includes(`:${BAIT_PORT}"`) && l.includes('connection complete')).length,
    0,
  );
  const { stdout: sockets } = await mesh.lab.exec('n2-w1', [
    'ss',
    '-Htan',
    `( sport = :${BAIT_PORT} or dport = :${BAIT_PORT} )`,
  ]);
  assert.equal(
    sockets.split('\n').filter((l) => l.trim() && !l.startsWith('LISTEN')).length,
    0,
    sockets,
  );
  assert.ok(
    logs('n2')
      .slice(before)
      .some((l) => l.includes('"reason":"rapid-reset"')),
    'the cut-off is logged',
  );
});
