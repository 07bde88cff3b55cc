/**
 * `meshd waypoint`: one replica of one Waypoint. Start: register with the local agent (an
 * identity, no traffic yet), get the certificate, follow the registry, serve HBONE on
 * <address>:15008 and the monitoring ports, then register as ready (agents start sending).
 * Stop (SIGTERM): unregister as ready, GOAWAY every tunnel, let requests finish within the
 * drain time, deregister.
 */
import { createServer, type Server, connect as tcpConnect } from 'node:net';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import type { WaypointConfig } from '../config.js';
import { StateSync } from '../discovery/index.js';
import { MeshdError } from '../errors.js';
import {
  type ConnectDecision,
  type ConnectRequest,
  HbonePool,
  HboneServer,
} from '../hbone/index.js';
import {
  type HttpEndpoint,
  type Logger,
  RequestMetrics,
  readinessRoute,
  startHttpEndpoint,
} from '../telemetry/index.js';
import { AgentLink } from './agent-link.js';
import { endpointsOf, resolveDestination } from './destination.js';
import { WaypointIdentity } from './identity.js';
import { L7Engine } from './l7/index.js';
import { WaypointRequests } from './requests.js';

export const WAYPOINT_HBONE_PORT = 15008;

export interface WaypointHandle {
  identity: string;
  replica: string;
  address: string;
  hbonePort: number;
  close(): Promise<void>;
}

export interface WaypointDeps {
  logger: Logger;
  monitoringHost?: string;
}

/** The first non-loopback IPv4 address of this network namespace. */
export function defaultAddress(): string {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  throw new MeshdError(
    'MESHD_E_CONFIG',
    'the waypoint found no non-loopback IPv4 address to serve on',
    {
      hint: 'set MESHD_WAYPOINT_ADDRESS to the address agents should reach this replica at',
    },
  );
}

export async function startWaypoint(
  config: Readonly<WaypointConfig>,
  deps: WaypointDeps,
): Promise<WaypointHandle> {
  const { logger } = deps;
  const { namespace, name } = config.waypoint;
  const address = config.address ?? defaultAddress();
  const replica = config.replica ?? `${name}-${address.replace(/[.:]/g, '-')}`.slice(0, 63);
  const link = new AgentLink(config.agentSocket);
  const registration = { namespace, waypoint: name, replica, addresses: [address] };
  const registered = await link.register({ ...registration, ready: false });
  const { trustDomain } = registered;
  const closers: (() => Promise<void> | void)[] = [];
  const cleanup = async () => {
    for (const close of closers.reverse()) await Promise.resolve(close()).catch(() => {});
  };
  closers.push(() => link.deregister(namespace, replica));
  try {
    const identity = await WaypointIdentity.start({
      link,
      namespace,
      replica,
      identity: registered.identity,
      trustDomain,
      logger,
    });
    closers.push(() => identity.close());
    const sync = new StateSync({
      servers: registered.servers,
      node: registered.node,
      credentials: () => ({
        trustDomain,
        bundlePem: identity.roots.join(''),
        identity: {
          certChainPem: identity.certificate.certChainPem,
          keyPem: identity.certificate.keyPem,
        },
      }),
      stateFile: join(config.stateDir, `${namespace}-${replica}.json`),
      logger: logger.child({ component: 'registry' }),
    });
    sync.start();
    closers.push(() => sync.close());
    await waitFor(() => sync.source !== 'empty', 30_000, 'the registry state');

    const pool = new HbonePool({
      dial: (key, signal) => dial(key.destination, config.connectTimeoutMs, signal),
      secureContext: () => identity.secureContext(),
      trustDomain,
      limits: { connectTimeoutMs: config.connectTimeoutMs },
      logger,
    });
    closers.push(() => pool.close());
    const metrics = new RequestMetrics({ reporter: 'waypoint', cluster: 'Kubernetes' });
    const requests = new WaypointRequests({
      state: () => sync.state,
      waypoint: config.waypoint,
      trustDomain,
      identity: registered.identity,
      pool,
      metrics,
      logger,
    });
    const engine = new L7Engine({
      hooks: requests.hooks(),
      limits: { connectTimeoutMs: config.connectTimeoutMs, drainTimeoutMs: config.drainTimeoutMs },
    });
    closers.push(() => engine.close());
    const hbone = new HboneServer({
      trustDomain,
      secureContext: () => identity.secureContext(),
      onConnect: (req) => Promise.resolve(decide(req)),
      onRejected: (info) =>
        logger.warn(
          { remote: info.remote, reason: info.reason, detail: info.detail },
          'HBONE connection refused',
        ),
      limits: { drainTimeoutMs: config.drainTimeoutMs },
      logger,
    });
    const decide = (req: ConnectRequest): ConnectDecision => {
      const destination = resolveDestination(sync.state, config.waypoint, req.authority);
      if (destination.kind === 'refuse') {
        logger.warn(
          { peer: req.peer.spiffeId, authority: req.authority, reason: destination.reason },
          'tunnel refused',
        );
        return { status: 400, reason: destination.reason };
      }
      const ctx = {
        sourcePrincipal: req.peer.spiffeId,
        sourceIp: req.forwardedFor?.ip ?? req.source.ip,
        destination: req.authority,
        authority: `${req.authority.ip}:${req.authority.port}`,
      };
      const target = {
        protocol: destination.kind === 'service' ? destination.protocol : undefined,
        endpoints: () => endpointsOf(sync.state, destination),
      };
      requests.remember(ctx, destination);
      return { status: 200, serve: (stream) => void engine.serveTunnel(stream, ctx, target) };
    };
    const listener = await listen(address, WAYPOINT_HBONE_PORT);
    hbone.attach(listener);
    closers.push(async () => {
      listener.close();
      await hbone.close();
    });
    let stopping = false;
    const registry = new Registry();
    const endpoints = await monitoring(config, deps, {
      metrics: async () => `${await registry.metrics()}${metrics.render()}`,
      ready: () => {
        if (stopping) return { ready: false, reason: 'shutting down' };
        return { ready: true };
      },
      dump: () => ({
        waypoint: config.waypoint,
        replica,
        identity: registered.identity,
        address,
        registry: { source: sync.source, revision: sync.state.revision },
        hbone: hbone.stats(),
        pool: pool.stats(),
        l7: engine.stats(),
        certificate: {
          serial: identity.certificate.serial,
          notAfter: identity.certificate.notAfter.toISOString(),
        },
      }),
    });
    closers.push(async () => {
      for (const e of endpoints) await e.close();
    });
    await link.register({ ...registration, ready: true });
    logger.info(
      { waypoint: `${namespace}/${name}`, replica, identity: registered.identity, address },
      'waypoint ready',
    );
    return {
      identity: registered.identity,
      replica,
      address,
      hbonePort: WAYPOINT_HBONE_PORT,
      async close() {
        if (stopping) return;
        stopping = true;
        // Agents stop choosing this replica first; the tunnels they hold then get GOAWAY.
        await link
          .register({ ...registration, ready: false })
          .catch((err: unknown) =>
            logger.warn({ err: String(err) }, 'could not unregister as ready; draining anyway'),
          );
        await cleanup();
      },
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

function dial(destination: string, timeoutMs: number, signal: AbortSignal) {
  const m = /^\[?([^\]]+)\]?:(\d+)$/.exec(destination);
  return new Promise<import('node:net').Socket>((resolve, reject) => {
    const socket = tcpConnect({
      host: m?.[1] ?? destination,
      port: Number(m?.[2] ?? 0),
      timeout: timeoutMs,
    });
    const fail = (err: Error) => {
      socket.destroy();
      reject(err);
    };
    socket.once('connect', () => {
      socket.setTimeout(0);
      resolve(socket);
    });
    socket.once('timeout', () =>
      fail(new Error(`connect to ${destination} timed out after ${timeoutMs} ms`)),
    );
    socket.once('error', fail);
    signal.addEventListener('abort', () => fail(new Error('aborted')), { once: true });
  });
}

function listen(host: string, port: number): Promise<Server> {
  const server = createServer({ allowHalfOpen: true });
  return new Promise((resolve, reject) => {
    server.once('error', (cause: NodeJS.ErrnoException) =>
      reject(
        new MeshdError(
          'MESHD_E_LISTEN',
          `the waypoint cannot listen on ${host}:${port}: ${cause.message}`,
          {
            cause,
            hint: 'MESHD_WAYPOINT_ADDRESS must be an address of this host or namespace, with port 15008 free',
          },
        ),
      ),
    );
    server.listen(port, host, () => resolve(server));
  });
}

async function monitoring(
  config: Readonly<WaypointConfig>,
  deps: WaypointDeps,
  routes: {
    metrics: () => Promise<string>;
    ready: () => { ready: boolean; reason?: string };
    dump: () => unknown;
  },
): Promise<HttpEndpoint[]> {
  const host = deps.monitoringHost ?? '0.0.0.0';
  const json = (value: unknown) => ({
    status: 200,
    body: `${JSON.stringify(value, null, 2)}\n`,
    contentType: 'application/json',
  });
  return [
    await startHttpEndpoint({
      host: '127.0.0.1',
      port: config.adminPort,
      logger: deps.logger,
      routes: { '/config_dump': () => json(routes.dump()) },
    }),
    await startHttpEndpoint({
      host,
      port: config.metricsPort,
      logger: deps.logger,
      routes: {
        '/metrics': async () => ({
          status: 200,
          body: await routes.metrics(),
          contentType: 'text/plain; version=0.0.4; charset=utf-8',
        }),
      },
    }),
    await startHttpEndpoint({
      host,
      port: config.readinessPort,
      logger: deps.logger,
      routes: { '/healthz/ready': readinessRoute(routes.ready) },
    }),
  ];
}

async function waitFor(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) {
      throw new MeshdError(
        'MESHD_E_CONTROL_PLANE',
        `the waypoint did not get ${what} within ${timeoutMs} ms`,
        {
          hint: 'check that meshd server is reachable from this host (meshctl check)',
        },
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
