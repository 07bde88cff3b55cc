// The bench's figures are only as good as its parsers: percentiles from histograms, medians,
// wrk's report, and the pcap reader that proves each case carries TLS on the underlay.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { FigureId, RunRecord } from '../bench/figures.js';
import { caddyHop, haproxyMiddle, L7_PEERS, nginxMiddle } from '../bench/l7-peers.js';
import {
  bestPeer,
  caseTable,
  type L7FigureId,
  type L7Run,
  l7Targets,
  perRoundRatios,
  summarizeL7,
} from '../bench/l7-report.js';
import { analysePcap } from '../bench/pcap.js';
import { summarizeCpuProfile } from '../bench/profile-summary.js';
import { summarize, targetsTable } from '../bench/report.js';
import { latencySummary, median, percentileOf } from '../bench/stats.js';
import { parseStrace, summarizeStrace } from '../bench/strace-summary.js';
import { parseWrk } from '../bench/tools.js';

test('percentiles are the bin of rank ceil(p·n); medians of finite values', () => {
  const micros = Array.from({ length: 1000 }, (_, i) => i + 0.5); // 0.5 … 999.5 µs
  const s = latencySummary(micros);
  assert.equal(s.p50, 499);
  assert.equal(s.p99, 989);
  assert.equal(s.p999, 998);
  assert.equal(s.min, 0);
  assert.equal(s.max, 999);
  assert.equal(percentileOf([[7, 1]], 0.999), 7);
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.equal(median([Number.NaN, 5]), 5);
  assert.ok(Number.isNaN(median([])));
});

const WRK = `Running 6s test @ http://10.40.2.2:8080/
  2 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.31ms    4.68ms  95.25ms   98.42%
    Req/Sec    13.10k     1.20k   15.00k    70.00%
  Latency Distribution
     50%    1.62ms
     75%    2.01ms
     90%    2.60ms
     99%   27.11ms
  156288 requests in 6.00s, 22.36MB read
  Socket errors: connect 0, read 3, write 0, timeout 1
  Non-2xx or 3xx responses: 2
Requests/sec:  26046.46
Transfer/sec:      3.73MB
`;

test('wrk: rate, count, percentiles in ms, socket errors and non-2xx', () => {
  const r = parseWrk(WRK);
  assert.equal(r.requestsPerSecond, 26046.46);
  assert.equal(r.requests, 156288);
  assert.equal(r.seconds, 6);
  assert.equal(r.p50Ms, 1.62);
  assert.equal(r.p99Ms, 27.11);
  assert.deepEqual(r.socketErrors, { connect: 0, read: 3, write: 0, timeout: 1 });
  assert.equal(r.non2xx, 2);
  assert.throws(() => parseWrk('unable to connect'), /wrk printed no result/);
});

/** A pcap (Ethernet, IPv4, TCP) of one connection: SYN both ways, then the given payloads. */
function pcapOf(payloads: [fromClient: boolean, bytes: Buffer][]): Buffer {
  const header = Buffer.alloc(24);
  header.writeUInt32LE(0xa1b2c3d4, 0);
  header.writeUInt16LE(2, 4);
  header.writeUInt16LE(4, 6);
  header.writeUInt32LE(65535, 16);
  header.writeUInt32LE(1, 20);
  const seq = { client: 1000, server: 5000 };
  const frame = (fromClient: boolean, syn: boolean, payload: Buffer) => {
    const ip = Buffer.alloc(20);
    ip[0] = 0x45;
    ip.writeUInt16BE(20 + 20 + payload.length, 2);
    ip[9] = 6;
    Buffer.from(fromClient ? [172, 30, 0, 11] : [172, 30, 0, 12]).copy(ip, 12);
    Buffer.from(fromClient ? [172, 30, 0, 12] : [172, 30, 0, 11]).copy(ip, 16);
    const tcp = Buffer.alloc(20);
    tcp.writeUInt16BE(fromClient ? 40000 : 15008, 0);
    tcp.writeUInt16BE(fromClient ? 15008 : 40000, 2);
    const side = fromClient ? 'client' : 'server';
    tcp.writeUInt32BE(seq[side], 4);
    seq[side] += syn ? 1 : payload.length;
    tcp[12] = 5 << 4;
    tcp[13] = syn ? 0x02 : 0x18;
    const eth = Buffer.alloc(14);
    eth.writeUInt16BE(0x0800, 12);
    const body = Buffer.concat([eth, ip, tcp, payload]);
    const rec = Buffer.alloc(16);
    rec.writeUInt32LE(body.length, 8);
    rec.writeUInt32LE(body.length, 12);
    return Buffer.concat([rec, body]);
  };
  return Buffer.concat([
    header,
    frame(true, true, Buffer.alloc(0)),
    frame(false, true, Buffer.alloc(0)),
    ...payloads.map(([fromClient, bytes]) => frame(fromClient, false, bytes)),
  ]);
}

const record = (type: number, body: Buffer) =>
  Buffer.concat([Buffer.from([type, 3, 3, body.length >> 8, body.length & 0xff]), body]);

test('pcap: a TLS 1.3 flow is recognised record by record; plaintext is not TLS', () => {
  const serverHello = Buffer.concat([
    Buffer.from([2, 0, 0, 10]),
    Buffer.from([0, 0x2b, 0, 2, 3, 4]),
  ]);
  const tls = analysePcap(
    pcapOf([
      [true, record(22, Buffer.from('client hello'))],
      [false, record(22, serverHello)],
      [true, record(23, Buffer.alloc(100, 7))],
      [false, record(23, Buffer.alloc(40, 9))],
    ]),
  );
  assert.equal(tls.flows.length, 1);
  assert.equal(tls.flows[0]?.tls, true);
  assert.equal(tls.tls13, true);
  assert.equal(tls.flows[0]?.tls13, true);
  assert.deepEqual(tls.flows[0]?.records, { handshake: 2, application_data: 2 });

  const plain = analysePcap(
    pcapOf([
      [true, Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')],
      [false, Buffer.from('HTTP/1.1 200 OK\r\n\r\n')],
    ]),
  );
  assert.equal(plain.flows[0]?.tls, false);
  assert.equal(plain.tls13, false);
  assert.equal(plain.flows[0]?.tls13, false);
});

test('cpu profile summary: self time of busy samples, idle left out, largest first', () => {
  const frame = (functionName: string, url = '', lineNumber = 0) => ({
    functionName,
    url,
    lineNumber,
  });
  const profile = {
    nodes: [
      { id: 1, callFrame: frame('(root)'), children: [2, 3, 4] },
      { id: 2, callFrame: frame('(idle)') },
      {
        id: 3,
        callFrame: frame('forward', 'file:///x/dist/daemon/hbone/splice.js', 44),
        children: [5],
      },
      { id: 4, callFrame: frame('', 'file:///x/node_modules/prom-client/lib/counter.js', 9) },
      { id: 5, callFrame: frame('writeBuffer') },
    ],
    samples: [2, 2, 2, 2, 3, 3, 5, 4],
    startTime: 0,
    endTime: 2_000_000,
  };
  const lines = summarizeCpuProfile(profile, 10).trim().split('\n');
  assert.equal(lines[0], '8 samples over 2.0 s, 50.0 % busy; self time as % of the busy samples:');
  assert.deepEqual(lines.slice(1), [
    ' 50.0 %  forward daemon/hbone/splice.js:45',
    ' 25.0 %  writeBuffer',
    ' 25.0 %  (anonymous) prom-client/lib/counter.js:10',
    'by the nearest meshd function on the stack (its time and what it called):',
    ' 75.0 %  forward daemon/hbone/splice.js:45',
    ' 25.0 %  (no meshd frame)',
  ]);
  assert.equal(summarizeCpuProfile(profile, 1).trim().split('\n').length, 4);
});

test('strace summary: calls and bytes per syscall, sizes in classes, errors counted apart', () => {
  const text = [
    '1201  read(23, "\\x17\\x03"..., 16384) = 16384',
    '1201  read(23, "\\x17"..., 16384) = 1412',
    '1201  read(23, 0x7f00, 16384) = -1 EAGAIN (Resource temporarily unavailable)',
    '1201  writev(31, [{iov_base="a"..., iov_len=65536}, ...], 4) = 262144',
    '1207  write(2, "log line\\n", 9) = 9',
    '1201  epoll_wait(5, [], 1024, 0) = 0',
    '1201  +++ exited with 0 +++',
  ].join('\n');
  const stats = parseStrace(text);
  assert.deepEqual([...stats.keys()].sort(), ['read', 'write', 'writev']);
  assert.deepEqual(stats.get('read'), { calls: 3, bytes: 17796, buckets: [1, 0, 1, 1, 0, 0] });
  assert.deepEqual(stats.get('writev')?.buckets, [0, 0, 0, 0, 0, 1]);
  assert.deepEqual(stats.get('write')?.buckets, [0, 1, 0, 0, 0, 0]);
  assert.match(
    summarizeStrace(text),
    /^read +3 calls, mean 5932 B \(0\/err 1, <1K 0, <16K 1, =16K 1/,
  );
  assert.equal(summarizeStrace(''), '(no read/write calls traced)');
});

test('targets: meshd against the best peer of each round, and against the best median', () => {
  const run = (round: number, name: string, figure: FigureId, values: Record<string, number>) =>
    ({ round, case: name, figure, startedAt: '', seconds: 5, values }) as RunRecord;
  const rps = {
    meshd: [900, 1200],
    haproxy: [1000, 1000],
    nginx: [800, 1500],
    direct: [3000, 3000],
  };
  const p50 = { meshd: [150, 140], haproxy: [130, 120], nginx: [125, 135], direct: [100, 100] };
  const runs: RunRecord[] = [
    ...Object.entries(rps).flatMap(([name, values]) =>
      values.map((v, i) => run(i + 1, name, 'http-keepalive', { requestsPerSecond: v, p99Ms: 1 })),
    ),
    ...Object.entries(p50).flatMap(([name, values]) =>
      values.map((v, i) => run(i + 1, name, 'rtt-1B', { p50: v })),
    ),
  ];
  const summary = summarize(runs, ['direct', 'meshd', 'haproxy', 'nginx'], ['haproxy', 'nginx']);
  const text = targetsTable(summary, {
    idle: undefined,
    firstFourStreamPeakMiB: undefined,
    idleInBenchLabMiB: {},
    afterRunsMiB: {},
  });
  const row = (label: string) => text.split('\n').find((l) => l.startsWith(`| ${label}`)) ?? '';
  // Medians: meshd 1,050, nginx 1,150 (best), haproxy 1,000. Round 1: 900 ÷ 1,000 (haproxy);
  // round 2: 1,200 ÷ 1,500 (nginx).
  assert.equal(
    row('HTTP keep-alive requests/s'),
    '| HTTP keep-alive requests/s | ≥ 1.1× the best peer | 1,050 | 1,150 (nginx) | 0.91× | no | 0.90×, 0.80× |',
  );
  // Added p50: meshd 45; peers' medians 25 (haproxy) and 30 (nginx). Per round: 50 ÷ 25
  // (nginx), 40 ÷ 20 (haproxy).
  assert.match(
    row('p50 added latency'),
    /\| ≤ the best peer \| 45 \| 25 \(haproxy\) \| 1\.80× \| no \| 2\.00×, 2\.00× \|$/,
  );
});

test('L7: medians per case, CPU per request of all hops and of the middle, added latency vs direct', () => {
  const usage = (all: number, middle: number, rss: number) => ({
    cpuSeconds: all,
    peakRssMiB: rss,
    busiestThreadShare: 0.5,
    sides: {
      n1: { pids: [1], cpuSeconds: all - middle, rssAtStartMiB: 0, peakRssMiB: 10, hwmMiB: 10 },
      middle: { pids: [2], cpuSeconds: middle, rssAtStartMiB: 0, peakRssMiB: rss, hwmMiB: rss },
    },
  });
  const run = (
    round: number,
    name: string,
    figure: L7FigureId,
    rps: number,
    p50Ms: number,
    u?: ReturnType<typeof usage>,
  ): L7Run => ({
    round,
    case: name,
    figure,
    startedAt: '',
    seconds: 6,
    values: { requestsPerSecond: rps, requests: rps * 10, p50Ms, p99Ms: p50Ms * 2 },
    ...(u ? { usage: u } : {}),
  });
  const runs: L7Run[] = [
    run(1, 'direct', 'l7-keepalive', 10_000, 1),
    run(2, 'direct', 'l7-keepalive', 12_000, 1),
    // meshd: 1,000 req/s × 10 s = 10,000 requests; 2 CPU s → 200 µs; middle 1 CPU s → 100 µs.
    run(1, 'meshd', 'l7-keepalive', 1_000, 3, usage(2, 1, 90)),
    run(2, 'meshd', 'l7-keepalive', 3_000, 2, usage(3, 1.5, 120)),
    run(1, 'nginx', 'l7-keepalive', 2_000, 1.5, usage(1, 0.4, 30)),
    run(2, 'nginx', 'l7-keepalive', 2_000, 1.5, usage(1, 0.4, 30)),
    run(1, 'caddy', 'l7-keepalive', 4_000, 1.5, usage(1, 0.4, 30)),
    { ...run(2, 'caddy', 'l7-keepalive', 0, 0), error: 'wrk completed no request' },
  ];
  const s = summarizeL7(runs, ['direct', 'meshd', 'nginx', 'caddy'], ['nginx', 'caddy']);
  const meshd = s.figures['l7-keepalive'].meshd;
  assert.equal(meshd?.requestsPerSecond, 2_000);
  // Round 1: 2 s / 10,000 = 200 µs; round 2: 3 s / 30,000 = 100 µs → median 150.
  assert.equal(Math.round(meshd?.cpuUsPerRequest ?? 0), 150);
  assert.equal(Math.round(meshd?.middleCpuUsPerRequest ?? 0), 75);
  assert.equal(meshd?.middlePeakRssMiB, 120);
  assert.deepEqual(meshd?.rounds, [1_000, 3_000]);
  assert.equal(s.addedP50Us['l7-keepalive'].meshd, 1500);
  assert.equal(s.figures['l7-keepalive'].caddy?.requestsPerSecond, 4_000);
  assert.deepEqual(bestPeer(s), { name: 'caddy', rps: 4_000 });
  // Round 1: 1,000 ÷ 4,000; round 2: caddy failed, so 3,000 ÷ nginx's 2,000.
  assert.deepEqual(perRoundRatios(runs, s.peers), [0.25, 1.5]);
  const rows = l7Targets(s, runs, { idleMiB: 80, afterMiB: 100 });
  assert.deepEqual(
    rows.map((r) => r.met),
    [true, false, false],
  );
  assert.match(rows[1]?.value ?? '', /2,000 vs 4,000 \(caddy\): 0\.50×; per round 0\.25×, 1\.50×/);
  assert.match(rows[2]?.value ?? '', /^120\.0 MiB peak \(idle 80\.0, after the runs 100\.0\)/);
  assert.match(caseTable(s), /\| caddy \| \*\*4,000 \(0\.36×\)\*\* \|/);
  // No middle at all: nothing is claimed.
  assert.equal(
    l7Targets(summarizeL7([], ['meshd'], []), [], { idleMiB: NaN, afterMiB: NaN })[0]?.met,
    undefined,
  );
});

test('L7 peers: every hop verifies the other end; caddy keeps the client Host with client auth on', () => {
  const layout = {
    certs: {
      dir: '/c',
      ca: '/c/ca.pem',
      serverCert: '/c/s.crt',
      serverKey: '/c/s.key',
      serverPem: '/c/s.pem',
      clientCert: '/c/c.crt',
      clientKey: '/c/c.key',
      clientPem: '/c/c.pem',
    },
    clientNodeAddress: '192.0.2.1',
    middleAddress: '192.0.2.2',
    serverNodeAddress: '192.0.2.3',
    originAddress: '192.0.2.4',
    originPort: 8080,
    fileLimit: 4096,
    dir: '/d',
  };
  const haproxy = haproxyMiddle(layout, 22003);
  assert.match(
    haproxy,
    /bind 192\.0\.2\.2:22003 ssl crt \/c\/s\.pem ca-file \/c\/ca\.pem verify required/,
  );
  assert.match(
    haproxy,
    /server next 192\.0\.2\.3:22003 ssl crt \/c\/c\.pem .*verify required verifyhost bench-server/,
  );
  const nginx = nginxMiddle(layout, 23003);
  assert.match(nginx, /listen 192\.0\.2\.2:23003 ssl;/);
  assert.match(nginx, /ssl_verify_client on;/);
  assert.match(nginx, /proxy_ssl_verify on;/);
  const middle = JSON.parse(
    caddyHop(layout, {
      listen: '192.0.2.2:24003',
      tlsIn: true,
      upstream: '192.0.2.3:24003',
      tlsOut: true,
      storage: '/d/s',
    }),
  );
  const server = middle.apps.http.servers.hop;
  assert.equal(server.strict_sni_host, false);
  assert.equal(server.tls_connection_policies[0].client_authentication.mode, 'require_and_verify');
  assert.equal(server.routes[0].handle[0].transport.tls.server_name, 'bench-server');
  const edgeIn = JSON.parse(
    caddyHop(layout, {
      listen: '192.0.2.1:24003',
      tlsIn: false,
      upstream: '192.0.2.2:24003',
      tlsOut: true,
      storage: '/d/s',
    }),
  );
  assert.equal(edgeIn.apps.http.servers.hop.tls_connection_policies, undefined);
  assert.equal(edgeIn.apps.tls, undefined);
  for (const peer of L7_PEERS) {
    const hops = peer.hops(layout);
    assert.deepEqual(
      hops.map((h) => h.role),
      ['edge-in', 'middle', 'edge-out'],
    );
    assert.equal(hops[1]?.listen, `192.0.2.2:${peer.port}`);
  }
});
