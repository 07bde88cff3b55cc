// The TCP counters keep their totals per label set and hand them to prom-client per scrape:
// what /metrics shows must be the totals, the same on every scrape, with Istio's labels.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { type ConnectionRecord, DataplaneMetrics } from '../../daemon/agent/dataplane-metrics.js';
import { createJsonLogger } from '../../daemon/telemetry/index.js';

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
