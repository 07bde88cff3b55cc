// The TCP counters keep their totals per label set and hand them to prom-client per scrape:
// what /metrics shows must be the totals, the same on every scrape, with Istio's labels.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import {
  type ConnectionRecord,
  createJsonLogger,
  DataplaneMetrics,
} from '../../daemon/telemetry/index.js';

const web = {
  workload: 'web',
  namespace: 'shop',
  principal: 'spiffe://td/ns/shop/sa/web',
  ip: '10.0.0.1',
};
const db = {
  workload: 'db',
  namespace: 'data',
  principal: 'spiffe://td/ns/data/sa/db',
  ip: '10.0.0.2',
  port: 5432,
  service: 'db.data.svc',
};

function record(overrides: Partial<ConnectionRecord> = {}): ConnectionRecord {
  return {
    direction: 'outbound',
    transport: 'hbone',
    source: web,
    destination: db,
    sentBytes: 100,
    receivedBytes: 10,
    durationMs: 3,
    responseFlags: '-',
    ...overrides,
  };
}

function sample(text: string, metric: string, ...labels: string[]): number | undefined {
  const line = text
    .split('\n')
    .find((l) => l.startsWith(`${metric}{`) && labels.every((x) => l.includes(x)));
  return line === undefined ? undefined : Number(line.split(' ').at(-1));
}

test('TCP counters: totals per label set, stable across scrapes, Istio labels', async () => {
  const registry = new Registry();
  const lines: string[] = [];
  const metrics = new DataplaneMetrics(registry, createJsonLogger({ write: (l) => lines.push(l) }));
  for (let i = 0; i < 3; i++) {
    metrics.opened(record());
    metrics.finish(record());
  }
  metrics.opened(record({ transport: 'passthrough', destination: { ...db, service: '' } }));
  metrics.finish(record({ responseFlags: 'DENY', policy: 'deny-all', sentBytes: 0 }));

  for (const _scrape of [1, 2]) {
    const text = await registry.metrics();
    const ok = ['response_flags="-"', 'connection_security_policy="mutual_tls"'];
    assert.equal(sample(text, 'istio_tcp_connections_opened_total', ...ok), 3);
    assert.equal(sample(text, 'istio_tcp_connections_closed_total', ...ok), 3);
    assert.equal(sample(text, 'istio_tcp_sent_bytes_total', ...ok), 300);
    assert.equal(sample(text, 'istio_tcp_received_bytes_total', ...ok), 30);
    assert.equal(
      sample(
        text,
        'istio_tcp_connections_opened_total',
        'connection_security_policy="none"',
        'destination_service="unknown"',
        'reporter="source"',
        'source_workload="web"',
        'destination_principal="spiffe://td/ns/data/sa/db"',
      ),
      1,
    );
    assert.equal(sample(text, 'istio_tcp_connections_closed_total', 'response_flags="DENY"'), 1);
    assert.equal(sample(text, 'istio_tcp_sent_bytes_total', 'response_flags="DENY"'), undefined);
  }
  assert.equal(lines.length, 4, 'one access-log line per finished connection');
  assert.match(lines.at(-1) ?? '', /"level":"warn".*"policy":"deny-all"/);
});

test('records of refused connections are rate-limited per kind; traffic records and counters never', async () => {
  const registry = new Registry();
  const lines: Record<string, unknown>[] = [];
  let endWindow: () => void = () => {};
  const metrics = new DataplaneMetrics(
    registry,
    createJsonLogger({ write: (l) => lines.push(JSON.parse(l)) }).child({ log: 'access' }),
    {
      logLimits: {
        burst: 2,
        now: () => 0,
        schedule: (fn) => {
          endWindow = fn;
          return () => {};
        },
      },
    },
  );
  const denied = (i: number) =>
    record({
      direction: 'inbound',
      responseFlags: 'DENY',
      policy: 'data/deny-web',
      sentBytes: 0,
      receivedBytes: 0,
      source: { ...web, ip: `10.0.1.${i}` },
    });
  for (let i = 0; i < 50; i++) metrics.finish(denied(i));
  // Traffic, also ending in an error: always written.
  for (let i = 0; i < 5; i++) metrics.finish(record({ error: 'reset by peer' }));
  metrics.finish(record({ responseFlags: 'UF', sentBytes: 1, receivedBytes: 0 }));
  // Another kind: refused, but towards another destination workload.
  for (let i = 0; i < 3; i++) {
    metrics.finish(
      record({
        responseFlags: 'UF',
        sentBytes: 0,
        receivedBytes: 0,
        destination: { ...db, workload: 'db2' },
      }),
    );
  }
  const complete = (l: Record<string, unknown>) => l.msg === 'connection complete';
  assert.equal(lines.filter(complete).length, 2 + 6 + 2);
  let text = await registry.metrics();
  assert.equal(sample(text, 'istio_tcp_connections_closed_total', 'response_flags="DENY"'), 50);
  assert.equal(sample(text, 'meshd_log_lines_suppressed_total', 'kind="access"'), 48 + 1);
  assert.equal(sample(text, 'meshd_log_lines_suppressed_total', 'kind="warning"'), 0);

  endWindow();
  const summaries = lines.filter((l) => l.suppressed !== undefined);
  assert.deepEqual(
    summaries.map((l) => [l.level, l.log, l.response_flags, l.suppressed, l.msg]),
    [
      ['warn', 'access', 'DENY', 48, 'connection complete (48 more like this in the last 1 s)'],
      // No error, no policy: the level of its records (info), kept by the summary.
      ['info', 'access', 'UF', 1, 'connection complete (1 more like this in the last 1 s)'],
    ],
  );
  assert.equal((summaries[0]?.src as Record<string, unknown> | undefined)?.addr, '10.0.1.49');
  text = await registry.metrics();
  assert.equal(sample(text, 'istio_tcp_connections_closed_total', 'response_flags="DENY"'), 50);
});

test("TCP counters carry Istio's full standard label set: app, version, canonical names, the service's FQDN, name and namespace", async () => {
  const registry = new Registry();
  const metrics = new DataplaneMetrics(registry, createJsonLogger({ write: () => {} }));
  metrics.opened(
    record({
      source: {
        ...web,
        app: 'web',
        version: 'v2',
        canonicalService: 'web',
        canonicalRevision: 'v2',
      },
      destination: {
        ...db,
        service: 'db.data',
        app: 'db',
        version: '',
        canonicalService: 'db',
        canonicalRevision: '',
      },
    }),
  );
  const text = await registry.metrics();
  assert.equal(
    sample(
      text,
      'istio_tcp_connections_opened_total',
      'source_app="web"',
      'source_version="v2"',
      'source_canonical_service="web"',
      'source_canonical_revision="v2"',
      'source_cluster="Kubernetes"',
      'destination_app="db"',
      'destination_version="unknown"',
      'destination_canonical_revision="latest"',
      'destination_service="db.data.svc.cluster.local"',
      'destination_service_name="db"',
      'destination_service_namespace="data"',
      'destination_cluster="Kubernetes"',
      'request_protocol="tcp"',
    ),
    1,
  );
});
