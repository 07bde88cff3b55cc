/**
 * The inbound side of HBONE (DESIGN §3, §4): one HboneServer per listening workload (its
 * :15008 inside the workload's netns). It takes accepted TCP sockets, runs TLS 1.3 with a
 * required client certificate, serves HTTP/2 CONNECT streams, asks `onConnect` for a decision
 * (authorization + upstream connect, done by the agent), answers 200 only with a connected
 * upstream, and then splices bytes both ways. Nothing a peer sends can crash it: bad TLS,
 * certificates, frames or requests are refused and reported through `onRejected`.
 */
import type { X509Certificate } from 'node:crypto';
import {
  createServer as createHttp2Server,
  type Http2Server,
  constants as h2,
  type IncomingHttpHeaders,
  type ServerHttp2Session,
  type ServerHttp2Stream,
} from 'node:http2';
import type { Server, Socket } from 'node:net';
import type { SecureContext } from 'node:tls';
import type { SpiffeId } from '../identity/index.js';
import { type Logger, silentLogger } from '../telemetry/index.js';
import {
  type ForwardedFor,
  type HostPort,
  parseBaggage,
  parseForwarded,
  parseHostPort,
} from './headers.js';
import { deadPeerPings, startKeepalive } from './keepalive.js';
import { type AdmitRefusal, SourceGuard } from './source-guard.js';
import { abortSide, type SpliceResult, splice } from './splice.js';
import { acceptTls, TlsRejection, type TlsRejectReason } from './tls.js';
import { TokenBucket } from './token-bucket.js';
import { type Http2Tuning, http2Settings, openConnectionWindow, resolveTuning } from './tuning.js';

export interface PeerIdentity {
  readonly spiffeId: SpiffeId;
  /** Parsed on first use (tls.ts, ClientIdentity). */
  readonly certificate: X509Certificate;
}

export interface Endpoint {
  ip: string;
  port: number;
}

/** One CONNECT the agent must decide on. */
export interface ConnectRequest {
  /** The target `ip:port` from `:authority` (already checked to be an IP literal and a port). */
  authority: HostPort;
  /** The client's verified identity (chain checked against the bundle, trust domain checked). */
  peer: PeerIdentity;
  /** The TCP peer of the HBONE connection (the source workload: it dials from its netns). */
  source: Endpoint;
  /** What the client put in `forwarded: for=…`, if well-formed. */
  forwardedFor: ForwardedFor | undefined;
  /** The `baggage` members (workload, namespace, service, …). */
  baggage: Record<string, string>;
  /** The W3C `traceparent` as sent, if any. */
  traceparent: string | undefined;
  headers: IncomingHttpHeaders;
  stream: ServerHttp2Stream;
  /** Aborted when the client gives up, the decision times out or the server is destroyed. */
  signal: AbortSignal;
}

export type ConnectDecision =
  | {
      status: 200;
      /** An already connected socket to the application. */
      upstream: Socket;
      /** Called once both directions are closed (bytes, duration, error: the access log). */
      onClose?: (result: SpliceResult) => void;
    }
  | {
      status: 200;
      /**
       * Takes the tunnel itself once the 200 is sent (the waypoint's L7 proxy reads the
       * client's bytes from it): the server neither splices nor records it.
       */
      serve: (stream: ServerHttp2Stream) => void;
    }
  | { status: 400 | 401 | 503; reason: string };

/** Lets go of what an accepted decision holds when its stream can no longer be answered. */
function discard(decision: ConnectDecision): void {
  if (decision.status === 200 && 'upstream' in decision) decision.upstream.destroy();
}

export type HboneRejectReason =
  | TlsRejectReason
  | AdmitRefusal
  | 'handshake-evicted'
  | 'max-connections'
  | 'closing'
  | 'http2-protocol'
  | 'method'
  | 'bad-authority'
  | 'rapid-reset'
  | 'stream-rate';

export interface RejectedInfo {
  /** A connection refused before or during HTTP/2, or a single stream refused. */
  kind: 'connection' | 'stream';
  remote: Endpoint;
  reason: HboneRejectReason;
  detail: string;
  /** The client's SPIFFE ID when TLS got that far. */
  peer?: SpiffeId;
}

export interface HboneServerLimits {
  /** From accept to a verified TLS peer (used when no SourceGuard is passed in). */
  handshakeTimeoutMs: number;
  /** SETTINGS_MAX_CONCURRENT_STREAMS announced to clients. */
  maxStreamsPerConnection: number;
  /** A session with no streams for this long is closed (GOAWAY). */
  idleTimeoutMs: number;
  /** Live TCP connections (handshaking or serving); beyond it new ones are closed at once. */
  maxConnections: number;
  /** Time onConnect may take (policy + upstream connect); then 503. */
  connectTimeoutMs: number;
  /** close(): how long streams may take to finish before the rest is destroyed. */
  drainTimeoutMs: number;
  keepaliveIntervalMs: number;
  keepaliveTimeoutMs: number;
  /**
   * A session with streams open whose peer neither answers a PING nor sends anything for this
   * long is declared dead: its streams are reset (the applications see a reset) and it closes.
   */
  deadPeerTimeoutMs: number;
  /** nghttp2's rapid-reset guard: RST_STREAMs a client may send in a burst, then per second. */
  streamResetBurst: number;
  streamResetRate: number;
  /**
   * Streams a session's peer may cancel before their answer (HTTP/2 rapid reset): a burst,
   * then this many per second. Past it the session gets GOAWAY ENHANCE_YOUR_CALM and is cut,
   * and its source is refused for the guard's penalty time.
   */
  cancelledStreamBurst: number;
  cancelledStreamRate: number;
}

export const DEFAULT_SERVER_LIMITS: Readonly<HboneServerLimits> = Object.freeze({
  handshakeTimeoutMs: 10_000,
  maxStreamsPerConnection: 100,
  idleTimeoutMs: 300_000,
  maxConnections: 10_000,
  connectTimeoutMs: 15_000,
  drainTimeoutMs: 30_000,
  keepaliveIntervalMs: 30_000,
  keepaliveTimeoutMs: 10_000,
  deadPeerTimeoutMs: 5_000,
  streamResetBurst: 1000,
  streamResetRate: 33,
  cancelledStreamBurst: 20,
  cancelledStreamRate: 5,
});

export interface HboneServerOptions {
  trustDomain: string;
  /**
   * The workload's context (certificate, key, bundle roots as ca); called per connection, so a
   * rotated certificate serves the next handshake. Return a cached context, not a new one.
   */
  secureContext: () => SecureContext | Promise<SecureContext>;
  onConnect: (request: ConnectRequest) => Promise<ConnectDecision>;
  onRejected?: (info: RejectedInfo) => void;
  limits?: Partial<HboneServerLimits>;
  /**
   * Per-source defences shared by every HBONE server of a data-path thread (pending
   * handshakes, penalties, stream opens); one of its own when absent.
   */
  guard?: SourceGuard;
  http2?: Partial<Http2Tuning>;
  logger?: Logger;
  now?: () => number;
}

export interface HboneServerStats {
  /** Live TCP connections (handshaking or carrying a session). */
  connections: number;
  /** Live HTTP/2 sessions. */
  sessions: number;
  sessionsTotal: number;
  /** Live CONNECT streams (deciding or tunneling). */
  streams: number;
  streamsTotal: number;
  /** Streams the peer cancelled before their answer (no upstream connect was made for them). */
  cancelledStreams: number;
  /** Answers sent, by status ("200", "400", "401", "405", "503"). */
  responses: Record<string, number>;
  /** Refusals, by reason (see RejectedInfo). */
  rejected: Record<string, number>;
}

interface SessionState {
  session: ServerHttp2Session;
  peer: PeerIdentity;
  remote: Endpoint;
  active: number;
  idleTimer: NodeJS.Timeout | undefined;
  reported: boolean;
  /** The budget of streams the peer may cancel before their answer. */
  cancels: TokenBucket;
  streams: Set<ServerHttp2Stream>;
  /** Told GOAWAY for abuse; destroyed GOAWAY_LINGER_MS later. */
  cut?: boolean;
}

/** How long a session cut for abuse stays open after its GOAWAY, for the peer to read it. */
const GOAWAY_LINGER_MS = 250;

function endpointOf(socket: Socket): Endpoint {
  const ip = (socket.remoteAddress ?? '').replace(/^::ffff:(?=\d+\.)/, '');
  return { ip, port: socket.remotePort ?? 0 };
}

const DECISION_STATUSES = new Set([200, 400, 401, 503]);

export class HboneServer {
  readonly #options: HboneServerOptions;
  readonly #limits: HboneServerLimits;
  readonly #tuning: Http2Tuning;
  readonly #log: Logger;
  readonly #guard: SourceGuard;
  readonly #now: () => number;
  readonly #h2: Http2Server;
  readonly #sockets = new Set<Socket>();
  readonly #handshaking = new Set<Socket>();
  readonly #sessions = new Map<ServerHttp2Session, SessionState>();
  readonly #attached = new Map<Server, (socket: Socket) => void>();
  readonly #aborts = new Set<AbortController>();
  #state: 'open' | 'closing' | 'closed' = 'open';
  #closing: Promise<void> | undefined;
  #drained: (() => void) | undefined;
  readonly #stats: HboneServerStats = {
    connections: 0,
    sessions: 0,
    sessionsTotal: 0,
    streams: 0,
    streamsTotal: 0,
    cancelledStreams: 0,
    responses: {},
    rejected: {},
  };

  constructor(options: HboneServerOptions) {
    this.#options = options;
    this.#limits = { ...DEFAULT_SERVER_LIMITS, ...options.limits };
    this.#tuning = resolveTuning(options.http2);
    this.#log = options.logger ?? silentLogger;
    this.#now = options.now ?? Date.now;
    this.#guard =
      options.guard ??
      new SourceGuard({ handshakeTimeoutMs: this.#limits.handshakeTimeoutMs }, this.#now);
    // A factory for server sessions only: it never listens; sockets arrive already verified.
    this.#h2 = createHttp2Server({
      settings: http2Settings(this.#tuning, this.#limits.maxStreamsPerConnection),
      maxSessionMemory: this.#tuning.maxSessionMemoryMb,
      streamResetBurst: this.#limits.streamResetBurst,
      streamResetRate: this.#limits.streamResetRate,
    });
    this.#h2.on('sessionError', () => {}); // reported by the session's own handler
  }

  /** Feeds every connection a listener accepts (e.g. one made by listenInNetns) to handle(). */
  attach(server: Server): void {
    if (this.#attached.has(server)) return;
    const listener = (socket: Socket) => this.handle(socket);
    this.#attached.set(server, listener);
    server.on('connection', listener);
  }

  detach(server: Server): void {
    const listener = this.#attached.get(server);
    if (listener) server.off('connection', listener);
    this.#attached.delete(server);
  }

  /** Serves one accepted TCP connection. Never throws; refusals go to onRejected. */
  handle(socket: Socket): void {
    const remote = endpointOf(socket);
    socket.on('error', () => {}); // a reset during any phase must not crash the agent
    if (this.#state !== 'open') {
      this.#reject('connection', remote, 'closing', 'the server is closing');
      socket.destroy();
      return;
    }
    if (this.#sockets.size >= this.#limits.maxConnections) {
      this.#reject('connection', remote, 'max-connections', `${this.#sockets.size} open`);
      abortSide(socket); // a RST: no FIN exchange, no TIME-WAIT socket left behind
      return;
    }
    let evicted = false;
    const pending = this.#guard.admit(remote.ip, () => {
      evicted = true;
      this.#reject('connection', remote, 'handshake-evicted', 'the oldest pending handshake');
      abortSide(socket); // a RST: no FIN exchange, no TIME-WAIT socket left behind
    });
    if ('refused' in pending) {
      this.#reject('connection', remote, pending.refused, refusalDetail(pending.refused));
      abortSide(socket); // a RST: no FIN exchange, no TIME-WAIT socket left behind
      return;
    }
    this.#sockets.add(socket);
    this.#stats.connections = this.#sockets.size;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.#sockets.delete(socket);
      this.#stats.connections = this.#sockets.size;
      pending.done();
      this.#checkDrained();
    };
    socket.once('close', release);
    socket.setNoDelay(true);
    this.#handshaking.add(socket);
    this.#secureContext()
      .then((secureContext) =>
        acceptTls(socket, {
          secureContext,
          trustDomain: this.#options.trustDomain,
          handshakeTimeoutMs: pending.timeoutMs,
        }),
      )
      .then(
        (accepted) => {
          this.#handshaking.delete(socket);
          pending.done();
          accepted.socket.once('close', release);
          if (this.#state !== 'open') {
            this.#reject(
              'connection',
              remote,
              'closing',
              'the server is closing',
              accepted.spiffeId,
            );
            accepted.socket.destroy();
            return;
          }
          this.#startSession(accepted.socket, accepted.peer, remote, socket);
        },
        (err: unknown) => {
          this.#handshaking.delete(socket);
          socket.destroy();
          release();
          if (evicted) return; // reported when it was evicted
          const rejection = err instanceof TlsRejection ? err : undefined;
          this.#reject(
            'connection',
            remote,
            rejection?.reason ?? 'tls-handshake',
            (err as Error).message,
            rejection?.peer,
          );
        },
      );
  }

  async #secureContext(): Promise<SecureContext> {
    try {
      return await this.#options.secureContext();
    } catch (err) {
      throw new TlsRejection('no-secure-context', (err as Error)?.message ?? String(err), err);
    }
  }

  stats(): HboneServerStats {
    return {
      ...this.#stats,
      responses: { ...this.#stats.responses },
      rejected: { ...this.#stats.rejected },
    };
  }

  /**
   * Graceful: stops taking connections, sends GOAWAY on every session (streams in flight
   * finish; the client opens new sessions elsewhere), waits up to drainTimeoutMs, then
   * destroys what is left. Listeners passed to attach() are detached, not closed.
   */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#state = 'closing';
    for (const server of [...this.#attached.keys()]) this.detach(server);
    this.#closing = new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.#log.warn(
          { sessions: this.#sessions.size, streams: this.#stats.streams },
          'HBONE drain timed out; destroying what is left',
        );
        this.destroy();
      }, this.#limits.drainTimeoutMs);
      timer.unref();
      this.#drained = () => {
        clearTimeout(timer);
        this.#state = 'closed';
        resolve();
      };
      // Sockets still in the TLS handshake carry no stream: close them now.
      for (const socket of this.#handshaking) socket.destroy();
      for (const state of this.#sessions.values()) {
        clearTimeout(state.idleTimer);
        state.session.close();
      }
      this.#checkDrained();
    });
    return this.#closing;
  }

  /** Immediate: destroys every session, stream and socket. */
  destroy(): void {
    if (this.#state === 'open') this.#state = 'closing';
    for (const server of [...this.#attached.keys()]) this.detach(server);
    for (const ac of this.#aborts) ac.abort();
    for (const state of this.#sessions.values()) state.session.destroy();
    for (const socket of this.#sockets) socket.destroy();
    this.#checkDrained();
    if (!this.#drained) this.#state = 'closed';
  }

  #checkDrained(): void {
    if (this.#state !== 'closing' || !this.#drained) return;
    if (this.#sessions.size > 0 || this.#sockets.size > 0) return;
    const done = this.#drained;
    this.#drained = undefined;
    done();
  }

  #reject(
    kind: RejectedInfo['kind'],
    remote: Endpoint,
    reason: HboneRejectReason,
    detail: string,
    peer?: SpiffeId,
  ): void {
    this.#stats.rejected[reason] = (this.#stats.rejected[reason] ?? 0) + 1;
    const info: RejectedInfo = { kind, remote, reason, detail, ...(peer ? { peer } : {}) };
    this.#log.debug({ ...info }, 'HBONE refused');
    try {
      this.#options.onRejected?.(info);
    } catch (err) {
      this.#log.error({ err }, 'onRejected threw');
    }
  }

  #startSession(tlsSocket: Socket, peer: PeerIdentity, remote: Endpoint, raw: Socket): void {
    let session: ServerHttp2Session | undefined;
    const grab = (s: ServerHttp2Session) => {
      session = s;
    };
    this.#h2.once('session', grab);
    try {
      this.#h2.emit('connection', tlsSocket);
    } finally {
      this.#h2.off('session', grab);
    }
    if (!session) {
      this.#reject('connection', remote, 'http2-protocol', 'no HTTP/2 session', peer.spiffeId);
      tlsSocket.destroy();
      return;
    }
    const state: SessionState = {
      session,
      peer,
      remote,
      active: 0,
      idleTimer: undefined,
      reported: false,
      cancels: new TokenBucket(
        {
          burst: this.#limits.cancelledStreamBurst,
          ratePerSecond: this.#limits.cancelledStreamRate,
        },
        this.#now(),
      ),
      streams: new Set(),
    };
    this.#sessions.set(session, state);
    this.#stats.sessions = this.#sessions.size;
    this.#stats.sessionsTotal++;
    openConnectionWindow(session, this.#tuning);
    const { busyIntervalMs, busyTimeoutMs } = deadPeerPings(this.#limits.deadPeerTimeoutMs);
    startKeepalive(session, {
      intervalMs: this.#limits.keepaliveIntervalMs,
      timeoutMs: this.#limits.keepaliveTimeoutMs,
      busyIntervalMs,
      busyTimeoutMs,
      busy: () => state.streams.size > 0,
      bytesRead: () => tlsSocket.bytesRead,
      onDead: (reason) => {
        this.#log.warn({ remote, peer: peer.spiffeId, reason }, 'HBONE peer is dead');
        this.#resetStreams(state, reason);
      },
    });
    // Node's session may miss its socket's end while its writes are blocked (its streams would
    // then hang for good): the socket's own close ends them.
    const gone = () => {
      this.#resetStreams(state, 'the HBONE connection closed under its session');
      if (!state.session.destroyed) state.session.destroy();
    };
    tlsSocket.once('close', gone);
    raw.once('close', gone);
    this.#armIdle(state);
    session.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
      this.#onStream(state, stream, headers).catch((err: unknown) => {
        this.#log.error({ err }, 'HBONE stream handler failed');
        if (!stream.destroyed) stream.close();
      });
    });
    const onProtocolError = (err: Error) => {
      if (state.reported) return;
      state.reported = true;
      this.#reject('connection', remote, 'http2-protocol', err.message, peer.spiffeId);
    };
    session.on('error', onProtocolError);
    session.on('frameError', (type: number, code: number) =>
      onProtocolError(new Error(`frame type ${type} error ${code}`)),
    );
    session.once('close', () => {
      this.#resetStreams(state, 'the HBONE connection closed');
      clearTimeout(state.idleTimer);
      this.#sessions.delete(session as ServerHttp2Session);
      this.#stats.sessions = this.#sessions.size;
      tlsSocket.destroy();
      this.#checkDrained();
    });
  }

  #armIdle(state: SessionState): void {
    clearTimeout(state.idleTimer);
    state.idleTimer = undefined;
    if (state.active > 0 || !(this.#limits.idleTimeoutMs > 0)) return;
    state.idleTimer = setTimeout(() => {
      if (state.active === 0) state.session.close();
    }, this.#limits.idleTimeoutMs);
    state.idleTimer.unref();
  }

  #respond(stream: ServerHttp2Stream, status: number, endStream: boolean): boolean {
    if (stream.destroyed || stream.closed || stream.headersSent) return false;
    try {
      stream.respond({ ':status': status }, { endStream });
    } catch {
      return false;
    }
    const key = String(status);
    this.#stats.responses[key] = (this.#stats.responses[key] ?? 0) + 1;
    return true;
  }

  async #onStream(
    state: SessionState,
    stream: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
  ): Promise<void> {
    this.#stats.streamsTotal++;
    this.#stats.streams++;
    state.active++;
    clearTimeout(state.idleTimer);
    stream.on('error', () => {}); // resets by the client are normal life; splice reports them
    state.streams.add(stream);
    stream.once('close', () => {
      state.streams.delete(stream);
      this.#stats.streams--;
      state.active--;
      if (this.#state === 'open') this.#armIdle(state);
    });
    const { remote, peer } = state;
    if (!this.#guard.takeStream(remote.ip)) {
      if (!stream.destroyed) stream.close(h2.NGHTTP2_REFUSED_STREAM);
      this.#reject(
        'stream',
        remote,
        'stream-rate',
        "over the source's stream budget",
        peer.spiffeId,
      );
      return;
    }
    // A stream cancelled in the same read as its HEADERS (rapid reset) shows as closed one
    // turn later: it gets no policy check, no upstream connect and no access record.
    await nextTurn();
    if (stream.destroyed || stream.closed) {
      this.#cancelled(state);
      return;
    }
    const method = headers[':method'];
    if (method !== 'CONNECT') {
      this.#respond(stream, 405, true);
      this.#reject('stream', remote, 'method', `method ${method} is not CONNECT`, peer.spiffeId);
      return;
    }
    const rawAuthority = headers[':authority'];
    const authority = parseHostPort(rawAuthority);
    if (!authority) {
      this.#respond(stream, 400, true);
      this.#reject(
        'stream',
        remote,
        'bad-authority',
        `authority ${JSON.stringify(rawAuthority)} is not ip:port`,
        peer.spiffeId,
      );
      return;
    }
    const forwarded = headers.forwarded;
    const baggage = headers.baggage;
    const traceparent = headers.traceparent;
    const ac = new AbortController();
    this.#aborts.add(ac);
    const onGone = () => ac.abort(new Error('the client closed the stream'));
    stream.once('close', onGone);
    const request: ConnectRequest = {
      authority,
      peer,
      source: remote,
      forwardedFor: parseForwarded(typeof forwarded === 'string' ? forwarded : undefined),
      baggage: parseBaggage(typeof baggage === 'string' ? baggage : undefined),
      traceparent: typeof traceparent === 'string' ? traceparent : undefined,
      headers,
      stream,
      signal: ac.signal,
    };
    let decision: ConnectDecision;
    try {
      decision = await this.#decide(request, ac);
    } finally {
      this.#aborts.delete(ac);
      stream.off('close', onGone);
    }
    if (stream.destroyed || stream.closed) {
      // Cancelled while the agent decided or connected: the connect was aborted with it.
      discard(decision);
      this.#cancelled(state);
      return;
    }
    if (decision.status !== 200) {
      this.#respond(stream, DECISION_STATUSES.has(decision.status) ? decision.status : 503, true);
      return;
    }
    if ('serve' in decision) {
      if (this.#respond(stream, 200, false)) decision.serve(stream);
      return;
    }
    const { upstream, onClose } = decision;
    if (upstream.destroyed) {
      this.#respond(stream, 503, true);
      return;
    }
    upstream.on('error', () => {}); // splice reports it
    if (!this.#respond(stream, 200, false)) {
      upstream.destroy();
      return;
    }
    const result = await splice(stream, upstream);
    try {
      onClose?.(result);
    } catch (err) {
      this.#log.error({ err }, 'onClose threw');
    }
  }

  /**
   * The peer cancelled a stream before its answer. Within the budget that is normal life (a
   * client gave up); past it the peer is flooding (CVE-2023-44487): GOAWAY
   * ENHANCE_YOUR_CALM, the session is cut and its source refused for the penalty time.
   */
  #cancelled(state: SessionState): void {
    if (state.session.destroyed || state.session.closed || state.cut) return; // a drain, or cut
    this.#stats.cancelledStreams++;
    if (state.cancels.take(this.#now())) return;
    const { remote, peer, session } = state;
    this.#reject(
      'connection',
      remote,
      'rapid-reset',
      `more than ${this.#limits.cancelledStreamBurst} streams cancelled before their answer ` +
        `(${this.#limits.cancelledStreamRate}/s); GOAWAY, source refused for ` +
        `${this.#guard.limits.penaltyMs} ms`,
      peer.spiffeId,
    );
    this.#guard.penalize(remote.ip);
    state.reported = true; // the session error this raises is the one reported here
    state.cut = true;
    // GOAWAY now, the cut a moment later: closing the socket while the peer's frames still
    // arrive makes the kernel answer them with a reset, which discards the GOAWAY unread.
    session.goaway(h2.NGHTTP2_ENHANCE_YOUR_CALM);
    setTimeout(() => {
      // The socket first, so destroying the session sends no second GOAWAY.
      session.socket?.destroy();
      if (!session.destroyed) {
        session.destroy(new Error('rapid reset: too many streams cancelled before their answer'));
      }
    }, GOAWAY_LINGER_MS).unref();
  }

  /** The session is gone: every stream still open is reset, so splice resets its upstream. */
  #resetStreams(state: SessionState, reason: string): void {
    if (state.streams.size === 0) return;
    const err = new Error(reason);
    for (const stream of [...state.streams]) if (!stream.destroyed) stream.destroy(err);
  }

  /** onConnect, bounded by connectTimeoutMs; a late upstream is closed; a throw means 503. */
  async #decide(request: ConnectRequest, ac: AbortController): Promise<ConnectDecision> {
    const timeoutMs = this.#limits.connectTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<ConnectDecision>((resolve) => {
      timer = setTimeout(() => {
        ac.abort(new Error(`no decision within ${timeoutMs} ms`));
        resolve({ status: 503, reason: `no decision within ${timeoutMs} ms` });
      }, timeoutMs);
      timer.unref();
    });
    const decided = Promise.resolve()
      .then(() => this.#options.onConnect(request))
      .catch((err: unknown): ConnectDecision => {
        this.#log.warn({ err }, 'HBONE onConnect failed');
        return { status: 503, reason: (err as Error)?.message ?? String(err) };
      });
    const winner = await Promise.race([decided, timeout]);
    clearTimeout(timer);
    if (winner.status !== 200) {
      // Whatever onConnect still produces goes nowhere.
      void decided.then((late) => {
        if (late !== winner) discard(late);
      });
    }
    return winner;
  }
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

function refusalDetail(reason: AdmitRefusal): string {
  return reason === 'penalized'
    ? 'the source was cut off for abuse; its penalty time has not run out'
    : 'too many handshakes in flight from this source';
}
