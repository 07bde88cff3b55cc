/**
 * The waypoint's L7 engine: takes each HBONE tunnel's Duplex, decides what it carries
 * (appProtocol, else detection from the first bytes) and proxies it as HTTP/1.1, HTTP/2 (h2c,
 * gRPC) or opaque TCP to the target's endpoints, one endpoint choice per request.
 */
import type { Duplex } from 'node:stream';
import { EngineCore, type EngineCounters, type Tunnel } from './core.js';
import { configuredProtocol, detectProtocol, type TunnelProtocol } from './detect.js';
import { Http1Proxy } from './http1.js';
import { Http2Proxy } from './http2.js';
import { abortStream, splice } from './pump.js';
import {
  DEFAULT_L7_LIMITS,
  type DownstreamContext,
  type L7Hooks,
  type L7Limits,
  type L7Target,
  type RequestRecord,
  type ResponseFlag,
} from './types.js';

export interface L7EngineOptions {
  hooks: L7Hooks;
  limits?: Partial<L7Limits>;
  /** [0, 1) like Math.random; tests make endpoint choice deterministic with it. */
  random?: () => number;
  now?: () => number;
}

export interface L7Stats extends EngineCounters {
  draining: boolean;
  upstreamH1Agents: number;
  upstreamH2Sessions: number;
  endpointsWithLoad: number;
}

const EMPTY = Buffer.alloc(0);

function noop(): void {}

export class L7Engine {
  readonly #core: EngineCore;
  readonly #http1: Http1Proxy;
  readonly #http2: Http2Proxy;
  #emptied: (() => void) | undefined;
  #sweep: NodeJS.Timeout;
  #destroyed = false;

  constructor(options: L7EngineOptions) {
    const limits: L7Limits = { ...DEFAULT_L7_LIMITS, ...options.limits };
    this.#core = new EngineCore(
      options.hooks,
      limits,
      options.random ?? Math.random,
      options.now ?? Date.now,
    );
    this.#http1 = new Http1Proxy(this.#core);
    this.#http2 = new Http2Proxy(this.#core);
    this.#sweep = setInterval(() => this.#http1.sweep(), 30_000);
    this.#sweep.unref();
  }

  get limits(): Readonly<L7Limits> {
    return this.#core.limits;
  }

  /**
   * Serves one tunnel until its stream closes (the promise then resolves; it never rejects).
   * The stream should allow half-open (HTTP/2 streams do).
   */
  serveTunnel(stream: Duplex, ctx: DownstreamContext, target: L7Target): Promise<void> {
    const core = this.#core;
    if (core.draining || this.#destroyed) {
      stream.destroy();
      return Promise.resolve();
    }
    const tunnel: Tunnel = {
      stream,
      ctx,
      target,
      protocol: 'detecting',
      active: 0,
      session: undefined,
      cancels: undefined,
    };
    core.tunnels.add(tunnel);
    core.counters.tunnels++;
    core.counters.tunnelsTotal++;
    stream.on('error', noop);
    const done = new Promise<void>((resolve) => {
      const gone = () => {
        if (!core.tunnels.delete(tunnel)) return;
        core.counters.tunnels--;
        if (core.tunnels.size === 0) this.#emptied?.();
        resolve();
      };
      if (stream.destroyed) queueMicrotask(gone);
      else stream.once('close', gone);
    });
    const fixed = configuredProtocol(target.protocol);
    if (fixed !== undefined) this.#dispatch(tunnel, fixed, undefined);
    else this.#detect(tunnel);
    return done;
  }

  #detect(t: Tunnel): void {
    const s = t.stream;
    let head: Buffer = EMPTY;
    let settled = false;
    const finish = (d: TunnelProtocol, ended: boolean) => {
      if (settled) return;
      settled = true;
      s.off('readable', onReadable);
      s.off('end', onEnd);
      s.off('close', onClose);
      clearTimeout(timer);
      if (ended) {
        // The client half-closed during detection: only opaque TCP can still carry it.
        if (d === 'opaque') this.#dispatch(t, d, head);
        else s.destroy();
        return;
      }
      if (head.length > 0) s.unshift(head);
      this.#dispatch(t, d, undefined);
    };
    const onReadable = () => {
      let chunk: Buffer | null = s.read() as Buffer | null;
      while (chunk !== null) {
        head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
        chunk = s.read() as Buffer | null;
      }
      const d = detectProtocol(undefined, head, false);
      if (d !== 'more') finish(d, false);
    };
    const onEnd = () => {
      const d = detectProtocol(undefined, head, true);
      finish(d === 'more' ? 'opaque' : d, true);
    };
    const onClose = () => {
      settled = true;
      clearTimeout(timer);
    };
    const timer = setTimeout(() => {
      const d = detectProtocol(undefined, head, true);
      finish(d === 'more' ? 'opaque' : d, false);
    }, this.#core.limits.detectTimeoutMs);
    s.on('readable', onReadable);
    s.once('end', onEnd);
    s.once('close', onClose);
  }

  #dispatch(t: Tunnel, d: TunnelProtocol, endedHead: Buffer | undefined): void {
    const c = this.#core.counters;
    t.protocol = d;
    if (t.stream.destroyed) return;
    if (d === 'http1') {
      c.http1Tunnels++;
      this.#http1.serve(t);
    } else if (d === 'h2c') {
      c.h2cTunnels++;
      this.#http2.serve(t);
    } else {
      c.opaqueTunnels++;
      void this.#opaque(t, endedHead);
    }
  }

  /** Opaque TCP: one endpoint per connection (connect failures fall back), bytes spliced. */
  async #opaque(t: Tunnel, endedHead: Buffer | undefined): Promise<void> {
    const core = this.#core;
    const started = performance.now();
    let flag: ResponseFlag = '-';
    let endpointId: string | undefined;
    let requestBytes = 0;
    let responseBytes = 0;
    let policy: string | undefined;
    const verdict = core.authorizeConnection(t.ctx);
    const endpoints = verdict.allowed ? t.target.endpoints() : [];
    const first = verdict.allowed ? core.pick(endpoints) : undefined;
    if (!verdict.allowed) {
      flag = 'DENY';
      policy = verdict.policy ?? '';
      abortStream(t.stream);
    } else if (first === undefined) {
      flag = 'UH';
      abortStream(t.stream);
    } else {
      const ac = new AbortController();
      const onGone = () => ac.abort();
      t.stream.once('close', onGone);
      const outcome = await core.connectFrom(endpoints, first, undefined, ac.signal);
      t.stream.off('close', onGone);
      if (!outcome.ok || outcome.stream === undefined) {
        flag = outcome.ok ? 'UF' : outcome.flag;
        endpointId = outcome.endpoint?.id;
        abortStream(t.stream);
      } else if (t.stream.destroyed) {
        flag = 'DC';
        endpointId = outcome.endpoint.id;
        outcome.stream.destroy();
      } else {
        endpointId = outcome.endpoint.id;
        core.load.inc(endpointId);
        core.counters.requestsActive++;
        t.active++;
        const upstream = outcome.stream;
        if (endedHead !== undefined && endedHead.length > 0) {
          upstream.write(endedHead);
          requestBytes += endedHead.length;
        }
        const r = await splice(t.stream, upstream);
        requestBytes += r.aToB;
        responseBytes = r.bToA;
        if (r.error) flag = r.errorSide === 'b' ? 'UC' : 'DC';
        t.active--;
        core.counters.requestsActive--;
        core.load.dec(endpointId);
      }
    }
    core.counters.requestsTotal++;
    const rec: RequestRecord = {
      ctx: t.ctx,
      protocol: 'tcp',
      method: undefined,
      authority: undefined,
      path: undefined,
      status: 0,
      grpcStatus: undefined,
      durationMs: performance.now() - started,
      requestBytes,
      responseBytes,
      endpoint: endpointId,
      responseFlags: flag,
      policy,
      traceId: undefined,
      requestId: undefined,
    };
    core.record(rec);
  }

  stats(): L7Stats {
    const core = this.#core;
    return {
      ...core.counters,
      draining: core.draining,
      upstreamH1Agents: this.#http1.agentCount,
      upstreamH2Sessions: this.#http2.upstreamSessions,
      endpointsWithLoad: core.load.size,
    };
  }

  /**
   * Graceful: no new tunnels; HTTP/1.1 answers carry Connection: close and idle kept-alive
   * connections close; HTTP/2 sessions get GOAWAY; in-flight work gets `timeoutMs` (default
   * drainTimeoutMs) to finish, then everything left is destroyed.
   */
  async close(timeoutMs: number = this.#core.limits.drainTimeoutMs): Promise<void> {
    const core = this.#core;
    core.draining = true;
    for (const t of core.tunnels) if (t.protocol === 'detecting') t.stream.destroy();
    this.#http1.drainIdle();
    this.#http2.drain();
    if (core.tunnels.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.#emptied = resolve;
        timer = setTimeout(resolve, timeoutMs);
      });
      clearTimeout(timer);
      this.#emptied = undefined;
    }
    this.destroy();
  }

  /** Cuts every tunnel and upstream connection now. */
  destroy(): void {
    const core = this.#core;
    core.draining = true;
    this.#destroyed = true;
    clearInterval(this.#sweep);
    for (const t of [...core.tunnels]) {
      if (t.session && !t.session.destroyed) t.session.destroy();
      t.stream.destroy();
    }
    this.#http1.destroy();
    this.#http2.destroy();
  }
}
