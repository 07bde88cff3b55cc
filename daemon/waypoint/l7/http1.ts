/**
 * HTTP/1.1 at the waypoint. Downstream, one http.Server that never listens: each tunnel's
 * Duplex is emitted into it as a connection, so Node's own parser (llhttp) does the framing,
 * the limits and the refusals. Upstream, one keep-alive http.Agent per endpoint whose
 * connections are Duplexes from hooks.connect; a connection is opened (with fallbacks to
 * other endpoints) before the request is made, so a failed connect never eats a request body.
 * Bodies stream both ways with back-pressure; trailers, 100-continue and upgrades pass.
 */
import { randomUUID } from 'node:crypto';
import {
  Agent,
  type AgentOptions,
  type ClientRequest,
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type RequestOptions,
  type Server,
  type ServerResponse,
} from 'node:http';
import { Socket } from 'node:net';
import type { Duplex, Writable } from 'node:stream';
import type { EngineCore, Tunnel } from './core.js';
import {
  downstreamResponseHeaders,
  grpcStatusOf,
  isGrpc,
  upstreamRequestHeaders,
} from './headers.js';
import { forward, socketLike, splice } from './pump.js';
import {
  clientErrorResponse,
  clientErrorStatus,
  deniedReply,
  type LocalReply,
  upstreamFailureReply,
} from './replies.js';
import type { Endpoint, L7LogCode, RequestRecord, RequestView, ResponseFlag } from './types.js';

const kTunnel = Symbol('meshd.l7.tunnel');
const kUsed = Symbol('meshd.l7.used');
const kCurrent = Symbol('meshd.l7.current');
type Conn = Duplex & { [kTunnel]?: Tunnel; [kUsed]?: boolean; [kCurrent]?: H1Exchange | undefined };

/** The request option that carries a connection opened for the request into createConnection. */
interface PreconnectedOptions extends RequestOptions {
  meshdStream?: Conn | undefined;
}

function noop(): void {}

const MISSING_HOST: LocalReply = {
  status: 400,
  headers: { 'content-type': 'text/plain', 'content-length': '19', connection: 'close' },
  body: 'missing Host header',
  grpcStatus: undefined,
};

/** A generic Duplex (not a TCP socket) that the upstream half-closes is ended by us too. */
function endOnEnd(this: Duplex): void {
  if (!this.writableEnded) this.end();
}

export class EndpointAgent extends Agent {
  readonly name: string;

  constructor(endpoint: Endpoint, options: AgentOptions) {
    super(options);
    this.name = this.getName({ host: endpoint.ip, port: endpoint.port });
  }

  /** A kept-alive connection is ready for the next request. */
  hasFree(): boolean {
    const free = this.freeSockets[this.name];
    return free !== undefined && free.length > 0;
  }

  get socketCount(): number {
    return (this.sockets[this.name]?.length ?? 0) + (this.freeSockets[this.name]?.length ?? 0);
  }

  override createConnection(
    options: PreconnectedOptions,
    callback?: (err: Error | null, stream: Duplex) => void,
  ): Duplex | null | undefined {
    const stream = options.meshdStream;
    if (stream === undefined) {
      // The agent wanted a connection the engine did not open (it never should).
      const err = Object.assign(new Error('no upstream connection was opened for this request'), {
        code: 'MESHD_L7_NO_CONNECTION',
      });
      queueMicrotask(() => callback?.(err, undefined as unknown as Duplex));
      return undefined;
    }
    stream[kUsed] = true;
    if (!(stream instanceof Socket)) stream.once('end', endOnEnd);
    return stream;
  }
}

function pairs(flat: readonly string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i < flat.length; i += 2) out.push([flat[i] as string, flat[i + 1] as string]);
  return out;
}

function rawHead(status: number, message: string, headers: readonly string[]): string {
  let head = `HTTP/1.1 ${status} ${message}\r\n`;
  for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
  return `${head}\r\n`;
}

function hasBody(req: IncomingMessage): boolean {
  const cl = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (cl !== undefined && cl !== '0');
}

/**
 * Listeners are shared functions that find their exchange through a symbol on the emitter:
 * no closures are made per request on this path.
 */
const kEx = Symbol('meshd.l7.exchange');
type Carrier = { [kEx]?: H1Exchange };
const exOf = (emitter: unknown): H1Exchange => (emitter as Carrier)[kEx] as H1Exchange;
function upResponseListener(this: unknown, upRes: IncomingMessage): void {
  exOf(this).onResponse(upRes);
}
function upErrorListener(this: unknown, err: NodeJS.ErrnoException): void {
  exOf(this).onUpError(err);
}
function upContinueListener(this: unknown): void {
  exOf(this).onContinue();
}
function upDataListener(this: unknown, chunk: Buffer): void {
  exOf(this).onUpData(chunk);
}
function upEndListener(this: unknown): void {
  exOf(this).onUpEnd();
}
function upResCloseListener(this: unknown): void {
  exOf(this).onUpResClose();
}
function resDrainListener(this: unknown): void {
  exOf(this).onResDrain();
}
function resCloseListener(this: unknown): void {
  exOf(this).onClose();
}

/** One downstream request and its upstream exchange. */
class H1Exchange {
  readonly proxy: Http1Proxy;
  readonly tunnel: Tunnel;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly started = performance.now();
  readonly grpc: boolean;
  view: RequestView | undefined;
  upstreamHeaders: string[] = [];
  requestId: string | undefined;
  traceId: string | undefined;
  endpoint: Endpoint | undefined;
  upReq: ClientRequest | undefined;
  upRes: IncomingMessage | undefined;
  abort: AbortController | undefined;
  flag: ResponseFlag = '-';
  policy: string | undefined;
  grpcStatus: number | undefined;
  requestBytes = 0;
  responseBytes = 0;
  retried = false;
  closed = false;
  /** The status recorded when the answer was not made through `res` (bad input). */
  badInputStatus = 0;

  constructor(proxy: Http1Proxy, tunnel: Tunnel, req: IncomingMessage, res: ServerResponse) {
    this.proxy = proxy;
    this.tunnel = tunnel;
    this.req = req;
    this.res = res;
    this.grpc = isGrpc(req.headers['content-type']);
  }

  onResponse(upRes: IncomingMessage): void {
    this.upRes = upRes;
    const res = this.res;
    if (this.closed || res.headersSent) {
      upRes.resume();
      return;
    }
    this.grpcStatus = grpcStatusOf(upRes.headers['grpc-status']);
    res.writeHead(
      upRes.statusCode ?? 502,
      upRes.statusMessage ?? '',
      downstreamResponseHeaders(upRes.rawHeaders, false, this.proxy.core.draining),
    );
    (upRes as Carrier)[kEx] = this;
    upRes.on('error', noop);
    upRes.on('data', upDataListener);
    upRes.once('end', upEndListener);
    upRes.once('close', upResCloseListener);
  }

  onUpData(chunk: Buffer): void {
    this.responseBytes += chunk.length;
    if (!this.res.write(chunk)) {
      this.upRes?.pause();
      this.res.once('drain', resDrainListener);
    }
  }

  onResDrain(): void {
    this.upRes?.resume();
  }

  onUpEnd(): void {
    const upRes = this.upRes as IncomingMessage;
    if (upRes.rawTrailers.length > 0) {
      this.grpcStatus = grpcStatusOf(upRes.trailers['grpc-status']) ?? this.grpcStatus;
      this.res.addTrailers(pairs(upRes.rawTrailers));
    }
    this.res.end();
  }

  onUpResClose(): void {
    if (this.upRes?.complete || this.closed) return;
    // The upstream connection broke in the middle of the response body.
    if (this.flag === '-') this.flag = 'UC';
    this.res.destroy();
  }

  onContinue(): void {
    if (!this.closed && !this.res.headersSent) this.res.writeContinue();
  }

  onUpError(err: NodeJS.ErrnoException): void {
    if (this.closed || this.flag === 'DPE') return; // closed, or cut for bad input
    if (this.upRes !== undefined) {
      if (this.flag === '-') this.flag = 'UC';
      this.res.destroy();
      return;
    }
    const upReq = this.upReq;
    // A kept-alive upstream connection closed just as it was reused: try once more on a new
    // connection when nothing of the request body was sent.
    if (upReq?.reusedSocket && !this.retried && !hasBody(this.req) && this.endpoint) {
      this.retried = true;
      this.proxy.core.load.dec(this.endpoint.id);
      const endpoint = this.endpoint;
      this.endpoint = undefined;
      this.upReq = undefined;
      void this.proxy.connectAndSend(this, this.tunnel.target.endpoints(), endpoint);
      return;
    }
    this.proxy.core.log('warn', 'l7.upstream-reset', 'the upstream failed before its response', {
      endpoint: this.endpoint?.id,
      err: err.code ?? err.message,
    });
    this.flag = this.retried ? 'URX' : 'UC';
    this.reply(upstreamFailureReply(this.flag, this.grpc));
  }

  onClose(): void {
    if (this.closed) return;
    this.closed = true;
    const res = this.res;
    if (!res.writableFinished) {
      if (this.flag === '-') this.flag = 'DC';
      this.abort?.abort();
      this.upReq?.destroy();
    } else if (this.upReq && !this.upReq.writableFinished) {
      // Answered before the request body was all sent: that connection is not reusable.
      this.upReq.destroy();
    }
    this.proxy.finished(this);
  }

  reply(r: LocalReply): void {
    const res = this.res;
    if (this.closed || res.headersSent) {
      res.destroy();
      return;
    }
    this.grpcStatus = r.grpcStatus;
    this.responseBytes = r.body.length;
    res.writeHead(
      r.status,
      this.proxy.core.draining ? { ...r.headers, connection: 'close' } : r.headers,
    );
    res.end(r.body);
  }

  record(): RequestRecord {
    const view = this.view;
    return {
      ctx: this.tunnel.ctx,
      protocol: 'HTTP/1.1',
      method: view?.method,
      authority: view?.authority,
      path: view?.path,
      status: this.badInputStatus || (this.res.headersSent ? this.res.statusCode : 0),
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

export class Http1Proxy {
  readonly core: EngineCore;
  readonly #server: Server;
  readonly #agents = new Map<string, EndpointAgent>();

  constructor(core: EngineCore) {
    this.core = core;
    const l = core.limits;
    this.#server = createServer({
      maxHeaderSize: l.maxHeaderBytes,
      // Checked in #onRequest instead, so the refusal is recorded like any other request.
      requireHostHeader: false,
      headersTimeout: l.headersTimeoutMs,
      requestTimeout: l.requestTimeoutMs,
      keepAliveTimeout: l.keepAliveTimeoutMs,
      connectionsCheckingInterval: Math.min(1_000, Math.max(50, l.headersTimeoutMs / 4)),
      noDelay: true,
    });
    this.#server.on('request', (req: IncomingMessage, res: ServerResponse) =>
      this.#onRequest(req, res),
    );
    // Expect: 100-continue goes to the upstream, whose 100 is passed back.
    this.#server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) =>
      this.#onRequest(req, res),
    );
    this.#server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) =>
      this.#onUpgrade(req, socket, head),
    );
    this.#server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) =>
      this.#onClientError(err, socket),
    );
    // The server never listens; 'listening' starts Node's check of headersTimeout and
    // requestTimeout over the connections it is handed (slowloris defence).
    this.#server.emit('listening');
  }

  serve(tunnel: Tunnel): void {
    const conn = socketLike(tunnel.stream) as Conn;
    conn[kTunnel] = tunnel;
    this.#server.emit('connection', conn);
  }

  get agentCount(): number {
    return this.#agents.size;
  }

  #agentFor(endpoint: Endpoint): EndpointAgent {
    let agent = this.#agents.get(endpoint.id);
    if (agent === undefined) {
      agent = new EndpointAgent(endpoint, {
        keepAlive: true,
        timeout: this.core.limits.upstreamIdleMs,
        scheduling: 'lifo',
      });
      this.#agents.set(endpoint.id, agent);
    }
    return agent;
  }

  readonly #pooled = (endpoint: Endpoint): boolean =>
    this.#agents.get(endpoint.id)?.hasFree() ?? false;

  #onRequest(req: IncomingMessage, res: ServerResponse): void {
    const tunnel = (req.socket as Conn)[kTunnel];
    if (tunnel === undefined) {
      res.destroy();
      return;
    }
    const core = this.core;
    const ex = new H1Exchange(this, tunnel, req, res);
    (req.socket as Conn)[kCurrent] = ex;
    tunnel.active++;
    core.counters.requestsActive++;
    core.counters.requestsTotal++;
    (res as Carrier)[kEx] = ex;
    res.once('close', resCloseListener);
    const view: RequestView = {
      method: req.method ?? 'GET',
      path: req.url ?? '/',
      authority: req.headers.host ?? '',
      headers: req.headers,
      protocol: 'HTTP/1.1',
    };
    ex.view = view;
    const h = upstreamRequestHeaders(req.rawHeaders, false, randomUUID);
    ex.upstreamHeaders = h.headers;
    ex.requestId = h.requestId;
    ex.traceId = h.traceId;
    if (req.headers.host === undefined && req.httpVersionMinor >= 1) {
      // RFC 9112 §3.2: an HTTP/1.1 request without Host is refused with 400.
      core.counters.badRequests++;
      ex.flag = 'DPE';
      core.log(
        'warn',
        'l7.bad-request',
        `HTTP/1.1 request without Host from ${tunnel.ctx.sourceIp}`,
        {
          source: tunnel.ctx.sourcePrincipal ?? tunnel.ctx.sourceIp,
          reason: 'missing Host',
        },
      );
      ex.reply(MISSING_HOST);
      return;
    }
    const verdict = core.authorize(view, tunnel.ctx);
    if (!verdict.allowed) {
      core.counters.denied++;
      ex.policy = verdict.policy ?? '';
      ex.reply(deniedReply(ex.grpc));
      return;
    }
    const endpoints = tunnel.target.endpoints();
    const first = core.pick(endpoints);
    if (first === undefined) {
      ex.flag = 'UH';
      ex.reply(upstreamFailureReply('UH', ex.grpc));
      return;
    }
    if (this.#pooled(first)) this.send(ex, first, undefined);
    else void this.connectAndSend(ex, endpoints, first);
  }

  async connectAndSend(ex: H1Exchange, endpoints: readonly Endpoint[], first: Endpoint) {
    ex.abort = new AbortController();
    const outcome = await this.core.connectFrom(endpoints, first, this.#pooled, ex.abort.signal);
    // Closed, or cut for bad input in its body while connecting (already answered with 400
    // and recorded as DPE when it closes): the aborted connect is not an upstream failure.
    if (ex.closed || ex.flag === 'DPE') {
      if (outcome.ok) outcome.stream?.destroy();
      return;
    }
    if (!outcome.ok) {
      ex.flag = outcome.flag;
      ex.endpoint = outcome.endpoint;
      ex.reply(upstreamFailureReply(outcome.flag, ex.grpc));
      return;
    }
    this.send(ex, outcome.endpoint, outcome.stream as Conn | undefined);
  }

  send(ex: H1Exchange, endpoint: Endpoint, stream: Conn | undefined): void {
    ex.endpoint = endpoint;
    this.core.load.inc(endpoint.id);
    const agent = this.#agentFor(endpoint);
    const req = ex.req;
    const options: PreconnectedOptions = {
      agent,
      host: endpoint.ip,
      port: endpoint.port,
      method: req.method,
      path: req.url,
      headers: ex.upstreamHeaders,
      setHost: false,
      meshdStream: stream,
    };
    const upReq = httpRequest(options);
    if (stream !== undefined && stream[kUsed] !== true) stream.destroy(); // a free one was taken
    ex.upReq = upReq;
    (upReq as Carrier)[kEx] = ex;
    upReq.on('response', upResponseListener);
    upReq.on('error', upErrorListener);
    upReq.on('continue', upContinueListener);
    if (!hasBody(req)) upReq.end();
    else {
      forward(req, upReq as unknown as Writable, (n) => {
        ex.requestBytes += n;
      });
    }
  }

  finished(ex: H1Exchange): void {
    const core = this.core;
    if (ex.endpoint !== undefined) core.load.dec(ex.endpoint.id);
    const tunnel = ex.tunnel;
    const conn = tunnel.stream as Conn;
    if (conn[kCurrent] === ex) conn[kCurrent] = undefined;
    tunnel.active--;
    core.counters.requestsActive--;
    core.record(ex.record());
    if (core.draining && tunnel.active === 0) setImmediate(closeIfIdle, tunnel);
  }

  /** Draining: closes kept-alive connections with nothing in flight. */
  drainIdle(): void {
    for (const t of this.core.tunnels) if (t.protocol === 'http1' && t.active === 0) closeIfIdle(t);
  }

  #onClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
    const tunnel = (socket as Conn)[kTunnel];
    if (err.code === 'ECONNRESET' || !socket.writable || tunnel === undefined) {
      socket.destroy();
      return;
    }
    const status = clientErrorStatus(err.code);
    const core = this.core;
    core.counters.badRequests++;
    // Bad input inside a request already under way (a malformed chunk of its body): that
    // request is the one answered and recorded, its upstream exchange is cut.
    const ex = (socket as Conn)[kCurrent];
    const answered = ex !== undefined && !ex.closed && ex.res.headersSent;
    const code: L7LogCode =
      status === 431
        ? 'l7.header-overflow'
        : status === 408
          ? 'l7.headers-timeout'
          : 'l7.bad-request';
    core.log(
      'warn',
      code,
      `bad HTTP/1.1 input from ${tunnel.ctx.sourceIp}: ${err.code ?? err.message}`,
      {
        source: tunnel.ctx.sourcePrincipal ?? tunnel.ctx.sourceIp,
        destination: tunnel.ctx.authority,
        reason: err.code,
      },
    );
    if (answered) socket.destroy();
    else socket.end(clientErrorResponse(status));
    // A client that does not close its side after our answer is cut a moment later.
    setTimeout(destroyStream, 1_000, socket).unref();
    if (ex !== undefined && !ex.closed) {
      ex.flag = 'DPE';
      if (!answered) ex.badInputStatus = status;
      ex.abort?.abort();
      ex.upReq?.destroy();
      return; // recorded when its response closes
    }
    core.record({
      ctx: tunnel.ctx,
      protocol: 'HTTP/1.1',
      method: undefined,
      authority: undefined,
      path: undefined,
      status,
      grpcStatus: undefined,
      durationMs: 0,
      requestBytes: 0,
      responseBytes: 0,
      endpoint: undefined,
      responseFlags: 'DPE',
      policy: undefined,
      traceId: undefined,
      requestId: undefined,
    });
  }

  /**
   * A request with Upgrade (WebSocket): sent on a connection of its own; after the upstream's
   * 101 both connections are spliced as raw bytes. Anything else the upstream answers is
   * passed back and the connection closes.
   */
  #onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const tunnel = (socket as Conn)[kTunnel];
    if (tunnel === undefined) {
      socket.destroy();
      return;
    }
    void this.#upgrade(tunnel, req, socket, head);
  }

  async #upgrade(tunnel: Tunnel, req: IncomingMessage, socket: Duplex, head: Buffer) {
    const core = this.core;
    const started = performance.now();
    tunnel.active++;
    core.counters.requestsActive++;
    core.counters.requestsTotal++;
    socket.on('error', noop);
    const h = upstreamRequestHeaders(req.rawHeaders, true, randomUUID);
    const rec: RequestRecord = {
      ctx: tunnel.ctx,
      protocol: 'HTTP/1.1',
      method: req.method,
      authority: req.headers.host,
      path: req.url,
      status: 0,
      grpcStatus: undefined,
      durationMs: 0,
      requestBytes: 0,
      responseBytes: 0,
      endpoint: undefined,
      responseFlags: '-',
      policy: undefined,
      traceId: h.traceId,
      requestId: h.requestId,
    };
    const localEnd = (r: LocalReply) => {
      rec.status = r.status;
      rec.responseBytes = r.body.length;
      const flat: string[] = [];
      for (const k in r.headers) flat.push(k, r.headers[k] as string);
      flat.push('connection', 'close');
      socket.end(
        rawHead(r.status, r.status === 403 ? 'Forbidden' : 'Service Unavailable', flat) + r.body,
      );
    };
    let endpoint: Endpoint | undefined;
    try {
      const view: RequestView = {
        method: req.method ?? 'GET',
        path: req.url ?? '/',
        authority: req.headers.host ?? '',
        headers: req.headers,
        protocol: 'HTTP/1.1',
      };
      const verdict = core.authorize(view, tunnel.ctx);
      if (!verdict.allowed) {
        core.counters.denied++;
        rec.policy = verdict.policy ?? '';
        localEnd(deniedReply(false));
        return;
      }
      const endpoints = tunnel.target.endpoints();
      const first = core.pick(endpoints);
      if (first === undefined) {
        rec.responseFlags = 'UH';
        localEnd(upstreamFailureReply('UH', false));
        return;
      }
      const ac = new AbortController();
      const onGone = () => ac.abort();
      socket.once('close', onGone);
      const outcome = await core.connectFrom(endpoints, first, undefined, ac.signal);
      socket.off('close', onGone);
      if (socket.destroyed) {
        rec.responseFlags = 'DC';
        if (outcome.ok) outcome.stream?.destroy();
        return;
      }
      if (!outcome.ok || outcome.stream === undefined) {
        rec.responseFlags = outcome.ok ? 'UF' : outcome.flag;
        rec.endpoint = outcome.endpoint?.id;
        localEnd(upstreamFailureReply(rec.responseFlags, false));
        return;
      }
      endpoint = outcome.endpoint;
      rec.endpoint = endpoint.id;
      core.load.inc(endpoint.id);
      const upstream = outcome.stream;
      await new Promise<void>((resolve) => {
        const upReq = httpRequest({
          createConnection: () => upstream,
          host: outcome.endpoint.ip,
          port: outcome.endpoint.port,
          method: req.method,
          path: req.url,
          headers: h.headers,
          setHost: false,
        } as RequestOptions);
        socket.once('close', () => {
          if (rec.status === 0) {
            rec.responseFlags = 'DC';
            upReq.destroy();
            resolve();
          }
        });
        upReq.on('upgrade', (upRes: IncomingMessage, upSocket: Duplex, upHead: Buffer) => {
          rec.status = upRes.statusCode ?? 101;
          socket.write(
            rawHead(
              rec.status,
              upRes.statusMessage ?? 'Switching Protocols',
              downstreamResponseHeaders(upRes.rawHeaders, true, false),
            ),
          );
          if (upHead.length > 0) socket.write(upHead);
          if (head.length > 0) upSocket.write(head);
          splice(socket, upSocket).then((r) => {
            rec.requestBytes = r.aToB + head.length;
            rec.responseBytes = r.bToA + upHead.length;
            resolve();
          });
        });
        upReq.on('response', (upRes: IncomingMessage) => {
          // Not upgraded: pass the answer back, delimited by closing the connection.
          rec.status = upRes.statusCode ?? 502;
          socket.write(
            rawHead(
              rec.status,
              upRes.statusMessage ?? '',
              downstreamResponseHeaders(upRes.rawHeaders, false, true),
            ),
          );
          upRes.on('data', (c: Buffer) => {
            rec.responseBytes += c.length;
          });
          upRes.pipe(socket);
          upRes.once('close', () => {
            upstream.destroy();
            resolve();
          });
        });
        upReq.on('error', () => {
          if (rec.status !== 0) return;
          rec.responseFlags = 'UC';
          localEnd(upstreamFailureReply('UC', false));
          resolve();
        });
        upReq.end();
      });
    } finally {
      if (endpoint !== undefined) core.load.dec(endpoint.id);
      tunnel.active--;
      core.counters.requestsActive--;
      rec.durationMs = performance.now() - started;
      core.record(rec);
    }
  }

  destroy(): void {
    for (const agent of this.#agents.values()) agent.destroy();
    this.#agents.clear();
    this.#server.close(noop);
  }

  /** Forgets agents of endpoints that have no connection left. */
  sweep(): void {
    for (const [id, agent] of this.#agents) {
      if (agent.socketCount === 0 && this.core.load.get(id) === 0) this.#agents.delete(id);
    }
  }
}

function destroyStream(s: Duplex): void {
  s.destroy();
}

function closeIfIdle(t: Tunnel): void {
  if (t.active === 0 && !t.stream.destroyed) t.stream.destroy();
}
