/**
 * A loopback harness for the waypoint's L7 engine: a net server whose connections are handed
 * to engine.serveTunnel (standing in for the HBONE tunnel streams), upstream connections as
 * plain TCP, and records/logs collected. Loopback only.
 */
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import {
  type AuthorizeResult,
  type DownstreamContext,
  type Endpoint,
  L7Engine,
  type L7Limits,
  type L7LogEvent,
  type L7Target,
  type RequestRecord,
  type RequestView,
} from '../../daemon/waypoint/l7/index.js';

export const CLIENT_PRINCIPAL = 'spiffe://cluster.local/ns/demo/sa/client';

export interface HarnessOptions {
  target: L7Target;
  limits?: Partial<L7Limits>;
  authorize?: (req: RequestView, ctx: DownstreamContext) => AuthorizeResult;
  connect?: (e: Endpoint, signal: AbortSignal) => Promise<Duplex>;
  random?: () => number;
}

export interface Harness {
  engine: L7Engine;
  port: number;
  records: RequestRecord[];
  logs: L7LogEvent[];
  /** Endpoint ids hooks.connect was called for, in order. */
  connects: string[];
  authorize: (req: RequestView, ctx: DownstreamContext) => AuthorizeResult;
  tunnels: Promise<void>[];
  close(): Promise<void>;
}

/** hooks.connect for tests: plain TCP to the endpoint. */
export function tcpConnect(e: Endpoint, signal: AbortSignal): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const s: Socket = connect({ host: e.ip, port: e.port, signal });
    s.once('connect', () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

export async function startHarness(options: HarnessOptions): Promise<Harness> {
  const records: RequestRecord[] = [];
  const logs: L7LogEvent[] = [];
  const connects: string[] = [];
  const tunnels: Promise<void>[] = [];
  const h = {} as Harness;
  h.authorize = options.authorize ?? (() => ({ allowed: true }));
  const engine = new L7Engine({
    hooks: {
      authorize: (req, ctx) => h.authorize(req, ctx),
      connect: (e, signal) => {
        connects.push(e.id);
        return (options.connect ?? tcpConnect)(e, signal);
      },
      record: (r) => records.push(r),
      log: (e) => logs.push(e),
    },
    limits: options.limits,
    random: options.random,
  });
  const server: Server = createServer({ allowHalfOpen: true }, (socket) => {
    const ctx: DownstreamContext = {
      sourcePrincipal: CLIENT_PRINCIPAL,
      sourceIp: socket.remoteAddress ?? '127.0.0.1',
      destination: { ip: '10.96.0.10', port: 80 },
      authority: '10.96.0.10:80',
    };
    tunnels.push(engine.serveTunnel(socket, ctx, options.target));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  Object.assign(h, {
    engine,
    port: typeof address === 'object' && address ? address.port : 0,
    records,
    logs,
    connects,
    tunnels,
    close: async () => {
      server.close();
      engine.destroy();
      await Promise.all(tunnels);
    },
  });
  return h;
}

/** A target with a fixed protocol over a mutable endpoint list. */
export function target(protocol: L7Target['protocol'], endpoints: Endpoint[]): L7Target {
  return { protocol, endpoints: () => endpoints };
}

export function endpointOf(server: Server | { address(): unknown }, id?: string): Endpoint {
  const a = server.address() as { port: number };
  return { ip: '127.0.0.1', port: a.port, id: id ?? `127.0.0.1:${a.port}` };
}

/** A port nothing listens on (bound, closed again). */
export async function deadPort(): Promise<number> {
  const s = createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** Polls `cond` every 10 ms until true or `ms` passed. */
export async function until(cond: () => boolean, ms = 3_000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return cond();
}
