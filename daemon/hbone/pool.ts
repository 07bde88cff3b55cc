/**
 * The outbound side of HBONE (DESIGN §3 "Pooling"): CONNECT streams multiplexed over pooled
 * HTTP/2-over-mTLS connections. Pool key = (source identity, source netns, expected destination
 * identity, destination ip:15008). A connection carries at most maxStreamsPerConnection streams
 * (or the peer's SETTINGS_MAX_CONCURRENT_STREAMS if lower); a key sets up one connection at a
 * time and everyone who needs it waits for that one (no storms); idle connections close; a
 * GOAWAY retires a connection and streams the peer had not started are retried on a new one.
 */
import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  constants as h2,
  type OutgoingHttpHeaders,
} from 'node:http2';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { type Logger, silentLogger } from '../telemetry/index.js';
import { Connector, type ConnectorOptions, type PoolKey } from './connector.js';
import { HboneError, HboneRefusedError } from './errors.js';
import { isTraceparent, newTraceparent, parseHostPort } from './headers.js';
import { deadPeerPings, startKeepalive } from './keepalive.js';
import { type Http2Tuning, resolveTuning } from './tuning.js';

export type { PoolKey };

export function poolKeyId(key: PoolKey): string {
  return JSON.stringify([
    key.sourceIdentity,
    key.sourceNetns,
    key.expectedIdentity,
    key.destination,
  ]);
}

export interface HbonePoolLimits {
  maxStreamsPerConnection: number;
  /** A connection without streams for this long is closed (GOAWAY). */
  idleTimeoutMs: number;
  /**
   * A connection without streams while its key has another open one is closed after this
   * (at most idleTimeoutMs). A burst of N concurrent streams leaves N/100 connections behind,
   * each holding ~350 KiB of TLS and HTTP/2 state: one is kept for reuse, the rest go.
   */
  surplusIdleTimeoutMs: number;
  /** dial(): the TCP connect to the peer. */
  connectTimeoutMs: number;
  /** TLS handshake, then the peer's first SETTINGS. */
  handshakeTimeoutMs: number;
  /** CONNECT sent → the peer's answer (it connects to the application first). */
  connectResponseTimeoutMs: number;
  keepaliveIntervalMs: number;
  keepaliveTimeoutMs: number;
  /**
   * A connection with streams open whose peer neither answers a PING nor sends anything for
   * this long is declared dead: its streams are reset (their clients see a reset) and it
   * leaves the pool at once. (deadPeerPings: a PING a second.)
   */
  deadPeerTimeoutMs: number;
  /** Retries of a CONNECT the peer did not start (GOAWAY, REFUSED_STREAM). */
  maxRetries: number;
  /** close(): how long streams may take to finish before the rest is destroyed. */
  drainTimeoutMs: number;
}

export const DEFAULT_POOL_LIMITS: Readonly<HbonePoolLimits> = Object.freeze({
  maxStreamsPerConnection: 100,
  idleTimeoutMs: 60_000,
  surplusIdleTimeoutMs: 5_000,
  connectTimeoutMs: 10_000,
  handshakeTimeoutMs: 10_000,
  connectResponseTimeoutMs: 10_000,
  keepaliveIntervalMs: 30_000,
  keepaliveTimeoutMs: 10_000,
  deadPeerTimeoutMs: 5_000,
  maxRetries: 2,
  drainTimeoutMs: 30_000,
});

export interface HbonePoolOptions {
  /**
   * A connected TCP socket to key.destination, made from key.sourceNetns with the bypass mark.
   * Abandoned (signal aborted, socket destroyed if it comes late) after connectTimeoutMs.
   */
  dial: ConnectorOptions['dial'];
  /** The source identity's context (certificate, key, bundle roots as ca); cached by the caller. */
  secureContext: ConnectorOptions['secureContext'];
  trustDomain: string;
  limits?: Partial<HbonePoolLimits>;
  http2?: Partial<Http2Tuning>;
  logger?: Logger;
}

export interface HboneRequestHeaders {
  /** `for="ip:port"` of the original client (formatForwarded). */
  forwarded?: string;
  /** W3C baggage (formatBaggage). */
  baggage?: string;
  /** W3C traceparent; a fresh one is made when absent or malformed. */
  traceparent?: string;
}

export interface HboneConnectOptions {
  key: PoolKey;
  /** The target `ip:port` (IPv6 in brackets) the peer connects to. */
  authority: string;
  headers?: HboneRequestHeaders;
  signal?: AbortSignal;
}

export interface HbonePoolStats {
  keys: number;
  /** Live HTTP/2 connections. */
  connections: number;
  /** Live CONNECT streams (waiting for an answer or tunneling). */
  streams: number;
  dials: number;
  /** Completed TLS handshakes. */
  handshakes: number;
  /** Connection set-ups that failed (dial, TLS, identity, HTTP/2). */
  setupFailures: number;
  /** The most connection set-ups ever in flight at once for one key (1 = no storms). */
  peakSetupsPerKey: number;
  goaways: number;
  retries: number;
  /** Non-200 answers, by status. */
  refused: Record<string, number>;
  perKey: Array<{ key: PoolKey; connections: number; streams: number }>;
}

interface KeyEntry {
  id: string;
  key: PoolKey;
  sessions: Set<PooledSession>;
  setup: Promise<PooledSession> | undefined;
  setupsInFlight: number;
}

interface PooledSession {
  session: ClientHttp2Session;
  /** The TLS socket under the session: its close is the connection's end, whatever HTTP/2 says. */
  socket: TLSSocket;
  /** The TCP socket under that: its close (a reset, the peer's FIN) is watched too. */
  raw: Socket;
  /** Streams opened on this session that are not closed yet. */
  streams: Set<ClientHttp2Stream>;
  /** Set once the connection is gone: it left the pool and its streams were reset. */
  dead: boolean;
  entry: KeyEntry;
  /** Streams reserved or open on this session. */
  active: number;
  /** No new streams: GOAWAY received, idle-closed or pool closing. */
  draining: boolean;
  goawayLastStreamId: number | undefined;
  idleTimer: NodeJS.Timeout | undefined;
}

function withSignal<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(abortedError());
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortedError());
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

function abortedError(): HboneError {
  return new HboneError('aborted', 'the caller gave up');
}

export class HbonePool {
  readonly #limits: HbonePoolLimits;
  readonly #log: Logger;
  readonly #entries = new Map<string, KeyEntry>();
  readonly #connector: Connector;
  #closed = false;
  #closing: Promise<void> | undefined;
  #drained: (() => void) | undefined;
  readonly #counters = {
    setupFailures: 0,
    peakSetupsPerKey: 0,
    goaways: 0,
    retries: 0,
    refused: {} as Record<string, number>,
  };

  constructor(options: HbonePoolOptions) {
    this.#limits = { ...DEFAULT_POOL_LIMITS, ...options.limits };
    this.#log = options.logger ?? silentLogger;
    this.#connector = new Connector({
      dial: options.dial,
      secureContext: options.secureContext,
      trustDomain: options.trustDomain,
      connectTimeoutMs: this.#limits.connectTimeoutMs,
      handshakeTimeoutMs: this.#limits.handshakeTimeoutMs,
      maxStreamsPerConnection: this.#limits.maxStreamsPerConnection,
      tuning: resolveTuning(options.http2),
    });
  }

  /**
   * Opens a tunnel: resolves with the CONNECT stream once the peer answered 200 (it reached the
   * application), a Duplex carrying the bytes both ways. end() it to half-close (END_STREAM);
   * destroy() it only on real errors (that sends RST_STREAM). Rejects with HboneRefusedError
   * (the peer's status) or HboneError (dial, TLS, identity, HTTP/2, timeouts).
   */
  async connect(options: HboneConnectOptions): Promise<Duplex> {
    const { key, authority, signal } = options;
    if (this.#closed) throw new HboneError('closed', 'the HBONE pool is closed');
    if (!parseHostPort(authority)) {
      throw new HboneError('request', `authority ${JSON.stringify(authority)} is not ip:port`);
    }
    const extra = options.headers ?? {};
    const headers: OutgoingHttpHeaders = {
      ':method': 'CONNECT',
      ':authority': authority,
      traceparent: isTraceparent(extra.traceparent) ? extra.traceparent : newTraceparent(),
    };
    if (extra.forwarded) headers.forwarded = extra.forwarded;
    if (extra.baggage) headers.baggage = extra.baggage;
    let last: unknown;
    for (let attempt = 0; attempt <= this.#limits.maxRetries; attempt++) {
      if (attempt > 0) this.#counters.retries++;
      const pooled = await this.#acquire(key, signal);
      try {
        return await this.#open(pooled, headers, authority, signal);
      } catch (err) {
        if (!(err instanceof HboneError && err.retryable)) throw err;
        last = err;
        this.#log.debug({ destination: key.destination, err }, 'HBONE stream not started; retry');
      }
    }
    throw new HboneError('goaway', `CONNECT ${authority} not started by the peer`, {
      destination: key.destination,
      cause: last,
    });
  }

  /** Live HTTP/2 connections for a key. */
  connections(key: PoolKey): number {
    return this.#entries.get(poolKeyId(key))?.sessions.size ?? 0;
  }

  stats(): HbonePoolStats {
    let connections = 0;
    let streams = 0;
    const perKey: HbonePoolStats['perKey'] = [];
    for (const entry of this.#entries.values()) {
      let s = 0;
      for (const p of entry.sessions) s += p.active;
      connections += entry.sessions.size;
      streams += s;
      perKey.push({ key: entry.key, connections: entry.sessions.size, streams: s });
    }
    return {
      keys: this.#entries.size,
      connections,
      streams,
      dials: this.#connector.dials,
      handshakes: this.#connector.handshakes,
      ...this.#counters,
      refused: { ...this.#counters.refused },
      perKey,
    };
  }

  /** Graceful: no new tunnels; GOAWAY on every connection; live tunnels get drainTimeoutMs. */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#closed = true;
    this.#closing = new Promise<void>((resolve) => {
      const timer = setTimeout(() => this.destroy(), this.#limits.drainTimeoutMs);
      timer.unref();
      this.#drained = () => {
        clearTimeout(timer);
        resolve();
      };
      for (const entry of this.#entries.values()) {
        for (const p of entry.sessions) this.#retire(p);
      }
      this.#checkDrained();
    });
    return this.#closing;
  }

  /** Immediate: every connection and tunnel is torn down. */
  destroy(): void {
    this.#closed = true;
    this.#connector.destroy();
    for (const entry of this.#entries.values()) {
      for (const p of entry.sessions) p.session.destroy();
    }
    this.#checkDrained();
  }

  #checkDrained(): void {
    if (!this.#drained) return;
    for (const entry of this.#entries.values()) {
      if (entry.sessions.size > 0 || entry.setup) return;
    }
    const done = this.#drained;
    this.#drained = undefined;
    done();
  }

  #entry(key: PoolKey): KeyEntry {
    const id = poolKeyId(key);
    let entry = this.#entries.get(id);
    if (!entry) {
      entry = { id, key: { ...key }, sessions: new Set(), setup: undefined, setupsInFlight: 0 };
      this.#entries.set(id, entry);
    }
    return entry;
  }

  #forget(entry: KeyEntry): void {
    if (entry.sessions.size === 0 && !entry.setup && this.#entries.get(entry.id) === entry) {
      this.#entries.delete(entry.id);
    }
    this.#checkDrained();
  }

  #limitOf(p: PooledSession): number {
    const peer = p.session.remoteSettings?.maxConcurrentStreams;
    const max = this.#limits.maxStreamsPerConnection;
    return typeof peer === 'number' && peer < max ? peer : max;
  }

  #usable(p: PooledSession): boolean {
    return !p.dead && !p.draining && !p.session.closed && !p.session.destroyed;
  }

  /** A session with a free stream slot, reserved for the caller; sets one up if needed. */
  async #acquire(key: PoolKey, signal: AbortSignal | undefined): Promise<PooledSession> {
    let unusable = 0;
    for (;;) {
      if (this.#closed) throw new HboneError('closed', 'the HBONE pool is closed');
      if (signal?.aborted) throw abortedError();
      const entry = this.#entry(key);
      for (const p of entry.sessions) {
        if (this.#usable(p) && p.active < this.#limitOf(p)) {
          p.active++;
          clearTimeout(p.idleTimer);
          p.idleTimer = undefined;
          return p;
        }
      }
      if (!entry.setup) {
        entry.setup = this.#setup(entry).finally(() => {
          entry.setup = undefined;
          this.#forget(entry);
        });
        // Waiters that gave up must not leave the rejection unhandled.
        entry.setup.catch(() => {});
      }
      const fresh = await withSignal(entry.setup, signal);
      if (!this.#usable(fresh) && ++unusable > 3) {
        throw new HboneError('http2', 'new connections went away before use', {
          destination: entry.key.destination,
        });
      }
    }
  }

  async #setup(entry: KeyEntry): Promise<PooledSession> {
    const { key } = entry;
    const destination = key.destination;
    entry.setupsInFlight++;
    this.#counters.peakSetupsPerKey = Math.max(
      this.#counters.peakSetupsPerKey,
      entry.setupsInFlight,
    );
    try {
      const { session, socket, raw } = await this.#connector.open(key);
      if (this.#closed) {
        session.destroy();
        throw new HboneError('closed', 'the HBONE pool is closed', { destination });
      }
      const pooled: PooledSession = {
        session,
        socket,
        raw,
        streams: new Set(),
        dead: false,
        entry,
        active: 0,
        draining: false,
        goawayLastStreamId: undefined,
        idleTimer: undefined,
      };
      this.#wire(pooled);
      entry.sessions.add(pooled);
      this.#log.debug({ destination, sessions: entry.sessions.size }, 'HBONE connection up');
      return pooled;
    } catch (err) {
      this.#counters.setupFailures++;
      throw err;
    } finally {
      entry.setupsInFlight--;
    }
  }

  #wire(p: PooledSession): void {
    const { session, entry } = p;
    session.on('error', (err: Error) =>
      this.#log.debug({ destination: entry.key.destination, err }, 'HBONE connection error'),
    );
    session.on('goaway', (code: number, lastStreamId: number) => {
      this.#counters.goaways++;
      p.draining = true;
      p.goawayLastStreamId = lastStreamId;
      this.#log.debug(
        { destination: entry.key.destination, code, lastStreamId },
        'HBONE GOAWAY received',
      );
    });
    session.once('close', () => this.#evict(p, 'the HBONE connection closed'));
    // Node's session may miss its socket's end while its writes are blocked (the streams
    // then hang for good): the socket's own close decides.
    const gone = () => this.#evict(p, 'the HBONE connection closed under its session');
    p.socket.once('close', gone);
    p.raw.once('close', gone);
    const { busyIntervalMs, busyTimeoutMs } = deadPeerPings(this.#limits.deadPeerTimeoutMs);
    startKeepalive(session, {
      intervalMs: this.#limits.keepaliveIntervalMs,
      timeoutMs: this.#limits.keepaliveTimeoutMs,
      busyIntervalMs,
      busyTimeoutMs,
      busy: () => p.streams.size > 0,
      bytesRead: () => p.socket.bytesRead,
      onDead: (reason) => {
        this.#log.warn(
          { destination: entry.key.destination, streams: p.streams.size, reason },
          'HBONE peer is dead; its tunnels are reset',
        );
        this.#evict(p, reason);
      },
    });
    this.#armIdle(p);
  }

  /**
   * The connection is gone: it leaves the pool at once (no new stream may pick it, the
   * metrics stop counting it), every stream still open on it is reset so that its client
   * sees a reset, not a hang, and the session and socket are destroyed. Idempotent.
   */
  #evict(p: PooledSession, reason: string): void {
    if (p.dead) return;
    p.dead = true;
    p.draining = true;
    clearTimeout(p.idleTimer);
    p.entry.sessions.delete(p);
    const err = new HboneError('http2', reason, { destination: p.entry.key.destination });
    for (const stream of [...p.streams]) {
      if (!stream.destroyed) stream.destroy(err);
    }
    if (!p.session.destroyed) p.session.destroy();
    if (!p.socket.destroyed) p.socket.destroy();
    if (!p.raw.destroyed) p.raw.destroy();
    this.#forget(p.entry);
  }

  /** No new streams; the session closes once its streams are done (GOAWAY to the peer). */
  #retire(p: PooledSession): void {
    p.draining = true;
    clearTimeout(p.idleTimer);
    if (!p.session.closed && !p.session.destroyed) p.session.close();
  }

  #armIdle(p: PooledSession): void {
    clearTimeout(p.idleTimer);
    p.idleTimer = undefined;
    if (p.active > 0) return;
    if (p.draining || this.#closed) {
      this.#retire(p);
      return;
    }
    const { idleTimeoutMs, surplusIdleTimeoutMs } = this.#limits;
    if (!(idleTimeoutMs > 0)) return;
    const first = Math.min(surplusIdleTimeoutMs, idleTimeoutMs);
    p.idleTimer = setTimeout(() => {
      if (p.active > 0) return;
      // The key's last open connection stays for the full idle timeout (its next stream
      // needs no handshake); when all go idle together, they retire in turn until one is left.
      if (first >= idleTimeoutMs || this.#hasAnother(p)) {
        this.#retire(p);
        return;
      }
      p.idleTimer = setTimeout(() => {
        if (p.active === 0) this.#retire(p);
      }, idleTimeoutMs - first);
      p.idleTimer.unref();
    }, first);
    p.idleTimer.unref();
  }

  #hasAnother(p: PooledSession): boolean {
    for (const other of p.entry.sessions) if (other !== p && this.#usable(other)) return true;
    return false;
  }

  #release(p: PooledSession): void {
    p.active--;
    this.#armIdle(p);
  }

  /** Sends CONNECT on a reserved slot; settles on the peer's answer. */
  #open(
    p: PooledSession,
    headers: OutgoingHttpHeaders,
    authority: string,
    signal: AbortSignal | undefined,
  ): Promise<ClientHttp2Stream> {
    const destination = p.entry.key.destination;
    let stream: ClientHttp2Stream;
    try {
      stream = p.session.request(headers, { endStream: false });
    } catch (cause) {
      this.#release(p);
      throw new HboneError('http2', 'the connection refused a new stream', {
        destination,
        cause,
        retryable: true,
      });
    }
    return new Promise((resolve, reject) => {
      let settled = false;
      let lastError: Error | undefined;
      const settle = () => {
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      const abandon = (err: HboneError) => {
        if (settled) return;
        settle();
        // A real cancellation: the peer may be connecting upstream for nothing.
        if (!stream.destroyed) stream.close(h2.NGHTTP2_CANCEL);
        reject(err);
      };
      const onAbort = () => abandon(abortedError());
      const timer = setTimeout(
        () =>
          abandon(
            new HboneError(
              'timeout',
              `no answer to CONNECT ${authority} within ${this.#limits.connectResponseTimeoutMs} ms`,
              { destination },
            ),
          ),
        this.#limits.connectResponseTimeoutMs,
      );
      timer.unref();
      signal?.addEventListener('abort', onAbort, { once: true });
      if (signal?.aborted) onAbort();
      // Kept for the stream's life: a reset by the peer must never be an unhandled error.
      stream.on('error', (err: Error) => {
        lastError = err;
      });
      p.streams.add(stream);
      stream.once('close', () => {
        p.streams.delete(stream);
        this.#release(p);
        if (settled) return;
        settle();
        reject(this.#notStarted(p, stream, authority, lastError));
      });
      stream.once('response', (responseHeaders) => {
        if (settled) return;
        settle();
        const status = Number(responseHeaders[':status']);
        if (status === 200) {
          resolve(stream);
          return;
        }
        const k = String(status);
        this.#counters.refused[k] = (this.#counters.refused[k] ?? 0) + 1;
        // End our half too, so the stream closes without a reset from our side.
        stream.resume();
        if (!stream.destroyed && !stream.writableEnded) stream.end();
        reject(new HboneRefusedError(status, authority, destination));
      });
    });
  }

  /** Why a stream closed before an answer, and whether the peer never started it. */
  #notStarted(
    p: PooledSession,
    stream: ClientHttp2Stream,
    authority: string,
    cause: Error | undefined,
  ): HboneError {
    const destination = p.entry.key.destination;
    const id = stream.id;
    const refused = stream.rstCode === h2.NGHTTP2_REFUSED_STREAM;
    const beyondGoaway =
      p.goawayLastStreamId !== undefined && (id === undefined || id > p.goawayLastStreamId);
    const neverSent = id === undefined;
    if (refused || beyondGoaway || neverSent) {
      return new HboneError('goaway', `CONNECT ${authority} was not started by the peer`, {
        destination,
        cause,
        retryable: true,
      });
    }
    return new HboneError(
      'stream',
      `CONNECT ${authority} closed before an answer (code ${stream.rstCode ?? 'none'})`,
      { destination, cause },
    );
  }
}
