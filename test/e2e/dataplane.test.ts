// The node proxy in the lab: meshd server on node 1, one agent per node, workloads registered
// as resources. Traffic between enrolled workloads crosses the underlay only as TLS 1.3 inside
// HBONE; policy denies by principal, also for connections already open.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Lab } from '../../ctl/lab/index.js';
import { run } from '../../daemon/command.js';
import { initCa } from '../../daemon/identity/index.js';
import {
  eventually,
  startEchoServer,
  stop,
  supportScript,
  waitForLine,
  waitForOutput,
} from '../support/lab-helpers.js';

const root = new URL('../../..', import.meta.url).pathname;
const meshd = join(root, 'dist/daemon/main.js');
const meshctl = join(root, 'bin/meshctl');
let lab: Lab;
let dir: string;
let caDir: string;
const running: ChildProcess[] = [];
const logs: Record<string, string[]> = { n1: [], n2: [] };

function startRole(node: string, role: string, env: Record<string, string>): ChildProcess {
  const vars = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  const child = lab.spawn(node, ['env', ...vars, process.execPath, meshd, role]);
  running.push(child);
  return child;
}

const agents: Record<string, ChildProcess> = {};

/** The agent of `node`; its log lines are collected in logs[node]. No token: a restart. */
function startAgent(node: string, extra: Record<string, string> = {}): ChildProcess {
  const agent = startRole(node, 'agent', {
    MESHD_NODE_NAME: node,
    MESHD_SERVER: `${lab.member('n1').ipv4}:15012`,
    MESHD_STATE_DIR: join(dir, `agent-${node}`),
    MESHD_CNI_SOCKET: join(dir, `cni-${node}.sock`),
    ...extra,
  });
  agent.stderr?.on('data', (c: Buffer) =>
    logs[node]?.push(...c.toString().split('\n').filter(Boolean)),
  );
  agents[node] = agent;
  return agent;
}

async function apply(yaml: string): Promise<void> {
  const file = join(dir, `apply-${Date.now()}-${Math.random()}.yaml`);
  writeFileSync(file, yaml);
  await lab.exec('n1', [meshctl, 'apply', '-f', file, '--ca-dir', caDir]);
}

const workloadYaml = (name: string, ns: string, sa: string, app: string) => {
  const m = lab.member(name);
  return `apiVersion: meshd.io/v1alpha1
kind: Workload
metadata: { name: ${name}, namespace: ${ns}, labels: { app: ${app} } }
spec: { node: ${m.node}, addresses: [${m.ipv4}, "${m.ipv6}"], serviceAccount: ${sa}, netns: /var/run/netns/${m.netns} }
---
`;
};

async function captured(node: string): Promise<string[]> {
  const { stdout } = await lab.exec(node, ['curl', '-sS', 'http://127.0.0.1:15000/config_dump']);
  return (JSON.parse(stdout) as { captured: { workload: string }[] }).captured.map(
    (c) => c.workload,
  );
}

before(async () => {
  lab = await Lab.create({ nodes: 2, workloads: 2 });
  dir = mkdtempSync(join(tmpdir(), 'meshd-dataplane-e2e-'));
  caDir = join(dir, 'ca');
  await initCa({ dir: caDir, trustDomain: 'cluster.local' });
  const server = startRole('n1', 'server', {
    MESHD_CA_DIR: caDir,
    MESHD_DATA_DIR: join(dir, 'server'),
  });
  await waitForOutput(server, /"msg":"meshd server listening"/);
  await apply(`apiVersion: meshd.io/v1alpha1
kind: Namespace
metadata: { name: shop, labels: { meshd.io/dataplane-mode: ambient } }
---
apiVersion: meshd.io/v1alpha1
kind: Namespace
metadata: { name: legacy }
---
${workloadYaml('n1-w1', 'shop', 'web', 'web')}${workloadYaml('n1-w2', 'shop', 'api', 'api')}${workloadYaml('n2-w1', 'shop', 'api', 'api')}${workloadYaml('n2-w2', 'legacy', 'old', 'old')}`);
  for (const node of ['n1', 'n2']) {
    const { stdout: token } = await lab.exec('n1', [
      meshctl,
      'token',
      'create',
      '--node',
      node,
      '--ca-dir',
      caDir,
    ]);
    const agent = startAgent(node, {
      MESHD_JOIN_TOKEN: token.trim(),
      MESHD_CA_BUNDLE: join(caDir, 'bundle.pem'),
    });
    await waitForOutput(agent, /"msg":"agent ready"/);
  }
  await eventually(
    'n1-w1 captured',
    () => captured('n1'),
    (c) => c.includes('shop/n1-w1'),
  );
  await eventually(
    'n2-w1 captured',
    () => captured('n2'),
    (c) => c.includes('shop/n2-w1'),
  );
});

after(() => {
  if (process.env.MESHD_TEST_DEBUG) {
    for (const [node, lines] of Object.entries(logs))
      console.error(`--- agent ${node}\n${lines.slice(-40).join('\n')}`);
  }
  for (const child of running) stop(child);
  assert.deepEqual(lab.destroy(), []);
  rmSync(dir, { recursive: true, force: true });
});

test('curl between enrolled workloads goes through HBONE: only TLS 1.3 on the underlay, both identities logged', async () => {
  const echo = await startEchoServer(lab, 'n2-w1', 8080);
  const pcap = join(dir, 'underlay.pcap');
  const dump = spawn(
    'ip',
    // The node's port on the underlay bridge: every packet node 1 sends or receives.
    [
      'netns',
      'exec',
      lab.plan.underlayNetns,
      'tcpdump',
      '-Z',
      'root', // write the file as root (Debian's tcpdump drops to an unprivileged user)
      '-i',
      lab.plan.nodes[0]?.underlayIf ?? '',
      '--immediate-mode', // deliver packets at once, not in libpcap's timed blocks
      '-U',
      '-w',
      pcap,
      'tcp',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  running.push(dump);
  let dumpErr = '';
  dump.stderr?.on('data', (c: Buffer) => {
    dumpErr += c.toString();
  });
  await waitForOutput(dump, /listening on/);
  try {
    const marker = 'MESHD-MARKER-7f3a9c';
    const target = lab.member('n2-w1').ipv4;
    const { stdout } = await lab.exec('n1-w1', [
      'curl',
      '-sS',
      '-m',
      '10',
      '-H',
      `x-marker: ${marker}`,
      `http://${target}:8080/`,
    ]);
    assert.ok(JSON.parse(stdout).localAddress, `echo answered: ${stdout}`);
    await new Promise((r) => setTimeout(r, 300));
    dump.kill('SIGINT');
    await new Promise((r) => (dump.exitCode !== null ? r(null) : dump.once('exit', r)));
    await new Promise((r) => setTimeout(r, 100));
    const bytes = readFileSync(pcap);
    assert.ok(bytes.length > 200, `tcpdump captured traffic (${bytes.length} bytes; ${dumpErr})`);
    assert.equal(
      bytes.includes(Buffer.from(marker)),
      false,
      'the marker never crosses the underlay in clear',
    );
    assert.ok(
      bytes.includes(Buffer.from([0x17, 0x03, 0x03])),
      'TLS application-data records on the wire',
    );
    // supported_versions extension (0x002b) carrying TLS 1.3 (0x0304) in the handshake
    assert.ok(
      bytes.includes(Buffer.from([0x00, 0x2b, 0x00, 0x02, 0x03, 0x04])),
      'the server chose TLS 1.3',
    );
    const line = (node: string) =>
      eventually(
        `access log on ${node}`,
        async () =>
          logs[node]?.find(
            (l) => l.includes('"connection complete"') && l.includes('"transport":"hbone"'),
          ),
        (l) => Boolean(l),
      );
    for (const node of ['n1', 'n2']) {
      const l = await line(node);
      assert.match(l ?? '', /cluster\.local\/ns\/shop\/sa\/web/);
      assert.match(l ?? '', /cluster\.local\/ns\/shop\/sa\/api/);
    }
  } finally {
    stop(echo);
    if (dump.exitCode === null) dump.kill('SIGKILL');
  }
});

test('a DENY policy by principal refuses the curl, names the policy, and closes an open connection within 2 s', async () => {
  const echo = await startEchoServer(lab, 'n2-w1', 8081);
  const target = lab.member('n2-w1').ipv4;
  // A long-lived connection opened before the policy: idle until the mesh closes it (cat then sees EOF).
  const long = lab.spawn('n1-w1', ['bash', '-c', `exec 3<>/dev/tcp/${target}/8081; cat <&3`]);
  try {
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(long.exitCode, null, 'the long-lived connection is open');
    let closedAt = 0;
    const closed = new Promise<void>((resolve) =>
      long.once('exit', () => {
        closedAt = Date.now();
        resolve();
      }),
    );
    await apply(`apiVersion: meshd.io/v1alpha1
kind: AuthorizationPolicy
metadata: { name: deny-web, namespace: shop }
spec:
  selector: { matchLabels: { app: api } }
  action: DENY
  rules: [{ from: [{ source: { principals: [cluster.local/ns/shop/sa/web] } }] }]
`);
    const acknowledgedAt = Date.now(); // meshctl apply returned: the policy is stored
    await Promise.race([closed, new Promise((r) => setTimeout(r, 2000))]);
    assert.ok(closedAt > 0, 'the open connection was closed within 2 s of the policy');
    assert.ok(closedAt - acknowledgedAt <= 2000);
    await assert.rejects(lab.exec('n1-w1', ['curl', '-sS', '-m', '5', `http://${target}:8081/`]));
    const denied = await eventually(
      'deny logged',
      async () => logs.n2?.find((l) => l.includes('"policy":"shop/deny-web"')),
      (l) => Boolean(l),
    );
    assert.match(denied ?? '', /cluster\.local\/ns\/shop\/sa\/web/);
  } finally {
    stop(long);
    stop(echo);
    await lab
      .exec('n1', [
        meshctl,
        'delete',
        'authorizationpolicy',
        'deny-web',
        '-n',
        'shop',
        '--ca-dir',
        caDir,
      ])
      .catch(() => {});
  }
});

test('an enrolled workload reaches a non-mesh workload by passthrough', async () => {
  const echo = await startEchoServer(lab, 'n2-w2', 8082);
  try {
    const { stdout } = await lab.exec('n1-w1', [
      'curl',
      '-sS',
      '-m',
      '10',
      `http://${lab.member('n2-w2').ipv4}:8082/`,
    ]);
    assert.equal(JSON.parse(stdout).remoteAddress, lab.member('n1-w1').ipv4);
    await eventually(
      'passthrough logged',
      async () => logs.n1?.find((l) => l.includes('"transport":"passthrough"')),
      (l) => Boolean(l),
    );
  } finally {
    stop(echo);
  }
});

async function tcpServer(workload: string, mode: string, port: number): Promise<ChildProcess> {
  const child = lab.spawn(workload, [
    process.execPath,
    supportScript('tcp-server'),
    mode,
    String(port),
  ]);
  await waitForLine(child, 'listening');
  return child;
}

async function tcpClient(
  workload: string,
  args: string[],
  timeoutMs = 60_000,
): Promise<Record<string, string>> {
  const { stdout } = await lab.exec(
    workload,
    [process.execPath, supportScript('tcp-client'), ...args],
    { timeoutMs },
  );
  return JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as Record<string, string>;
}

test('STRICT refuses plaintext from a non-mesh workload; PERMISSIVE (the default) lets it in', async () => {
  const echo = await startEchoServer(lab, 'n1-w1', 8090);
  const url = `http://${lab.member('n1-w1').ipv4}:8090/`;
  try {
    const { stdout } = await lab.exec('n2-w2', ['curl', '-sS', '-m', '5', url]);
    assert.ok(JSON.parse(stdout).localAddress, 'PERMISSIVE: plaintext reaches the application');
    await apply(`apiVersion: meshd.io/v1alpha1
kind: PeerAuthentication
metadata: { name: strict, namespace: shop }
spec: { mtls: { mode: STRICT } }
`);
    await eventually(
      'STRICT in force',
      () =>
        lab.exec('n2-w2', ['curl', '-sS', '-m', '3', url]).then(
          () => 'allowed',
          () => 'refused',
        ),
      (r) => r === 'refused',
    );
    await eventually(
      'mtls_required logged',
      async () => logs.n1?.find((l) => l.includes('mtls_required')),
      (l) => Boolean(l),
    );
    // Mesh traffic is unaffected by STRICT.
    const meshed = await lab.exec('n2-w1', ['curl', '-sS', '-m', '5', url]);
    assert.ok(JSON.parse(meshed.stdout).localAddress);
  } finally {
    stop(echo);
    await lab
      .exec('n1', [
        meshctl,
        'delete',
        'peerauthentication',
        'strict',
        '-n',
        'shop',
        '--ca-dir',
        caDir,
      ])
      .catch(() => {});
  }
});

test('a Service VIP spreads requests over endpoints on both nodes and fails over when one dies', async () => {
  await apply(`apiVersion: meshd.io/v1alpha1
kind: Service
metadata: { name: api, namespace: shop }
spec: { addresses: [10.96.0.10], ports: [{ port: 80, targetPort: 8080 }], selector: { matchLabels: { app: api } } }
`);
  const a = await startEchoServer(lab, 'n1-w2', 8080);
  const b = await startEchoServer(lab, 'n2-w1', 8080);
  try {
    await eventually(
      'the VIP answers',
      () => lab.exec('n1-w1', ['curl', '-sS', '-m', '3', 'http://10.96.0.10/']),
      () => true,
    );
    const seen = new Map<string, number>();
    for (let i = 0; i < 100; i++) {
      const { stdout } = await lab.exec('n1-w1', ['curl', '-sS', '-m', '5', 'http://10.96.0.10/']);
      const at = JSON.parse(stdout).localAddress as string;
      seen.set(at, (seen.get(at) ?? 0) + 1);
    }
    assert.equal(seen.size, 2, `both endpoints answered: ${JSON.stringify([...seen])}`);
    for (const count of seen.values())
      assert.ok(count >= 30, `balanced: ${JSON.stringify([...seen])}`);
    stop(a);
    await new Promise((r) => a.once('exit', r));
    for (let i = 0; i < 30; i++) {
      const { stdout } = await lab.exec('n1-w1', ['curl', '-sS', '-m', '5', 'http://10.96.0.10/']);
      assert.equal(
        JSON.parse(stdout).localAddress,
        lab.member('n2-w1').ipv4,
        'the live endpoint answers',
      );
    }
  } finally {
    stop(a);
    stop(b);
  }
});

test('a client that resets while the endpoints are failing still gets an access record (DC)', async () => {
  // Two endpoints nobody answers for: each attempt waits for ARP on the underlay (~3 s).
  const underlay = lab.member('n1').ipv4.split('.').slice(0, 3).join('.');
  const ghost = (name: string, ip: string) => `apiVersion: meshd.io/v1alpha1
kind: Workload
metadata: { name: ${name}, namespace: shop, labels: { app: ghost } }
spec: { node: n2, addresses: [${ip}], serviceAccount: ghost }
---
`;
  await apply(`${ghost('ghost-1', `${underlay}.201`)}${ghost('ghost-2', `${underlay}.202`)}apiVersion: meshd.io/v1alpha1
kind: Service
metadata: { name: ghost, namespace: shop }
spec: { addresses: [10.96.0.20], ports: [{ port: 80, targetPort: 8080 }], selector: { matchLabels: { app: ghost } } }
`);
  try {
    const before = logs.n1?.length ?? 0;
    assert.deepEqual(await tcpClient('n1-w1', ['resetafter', '500', '10.96.0.20', '80'], 10_000), {
      reset: true,
    });
    const record = await eventually(
      'the record of the reset connection',
      async () =>
        logs.n1
          ?.slice(before)
          .find((l) => l.includes('"msg":"connection complete"') && l.includes('ghost.shop')),
      (l) => Boolean(l),
    );
    assert.match(record ?? '', /"response_flags":"DC"/);
    assert.match(record ?? '', /the client closed the connection before a tunnel opened/);
  } finally {
    for (const [kind, name] of [
      ['service', 'ghost'],
      ['workload', 'ghost-1'],
      ['workload', 'ghost-2'],
    ] as const) {
      await lab
        .exec('n1', [meshctl, 'delete', kind, name, '-n', 'shop', '--ca-dir', caDir])
        .catch(() => {});
    }
  }
});

test('200 concurrent connections to one destination share at most 2 HBONE connections', async () => {
  const server = await tcpServer('n2-w1', 'echo', 9100);
  const holder = lab.spawn('n1-w1', [
    process.execPath,
    supportScript('tcp-client'),
    'hold',
    '200',
    lab.member('n2-w1').ipv4,
    '9100',
  ]);
  try {
    await waitForLine(holder, '{"held":200}', 30_000);
    const { stdout } = await lab.exec('n1-w1', [
      'ss',
      '-Htn',
      'state',
      'established',
      'dst',
      `${lab.member('n2-w1').ipv4}:15008`,
    ]);
    const tunnels = stdout.split('\n').filter((l) => l.trim()).length;
    const dump = await lab.exec('n1', ['curl', '-sS', 'http://127.0.0.1:15000/config_dump']);
    const pool = JSON.stringify((JSON.parse(dump.stdout) as { pool: unknown }).pool);
    assert.ok(
      tunnels >= 1 && tunnels <= 2,
      `${tunnels} HBONE connections on the wire; pool ${pool}`,
    );
  } finally {
    stop(holder);
    stop(server);
  }
});

test('real protocols through the mesh: 1 GiB with equal sha256, half-close, a FIN without data, a refused port, server speaks first', async () => {
  const target = lab.member('n2-w1').ipv4;
  const sha = await tcpServer('n2-w1', 'sha', 9200);
  const echo = await tcpServer('n2-w1', 'echo', 9201);
  const banner = await tcpServer('n2-w1', 'banner', 9202);
  try {
    const big = await tcpClient(
      'n1-w1',
      ['sha', String(1024 * 1024 * 1024), target, '9200'],
      240_000,
    );
    assert.equal(big.received, big.sent, '1 GiB arrived intact');
    assert.deepEqual(await tcpClient('n1-w1', ['halfclose', target, '9201']), { echoed: 'ping' });
    // Nothing listens there: the client's connect succeeded against the capture, and the
    // failure must reach it as a reset, never as a clean (empty) end.
    assert.equal(
      (await tcpClient('n1-w1', ['steady', '1000', target, '9299'], 10_000)).error,
      'ECONNRESET',
    );
    // The application resets after answering: both agents' records name the error. (The
    // client gets the answer, and in this lab often a FIN before the reset: docs/dataplane.md.)
    const resetting = await tcpServer('n2-w1', 'reset', 9206);
    try {
      const seen = await tcpClient('n1-w1', ['steady', '1000', target, '9206'], 10_000);
      assert.ok(seen.closed, 'the connection ended');
      for (const node of ['n1', 'n2']) {
        await eventually(
          `${node} logged the reset`,
          async () =>
            logs[node]?.find(
              (l) => l.includes('"msg":"connection complete"') && l.includes(':9206"'),
            ),
          (l) => /"error":"[^"]*(ECONNRESET|CONNECT_ERROR|Premature)/.test(l ?? ''),
        );
      }
    } finally {
      stop(resetting);
    }
    // A FIN before any data reaches the agent while it opens the tunnel: it must still get
    // through (it was lost once, and the connection stayed open until the server timed out).
    for (let i = 0; i < 5; i++) {
      assert.deepEqual(await tcpClient('n1-w1', ['finonly', target, '9201'], 10_000), {
        eof: true,
        bytes: 0,
      });
    }
    assert.deepEqual(await tcpClient('n1-w1', ['banner', target, '9202']), {
      banner: 'HELLO from banner',
    });
  } finally {
    for (const c of [sha, echo, banner]) stop(c);
  }
});

test("the agents' metrics count these connections with Istio labels", async () => {
  const { stdout } = await lab.exec('n1', ['curl', '-sS', 'http://127.0.0.1:15020/metrics']);
  const opened = stdout
    .split('\n')
    .find(
      (l) =>
        l.startsWith('istio_tcp_connections_opened_total{') &&
        l.includes('source_workload="n1-w1"') &&
        l.includes('destination_workload="n2-w1"') &&
        l.includes('connection_security_policy="mutual_tls"'),
    );
  assert.ok(opened, 'opened counter with source and destination labels');
  assert.ok(Number(opened.split(' ').at(-1)) >= 100, opened);
  const sent = stdout
    .split('\n')
    .find(
      (l) =>
        l.startsWith('istio_tcp_received_bytes_total{') &&
        l.includes('destination_workload="n2-w1"') &&
        l.includes('reporter="source"'),
    );
  assert.ok(sent && Number(sent.split(' ').at(-1)) > 1024 ** 3, `request bytes counted: ${sent}`);
  assert.match(stdout, /^meshd_hbone_pool_handshakes [1-9]/m);
  const level = await lab.exec('n1', ['curl', '-sS', 'http://127.0.0.1:15000/logging?level=debug']);
  assert.equal(level.stdout, 'level: debug\n');
  const bad = await lab.exec('n1', [
    'curl',
    '-sS',
    '-o',
    '/dev/null',
    '-w',
    '%{http_code}',
    'http://127.0.0.1:15000/logging?level=loud',
  ]);
  assert.equal(bad.stdout, '400');
  const remote = await lab.exec('n2', ['curl', '-sS', 'http://127.0.0.1:15020/metrics']);
  assert.match(
    remote.stdout,
    /meshd_policy_denials_total\{reason="denied_by_policy",policy="shop\/deny-web"\} [1-9]/,
  );
});

test('Redis with redis-benchmark through the mesh, unchanged', async () => {
  const redis = lab.spawn('n2-w1', [
    'redis-server',
    '--port',
    '6379',
    '--bind',
    '0.0.0.0',
    '--save',
    '',
    '--appendonly',
    'no',
    '--protected-mode',
    'no',
  ]);
  try {
    await waitForOutput(redis, /Ready to accept connections/);
    const { stdout } = await lab.exec(
      'n1-w1',
      [
        'redis-benchmark',
        '-h',
        lab.member('n2-w1').ipv4,
        '-p',
        '6379',
        '-n',
        '5000',
        '-c',
        '20',
        '-t',
        'set,get',
        '-q',
      ],
      { timeoutMs: 120_000 },
    );
    assert.match(stdout, /SET: [\d.]+ requests per second/);
    assert.match(stdout, /GET: [\d.]+ requests per second/);
    const { stdout: ping } = await lab.exec('n1-w1', [
      'redis-cli',
      '-h',
      lab.member('n2-w1').ipv4,
      'ping',
    ]);
    assert.equal(ping.trim(), 'PONG');
  } finally {
    stop(redis);
  }
});

test('junk and TLS without a client certificate on 15008 are refused and logged; other traffic goes on', async () => {
  const target = lab.member('n2-w1').ipv4;
  const echo = await startEchoServer(lab, 'n2-w1', 8095);
  try {
    // From a non-mesh workload (nothing captures its traffic): straight to the HBONE port.
    await lab
      .exec('n2-w2', [
        'bash',
        '-c',
        `printf 'GET / HTTP/1.0\\r\\n\\r\\n' > /dev/tcp/${target}/15008`,
      ])
      .catch(() => {});
    await lab
      .exec(
        'n2-w2',
        ['bash', '-c', `openssl s_client -connect ${target}:15008 -alpn h2 -tls1_3 < /dev/null`],
        { timeoutMs: 15_000 },
      )
      .catch(() => {});
    for (const reason of ['not-tls', 'no-client-certificate']) {
      await eventually(
        `${reason} logged`,
        async () =>
          logs.n2?.find(
            (l) => l.includes('"HBONE connection refused"') && l.includes(`"reason":"${reason}"`),
          ),
        (l) => Boolean(l),
      );
    }
    const { stdout } = await lab.exec('n1-w1', [
      'curl',
      '-sS',
      '-m',
      '5',
      `http://${target}:8095/`,
    ]);
    assert.ok(JSON.parse(stdout).localAddress, 'mesh traffic unaffected');
  } finally {
    stop(echo);
  }
});

test("CONNECT to an address that is not the workload's and an expired client certificate are refused and logged", async () => {
  const {
    loadCa,
    fromPemAll,
    signSvid,
    createCsr,
    generateKeyPair,
    parseCsr,
    parseSpiffeId,
    exportPrivateKeyPem,
    toPem,
  } = await import('../../daemon/identity/index.js');
  const { HbonePool, hboneSecureContext } = await import('../../daemon/hbone/index.js');
  const { connectFromNetns, netnsPath } = await import('../../daemon/net/index.js');
  const ca = await loadCa(caDir);
  const roots = fromPemAll(readFileSync(join(caDir, 'bundle.pem'), 'utf8'), 'CERTIFICATE').map(
    (d) => toPem('CERTIFICATE', d),
  );
  // A certificate signed by this mesh's CA, valid or already expired.
  const svid = async (validity: { notBefore: Date; notAfter: Date }) => {
    const keys = await generateKeyPair();
    const csr = await parseCsr(
      await createCsr(keys, parseSpiffeId('spiffe://cluster.local/ns/shop/sa/web').id),
      'cluster.local',
    );
    const cert = await signSvid(ca.signer, csr.spiffeId, csr.publicKeyInfo, validity);
    return hboneSecureContext({
      certChainPem: toPem('CERTIFICATE', cert.toSchema().toBER(false)) + ca.intermediatePem,
      keyPem: await exportPrivateKeyPem(keys.privateKey),
      rootsPem: roots,
    });
  };
  const now = Date.now();
  const contexts = {
    valid: await svid({ notBefore: new Date(now - 60_000), notAfter: new Date(now + 3_600_000) }),
    expired: await svid({
      notBefore: new Date(now - 7_200_000),
      notAfter: new Date(now - 3_600_000),
    }),
  };
  const target = lab.member('n2-w1');
  const pool = (name: keyof typeof contexts) =>
    new HbonePool({
      trustDomain: 'cluster.local',
      secureContext: () => contexts[name],
      dial: () =>
        connectFromNetns({
          netns: netnsPath(lab.member('n2-w2').netns),
          family: 4,
          host: target.ipv4,
          port: 15008,
        }),
      limits: { handshakeTimeoutMs: 5_000 },
    });
  const key = {
    sourceIdentity: 'spiffe://cluster.local/ns/shop/sa/web',
    sourceNetns: 'test',
    expectedIdentity: 'spiffe://cluster.local/ns/shop/sa/api',
    destination: `${target.ipv4}:15008`,
  };
  const valid = pool('valid');
  const expired = pool('expired');
  try {
    await assert.rejects(
      valid.connect({ key, authority: `${lab.member('n2-w2').ipv4}:8080` }),
      (err: { status?: number }) => err.status === 400,
    );
    await eventually(
      '400 logged',
      async () => logs.n2?.find((l) => l.includes('is not an address of shop/n2-w1')),
      (l) => Boolean(l),
    );
    await assert.rejects(expired.connect({ key, authority: `${target.ipv4}:8080` }));
    await eventually(
      'expired certificate refused and logged',
      async () =>
        logs.n2?.find(
          (l) =>
            l.includes('"HBONE connection refused"') &&
            /certificate-not-valid-now|untrusted-certificate/.test(l),
        ),
      (l) => Boolean(l),
    );
  } finally {
    valid.destroy();
    expired.destroy();
  }
});

/**
 * A container on node 1 the way a runtime makes it: its netns, then ptp ADD, then meshd-cni ADD
 * with ptp's result as prevResult (namespace shop, pod `name`).
 */
/** A container on node 1 for pod `name`; `instance` tells apart two containers of one pod. */
async function cniContainer(name: string, instance = '') {
  const { cniNetworkConfig, LAB_STATE_ROOT } = await import('../../ctl/lab/index.js');
  const node = lab.plan.nodes[0];
  assert.ok(node);
  const netns = `mdl-${lab.id}-n1-${name}${instance}`;
  const env = (command: string) => ({
    PATH: process.env.PATH,
    CNI_COMMAND: command,
    CNI_CONTAINERID: `${name}${instance}-${lab.id}`,
    CNI_NETNS: `/var/run/netns/${netns}`,
    CNI_IFNAME: 'eth0',
    CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=${name}`,
    CNI_PATH: '/usr/lib/cni',
  });
  const ptpConfig = {
    ...cniNetworkConfig(node, join(LAB_STATE_ROOT, lab.id, 'ipam', node.name)),
    cniVersion: '1.0.0',
  };
  const inNode = (argv: string[], command: string, input: object) =>
    run(['ip', 'netns', 'exec', node.netns, ...argv], {
      env: env(command),
      input: JSON.stringify(input),
    });
  const meshdCni = join(root, 'bin/meshd-cni');
  await run(['ip', 'netns', 'add', netns]);
  await run(['ip', '-n', netns, 'link', 'set', 'lo', 'up']);
  const prevResult = JSON.parse((await inNode(['/usr/lib/cni/ptp'], 'ADD', ptpConfig)).stdout);
  const meshConfig = {
    cniVersion: '1.0.0',
    name: 'meshd-lab',
    type: 'meshd-cni',
    agentSocket: join(dir, 'cni-n1.sock'),
    logFile: join(dir, 'meshd-cni.log'),
  };
  return {
    netns,
    prevResult,
    /** meshd-cni ADD; returns what it printed. */
    add: async () => (await inNode([meshdCni], 'ADD', { ...meshConfig, prevResult })).stdout,
    delMesh: () => inNode([meshdCni], 'DEL', meshConfig),
    /** ptp DEL and the namespace itself: the container is gone. */
    remove: async () => {
      await inNode(['/usr/lib/cni/ptp'], 'DEL', ptpConfig);
      await run(['ip', 'netns', 'del', netns]);
    },
  };
}

test('a workload whose identity changes is captured again at once; a connection it had open keeps going', async () => {
  const target = lab.member('n2-w1').ipv4;
  const server = await tcpServer('n2-w1', 'echo', 9210);
  const holder = lab.spawn('n1-w2', [
    process.execPath,
    supportScript('tcp-client'),
    'hold',
    '1',
    target,
    '9210',
  ]);
  running.push(holder);
  const identityOf = async () => {
    const { stdout } = await lab.exec('n1', ['curl', '-sS', 'http://127.0.0.1:15000/config_dump']);
    return (
      JSON.parse(stdout) as { captured: { workload: string; identity: string }[] }
    ).captured.find((c) => c.workload === 'shop/n1-w2')?.identity;
  };
  try {
    await waitForLine(holder, '{"held":1}', 15_000);
    await apply(workloadYaml('n1-w2', 'shop', 'api-v2', 'api'));
    await eventually(
      'n1-w2 captured with its new identity',
      identityOf,
      (id) => id === 'spiffe://cluster.local/ns/shop/sa/api-v2',
      3_000,
    );
    assert.equal(holder.exitCode, null, 'the connection opened before keeps going');
    const before = logs.n1?.length ?? 0;
    assert.deepEqual(await tcpClient('n1-w2', ['finonly', target, '9210'], 10_000), {
      eof: true,
      bytes: 0,
    });
    await eventually(
      'the new connection goes out with the new identity',
      async () =>
        logs.n1
          ?.slice(before)
          .find((l) => l.includes('"msg":"connection complete"') && l.includes(':9210"')),
      (l) => /"src":\{[^}]*"identity":"cluster\.local\/ns\/shop\/sa\/api-v2"/.test(l ?? ''),
    );
  } finally {
    stop(holder);
    stop(server);
    await apply(workloadYaml('n1-w2', 'shop', 'api', 'api'));
    await eventually(
      'n1-w2 back to its identity',
      identityOf,
      (id) => id === 'spiffe://cluster.local/ns/shop/sa/api',
    );
  }
});

test('a pod recreated under the same name (a new namespace) is captured at once while the old one still has a connection', async () => {
  const echo = await tcpServer('n2-w1', 'echo', 8101);
  const old = await cniContainer('sts-0');
  await old.add();
  const holder = spawn('ip', [
    'netns',
    'exec',
    old.netns,
    process.execPath,
    supportScript('tcp-client'),
    'hold',
    '1',
    lab.member('n2-w1').ipv4,
    '8101',
  ]);
  running.push(holder);
  const held = waitForLine(holder, '{"held":1}', 15_000);
  const fresh = await cniContainer('sts-0', '-b');
  try {
    await held;
    // The old pod's CNI DEL releases it; its connection keeps the old listeners open.
    await old.delMesh();
    const started = Date.now();
    await fresh.add(); // answers once the new pod is captured (or fails after 20 s)
    assert.ok(Date.now() - started < 10_000, `captured after ${Date.now() - started} ms`);
    assert.equal(holder.exitCode, null, 'the old pod’s connection is still open');
    const dump = await lab.exec('n1', ['curl', '-sS', 'http://127.0.0.1:15000/config_dump']);
    const entry = (
      JSON.parse(dump.stdout) as { captured: { workload: string; netns: string }[] }
    ).captured.find((c) => c.workload === 'shop/sts-0');
    assert.equal(entry?.netns, `/var/run/netns/${fresh.netns}`);
  } finally {
    stop(holder);
    stop(echo);
    await fresh.delMesh().catch(() => {});
    await fresh.remove().catch(() => {});
    await old.remove().catch(() => {});
  }
});

test('the CNI chain (ptp, then meshd-cni) makes an enrolled workload whose first connection is already in the mesh', async () => {
  const container = await cniContainer('cni-1');
  const { netns } = container;
  assert.deepEqual(
    JSON.parse(await container.add()),
    container.prevResult,
    'meshd-cni passes prevResult through unchanged',
  );
  const echo = await startEchoServer(lab, 'n2-w1', 8096);
  try {
    // The very first connection the new workload makes.
    const { stdout } = await run([
      'ip',
      'netns',
      'exec',
      netns,
      'curl',
      '-sS',
      '-m',
      '5',
      `http://${lab.member('n2-w1').ipv4}:8096/`,
    ]);
    assert.ok(JSON.parse(stdout).localAddress);
    await eventually(
      'the first connection went through HBONE',
      async () =>
        logs.n1?.find((l) => l.includes('"transport":"hbone"') && l.includes('"workload":"cni-1"')),
      (l) => Boolean(l),
    );
    const got = await lab.exec('n1', [
      meshctl,
      'get',
      'workload',
      'cni-1',
      '-n',
      'shop',
      '-o',
      'json',
      '--ca-dir',
      caDir,
    ]);
    assert.equal(JSON.parse(got.stdout).spec.netns, `/var/run/netns/${netns}`);
    await container.delMesh();
    await assert.rejects(
      lab.exec('n1', [meshctl, 'get', 'workload', 'cni-1', '-n', 'shop', '--ca-dir', caDir]),
      /not found/,
    );
    // DEL is idempotent: an unknown container is fine.
    await container.delMesh();
  } finally {
    stop(echo);
    await container.remove().catch(() => {});
  }
});

test('labels enroll and release a running workload live: namespace label, then none, then release', async () => {
  const echo = await startEchoServer(lab, 'n1-w1', 8097);
  const url = `http://${lab.member('n1-w1').ipv4}:8097/`;
  const ctl = (...args: string[]) => lab.exec('n1', [meshctl, ...args, '--ca-dir', caDir]);
  const lastTransport = async () => {
    const before = logs.n2?.length ?? 0;
    await lab.exec('n2-w2', ['curl', '-sS', '-m', '5', url]);
    const line = await eventually(
      'access log of n2-w2',
      async () =>
        logs.n2
          ?.slice(before)
          .find(
            (l) =>
              l.includes('"workload":"n2-w2"') &&
              l.includes('"direction":"outbound"') &&
              l.includes(':8097"'),
          ),
      (l) => Boolean(l),
      3_000,
    ).catch(() => undefined);
    return line ? (/"transport":"(\w+)"/.exec(line)?.[1] ?? 'none') : 'not captured';
  };
  try {
    assert.equal(await lastTransport(), 'not captured', 'legacy is not in the mesh yet');
    const labelled = Date.now();
    await ctl('enroll', '-n', 'legacy');
    await eventually(
      'n2-w2 captured',
      () => captured('n2'),
      (c) => c.includes('legacy/n2-w2'),
      2_000,
    );
    assert.ok(Date.now() - labelled < 4_000);
    assert.equal(await lastTransport(), 'hbone', 'its next connection goes through the mesh');
    // A connection opened while enrolled keeps working after the release.
    const tcp = await tcpServer('n1-w1', 'echo', 9300);
    const early = lab.spawn('n2-w2', [
      process.execPath,
      supportScript('tcp-client'),
      'twice',
      '3000',
      lab.member('n1-w1').ipv4,
      '9300',
    ]);
    await waitForLine(early, '{"first":"a"}');
    await ctl('release', 'n2-w2', '-n', 'legacy');
    await eventually(
      'n2-w2 opted out',
      () => captured('n2'),
      (c) => !c.includes('legacy/n2-w2'),
      2_000,
    );
    await waitForLine(early, '{"second":"b"}', 10_000);
    stop(tcp);
    assert.equal(await lastTransport(), 'not captured', 'none opts it out');
    await ctl('label', 'workload', 'n2-w2', '-n', 'legacy', 'meshd.io/dataplane-mode-');
    await eventually(
      'n2-w2 captured again',
      () => captured('n2'),
      (c) => c.includes('legacy/n2-w2'),
      2_000,
    );
    await ctl('release', '-n', 'legacy');
    await eventually(
      'namespace released',
      () => captured('n2'),
      (c) => !c.includes('legacy/n2-w2'),
      2_000,
    );
  } finally {
    stop(echo);
  }
});

test("a host workload (a process in node 1's namespace) reaches a workload on node 2 through HBONE and is reached by one", async () => {
  const n1 = lab.member('n1');
  await apply(`apiVersion: meshd.io/v1alpha1
kind: Workload
metadata: { name: host-n1, namespace: shop, labels: { app: host } }
spec: { node: n1, addresses: [${n1.ipv4}], serviceAccount: host, hostNetwork: true, netns: /var/run/netns/${n1.netns} }
`);
  await eventually(
    'host-n1 captured',
    () => captured('n1'),
    (c) => c.includes('shop/host-n1'),
  );
  const remote = await startEchoServer(lab, 'n2-w1', 8098);
  const local = await startEchoServer(lab, 'n1', 8099);
  try {
    const out = await lab.exec('n1', [
      'curl',
      '-sS',
      '-m',
      '5',
      `http://${lab.member('n2-w1').ipv4}:8098/`,
    ]);
    assert.ok(JSON.parse(out.stdout).localAddress);
    await eventually(
      'host outbound via HBONE',
      async () =>
        logs.n1?.find(
          (l) =>
            l.includes('"workload":"host-n1"') &&
            l.includes('"direction":"outbound"') &&
            l.includes('"transport":"hbone"'),
        ),
      (l) => Boolean(l),
    );
    const inbound = await lab.exec('n2-w1', ['curl', '-sS', '-m', '5', `http://${n1.ipv4}:8099/`]);
    assert.ok(JSON.parse(inbound.stdout).localAddress);
    await eventually(
      'host inbound via HBONE',
      async () =>
        logs.n1?.find(
          (l) =>
            l.includes('"direction":"inbound"') &&
            l.includes('"transport":"hbone"') &&
            l.includes(`${n1.ipv4}:8099`),
        ),
      (l) => Boolean(l),
    );
    // The control plane in node 1's namespace is untouched by the host capture.
    await lab.exec('n1', [meshctl, 'get', 'ns', '--ca-dir', caDir]);
  } finally {
    stop(remote);
    stop(local);
    await lab
      .exec('n1', [meshctl, 'delete', 'workload', 'host-n1', '-n', 'shop', '--ca-dir', caDir])
      .catch(() => {});
    await eventually(
      'host-n1 released',
      () => captured('n1'),
      (c) => !c.includes('shop/host-n1'),
    );
  }
});

test('an agent killed with SIGKILL: enrolled workloads send nothing in clear meanwhile, and work again within 5 s of the restart', async () => {
  const agent = agents.n1;
  assert.ok(agent);
  const echo = await startEchoServer(lab, 'n2-w1', 8100);
  const url = `http://${lab.member('n2-w1').ipv4}:8100/`;
  const pcap = join(dir, 'killed.pcap');
  const dump = spawn(
    'ip',
    [
      'netns',
      'exec',
      lab.plan.underlayNetns,
      'tcpdump',
      '-Z',
      'root',
      '--immediate-mode',
      '-i',
      lab.plan.nodes[0]?.underlayIf ?? '',
      '-U',
      '-w',
      pcap,
      'tcp',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  running.push(dump);
  try {
    await waitForOutput(dump, /listening on/);
    agent.kill('SIGKILL');
    await new Promise((r) => agent.once('exit', r));
    const marker = 'MESHD-WHILE-DOWN-4d1e';
    await assert.rejects(
      lab.exec('n1-w1', ['curl', '-sS', '-m', '3', '-H', `x-marker: ${marker}`, url]),
      'fails closed while the agent is down',
    );
    const restarted = Date.now();
    const again = startAgent('n1');
    await waitForOutput(again, /"msg":"agent ready"/);
    await eventually(
      'works again',
      () => lab.exec('n1-w1', ['curl', '-sS', '-m', '2', url]).then((r) => r.stdout),
      (o) => o.includes('localAddress'),
      5_000,
    );
    assert.ok(Date.now() - restarted < 5_000 + 1_000);
    dump.kill('SIGINT');
    await new Promise((r) => (dump.exitCode !== null ? r(null) : dump.once('exit', r)));
    assert.equal(
      readFileSync(pcap).includes(Buffer.from(marker)),
      false,
      'nothing in clear on the underlay',
    );
  } finally {
    stop(echo);
    if (dump.exitCode === null) dump.kill('SIGKILL');
  }
});

test('SIGTERM: open connections (HBONE and passthrough) keep flowing for the drain time, then are reset and logged before the agent exits', async () => {
  const agent = agents.n1;
  assert.ok(agent);
  // n2-w1 is in the mesh (HBONE); n2-w2 is not (passthrough, no tunnel to drain through).
  const servers = [await tcpServer('n2-w1', 'echo', 9203), await tcpServer('n2-w2', 'echo', 9204)];
  const steady = (target: string, port: number) => {
    const child = lab.spawn('n1-w1', [
      process.execPath,
      supportScript('tcp-client'),
      'steady',
      '100',
      lab.member(target).ipv4,
      String(port),
    ]);
    const events: Array<{ echo?: number; closed?: number; error?: string }> = [];
    child.stdout?.on('data', (c: Buffer) => {
      for (const line of c.toString().split('\n').filter(Boolean)) events.push(JSON.parse(line));
    });
    return { child, events };
  };
  const clients = [steady('n2-w1', 9203), steady('n2-w2', 9204)];
  try {
    for (const { events } of clients) {
      await eventually(
        'echoes flowing',
        async () => events.length,
        (n) => n >= 5,
      );
    }
    const signalled = Date.now();
    // 'close', not 'exit': the agent's last log lines may still be in the pipe at 'exit'.
    const closed = new Promise((r) => agent.once('close', r));
    agent.kill('SIGTERM');
    await closed;
    const lines = logs.n1 ?? [];
    const stopped = lines.findLastIndex((l) => l.includes('"msg":"agent stopped"'));
    for (const [i, { events }] of clients.entries()) {
      const port = i === 0 ? 9203 : 9204;
      await eventually(
        `the client of :${port} saw its connection end`,
        async () => events.find((e) => e.closed),
        (e) => e !== undefined,
      );
      const end = events.find((e) => e.closed);
      const lastEcho = Math.max(...events.map((e) => e.echo ?? 0));
      // MESHD_DRAIN_TIMEOUT is 5 s by default: echoes go on through it, then the rest is reset.
      assert.ok(lastEcho - signalled >= 4_000, `:${port}: echoes for ${lastEcho - signalled} ms`);
      assert.ok((end?.closed ?? 0) - signalled <= 8_000, `:${port}: ended too late`);
      assert.equal(end?.error, 'ECONNRESET', `:${port}: cut with a reset, not a clean end`);
      const record = lines.findLastIndex(
        (l) => l.includes('"msg":"connection complete"') && l.includes(`:${port}"`),
      );
      assert.ok(record >= 0 && record < stopped, `:${port}: logged before the agent exited`);
      assert.match(lines[record] ?? '', /"error":/, `:${port}: the record says it was cut`);
    }
  } finally {
    for (const { child } of clients) stop(child);
    for (const server of servers) stop(server);
  }
  const again = startAgent('n1');
  await waitForOutput(again, /"msg":"agent ready"/);
});

test('a restarted agent drops CNI workloads whose namespace went away while it was down', async () => {
  const container = await cniContainer('gone-1');
  await container.add();
  await eventually(
    'gone-1 captured',
    () => captured('n1'),
    (c) => c.includes('shop/gone-1'),
  );
  // The agent stops; the container goes away (its DEL succeeds without the agent).
  const agent = agents.n1;
  assert.ok(agent);
  agent.kill('SIGTERM');
  await new Promise((r) => agent.once('exit', r));
  await container.delMesh();
  await container.remove();
  // Back again: it notices and deregisters the workload.
  const again = startAgent('n1');
  await waitForOutput(again, /"msg":"agent ready"/);
  await eventually(
    'gone-1 deregistered',
    () =>
      lab.exec('n1', [meshctl, 'get', 'workload', 'gone-1', '-n', 'shop', '--ca-dir', caDir]).then(
        () => 'present',
        () => 'gone',
      ),
    (r) => r === 'gone',
  );
  assert.ok(logs.n1?.some((l) => l.includes('"gone workload deregistered"')));
});
