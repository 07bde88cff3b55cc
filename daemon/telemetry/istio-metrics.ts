/**
 * The data path's metrics with Istio's names and labels (so existing dashboards and Kiali read
 * meshd unchanged), meshd_* extras, and the access log: one line per connection, except that
 * records of connections refused before they carried a byte are rate-limited per kind (a
 * flood of them is summarised); the counters count every connection.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import { type LogEmit, LogLimiter, type LogLimiterOptions } from './log-limiter.js';
import type { LogFields, Logger } from './logger.js';

export interface Peer {
  workload: string;
  namespace: string;
  principal: string;
  ip: string;
  /** From the workload's labels (see peerLabels); empty when unknown. */
  app?: string;
  version?: string;
  canonicalService?: string;
  canonicalRevision?: string;
}

/**
 * Envoy's response flags, as Istio reports them: '-' none, 'UF' upstream connect failure, 'UH'
 * no healthy upstream, 'DC' downstream disconnect, 'UC' upstream connection termination, 'NR' no
 * route (an address or port this side does not serve), 'DENY'
 * refused by policy (meshd's short form of Envoy's 'RBAC').
 */
export type ResponseFlag = '-' | 'UF' | 'UH' | 'DC' | 'UC' | 'NR' | 'DENY';

export interface ConnectionRecord {
  direction: 'outbound' | 'inbound';
  /** hbone | plaintext | passthrough */
  transport: string;
  source: Peer;
  destination: Peer & { port: number; service: string };
  sentBytes: number;
  receivedBytes: number;
  durationMs: number;
  responseFlags: ResponseFlag;
  error?: string;
  policy?: string;
}

/** Istio's standard label set, the same the waypoint's request metrics carry. */
const TCP_LABELS = [
  'reporter',
  'source_workload',
  'source_workload_namespace',
  'source_principal',
  'source_app',
  'source_version',
  'source_canonical_service',
  'source_canonical_revision',
  'source_cluster',
  'destination_workload',
  'destination_workload_namespace',
  'destination_principal',
  'destination_app',
  'destination_version',
  'destination_service',
  'destination_service_name',
  'destination_service_namespace',
  'destination_canonical_service',
  'destination_canonical_revision',
  'destination_cluster',
  'request_protocol',
  'connection_security_policy',
  'response_flags',
] as const;

/** Istio's default cluster name, which its dashboards expect. */
export const CLUSTER_NAME = 'Kubernetes';

const UNKNOWN = 'unknown';
const ACCESS_MSG = 'connection complete';

type TcpLabel = (typeof TCP_LABELS)[number];
type LabelSource = Pick<
  ConnectionRecord,
  'direction' | 'transport' | 'source' | 'destination' | 'responseFlags'
>;

/** The four TCP counters of one label set, kept here and handed to prom-client per scrape. */
interface TcpSeries {
  labels: Record<TcpLabel, string>;
  opened: number;
  closed: number;
  sent: number;
  received: number;
}

/**
 * A counter whose values live in `series` and are copied into prom-client when the registry
 * is read. prom-client hashes all ten label values on every inc() (sorting and joining them):
 * a tenth of everything the agent allocated per connection. A scrape every few seconds costs
 * one inc per series instead.
 */
function scrapedCounter(
  registry: Registry,
  name: string,
  help: string,
  series: ReadonlyMap<string, TcpSeries>,
  value: (s: TcpSeries) => number,
): Counter<TcpLabel> {
  return new Counter({
    name,
    help,
    labelNames: TCP_LABELS,
    registers: [registry],
    collect() {
      this.reset();
      for (const s of series.values()) {
        const v = value(s);
        if (v > 0) this.inc(s.labels, v);
      }
    },
  });
}

/**
 * A connection refused or failed before any byte went either way: a client or a peer can make
 * these as fast as it can connect, so their records are rate-limited. A connection that
 * carried traffic always gets its record.
 */
const refusedEmpty = (r: ConnectionRecord): boolean =>
  r.responseFlags !== '-' && r.sentBytes === 0 && r.receivedBytes === 0;

/** The kind of a refused record: what an operator tells floods apart by, never an address. */
const accessKey = (r: ConnectionRecord): string =>
  `${r.direction}\0${r.responseFlags}\0${r.source.workload}\0${r.source.namespace}\0${r.destination.workload}\0${r.destination.namespace}\0${r.policy ?? ''}`;

export interface DataplaneMetricsOptions {
  /** The rate limit of warnings and refused connections' records (tests inject a clock). */
  logLimits?: Omit<LogLimiterOptions, 'onSuppressed'>;
}

export class DataplaneMetrics {
  readonly denied: Counter<'reason' | 'policy'>;
  readonly rejected: Counter<'listener' | 'reason'>;
  readonly captured: Gauge;
  readonly suppressed: Counter<'kind'>;
  /** For warnings a peer or a client can cause per connection (rateLimitedLogger). */
  readonly warnings: LogLimiter;
  readonly #access: LogLimiter;
  readonly #series = new Map<string, TcpSeries>();
  readonly #warn: LogEmit;
  readonly #info: LogEmit;

  constructor(registry: Registry, accessLog: Logger, options: DataplaneMetricsOptions = {}) {
    const counter = (name: string, help: string, value: (s: TcpSeries) => number) =>
      scrapedCounter(registry, name, help, this.#series, value);
    counter('istio_tcp_connections_opened_total', 'TCP connections opened', (s) => s.opened);
    counter('istio_tcp_connections_closed_total', 'TCP connections closed', (s) => s.closed);
    counter(
      'istio_tcp_sent_bytes_total',
      'Bytes sent by the destination to the source (response direction)',
      (s) => s.sent,
    );
    counter(
      'istio_tcp_received_bytes_total',
      'Bytes received by the destination from the source (request direction)',
      (s) => s.received,
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
    this.suppressed = new Counter({
      name: 'meshd_log_lines_suppressed_total',
      help: 'Log lines left out by the rate limit and summarised, by kind (warning, access)',
      labelNames: ['kind'],
      registers: [registry],
    });
    this.warnings = this.#limiter('warning', options.logLimits);
    this.#access = this.#limiter('access', options.logLimits);
    this.#warn = (fields, msg) => accessLog.warn(fields, msg);
    this.#info = (fields, msg) => accessLog.info(fields, msg);
  }

  #limiter(kind: 'warning' | 'access', options: DataplaneMetricsOptions['logLimits']): LogLimiter {
    // Shown at 0 from the start, so that a dashboard can tell "none" from "not reported".
    this.suppressed.inc({ kind }, 0);
    const count = this.suppressed.labels({ kind });
    return new LogLimiter({ ...options, onSuppressed: () => count.inc() });
  }

  /** Writes the summaries of the current window; later lines are no longer limited. */
  closeLogs(): void {
    this.warnings.close();
    this.#access.close();
  }

  #labels(r: LabelSource): Record<TcpLabel, string> {
    const { source: src, destination: dst } = r;
    // `service` is "<name>.<namespace>"; Istio's destination_service is the FQDN.
    const [serviceName = '', serviceNamespace = ''] = (dst.service ?? '').split('.');
    return {
      reporter: r.direction === 'outbound' ? 'source' : 'destination',
      source_workload: src.workload || UNKNOWN,
      source_workload_namespace: src.namespace || UNKNOWN,
      source_principal: src.principal || UNKNOWN,
      source_app: src.app || UNKNOWN,
      source_version: src.version || UNKNOWN,
      source_canonical_service: src.canonicalService || src.workload || UNKNOWN,
      source_canonical_revision: src.canonicalRevision || 'latest',
      source_cluster: CLUSTER_NAME,
      destination_workload: dst.workload || UNKNOWN,
      destination_workload_namespace: dst.namespace || UNKNOWN,
      destination_principal: dst.principal || UNKNOWN,
      destination_app: dst.app || UNKNOWN,
      destination_version: dst.version || UNKNOWN,
      destination_service: dst.service ? `${dst.service}.svc.cluster.local` : UNKNOWN,
      destination_service_name: serviceName || UNKNOWN,
      destination_service_namespace: serviceNamespace || UNKNOWN,
      destination_canonical_service: dst.canonicalService || dst.workload || UNKNOWN,
      destination_canonical_revision: dst.canonicalRevision || 'latest',
      destination_cluster: CLUSTER_NAME,
      request_protocol: 'tcp',
      connection_security_policy: r.transport === 'hbone' ? 'mutual_tls' : 'none',
      response_flags: r.responseFlags,
    };
  }

  #seriesOf(r: LabelSource): TcpSeries {
    const { source: src, destination: dst } = r;
    const key = `${r.direction}\0${r.transport === 'hbone'}\0${r.responseFlags}\0${src.workload}\0${src.namespace}\0${src.principal}\0${src.app ?? ''}\0${src.version ?? ''}\0${dst.workload}\0${dst.namespace}\0${dst.principal}\0${dst.app ?? ''}\0${dst.version ?? ''}\0${dst.service ?? ''}`;
    let series = this.#series.get(key);
    if (!series) {
      series = { labels: this.#labels(r), opened: 0, closed: 0, sent: 0, received: 0 };
      this.#series.set(key, series);
    }
    return series;
  }

  /** Counts a connection that reached its destination (istio_tcp_connections_opened_total). */
  opened(r: LabelSource): void {
    this.#seriesOf(r).opened += 1;
  }

  /** One access-log line and the closed/bytes counters for a finished connection. */
  finish(record: ConnectionRecord): void {
    const series = this.#seriesOf(record);
    series.closed += 1;
    series.sent += record.sentBytes;
    series.received += record.receivedBytes;
    const fields: LogFields = {
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
    const emit = record.error || record.policy ? this.#warn : this.#info;
    if (refusedEmpty(record)) this.#access.submit(accessKey(record), emit, fields, ACCESS_MSG);
    else emit(fields, ACCESS_MSG);
  }
}
