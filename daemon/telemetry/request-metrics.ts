/**
 * Istio's request metrics (`istio_requests_total`, `istio_request_duration_milliseconds`,
 * `istio_request_bytes`, `istio_response_bytes`) with Istio's standard labels, so dashboards
 * built for Istio read a meshd waypoint unchanged. Series are kept in a Map keyed by the
 * values that vary and rendered as Prometheus text at scrape time: prom-client would hash all
 * 25 label values on every observation, a large share of a request's budget.
 */

/** Istio's duration buckets (milliseconds). */
export const DURATION_BUCKETS_MS = [
  0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000,
  1800000, 3600000,
] as const;

/** Istio's size buckets (bytes): powers of ten up to 1 GB. */
export const SIZE_BUCKETS = [1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9] as const;

/** A workload as the labels see it (empty strings become "unknown"). */
export interface LabelledPeer {
  workload: string;
  namespace: string;
  principal: string;
  app: string;
  version: string;
  canonicalService: string;
  canonicalRevision: string;
}

export interface RequestSample {
  source: LabelledPeer;
  destination: LabelledPeer;
  /** FQDN: `<name>.<namespace>.svc.cluster.local`, or the address for a workload. */
  destinationService: string;
  destinationServiceName: string;
  destinationServiceNamespace: string;
  requestProtocol: 'http' | 'grpc' | 'tcp';
  responseCode: number;
  grpcStatus: number | undefined;
  responseFlags: string;
  durationMs: number;
  requestBytes: number;
  responseBytes: number;
}

interface Series {
  labels: string;
  count: number;
  duration: Histogram;
  requestBytes: Histogram;
  responseBytes: Histogram;
}

interface Histogram {
  buckets: number[];
  sum: number;
}

const UNKNOWN = 'unknown';
const show = (v: string) => (v === '' ? UNKNOWN : v);
const escapeLabel = (v: string) =>
  v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

/** Labels of a workload from its own labels, as Istio derives them. */
export function peerLabels(
  workload: { name: string; namespace: string; labels: Record<string, string> } | undefined,
  principal: string,
): LabelledPeer {
  const l = workload?.labels ?? {};
  const app = l.app ?? l['app.kubernetes.io/name'] ?? '';
  const version = l.version ?? l['app.kubernetes.io/version'] ?? '';
  return {
    workload: workload?.name ?? '',
    namespace: workload?.namespace ?? '',
    principal,
    app,
    version,
    canonicalService: l['service.istio.io/canonical-name'] ?? (app || (workload?.name ?? '')),
    canonicalRevision: l['service.istio.io/canonical-revision'] ?? (version || 'latest'),
  };
}

function observe(h: Histogram, bounds: readonly number[], v: number): void {
  h.sum += v;
  for (let i = 0; i < bounds.length; i++) {
    if (v <= (bounds[i] as number)) {
      h.buckets[i] = (h.buckets[i] as number) + 1;
      return;
    }
  }
}

export class RequestMetrics {
  readonly #reporter: string;
  readonly #cluster: string;
  readonly #series = new Map<string, Series>();
  readonly #maxSeries: number;
  /** Samples not kept because the series limit was reached (label explosion guard). */
  dropped = 0;

  constructor(options: { reporter: string; cluster: string; maxSeries?: number }) {
    this.#reporter = options.reporter;
    this.#cluster = options.cluster;
    this.#maxSeries = options.maxSeries ?? 10_000;
  }

  record(s: RequestSample): void {
    const grpc = s.grpcStatus === undefined ? '' : String(s.grpcStatus);
    const key = `${s.source.namespace}\0${s.source.workload}\0${s.source.principal}\0${s.destination.namespace}\0${s.destination.workload}\0${s.destinationService}\0${s.requestProtocol}\0${s.responseCode}\0${grpc}\0${s.responseFlags}`;
    let series = this.#series.get(key);
    if (!series) {
      if (this.#series.size >= this.#maxSeries) {
        this.dropped++;
        return;
      }
      series = {
        labels: this.#labels(s, grpc),
        count: 0,
        duration: { buckets: DURATION_BUCKETS_MS.map(() => 0), sum: 0 },
        requestBytes: { buckets: SIZE_BUCKETS.map(() => 0), sum: 0 },
        responseBytes: { buckets: SIZE_BUCKETS.map(() => 0), sum: 0 },
      };
      this.#series.set(key, series);
    }
    series.count++;
    observe(series.duration, DURATION_BUCKETS_MS, s.durationMs);
    observe(series.requestBytes, SIZE_BUCKETS, s.requestBytes);
    observe(series.responseBytes, SIZE_BUCKETS, s.responseBytes);
  }

  /** Prometheus text exposition of the four metrics. */
  render(): string {
    const out: string[] = [
      '# HELP istio_requests_total Requests, by Istio standard labels.',
      '# TYPE istio_requests_total counter',
    ];
    for (const s of this.#series.values()) out.push(`istio_requests_total{${s.labels}} ${s.count}`);
    histogram(
      out,
      'istio_request_duration_milliseconds',
      'Request duration (ms).',
      this.#series,
      (s) => s.duration,
      DURATION_BUCKETS_MS,
    );
    histogram(
      out,
      'istio_request_bytes',
      'Request body size (bytes).',
      this.#series,
      (s) => s.requestBytes,
      SIZE_BUCKETS,
    );
    histogram(
      out,
      'istio_response_bytes',
      'Response body size (bytes).',
      this.#series,
      (s) => s.responseBytes,
      SIZE_BUCKETS,
    );
    return `${out.join('\n')}\n`;
  }

  #labels(s: RequestSample, grpc: string): string {
    const pairs: [string, string][] = [
      ['reporter', this.#reporter],
      ['source_workload', show(s.source.workload)],
      ['source_workload_namespace', show(s.source.namespace)],
      ['source_principal', show(s.source.principal)],
      ['source_app', show(s.source.app)],
      ['source_version', show(s.source.version)],
      ['source_canonical_service', show(s.source.canonicalService)],
      ['source_canonical_revision', show(s.source.canonicalRevision)],
      ['source_cluster', this.#cluster],
      ['destination_workload', show(s.destination.workload)],
      ['destination_workload_namespace', show(s.destination.namespace)],
      ['destination_principal', show(s.destination.principal)],
      ['destination_app', show(s.destination.app)],
      ['destination_version', show(s.destination.version)],
      ['destination_service', show(s.destinationService)],
      ['destination_service_name', show(s.destinationServiceName)],
      ['destination_service_namespace', show(s.destinationServiceNamespace)],
      ['destination_canonical_service', show(s.destination.canonicalService)],
      ['destination_canonical_revision', show(s.destination.canonicalRevision)],
      ['destination_cluster', this.#cluster],
      ['request_protocol', s.requestProtocol],
      ['response_code', String(s.responseCode)],
      ['grpc_response_status', grpc],
      ['response_flags', s.responseFlags],
      ['connection_security_policy', 'mutual_tls'],
    ];
    return pairs.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',');
  }
}

function histogram(
  out: string[],
  name: string,
  help: string,
  all: Map<string, Series>,
  pick: (s: Series) => Histogram,
  bounds: readonly number[],
): void {
  out.push(`# HELP ${name} ${help}`, `# TYPE ${name} histogram`);
  for (const s of all.values()) {
    const h = pick(s);
    let cumulative = 0;
    bounds.forEach((b, i) => {
      cumulative += h.buckets[i] as number;
      out.push(`${name}_bucket{${s.labels},le="${b}"} ${cumulative}`);
    });
    out.push(`${name}_bucket{${s.labels},le="+Inf"} ${s.count}`);
    out.push(`${name}_sum{${s.labels}} ${h.sum}`);
    out.push(`${name}_count{${s.labels}} ${s.count}`);
  }
}
