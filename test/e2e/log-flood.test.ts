// A misbehaving client cannot flood the agents' logs: a DENY policy, then thousands of refused
// connections for ~25 s. Both agents write well under 1 MB of log per minute, each refused
// connection is either logged or counted in a summary line ("suppressed": N), and the
// counters count every one of them exactly.
import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { DEMO_NAMESPACE, Lab } from '../../ctl/lab/index.js';
import { meshctlInLab } from '../../ctl/lab/mesh.js';
import { labDir } from '../../ctl/lab/state.js';
import { eventually, supportScript } from '../support/lab-helpers.js';

let lab: Lab;
/** Any port: the policy refuses every connection before the application is asked. */
const PORT = 8080;
/** The flood's bounds: whichever comes first. */
const FLOOD_MAX_CONNECTIONS = 40_000;
const FLOOD_MAX_MS = 25_000;
const FLOOD_CONCURRENCY = 16;
/** Failed TLS handshakes cost the agent more: fewer of them. */
const HANDSHAKE_FLOOD_MAX_CONNECTIONS = 20_000;
const HANDSHAKE_FLOOD_MAX_MS = 15_000;
/** The budget for a flood of refused connections. */
const MAX_LOG_BYTES_PER_MINUTE = 1_000_000;

before(async () => {
  lab = await Lab.create({ nodes: 2, workloads: 1, mesh: true });
});

after(() => {
  assert.deepEqual(lab.destroy(), []);
});

const agentLog = (node: string): string => {
  const file = lab.mesh?.logs[node];
  assert.ok(file, `the lab logs agent ${node} to a file`);
  return file;
};

async function metrics(node: string): Promise<string> {
  const { stdout } = await lab.exec(node, ['curl', '-sS', 'http://127.0.0.1:15020/metrics']);
  return stdout;
}

/** The sum of `metric` over the series whose labels include every one of `labels`. */
function total(text: string, metric: string, ...labels: string[]): number {
  return text
    .split('\n')
    .filter((l) => l.startsWith(`${metric}{`) && labels.every((x) => l.includes(x)))
    .reduce((sum, l) => sum + Number(l.split(' ').at(-1)), 0);
}

/** What test/support/tcp-flood prints. */
interface FloodResult {
  opened: number;
  connected: number;
  errors: Record<string, number>;
  ms: number;
}

interface LogLine {
  log?: string;
  msg?: string;
  reason?: string;
  workload?: { namespace?: string; name?: string };
  direction?: string;
  response_flags?: string;
  suppressed?: number;
  policy?: string;
  src?: { workload?: string };
  dst?: { workload?: string };
}

/** Lines written to `file` after byte `from` that `match`: how many, and their summaries. */
function linesOf(file: string, from: number, match: (l: LogLine) => boolean) {
  const text = readFileSync(file).subarray(from).toString();
  const lines = text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine)
    .filter(match);
  const summaries = lines.filter((l) => l.suppressed !== undefined);
  const suppressed = summaries.reduce((sum, l) => sum + (l.suppressed ?? 0), 0);
  return { written: lines.length - summaries.length, summaries, suppressed };
}

test('a flood of refused connections: < 1 MB of log per minute, every one counted exactly', async () => {
  const target = lab.member('n2-w1').ipv4;
  const policy = `${DEMO_NAMESPACE}/deny-flood`;
  const manifest = join(labDir(lab.id), 'deny-flood.yaml');
  writeFileSync(
    manifest,
    `apiVersion: meshd.io/v1alpha1
kind: AuthorizationPolicy
metadata: { name: deny-flood, namespace: ${DEMO_NAMESPACE} }
spec:
  selector: { matchLabels: { app: n2-w1 } }
  action: DENY
  rules: [{}]
`,
  );
  await meshctlInLab(lab, 'apply', '-f', manifest);
  // One refused connection at a time until n2 refuses by the policy: it has reached the agent.
  const probe = () =>
    lab.exec('n1-w1', [
      process.execPath,
      supportScript('tcp-flood'),
      target,
      String(PORT),
      '1',
      '5000',
      '1',
    ]);
  await eventually(
    'the policy denies',
    async () => {
      await probe();
      return total(await metrics('n2'), 'meshd_policy_denials_total', `policy="${policy}"`);
    },
    (n) => n > 0,
    30_000,
  );

  const outboundRefused = (text: string) =>
    total(
      text,
      'istio_tcp_connections_closed_total',
      'reporter="source"',
      'source_workload="n1-w1"',
      'destination_workload="n2-w1"',
    ) -
    total(
      text,
      'istio_tcp_connections_closed_total',
      'reporter="source"',
      'source_workload="n1-w1"',
      'destination_workload="n2-w1"',
      'response_flags="-"',
    );
  const before1 = await metrics('n1');
  const before2 = await metrics('n2');
  const logs = { n1: agentLog('n1'), n2: agentLog('n2') };
  const size = (file: string) => statSync(file).size;
  const start = { n1: size(logs.n1), n2: size(logs.n2) };

  const { stdout } = await lab.exec(
    'n1-w1',
    [
      process.execPath,
      supportScript('tcp-flood'),
      target,
      String(PORT),
      String(FLOOD_MAX_CONNECTIONS),
      String(FLOOD_MAX_MS),
      String(FLOOD_CONCURRENCY),
    ],
    { timeoutMs: FLOOD_MAX_MS + 60_000 },
  );
  const flood = JSON.parse(stdout) as FloodResult;
  assert.ok(flood.opened >= 1_000, `a flood: ${stdout}`);
  // Every connect reached the agent: it was accepted, or the agent's reset came first.
  assert.deepEqual(
    Object.keys(flood.errors).filter((c) => c !== 'ECONNRESET'),
    [],
    stdout,
  );
  const refused = flood.opened;

  // n2 refused every stream by the policy; n1 recorded each as a failed connection.
  const denied = (l: LogLine) =>
    l.log === 'access' &&
    l.direction === 'inbound' &&
    l.response_flags === 'DENY' &&
    l.policy === policy;
  const failed = (l: LogLine) =>
    l.log === 'access' &&
    l.direction === 'outbound' &&
    l.src?.workload === 'n1-w1' &&
    l.dst?.workload === 'n2-w1';
  // Each connection is either written or counted in a summary, once its window has ended
  // (10 s after the first line of the window).
  const n2 = await eventually(
    'every denied connection logged or summarised on n2',
    async () => linesOf(logs.n2, start.n2, denied),
    (r) => r.written + r.suppressed >= refused,
    45_000,
  );
  const n1 = await eventually(
    'every refused connection logged or summarised on n1',
    async () => linesOf(logs.n1, start.n1, failed),
    (r) => r.written + r.suppressed >= refused,
    45_000,
  );
  const after1 = await metrics('n1');
  const after2 = await metrics('n2');

  // The counters: exactly one per connection the client made.
  const denials = (t: string) => total(t, 'meshd_policy_denials_total', `policy="${policy}"`);
  assert.equal(denials(after2) - denials(before2), refused, 'meshd_policy_denials_total');
  const closedDeny = (t: string) =>
    total(
      t,
      'istio_tcp_connections_closed_total',
      'reporter="destination"',
      'destination_workload="n2-w1"',
      'response_flags="DENY"',
    );
  assert.equal(closedDeny(after2) - closedDeny(before2), refused, 'closed, DENY (n2)');
  assert.equal(outboundRefused(after1) - outboundRefused(before1), refused, 'closed (n1)');

  // The log: logged + suppressed is the exact count, and the summaries say so.
  for (const [node, r, text, was] of [
    ['n1', n1, after1, before1],
    ['n2', n2, after2, before2],
  ] as const) {
    assert.equal(r.written + r.suppressed, refused, `${node}: logged + suppressed`);
    assert.ok(r.suppressed > 0 && r.summaries.length > 0, `${node}: summaries`);
    for (const s of r.summaries) {
      assert.match(s.msg ?? '', /^connection complete \(\d+ more like this in the last \d+ s\)$/);
    }
    const counted = (t: string) => total(t, 'meshd_log_lines_suppressed_total', 'kind="access"');
    assert.equal(counted(text) - counted(was), r.suppressed, `${node}: suppressed counter`);
    // Bytes written from the flood's start to its last summary, per minute of flood.
    const bytes = size(logs[node]) - start[node];
    const perMinute = (bytes * 60_000) / flood.ms;
    assert.ok(
      perMinute <= MAX_LOG_BYTES_PER_MINUTE,
      `${node}: ${bytes} bytes of log for ${refused} connections in ${flood.ms} ms (${Math.round(perMinute)} per minute)`,
    );
    console.log(
      `${node}: ${refused} refused connections in ${flood.ms} ms; ${bytes} bytes of log (${Math.round(perMinute / 1024)} KiB/min), ${r.written} records written, ${r.suppressed} suppressed in ${r.summaries.length} summaries`,
    );
  }
});

test('a flood of failed HBONE handshakes: the warning is summarised, the rejections counted exactly', async () => {
  // From node n1's own namespace (not captured) straight to n2-w1's HBONE port: plain text
  // where a TLS ClientHello belongs, as a scanner or a broken peer would send.
  const target = lab.member('n2-w1').ipv4;
  const log = agentLog('n2');
  const rejections = (t: string) => total(t, 'meshd_listener_rejections_total', 'listener="hbone"');
  const suppressedWarnings = (t: string) =>
    total(t, 'meshd_log_lines_suppressed_total', 'kind="warning"');
  const before2 = await metrics('n2');
  const from = statSync(log).size;
  const { stdout } = await lab.exec(
    'n1',
    [
      process.execPath,
      supportScript('tcp-flood'),
      target,
      '15008',
      String(HANDSHAKE_FLOOD_MAX_CONNECTIONS),
      String(HANDSHAKE_FLOOD_MAX_MS),
      String(FLOOD_CONCURRENCY),
      'GET / HTTP/1.1\r\n\r\n',
    ],
    { timeoutMs: HANDSHAKE_FLOOD_MAX_MS + 60_000 },
  );
  const flood = JSON.parse(stdout) as FloodResult;
  assert.ok(flood.opened >= 500, `a flood: ${stdout}`);
  assert.deepEqual(
    Object.keys(flood.errors).filter((c) => c !== 'ECONNRESET'),
    [],
    stdout,
  );
  const refusedHbone = (l: LogLine) =>
    l.workload?.name === 'n2-w1' &&
    (l.msg === 'HBONE connection refused' || /^HBONE connection refused \(/.test(l.msg ?? ''));
  const seen = await eventually(
    'every refused handshake logged or summarised',
    async () => linesOf(log, from, refusedHbone),
    (r) => r.written + r.suppressed >= flood.opened,
    45_000,
  );
  const after2 = await metrics('n2');
  assert.equal(rejections(after2) - rejections(before2), flood.opened, 'rejections counted');
  assert.equal(seen.written + seen.suppressed, flood.opened, 'logged + suppressed');
  assert.ok(seen.suppressed > 0, 'suppressed');
  assert.equal(suppressedWarnings(after2) - suppressedWarnings(before2), seen.suppressed);
  for (const s of seen.summaries) {
    assert.match(
      s.msg ?? '',
      /^HBONE connection refused \(\d+ more like this in the last \d+ s\)$/,
    );
    assert.ok(s.reason, 'the summary keeps the fields of the last line');
  }
  const bytes = statSync(log).size - from;
  const perMinute = (bytes * 60_000) / flood.ms;
  assert.ok(perMinute <= MAX_LOG_BYTES_PER_MINUTE, `${bytes} bytes in ${flood.ms} ms`);
  console.log(
    `n2: ${flood.opened} failed handshakes in ${flood.ms} ms; ${bytes} bytes of log (${Math.round(perMinute / 1024)} KiB/min), ${seen.written} warnings written, ${seen.suppressed} suppressed in ${seen.summaries.length} summaries`,
  );
});
