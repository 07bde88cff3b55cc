/**
 * HTTP/2 with prior knowledge (h2c, gRPC) at the waypoint. Downstream, one http2 server that
 * never listens: each tunnel's Duplex is emitted into it and becomes a server session.
 * Upstream, one client session per endpoint over a Duplex from hooks.connect, shared by every
 * request to that endpoint and dropped on GOAWAY or close. Each downstream stream becomes one
 * upstream stream: headers (without connection-specific fields), DATA with back-pressure both
 * ways, trailers (gRPC status), and resets both ways.
 */
import { randomUUID } from 'node:crypto';
import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  type Http2Server,
  constants as h2,
  connect as h2connect,
  createServer as h2createServer,
  type IncomingHttpHeaders,
  type ServerHttp2Session,
  type ServerHttp2Stream,
} from 'node:http2';
import type { Duplex } from 'node:stream';
import { type EngineCore, TokenBucket, type Tunnel } from './core.js';
import { grpcStatusOf, h2ForwardHeaders, isGrpc, traceIdOf } from './headers.js';
import { forward, socketLike } from './pump.js';
import { deniedReply, type LocalReply, upstreamFailureReply } from './replies.js';
import type { Endpoint, RequestRecord, RequestView, ResponseFlag } from './types.js';

const kTunnel = Symbol('meshd.l7.tunnel');
type Session = ServerHttp2Session & { [kTunnel]?: Tunnel };

function noop(): void {}

function authorityOf(e: Endpoint): string {
  return e.ip.includes(':') ? `[${e.ip}]:${e.port}` : `${e.ip}:${e.port}`;
}

class H2Exchange {
  readonly proxy: Http2Proxy;
  readonly tunnel: Tunnel;
  readonly stream: ServerHttp2Stream;
  readonly headers: IncomingHttpHeaders;
  readonly endStream: boolean;
  readonly started = performance.now();
  readonly grpc: boolean;
  view: RequestView | undefined;
  requestId: string | undefined;
  traceId: string | undefined;
  endpoint: Endpoint | undefined;
  upReq: ClientHttp2Stream | undefined;
  abort: AbortController | undefined;
  status = 0;
  grpcStatus: number | undefined;
  trailers: IncomingHttpHeaders | undefined;
  flag: ResponseFlag = '-';
  policy: string | undefined;
  requestBytes = 0;
  responseBytes = 0;
  responded = false;
  closed = false;

  constructor(
    proxy: Http2Proxy,
    tunnel: Tunnel,
    stream: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
    endStream: boolean,
  ) {
    this.proxy = proxy;
    this.tunnel = tunnel;
    this.stream = stream;
    this.headers = headers;
    this.endStream = endStream;
    this.grpc = isGrpc(headers['content-type']);
  }

  readonly countRequest = (n: number): void => {
    this.requestBytes += n;
  };

  readonly countResponse = (n: number): void => {
    this.responseBytes += n;
  };

  readonly onResponse = (headers: IncomingHttpHeaders, flags: number): void => {
    const stream = this.stream;
    if (this.closed || stream.destroyed || stream.closed) return;
    const status = Number(headers[':status']);
    if (status >= 100 && status < 200) return; // interim; 'headers' carries them
    this.status = status;
    this.grpcStatus = grpcStatusOf(headers['grpc-status']);
    const end = (flags & h2.NGHTTP2_FLAG_END_STREAM) !== 0;
    this.responded = true;
    const out = h2ForwardHeaders(headers, undefined);
    stream.respond(out, { endStream: end, waitForTrailers: !end });
    if (!end) {
      stream.once('wantTrailers', this.onWantTrailers);
      forward(this.upReq as unknown as Duplex, stream, this.countResponse);
    }
  };

  readonly onTrailers = (trailers: IncomingHttpHeaders): void => {
    this.trailers = trailers;
    this.grpcStatus = grpcStatusOf(trailers['grpc-status']) ?? this.grpcStatus;
  };

  readonly onWantTrailers = (): void => {
    const t = this.trailers;
    this.stream.sendTrailers(t === undefined ? {} : h2ForwardHeaders(t, undefined));
  };

  /** The upstream stream closed: a reset (or a close before any answer) is passed down. */
  readonly onUpClose = (): void => {
    const upReq = this.upReq as ClientHttp2Stream;
    if (this.closed) return;
    const code = upReq.rstCode ?? h2.NGHTTP2_NO_ERROR;
    if (code === h2.NGHTTP2_NO_ERROR && this.responded) return;
    if (this.flag === '-') this.flag = 'UC';
    if (!this.responded) {
      this.proxy.core.log(
        'warn',
        'l7.upstream-reset',
        'the upstream reset a stream before its answer',
        {
          endpoint: this.endpoint?.id,
          code,
        },
      );
      this.reply(upstreamFailureReply('UC', this.grpc));
    } else if (!this.stream.closed) {
      this.stream.close(code === h2.NGHTTP2_NO_ERROR ? h2.NGHTTP2_INTERNAL_ERROR : code);
    }
  };

  /** The client reset its stream: cancel upstream; count it if it came before any answer. */
  readonly onAborted = (): void => {
    if (this.flag === '-') this.flag = 'DC';
    if (!this.responded) this.proxy.cancelled(this.tunnel);
    this.abort?.abort();
    const upReq = this.upReq;
    if (upReq && !upReq.closed) upReq.close(h2.NGHTTP2_CANCEL);
  };

  readonly onClose = (): void => {
    if (this.closed) return;
    this.closed = true;
    const stream = this.stream;
    if (
      stream.rstCode !== undefined &&
      stream.rstCode !== h2.NGHTTP2_NO_ERROR &&
      this.flag === '-'
    ) {
      this.flag = 'DC';
    }
    this.abort?.abort();
    const upReq = this.upReq;
    if (upReq && !upReq.closed) upReq.close(h2.NGHTTP2_CANCEL);
    this.proxy.finished(this);
  };

  reply(r: LocalReply): void {
    const stream = this.stream;
    if (this.closed || stream.destroyed || stream.closed) return;
    if (this.responded) {
      stream.close(h2.NGHTTP2_INTERNAL_ERROR);
      return;
    }
    this.responded = true;
    this.status = r.status;
    this.grpcStatus = r.grpcStatus;
    this.responseBytes = r.body.length;
    stream.respond({ ':status': r.status, ...r.headers }, { endStream: r.body === '' });
    if (r.body !== '') stream.end(r.body);
    // The request body, if any, is not wanted: read and drop it.
    if (!this.endStream) stream.resume();
  }

  record(): RequestRecord {
    const view = this.view;
    return {
      ctx: this.tunnel.ctx,
      protocol: 'HTTP/2',
      method: view?.method,
      authority: view?.authority,
      path: view?.path,
      status: this.status,
      grpcStatus: this.grpcStatus,
      durationMs: performance.now() - this.started,
      requestBytes: this.requestBytes,
      responseBytes: this.responseBytes,
      endpoint: this.endpoint?.id,
      responseFlags: this.flag,
      policy: this.policy,
      traceId: this.traceId,
      requestId: this.requestId,
    };
  }
}

export class Http2Proxy {
  readonly core: EngineCore;
  readonly #server: Http2Server;
  readonly #upstream = new Map<string, ClientHttp2Session>();
  readonly #pending = new Map<string, Promise<ClientHttp2Session | undefined>>();

  constructor(core: EngineCore) {
    this.core = core;
    const l = core.limits;
    this.#server = h2createServer({
      settings: {
        maxConcurrentStreams: l.maxConcurrentStreams,
        initialWindowSize: l.h2WindowBytes,
        maxHeaderListSize: l.maxHeaderBytes,
        enablePush: false,
      },
      maxSessionMemory: Math.max(10, Math.ceil((8 * l.h2WindowBytes) / (1024 * 1024))),
      // A stream reset in the same read as its HEADERS never reaches 'stream', so the engine's
      // own cancel budget cannot count it (a flood through an HBONE tunnel arrives that way):
      // nghttp2 applies the same budget to every RST_STREAM (its default is ~1,000).
      streamResetBurst: l.cancelledStreamBurst,
      streamResetRate: l.cancelledStreamRate,
    });
    this.#server.on('sessionError', noop);
    this.#server.on(
      'stream',
      (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number) =>
        this.#onStream(stream, headers, flags),
    );
  }

  get upstreamSessions(): number {
    return this.#upstream.size;
  }

  serve(tunnel: Tunnel): void {
    let session: Session | undefined;
    const grab = (s: ServerHttp2Session) => {
      session = s;
    };
    this.#server.once('session', grab);
    this.#server.emit('connection', socketLike(tunnel.stream));
    this.#server.off('session', grab);
    if (session === undefined) {
      tunnel.stream.destroy();
      return;
    }
    const core = this.core;
    session[kTunnel] = tunnel;
    tunnel.session = session;
    tunnel.cancels = new TokenBucket(
      core.limits.cancelledStreamBurst,
      core.limits.cancelledStreamRate,
      core.now(),
    );
    session.on('error', (err: Error) => {
      core.log('debug', 'l7.h2-session', 'a downstream HTTP/2 session failed', {
        err: err.message,
      });
    });
    session.once('close', () => {
      // The session ends the tunnel stream; make sure it goes.
      setImmediate(destroyStream, tunnel.stream);
    });
    try {
      session.setLocalWindowSize(4 * core.limits.h2WindowBytes);
    } catch {
      // not ready on this platform; the default connection window stays
    }
    if (core.limits.keepAliveTimeoutMs > 0) {
      session.setTimeout(core.limits.keepAliveTimeoutMs, () => {
        if (tunnel.active === 0) session?.close();
      });
    }
  }

  /** A stream was cancelled before its answer: past the budget the client is flooding. */
  cancelled(tunnel: Tunnel): void {
    const session = tunnel.session;
    if (!session || session.closed || session.destroyed || !tunnel.cancels) return;
    if (tunnel.cancels.take(this.core.now())) return;
    this.core.counters.rapidResets++;
    this.core.log(
      'warn',
      'l7.rapid-reset',
      `more than ${this.core.limits.cancelledStreamBurst} streams cancelled before their answer; GOAWAY`,
      { source: tunnel.ctx.sourcePrincipal ?? tunnel.ctx.sourceIp },
    );
    session.destroy(
      new Error('rapid reset: too many streams cancelled before their answer'),
      h2.NGHTTP2_ENHANCE_YOUR_CALM,
    );
  }

  #onStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number): void {
    const tunnel = (stream.session as Session | undefined)?.[kTunnel];
    if (tunnel === undefined) {
      stream.close(h2.NGHTTP2_REFUSED_STREAM);
      return;
    }
    const core = this.core;
    const ex = new H2Exchange(
      this,
      tunnel,
      stream,
      headers,
      (flags & h2.NGHTTP2_FLAG_END_STREAM) !== 0,
    );
    tunnel.active++;
    core.counters.requestsActive++;
    core.counters.requestsTotal++;
    stream.on('error', noop);
    stream.once('aborted', ex.onAborted);
    stream.once('close', ex.onClose);
    const method = (headers[':method'] as string | undefined) ?? 'GET';
    const view: RequestView = {
      method,
      path: (headers[':path'] as string | undefined) ?? '',
      authority: (headers[':authority'] as string | undefined) ?? headers.host ?? '',
      headers,
      protocol: 'HTTP/2',
    };
    ex.view = view;
    const rid = headers['x-request-id'];
    ex.requestId = typeof rid === 'string' ? rid : undefined;
    const tp = headers.traceparent;
    ex.traceId = traceIdOf(typeof tp === 'string' ? tp : undefined);
    // A stream reset in the same read as its HEADERS (rapid reset) shows as closed one turn
    // later: it never reaches policy or an upstream, only the cancel budget and its record.
    setImmediate(startExchange, this, ex);
  }

  start(ex: H2Exchange): void {
    const { stream, tunnel, view } = ex;
    const core = this.core;
    if (ex.closed || stream.closed || stream.destroyed || view === undefined) {
      if (ex.flag === '-') ex.flag = 'DC';
      return;
    }
    const method = view.method;
    const verdict = core.authorize(view, tunnel.ctx);
    if (!verdict.allowed) {
      core.counters.denied++;
      ex.policy = verdict.policy ?? '';
      ex.reply(deniedReply(ex.grpc));
      return;
    }
    if (method === 'CONNECT') {
      ex.reply({
        status: 501,
        headers: { 'content-type': 'text/plain' },
        body: 'CONNECT is not supported here',
        grpcStatus: undefined,
      });
      return;
    }
    const endpoints = tunnel.target.endpoints();
    const first = core.pick(endpoints);
    if (first === undefined) {
      ex.flag = 'UH';
      ex.reply(upstreamFailureReply('UH', ex.grpc));
      return;
    }
    const session = this.#pooledSession(first);
    if (session !== undefined) {
      this.#send(ex, first, session);
      return;
    }
    // Streams that arrive while a session to their endpoint is being opened wait for it
    // rather than open one each.
    const pending = this.#pending.get(first.id);
    if (pending !== undefined) void this.#afterPending(ex, endpoints, first, pending);
    else void this.#connectAndSend(ex, endpoints, first);
  }

  async #afterPending(
    ex: H2Exchange,
    endpoints: readonly Endpoint[],
    first: Endpoint,
    pending: Promise<ClientHttp2Session | undefined>,
  ) {
    const session = await pending;
    if (ex.closed) return;
    if (session !== undefined && !session.closed && !session.destroyed) {
      this.#send(ex, first, session);
    } else {
      await this.#connectAndSend(ex, endpoints, first);
    }
  }

  #pooledSession(e: Endpoint): ClientHttp2Session | undefined {
    const s = this.#upstream.get(e.id);
    return s !== undefined && !s.closed && !s.destroyed ? s : undefined;
  }

  readonly #pooled = (e: Endpoint): boolean => this.#pooledSession(e) !== undefined;

  async #connectAndSend(ex: H2Exchange, endpoints: readonly Endpoint[], first: Endpoint) {
    ex.abort = new AbortController();
    let settle: (s: ClientHttp2Session | undefined) => void = noop;
    const pending = new Promise<ClientHttp2Session | undefined>((resolve) => {
      settle = resolve;
    });
    const mine = !this.#pending.has(first.id);
    if (mine) this.#pending.set(first.id, pending);
    let session: ClientHttp2Session | undefined;
    let forFirst: ClientHttp2Session | undefined;
    let outcome: Awaited<ReturnType<EngineCore['connectFrom']>> | undefined;
    try {
      outcome = await this.core.connectFrom(endpoints, first, this.#pooled, ex.abort.signal);
      if (outcome.ok) {
        // Opened even when this stream is gone meanwhile: the others waiting want it.
        session =
          outcome.stream === undefined
            ? this.#pooledSession(outcome.endpoint)
            : this.#open(outcome.endpoint, outcome.stream);
        if (outcome.endpoint.id === first.id) forFirst = session;
      }
    } finally {
      if (mine && this.#pending.get(first.id) === pending) this.#pending.delete(first.id);
      settle(forFirst); // the waiters connect themselves when this went elsewhere or failed
    }
    if (ex.closed) return;
    if (!outcome.ok) {
      ex.flag = outcome.flag;
      ex.endpoint = outcome.endpoint;
      ex.reply(upstreamFailureReply(outcome.flag, ex.grpc));
      return;
    }
    if (session === undefined) {
      ex.flag = 'UC';
      ex.reply(upstreamFailureReply('UC', ex.grpc));
      return;
    }
    this.#send(ex, outcome.endpoint, session);
  }

  /** A client session over a fresh connection; it replaces any pooled one for the endpoint. */
  #open(e: Endpoint, stream: Duplex): ClientHttp2Session {
    const l = this.core.limits;
    const session = h2connect(`http://${authorityOf(e)}`, {
      createConnection: () => stream,
      settings: { initialWindowSize: l.h2WindowBytes, enablePush: false },
      maxSessionMemory: Math.max(10, Math.ceil((8 * l.h2WindowBytes) / (1024 * 1024))),
    });
    const forget = () => {
      if (this.#upstream.get(e.id) === session) this.#upstream.delete(e.id);
    };
    session.on('error', (err: Error) => {
      this.core.log('debug', 'l7.h2-session', `the HTTP/2 session to ${e.id} failed`, {
        endpoint: e.id,
        err: err.message,
      });
    });
    session.once('goaway', forget);
    session.once('close', forget);
    session.once('connect', () => {
      try {
        session.setLocalWindowSize(4 * l.h2WindowBytes);
      } catch {
        // keep the default connection window
      }
    });
    if (l.upstreamIdleMs > 0) {
      session.setTimeout(l.upstreamIdleMs, () => {
        forget();
        session.close();
      });
    }
    this.#upstream.set(e.id, session);
    return session;
  }

  #send(ex: H2Exchange, endpoint: Endpoint, session: ClientHttp2Session): void {
    ex.endpoint = endpoint;
    this.core.load.inc(endpoint.id);
    const out = h2ForwardHeaders(ex.headers, randomUUID);
    ex.requestId = out['x-request-id'] as string;
    let upReq: ClientHttp2Stream;
    try {
      upReq = session.request(out, { endStream: ex.endStream });
    } catch (err) {
      this.core.log('warn', 'l7.upstream-reset', `no stream could be opened to ${endpoint.id}`, {
        err: (err as Error).message,
      });
      ex.flag = 'UC';
      ex.reply(upstreamFailureReply('UC', ex.grpc));
      return;
    }
    ex.upReq = upReq;
    upReq.on('error', noop);
    upReq.on('response', ex.onResponse);
    upReq.on('trailers', ex.onTrailers);
    upReq.once('close', ex.onUpClose);
    if (!ex.endStream) forward(ex.stream, upReq, ex.countRequest);
  }

  finished(ex: H2Exchange): void {
    const core = this.core;
    if (ex.endpoint !== undefined) core.load.dec(ex.endpoint.id);
    ex.tunnel.active--;
    core.counters.requestsActive--;
    core.record(ex.record());
  }

  /** Draining: GOAWAY on every downstream session; open streams run to their end. */
  drain(): void {
    for (const t of this.core.tunnels) if (t.session && !t.session.closed) t.session.close();
  }

  destroy(): void {
    for (const s of this.#upstream.values()) s.destroy();
    this.#upstream.clear();
    this.#server.close(noop);
  }
}

function startExchange(proxy: Http2Proxy, ex: H2Exchange): void {
  proxy.start(ex);
}

function destroyStream(s: Duplex): void {
  if (!s.destroyed) s.destroy();
}
