/**
 * A small HTTP endpoint for monitoring (readiness, Prometheus metrics, later admin pages):
 * fixed GET routes, bounded timeouts, and a close() that also drops keep-alive connections.
 * Shared by the roles: the server's :15014, the agent's :15020/:15021.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { describeError, MeshdError } from '../errors.js';
import { type Logger, silentLogger } from './logger.js';

/*
 * Not `import { createServer } from 'node:http'`: an ES import of node:http reads every export,
 * and its WebSocket/MessageEvent getters load Node's bundled undici (~3 MiB resident) that no
 * role uses (docs/benchmarks.md, "Agent memory").
 */
const { createServer } = process.getBuiltinModule('node:http');

export interface HttpReply {
  status: number;
  body: string;
  contentType?: string;
}

export type RouteHandler = (req: IncomingMessage) => HttpReply | Promise<HttpReply>;

export interface HttpEndpointOptions {
  host: string;
  /** 0 picks a free port (see the returned `port`). */
  port: number;
  /** Exact paths (query strings ignored) answered for GET and HEAD. */
  routes: Readonly<Record<string, RouteHandler>>;
  logger?: Logger;
}

export interface HttpEndpoint {
  host: string;
  port: number;
  /** Stops listening and closes every connection, idle or not. Idempotent. */
  close(): Promise<void>;
}

const TEXT = 'text/plain; charset=utf-8';

export function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

function send(req: IncomingMessage, res: ServerResponse, reply: HttpReply): void {
  const body = Buffer.from(reply.body);
  res.writeHead(reply.status, {
    'content-type': reply.contentType ?? TEXT,
    'content-length': body.length,
    'cache-control': 'no-store',
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}

export async function startHttpEndpoint(options: HttpEndpointOptions): Promise<HttpEndpoint> {
  const log = options.logger ?? silentLogger;
  const server = createServer(async (req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const handler = Object.hasOwn(options.routes, path) ? options.routes[path] : undefined;
    if (!handler) return send(req, res, { status: 404, body: `no such path: ${path}\n` });
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      return send(req, res, { status: 405, body: `${req.method} is not allowed; use GET\n` });
    }
    try {
      send(req, res, await handler(req));
    } catch (err) {
      log.error({ path, err: describeError(err) }, 'monitoring handler failed');
      if (!res.headersSent) send(req, res, { status: 500, body: 'internal error\n' });
      else res.destroy();
    }
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 15_000;
  server.keepAliveTimeout = 5_000;
  const where = hostPort(options.host, options.port);
  await new Promise<void>((resolve, reject) => {
    const onError = (cause: NodeJS.ErrnoException) =>
      reject(
        new MeshdError('MESHD_E_LISTEN', `cannot listen for HTTP on ${where}: ${cause.message}`, {
          cause,
          hint: cause.code === 'EADDRINUSE' ? 'another process holds the port' : undefined,
        }),
      );
    server.once('error', onError);
    server.listen(options.port, options.host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  server.on('error', (err) => log.error({ err: describeError(err) }, 'monitoring server error'));
  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  return {
    host: options.host,
    port,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

/** GET /metrics: the registry in Prometheus text format. */
export function metricsRoute(registry: Registry): RouteHandler {
  return async () => ({
    status: 200,
    body: await registry.metrics(),
    contentType: registry.contentType,
  });
}

/** GET /healthz/ready: 200 while `check` says ready, 503 with its reason otherwise. */
export function readinessRoute(check: () => { ready: boolean; reason?: string }): RouteHandler {
  return () => {
    const state = check();
    return state.ready
      ? { status: 200, body: 'ready\n' }
      : { status: 503, body: `not ready: ${state.reason ?? 'starting'}\n` };
  };
}
