/**
 * Configuration: one typed, frozen Config per role, read once at start-up from `MESHD_*`
 * environment variables (flags override them in main.ts). Nothing reads process.env later.
 */
import { MeshdError } from './errors.js';

export const ENV_PREFIX = 'MESHD_';

export class ConfigError extends MeshdError {
  readonly variable: string;
  readonly value: string | undefined;

  constructor(variable: string, value: string | undefined, reason: string) {
    const shown = value === undefined ? 'unset' : JSON.stringify(value);
    super('MESHD_E_CONFIG', `${variable}=${shown}: ${reason}`);
    this.variable = variable;
    this.value = value;
  }
}

/** Parses one raw string; throws a plain Error whose message is the reason. */
type Parser<T> = (raw: string) => T;

interface Field<T> {
  env: string;
  parse: Parser<T>;
  default?: T;
  /** Unset (or empty) leaves the value undefined instead of being an error; needs no default. */
  optional?: true;
}

export type Spec<C> = { [K in keyof C]: Field<C[K]> };

export type Env = Readonly<Record<string, string | undefined>>;

/** Reads every field of `spec` from `env`; reports all bad variables at once. */
export function readConfig<C>(spec: Spec<C>, env: Env): Readonly<C> {
  const out: Partial<C> = {};
  const errors: ConfigError[] = [];
  for (const key of Object.keys(spec) as (keyof C)[]) {
    const field = spec[key];
    const variable = ENV_PREFIX + field.env;
    const raw = env[variable];
    try {
      if (raw === undefined || raw === '') {
        if (field.optional) {
          out[key] = undefined as C[keyof C];
          continue;
        }
        if (field.default === undefined) throw new Error('required, not set');
        out[key] = field.default;
      } else {
        out[key] = field.parse(raw);
      }
    } catch (err) {
      errors.push(new ConfigError(variable, raw, (err as Error).message));
    }
  }
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) {
    throw new MeshdError('MESHD_E_CONFIG', errors.map((e) => e.message).join('; '), {
      cause: errors,
    });
  }
  return Object.freeze(out as C);
}

export const parse = {
  string: (raw: string): string => raw,
  int(min: number, max: number): Parser<number> {
    return (raw) => {
      if (!/^-?\d+$/.test(raw)) throw new Error('not an integer');
      const n = Number(raw);
      if (n < min || n > max) throw new Error(`must be between ${min} and ${max}`);
      return n;
    };
  },
  port: (raw: string): number => parse.int(0, 65535)(raw),
  bool(raw: string): boolean {
    if (/^(1|true|yes|on)$/i.test(raw)) return true;
    if (/^(0|false|no|off)$/i.test(raw)) return false;
    throw new Error('not a boolean (use true or false)');
  },
  oneOf<T extends string>(...allowed: T[]): Parser<T> {
    return (raw) => {
      if (!(allowed as string[]).includes(raw)) {
        throw new Error(`must be one of ${allowed.join(', ')}`);
      }
      return raw as T;
    };
  },
  /** Durations like 500ms, 30s, 5m, 24h (a bare number is milliseconds). */
  durationMs(raw: string): number {
    const m = /^(\d+)(ms|s|m|h)?$/.exec(raw);
    if (!m) throw new Error('not a duration (examples: 500ms, 30s, 5m, 24h)');
    const unit = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }[m[2] ?? 'ms'] ?? 1;
    return Number(m[1]) * unit;
  },
  /** A duration (as durationMs) between `minMs` and `maxMs`, both inclusive. */
  durationBetween(minMs: number, maxMs: number): Parser<number> {
    return (raw) => {
      const ms = parse.durationMs(raw);
      if (ms < minMs || ms > maxMs) {
        throw new Error(`must be between ${showDuration(minMs)} and ${showDuration(maxMs)}`);
      }
      return ms;
    };
  },
  /** A name usable as a DNS label (node names, namespaces). */
  dnsLabel(raw: string): string {
    if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(raw)) {
      throw new Error('must be a DNS label: lowercase letters, digits and "-", at most 63');
    }
    return raw;
  },
};

/** 90000 → "90s", 3600000 → "1h": the largest unit that divides the value. */
export function showDuration(ms: number): string {
  for (const [unit, size] of [
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1_000],
  ] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
const logLevel = parse.oneOf<LogLevel>('fatal', 'error', 'warn', 'info', 'debug', 'trace');

export interface AgentConfig {
  nodeName: string;
  serverAddress: string;
  /** Node certificate, key and trust bundle live here (key 0600). */
  stateDir: string;
  trustDomain: string;
  /** One-time token for the first start; unused once the node holds a valid certificate. */
  joinToken: string | undefined;
  /** PEM file with the roots to trust before the first join (the CA's bundle.pem). */
  caBundleFile: string | undefined;
  /** Lifetime requested for workload certificates (the server may clamp it). */
  certTtlMs: number;
  /** How often the trust bundle is fetched again (it changes during a root rotation). */
  bundleRefreshMs: number;
  /** SO_MARK on every socket the agent opens; the capture rules let marked packets pass. */
  captureMark: number;
  connectTimeoutMs: number;
  handshakeTimeoutMs: number;
  /** Pooled HBONE connections without streams are closed after this long. */
  poolIdleTimeoutMs: number;
  /** Per captured workload: open outbound connections, and connects waiting for a tunnel. */
  maxConnectionsPerWorkload: number;
  maxPendingConnectsPerWorkload: number;
  /** On SIGTERM: how long live connections may take to finish before they are closed. */
  drainTimeoutMs: number;
  /** HBONE connections in the TLS handshake at once (all sources); at the cap the oldest goes. */
  hboneMaxHandshakes: number;
  /** HBONE connections in the TLS handshake at once from one source IP; more are refused. */
  hboneMaxHandshakesPerSource: number;
  /** Streams an HBONE peer may cancel before their answer: a burst, then a rate per second. */
  hboneCancelledStreamBurst: number;
  hboneCancelledStreamRate: number;
  /** How long a source cut off for abuse (rapid reset) has its new connections refused. */
  hbonePenaltyMs: number;
  /** CONNECT streams one source IP may open per second (also the burst). */
  hboneStreamRatePerSource: number;
  /** A tunnel with streams whose peer neither answers a PING nor sends for this long is dead. */
  hboneDeadPeerTimeoutMs: number;
  /** Unix socket meshd-cni talks to (mode 0600). */
  cniSocket: string;
  /** How long a CNI ADD waits for an enrolled workload to be captured. */
  cniCaptureTimeoutMs: number;
  adminPort: number;
  metricsPort: number;
  readinessPort: number;
  logLevel: LogLevel;
  /**
   * V8's optimizing compiler (bin/meshd starts the agent without it): never, or from the moment
   * the agent is ready (less CPU per request, more memory under load; docs/operations.md).
   */
  turbofan: TurbofanMode;
  /**
   * Threads that carry captured traffic: the main thread plus worker threads, each with its
   * own SO_REUSEPORT listeners and HBONE pool (docs/dataplane.md "Data-path threads").
   */
  threads: number;
}

export type TurbofanMode = 'on-ready' | 'off';

export interface ServerConfig {
  /** Address of both the gRPC API and the monitoring endpoint. */
  listenAddress: string;
  grpcPort: number;
  /** /metrics and /healthz/ready. */
  monitoringPort: number;
  /** Server state: the join tokens file. */
  dataDir: string;
  /** Must match the trust domain of the CA in caDir. */
  trustDomain: string;
  logLevel: LogLevel;
  /** The CA directory made by `meshctl ca init` (re-read on SIGHUP). */
  caDir: string;
  /** Longest lifetime of a workload certificate; longer requests are clamped. */
  maxCertTtlMs: number;
  /** Lifetime of node certificates (Join, and node renewals are clamped to it). */
  nodeCertTtlMs: number;
  /** JSON `{"nodes":{"<node>":["spiffe://…"]}}`: extra static node authorization entries. */
  workloadsFile: string | undefined;
  /** Where resources live: file:///path (default: <dataDir>/store) or etcd://host:port,…[/prefix]. */
  store: string | undefined;
}

const MINUTE_MS = 60_000;
const DAY_MS = 24 * 60 * MINUTE_MS;

export const serverSpec: Spec<ServerConfig> = {
  listenAddress: { env: 'LISTEN_ADDRESS', parse: parse.string, default: '0.0.0.0' },
  grpcPort: { env: 'GRPC_PORT', parse: parse.port, default: 15012 },
  monitoringPort: { env: 'MONITORING_PORT', parse: parse.port, default: 15014 },
  dataDir: { env: 'DATA_DIR', parse: parse.string, default: '/var/lib/meshd/server' },
  trustDomain: { env: 'TRUST_DOMAIN', parse: parse.string, default: 'cluster.local' },
  logLevel: { env: 'LOG_LEVEL', parse: logLevel, default: 'info' },
  caDir: { env: 'CA_DIR', parse: parse.string, default: '/etc/meshd/ca' },
  maxCertTtlMs: {
    env: 'CERT_MAX_TTL',
    parse: parse.durationBetween(5 * MINUTE_MS, 90 * DAY_MS),
    default: DAY_MS,
  },
  nodeCertTtlMs: {
    env: 'NODE_CERT_TTL',
    parse: parse.durationBetween(5 * MINUTE_MS, 90 * DAY_MS),
    default: DAY_MS,
  },
  workloadsFile: { env: 'WORKLOADS_FILE', parse: parse.string, optional: true },
  store: { env: 'STORE', parse: parse.string, optional: true },
};

export const agentSpec: Spec<AgentConfig> = {
  nodeName: { env: 'NODE_NAME', parse: parse.dnsLabel },
  serverAddress: { env: 'SERVER', parse: parse.string, default: '127.0.0.1:15012' },
  stateDir: { env: 'STATE_DIR', parse: parse.string, default: '/var/lib/meshd/agent' },
  trustDomain: { env: 'TRUST_DOMAIN', parse: parse.string, default: 'cluster.local' },
  joinToken: { env: 'JOIN_TOKEN', parse: parse.string, optional: true },
  caBundleFile: { env: 'CA_BUNDLE', parse: parse.string, optional: true },
  certTtlMs: {
    env: 'CERT_TTL',
    parse: parse.durationBetween(5_000, 90 * DAY_MS),
    default: DAY_MS,
  },
  bundleRefreshMs: {
    env: 'BUNDLE_REFRESH',
    parse: parse.durationBetween(1_000, DAY_MS),
    default: 5 * MINUTE_MS,
  },
  captureMark: { env: 'CAPTURE_MARK', parse: parse.int(1, 0xffffffff), default: 0x539 },
  connectTimeoutMs: {
    env: 'CONNECT_TIMEOUT',
    parse: parse.durationBetween(100, 120_000),
    default: 5_000,
  },
  handshakeTimeoutMs: {
    env: 'HANDSHAKE_TIMEOUT',
    parse: parse.durationBetween(100, 120_000),
    default: 10_000,
  },
  poolIdleTimeoutMs: {
    env: 'POOL_IDLE_TIMEOUT',
    parse: parse.durationBetween(1_000, DAY_MS),
    default: 60_000,
  },
  maxConnectionsPerWorkload: {
    env: 'MAX_CONNECTIONS_PER_WORKLOAD',
    parse: parse.int(1, 1_000_000),
    default: 10_000,
  },
  maxPendingConnectsPerWorkload: {
    env: 'MAX_PENDING_CONNECTS_PER_WORKLOAD',
    parse: parse.int(1, 100_000),
    default: 1_000,
  },
  cniSocket: { env: 'CNI_SOCKET', parse: parse.string, default: '/run/meshd/cni.sock' },
  cniCaptureTimeoutMs: {
    env: 'CNI_CAPTURE_TIMEOUT',
    parse: parse.durationBetween(1_000, 300_000),
    default: 20_000,
  },
  drainTimeoutMs: {
    env: 'DRAIN_TIMEOUT',
    parse: parse.durationBetween(0, 600_000),
    default: 5_000,
  },
  hboneMaxHandshakes: { env: 'HBONE_MAX_HANDSHAKES', parse: parse.int(1, 100_000), default: 512 },
  hboneMaxHandshakesPerSource: {
    env: 'HBONE_MAX_HANDSHAKES_PER_SOURCE',
    parse: parse.int(1, 100_000),
    default: 64,
  },
  hboneCancelledStreamBurst: {
    env: 'HBONE_CANCELLED_STREAM_BURST',
    parse: parse.int(1, 100_000),
    default: 20,
  },
  hboneCancelledStreamRate: {
    env: 'HBONE_CANCELLED_STREAM_RATE',
    parse: parse.int(0, 100_000),
    default: 5,
  },
  hbonePenaltyMs: {
    env: 'HBONE_PENALTY',
    parse: parse.durationBetween(0, 3_600_000),
    default: 10_000,
  },
  hboneStreamRatePerSource: {
    env: 'HBONE_STREAM_RATE_PER_SOURCE',
    parse: parse.int(1, 10_000_000),
    default: 5_000,
  },
  hboneDeadPeerTimeoutMs: {
    env: 'HBONE_DEAD_PEER_TIMEOUT',
    parse: parse.durationBetween(1_000, 600_000),
    default: 5_000,
  },
  adminPort: { env: 'ADMIN_PORT', parse: parse.port, default: 15000 },
  metricsPort: { env: 'METRICS_PORT', parse: parse.port, default: 15020 },
  readinessPort: { env: 'READINESS_PORT', parse: parse.port, default: 15021 },
  logLevel: { env: 'LOG_LEVEL', parse: logLevel, default: 'info' },
  turbofan: {
    env: 'AGENT_TURBOFAN',
    parse: parse.oneOf<TurbofanMode>('off', 'on-ready'),
    default: 'off',
  },
  threads: { env: 'AGENT_THREADS', parse: parse.int(1, 64), default: 1 },
};

export interface WaypointConfig {
  /** The Waypoint this process is a replica of. */
  waypoint: { namespace: string; name: string };
  /** This replica's Workload name; default `<waypoint>-<address with dashes>`. */
  replica: string | undefined;
  /** The address it serves HBONE on and registers; default the first non-loopback IPv4. */
  address: string | undefined;
  /** The local agent's unix socket (its CNI socket): registration and certificates. */
  agentSocket: string;
  /** Where the last registry state is saved (served while no server answers after a restart). */
  stateDir: string;
  connectTimeoutMs: number;
  /** On SIGTERM: how long requests in flight may take after the agents stop sending. */
  drainTimeoutMs: number;
  /** Certificate lifetime requested; renewed at half of it. */
  certTtlMs: number;
  adminPort: number;
  metricsPort: number;
  readinessPort: number;
  logLevel: LogLevel;
}

function namespacedName(raw: string): { namespace: string; name: string } {
  const [namespace, name, more] = raw.split('/');
  if (!namespace || !name || more !== undefined) {
    throw new Error('must be <namespace>/<name>, like shop/waypoint');
  }
  return { namespace: parse.dnsLabel(namespace), name: parse.dnsLabel(name) };
}

export const waypointSpec: Spec<WaypointConfig> = {
  waypoint: { env: 'WAYPOINT', parse: namespacedName },
  replica: { env: 'WAYPOINT_REPLICA', parse: parse.dnsLabel, optional: true },
  address: { env: 'WAYPOINT_ADDRESS', parse: parse.string, optional: true },
  agentSocket: { env: 'AGENT_SOCKET', parse: parse.string, default: '/run/meshd/cni.sock' },
  stateDir: { env: 'STATE_DIR', parse: parse.string, default: '/var/lib/meshd/waypoint' },
  connectTimeoutMs: {
    env: 'CONNECT_TIMEOUT',
    parse: parse.durationBetween(100, 120_000),
    default: 5_000,
  },
  drainTimeoutMs: {
    env: 'DRAIN_TIMEOUT',
    parse: parse.durationBetween(0, 600_000),
    default: 5_000,
  },
  certTtlMs: {
    env: 'CERT_TTL',
    parse: parse.durationBetween(5_000, 90 * DAY_MS),
    default: DAY_MS,
  },
  adminPort: { env: 'ADMIN_PORT', parse: parse.port, default: 15000 },
  metricsPort: { env: 'METRICS_PORT', parse: parse.port, default: 15020 },
  readinessPort: { env: 'READINESS_PORT', parse: parse.port, default: 15021 },
  logLevel: { env: 'LOG_LEVEL', parse: logLevel, default: 'info' },
};

export const loadWaypointConfig = (env: Env): Readonly<WaypointConfig> =>
  readConfig(waypointSpec, env);
export const loadAgentConfig = (env: Env): Readonly<AgentConfig> => readConfig(agentSpec, env);
export const loadServerConfig = (env: Env): Readonly<ServerConfig> => readConfig(serverSpec, env);
