/**
 * What the engine's protocol handlers share: the injected hooks and limits, the per-endpoint
 * load counts, upstream connecting with fallbacks, rate-limited logging, and the tunnel table.
 */
import type { ServerHttp2Session } from 'node:http2';
import type { Duplex } from 'node:stream';
import { LoadCounter, pickEndpoint } from './balance.js';
import type { TunnelProtocol } from './detect.js';
import { socketLike } from './pump.js';
import type {
  AuthorizeResult,
  DownstreamContext,
  Endpoint,
  L7Hooks,
  L7Limits,
  L7LogCode,
  L7LogEvent,
  L7Target,
  RequestRecord,
  RequestView,
} from './types.js';

/** A token bucket: `burst` events at once, then `ratePerSecond`; time comes from the caller. */
export class TokenBucket {
  readonly #burst: number;
  readonly #rate: number;
  #tokens: number;
  #last: number;

  constructor(burst: number, ratePerSecond: number, nowMs: number) {
    this.#burst = burst;
    this.#rate = ratePerSecond;
    this.#tokens = burst;
    this.#last = nowMs;
  }

  take(nowMs: number): boolean {
    if (nowMs > this.#last) {
      this.#tokens = Math.min(
        this.#burst,
        this.#tokens + ((nowMs - this.#last) * this.#rate) / 1000,
      );
      this.#last = nowMs;
    }
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}

export interface Tunnel {
  readonly stream: Duplex;
  readonly ctx: DownstreamContext;
  readonly target: L7Target;
  protocol: TunnelProtocol | 'detecting';
  /** HTTP requests / streams in flight on this tunnel. */
  active: number;
  session: ServerHttp2Session | undefined;
  cancels: TokenBucket | undefined;
}

export type ConnectOutcome =
  | { ok: true; endpoint: Endpoint; stream: Duplex | undefined }
  | { ok: false; flag: 'UH' | 'UF'; endpoint: Endpoint | undefined; attempts: number };

export interface EngineCounters {
  tunnels: number;
  tunnelsTotal: number;
  http1Tunnels: number;
  h2cTunnels: number;
  opaqueTunnels: number;
  requestsActive: number;
  requestsTotal: number;
  denied: number;
  badRequests: number;
  connectFailures: number;
  rapidResets: number;
}

/** One log line per code per this window; the rest are counted and reported with the next. */
export const LOG_WINDOW_MS = 10_000;

export class EngineCore {
  readonly hooks: L7Hooks;
  readonly limits: Readonly<L7Limits>;
  readonly random: () => number;
  readonly now: () => number;
  readonly load = new LoadCounter();
  readonly tunnels = new Set<Tunnel>();
  readonly counters: EngineCounters = {
    tunnels: 0,
    tunnelsTotal: 0,
    http1Tunnels: 0,
    h2cTunnels: 0,
    opaqueTunnels: 0,
    requestsActive: 0,
    requestsTotal: 0,
    denied: 0,
    badRequests: 0,
    connectFailures: 0,
    rapidResets: 0,
  };
  draining = false;
  readonly #logged = new Map<L7LogCode, { at: number; suppressed: number }>();

  constructor(hooks: L7Hooks, limits: L7Limits, random: () => number, now: () => number) {
    this.hooks = hooks;
    this.limits = limits;
    this.random = random;
    this.now = now;
  }

  log(
    level: L7LogEvent['level'],
    code: L7LogCode,
    message: string,
    fields?: Record<string, unknown>,
  ): void {
    const log = this.hooks.log;
    if (!log) return;
    const now = this.now();
    const seen = this.#logged.get(code);
    if (seen && now - seen.at < LOG_WINDOW_MS) {
      seen.suppressed++;
      return;
    }
    const suppressed = seen?.suppressed ?? 0;
    this.#logged.set(code, { at: now, suppressed: 0 });
    try {
      log(
        fields
          ? { level, code, message, suppressed, fields }
          : { level, code, message, suppressed },
      );
    } catch {
      // a logger that throws must not break the data path
    }
  }

  record(r: RequestRecord): void {
    try {
      this.hooks.record(r);
    } catch (err) {
      this.log('warn', 'l7.record-threw', 'the record hook threw', { err: String(err) });
    }
  }

  authorizeConnection(ctx: DownstreamContext): AuthorizeResult {
    const hook = this.hooks.authorizeConnection;
    if (!hook) return { allowed: true };
    try {
      return hook.call(this.hooks, ctx);
    } catch (err) {
      this.log('warn', 'l7.authorize-threw', 'the authorize hook threw; the connection is denied', {
        err: String(err),
      });
      return { allowed: false, message: 'authorize threw' };
    }
  }

  authorize(view: RequestView, ctx: DownstreamContext): AuthorizeResult {
    try {
      return this.hooks.authorize(view, ctx);
    } catch (err) {
      this.log('warn', 'l7.authorize-threw', 'the authorize hook threw; the request is denied', {
        err: String(err),
      });
      return { allowed: false, message: 'authorize threw' };
    }
  }

  pick(endpoints: readonly Endpoint[], tried?: ReadonlySet<string>): Endpoint | undefined {
    return pickEndpoint(endpoints, this.load.get, this.random, tried);
  }

  /** hooks.connect bounded by connectTimeoutMs and `signal`; a late stream is destroyed. */
  async connect(endpoint: Endpoint, signal: AbortSignal | undefined): Promise<Duplex> {
    const ac = new AbortController();
    const timeoutMs = this.limits.connectTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const onAbort = () => ac.abort(signal?.reason ?? new Error('aborted'));
    signal?.addEventListener('abort', onAbort, { once: true });
    const aborted = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => ac.abort(new Error(`connect to ${endpoint.id} timed out after ${timeoutMs} ms`)),
        timeoutMs,
      );
      ac.signal.addEventListener('abort', () => reject(ac.signal.reason), { once: true });
    });
    aborted.catch(() => {});
    const pending = this.hooks.connect(endpoint, ac.signal);
    try {
      const stream = await Promise.race([pending, aborted]);
      if (ac.signal.aborted) {
        stream.destroy();
        throw ac.signal.reason;
      }
      return socketLike(stream);
    } catch (err) {
      pending.then(
        (late) => late.destroy(),
        () => {},
      );
      throw err;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /**
   * Connects to `first`, then to other endpoints while connecting fails, at most
   * maxConnectAttempts (or the endpoint count) in all. An endpoint for which `pooled` says a
   * connection is ready is taken without connecting (stream undefined).
   */
  async connectFrom(
    endpoints: readonly Endpoint[],
    first: Endpoint,
    pooled: ((e: Endpoint) => boolean) | undefined,
    signal: AbortSignal | undefined,
  ): Promise<ConnectOutcome> {
    const attempts = Math.max(1, Math.min(this.limits.maxConnectAttempts, endpoints.length));
    const tried = new Set<string>();
    let endpoint: Endpoint | undefined = first;
    let last: Endpoint | undefined;
    for (let i = 0; i < attempts && endpoint !== undefined; i++) {
      if (signal?.aborted) break;
      last = endpoint;
      if (pooled?.(endpoint)) return { ok: true, endpoint, stream: undefined };
      try {
        const stream = await this.connect(endpoint, signal);
        return { ok: true, endpoint, stream };
      } catch (err) {
        this.counters.connectFailures++;
        if (!signal?.aborted) {
          this.log('warn', 'l7.upstream-connect', `connecting to ${endpoint.id} failed`, {
            endpoint: endpoint.id,
            err: err instanceof Error ? err.message : String(err),
          });
        }
      }
      tried.add(endpoint.id);
      endpoint = this.pick(endpoints, tried);
    }
    return { ok: false, flag: 'UF', endpoint: last, attempts: tried.size };
  }
}
