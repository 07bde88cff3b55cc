/**
 * The waypoint's L7 engine: what the HBONE side hands it (a tunnel's Duplex and context), what
 * it asks of the rest of the waypoint (policy, upstream connections, access records), and its
 * limits. Everything is injected: the engine holds no global state.
 */
import type { Duplex } from 'node:stream';

/** Who sent the tunnel and where it was going (the HBONE CONNECT of the source agent). */
export interface DownstreamContext {
  /** SPIFFE ID of the tunnel's client certificate; undefined when there was none. */
  sourcePrincipal: string | undefined;
  sourceIp: string;
  /** The original destination: a Service VIP and port, or a pod IP and port. */
  destination: { ip: string; port: number };
  /** The CONNECT `:authority` as sent (ip:port). */
  authority: string;
}

/** A Service port's `appProtocol`; undefined = detect from the first bytes. */
export type AppProtocol = 'http' | 'http2' | 'grpc' | 'tcp' | undefined;

export interface Endpoint {
  ip: string;
  port: number;
  /** Stable key for pools and load counts, e.g. the workload uid or ip:port. */
  id: string;
}

export interface L7Target {
  protocol: AppProtocol;
  /** The current endpoints; read again for every request (and every opaque connection). */
  endpoints(): readonly Endpoint[];
}

export type HttpVersion = 'HTTP/1.1' | 'HTTP/2';

/** What policy sees of a request. `headers` are Node's lower-case header objects (not copied). */
export interface RequestView {
  method: string;
  path: string;
  authority: string;
  headers: Readonly<Record<string, string | string[] | undefined>>;
  protocol: HttpVersion;
}

export type AuthorizeResult =
  | { allowed: true }
  | { allowed: false; policy?: string; rule?: number; message?: string };

/**
 * Envoy's response flags as Istio reports them: '-' none, 'UF' upstream connect failure, 'UH'
 * no healthy upstream, 'DC' downstream disconnect, 'UC' upstream connection termination, 'URX'
 * upstream retry limit exceeded, 'DPE' downstream protocol error (400/431 on bad input), 'UT'
 * upstream request timeout, 'RL' rate limited (rapid reset), 'DENY' an opaque connection refused
 * by policy.
 */
export type ResponseFlag = '-' | 'UF' | 'UH' | 'DC' | 'UC' | 'URX' | 'DPE' | 'UT' | 'RL' | 'DENY';

/** One per HTTP request (proxied, denied, refused as bad input, failed) or opaque connection. */
export interface RequestRecord {
  ctx: DownstreamContext;
  protocol: HttpVersion | 'tcp';
  method: string | undefined;
  authority: string | undefined;
  path: string | undefined;
  /** HTTP status sent downstream; 0 when none was (downstream gone first, opaque TCP). */
  status: number;
  grpcStatus: number | undefined;
  durationMs: number;
  /** Body bytes from the client (opaque: every byte client → upstream). */
  requestBytes: number;
  /** Body bytes to the client (opaque: every byte upstream → client). */
  responseBytes: number;
  /** Endpoint id the request went to (the last one tried). */
  endpoint: string | undefined;
  responseFlags: ResponseFlag;
  /** The denying policy when authorization refused the request. */
  policy: string | undefined;
  /** The trace id of a W3C `traceparent` header, if one came. */
  traceId: string | undefined;
  requestId: string | undefined;
}

/** Stable codes of what the engine logs (bad input, failures); low cardinality. */
export type L7LogCode =
  | 'l7.bad-request'
  | 'l7.header-overflow'
  | 'l7.headers-timeout'
  | 'l7.upstream-connect'
  | 'l7.upstream-reset'
  | 'l7.rapid-reset'
  | 'l7.authorize-threw'
  | 'l7.record-threw'
  | 'l7.h2-session';

export interface L7LogEvent {
  level: 'warn' | 'info' | 'debug';
  code: L7LogCode;
  message: string;
  /** How many events of this code were suppressed since the last one logged. */
  suppressed: number;
  fields?: Record<string, unknown>;
}

export interface L7Hooks {
  /** Called for every request before any upstream contact; a throw counts as a denial. */
  authorize(req: RequestView, ctx: DownstreamContext): AuthorizeResult;
  /**
   * Called once for a tunnel carried as opaque TCP, before any upstream contact (policy has no
   * request to look at, only the connection); a throw counts as a denial. Absent: allowed.
   */
  authorizeConnection?(ctx: DownstreamContext): AuthorizeResult;
  /** Opens a raw byte stream to the endpoint (production: an HBONE stream to podIP:15008). */
  connect(endpoint: Endpoint, signal: AbortSignal): Promise<Duplex>;
  /** Exactly one per request / per opaque connection. Must not throw (a throw is logged). */
  record(r: RequestRecord): void;
  /** Warnings about bad input and failures, rate-limited per code by the engine. */
  log?(event: L7LogEvent): void;
}

export interface L7Limits {
  /** Request header block bound (HTTP/1.1 431, HTTP/2 SETTINGS_MAX_HEADER_LIST_SIZE). */
  maxHeaderBytes: number;
  /** A request's header block must be complete this long after it started (slowloris). */
  headersTimeoutMs: number;
  /** An idle keep-alive HTTP/1.1 connection is closed after this. */
  keepAliveTimeoutMs: number;
  /** Whole-request bound; 0 = off (long streams, gRPC). */
  requestTimeoutMs: number;
  /** Protocol detection waits this long for the client's first bytes, then goes opaque. */
  detectTimeoutMs: number;
  /** Downstream and upstream HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS. */
  maxConcurrentStreams: number;
  /** Endpoints tried per request when connecting fails. */
  maxConnectAttempts: number;
  /** One hooks.connect() is abandoned after this. */
  connectTimeoutMs: number;
  /** HTTP/2 streams a client may cancel before their answer: a burst, then per second. */
  cancelledStreamBurst: number;
  cancelledStreamRate: number;
  /** HTTP/2 stream flow-control window, both sides (the connection window is 4x this). */
  h2WindowBytes: number;
  /** close() waits this long for in-flight work before destroying it. */
  drainTimeoutMs: number;
  /** An idle pooled upstream HTTP/2 session or HTTP/1.1 connection is closed after this. */
  upstreamIdleMs: number;
}

export const DEFAULT_L7_LIMITS: Readonly<L7Limits> = Object.freeze({
  maxHeaderBytes: 16 * 1024,
  headersTimeoutMs: 10_000,
  keepAliveTimeoutMs: 60_000,
  requestTimeoutMs: 0,
  detectTimeoutMs: 300,
  maxConcurrentStreams: 100,
  maxConnectAttempts: 3,
  connectTimeoutMs: 5_000,
  cancelledStreamBurst: 100,
  cancelledStreamRate: 50,
  h2WindowBytes: 1024 * 1024,
  drainTimeoutMs: 10_000,
  upstreamIdleMs: 30_000,
});
