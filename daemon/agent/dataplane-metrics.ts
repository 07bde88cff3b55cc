/**
 * The data path's metrics with Istio's names and labels (so existing dashboards and Kiali read
 * meshd unchanged), meshd_* extras, and the access log: one line per connection.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from '../telemetry/index.js';

export interface Peer {
  workload: string;
  namespace: string;
  principal: string;
  ip: string;
}

export interface ConnectionRecord {
  direction: 'outbound' | 'inbound';
  /** hbone | plaintext | passthrough */
  transport: string;
  source: Peer;
  destination: Peer & { port: number; service: string };
  sentBytes: number;
  receivedBytes: number;
  durationMs: number;
  /** Istio-style response flag: '-' ok, 'UF' upstream failure, 'UH' no healthy upstream, 'DENY' ... */
  responseFlags: string;
  error?: string;
  policy?: string;
}

const TCP_LABELS = [
  'reporter',
  'source_workload',
  'source_workload_namespace',
  'source_principal',
  'destination_workload',
  'destination_workload_namespace',
  'destination_principal',
  'destination_service',
  'connection_security_policy',
  'response_flags',
] as const;

const UNKNOWN = 'unknown';

export class DataplaneMetrics {
  readonly opened: Counter<(typeof TCP_LABELS)[number]>;
  readonly closed: Counter<(typeof TCP_LABELS)[number]>;
  readonly sent: Counter<(typeof TCP_LABELS)[number]>;
  readonly received: Counter<(typeof TCP_LABELS)[number]>;
  readonly denied: Counter<'reason' | 'policy'>;
  readonly rejected: Counter<'listener' | 'reason'>;
  readonly captured: Gauge;
  readonly #log: Logger;

  constructor(registry: Registry, accessLog: Logger) {
    const counter = (name: string, help: string) =>
      new Counter({ name, help, labelNames: TCP_LABELS, registers: [registry] });
    this.opened = counter('istio_tcp_connections_opened_total', 'TCP connections opened');
    this.closed = counter('istio_tcp_connections_closed_total', 'TCP connections closed');
    this.sent = counter(
      'istio_tcp_sent_bytes_total',
      'Bytes sent by the destination to the source (response direction)',
    );
    this.received = counter(
      'istio_tcp_received_bytes_total',
      'Bytes received by the destination from the source (request direction)',
    );
    this.denied = new Counter({
      name: 'meshd_policy_denials_total',
      help: 'Connections refused by policy',
      labelNames: ['reason', 'policy'],
      registers: [registry],
    });
    this.rejected = new Counter({
      name: 'meshd_listener_rejections_total',
      help: 'Connections or streams refused before reaching an application',
      labelNames: ['listener', 'reason'],
      registers: [registry],
    });
    this.captured = new Gauge({
      name: 'meshd_captured_workloads',
      help: 'Local workloads whose traffic is captured',
      registers: [registry],
    });
    this.#log = accessLog;
  }

  labels(
    r: Pick<
      ConnectionRecord,
      'direction' | 'transport' | 'source' | 'destination' | 'responseFlags'
    >,
  ) {
    return {
      reporter: r.direction === 'outbound' ? 'source' : 'destination',
      source_workload: r.source.workload || UNKNOWN,
      source_workload_namespace: r.source.namespace || UNKNOWN,
      source_principal: r.source.principal || UNKNOWN,
      destination_workload: r.destination.workload || UNKNOWN,
      destination_workload_namespace: r.destination.namespace || UNKNOWN,
      destination_principal: r.destination.principal || UNKNOWN,
      destination_service: r.destination.service || UNKNOWN,
      connection_security_policy: r.transport === 'hbone' ? 'mutual_tls' : 'none',
      response_flags: r.responseFlags,
    };
  }

  /** One access-log line and the closed/bytes counters for a finished connection. */
  finish(record: ConnectionRecord): void {
    const labels = this.labels(record);
    this.closed.inc(labels);
    this.sent.inc(labels, record.sentBytes);
    this.received.inc(labels, record.receivedBytes);
    const fields = {
      direction: record.direction,
      transport: record.transport,
      src: {
        workload: record.source.workload,
        namespace: record.source.namespace,
        identity: record.source.principal,
        addr: record.source.ip,
      },
      dst: {
        workload: record.destination.workload,
        namespace: record.destination.namespace,
        identity: record.destination.principal,
        addr: `${record.destination.ip}:${record.destination.port}`,
        service: record.destination.service || undefined,
      },
      bytes_sent: record.sentBytes,
      bytes_received: record.receivedBytes,
      duration_ms: Math.round(record.durationMs),
      response_flags: record.responseFlags,
      error: record.error,
      policy: record.policy,
    };
    if (record.error || record.policy) this.#log.warn(fields, 'connection complete');
    else this.#log.info(fields, 'connection complete');
  }
}
