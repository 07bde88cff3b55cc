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
  /** A name usable as a DNS label (node names, namespaces). */
  dnsLabel(raw: string): string {
    if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(raw)) {
      throw new Error('must be a DNS label: lowercase letters, digits and "-", at most 63');
    }
    return raw;
  },
};

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
const logLevel = parse.oneOf<LogLevel>('fatal', 'error', 'warn', 'info', 'debug', 'trace');

export interface AgentConfig {
  nodeName: string;
  serverAddress: string;
  stateDir: string;
  adminPort: number;
  metricsPort: number;
  readinessPort: number;
  logLevel: LogLevel;
}

export const agentSpec: Spec<AgentConfig> = {
  nodeName: { env: 'NODE_NAME', parse: parse.dnsLabel },
  serverAddress: { env: 'SERVER', parse: parse.string, default: '127.0.0.1:15012' },
  stateDir: { env: 'STATE_DIR', parse: parse.string, default: '/var/lib/meshd/agent' },
  adminPort: { env: 'ADMIN_PORT', parse: parse.port, default: 15000 },
  metricsPort: { env: 'METRICS_PORT', parse: parse.port, default: 15020 },
  readinessPort: { env: 'READINESS_PORT', parse: parse.port, default: 15021 },
  logLevel: { env: 'LOG_LEVEL', parse: logLevel, default: 'info' },
};

export interface ServerConfig {
  listenAddress: string;
  grpcPort: number;
  monitoringPort: number;
  dataDir: string;
  trustDomain: string;
  logLevel: LogLevel;
}

export const serverSpec: Spec<ServerConfig> = {
  listenAddress: { env: 'LISTEN_ADDRESS', parse: parse.string, default: '0.0.0.0' },
  grpcPort: { env: 'GRPC_PORT', parse: parse.port, default: 15012 },
  monitoringPort: { env: 'MONITORING_PORT', parse: parse.port, default: 15014 },
  dataDir: { env: 'DATA_DIR', parse: parse.string, default: '/var/lib/meshd/server' },
  trustDomain: { env: 'TRUST_DOMAIN', parse: parse.string, default: 'cluster.local' },
  logLevel: { env: 'LOG_LEVEL', parse: logLevel, default: 'info' },
};

export const loadAgentConfig = (env: Env): Readonly<AgentConfig> => readConfig(agentSpec, env);
export const loadServerConfig = (env: Env): Readonly<ServerConfig> => readConfig(serverSpec, env);
