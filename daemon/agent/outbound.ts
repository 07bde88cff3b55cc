/**
 * Captured outbound connections (15001): the original destination decides the path —
 * a Service VIP:port → an endpoint (balanced, with fallback and ejection) over HBONE; a mesh
 * workload → HBONE to its :15008 expecting its identity; anything else → passthrough. Every
 * connection to the peer leaves from the source workload's namespace with the bypass mark.
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import {
  AGENT_PORT_SET,
  AGENT_PORTS,
  type LocalWorkload,
  peerOf,
  plainIp,
} from '../discovery/index.js';
import { describeError, errorReason } from '../errors.js';
import { abortSide, type HbonePool, RESET_ON_CLOSE, splice } from '../hbone/index.js';
import {
  isEnrolled,
  type MeshState,
  type Service,
  type Workload,
  workloadIdentity,
} from '../model/index.js';
import { connectFromNetns, originalDst } from '../net/index.js';
import type { Balancer, ConnectionLimiter, ConnectionTable } from '../proxy/index.js';
import type { ConnectionRecord, DataplaneMetrics, Logger, Peer } from '../telemetry/index.js';

export interface OutboundDeps {
  state: () => MeshState;
  /** Makes sure the source identity's TLS context is ready (the pool reads it synchronously). */
  warmIdentity: (identity: string) => Promise<unknown>;
  trustDomain: string;
  pool: HbonePool;
  balancer: Balancer;
  metrics: DataplaneMetrics;
  /** Live connections for the admin endpoint: one add when up, one remove at the end. */
  connections: ConnectionTable;
  logger: Logger;
  mark: number;
  connectTimeoutMs: number;
  /** How many endpoints to try before giving up. */
  maxAttempts: number;
}

interface Target {
  ip: string;
  port: number;
  workload: Workload | undefined;
  service: Service | undefined;
}

const family = (ip: string): 4 | 6 => (ip.includes(':') ? 6 : 4);

export function handleOutbound(
  deps: OutboundDeps,
  source: LocalWorkload,
  client: Socket,
  limiter: ConnectionLimiter,
): void {
  const started = performance.now();
  client.on('error', () => {}); // reported through the record below
  const slot = limiter.admit();
  // Every refusal below resets the client (TCP RST): its connect already succeeded against the
  // capture, and a plain close would read as an empty but complete answer.
  if ('refused' in slot) {
    abortSide(client);
    deps.metrics.rejected.inc({ listener: 'outbound', reason: 'overflow' });
    deps.logger.warn(
      { workload: source.ref, reason: slot.refused },
      'outbound connection refused: limit reached',
    );
    return;
  }
  client.once('close', slot.closed);
  pendingSlots.set(client, slot.connected);
  let dst: { address: string; port: number };
  try {
    dst = originalDst(client);
  } catch (err) {
    deps.metrics.rejected.inc({ listener: 'outbound', reason: errorReason(err) });
    deps.logger.warn(
      { err: describeError(err), workload: source.ref },
      'outbound connection without an original destination; closed',
    );
    client.destroy();
    return;
  }
  const dstIp = plainIp(dst.address);
  const srcPeer = peerOf(
    source.resource,
    plainIp(client.remoteAddress),
    deps.trustDomain,
    source.identity,
  );
  const base = { direction: 'outbound' as const, source: srcPeer };
  const record = (
    destination: ConnectionRecord['destination'],
    transport: string,
    fields: Partial<ConnectionRecord>,
  ) =>
    deps.metrics.finish({
      ...base,
      destination,
      transport,
      sentBytes: 0,
      receivedBytes: 0,
      durationMs: performance.now() - started,
      responseFlags: '-',
      ...fields,
    });

  if (AGENT_PORT_SET.has(dst.port)) {
    abortSide(client);
    record({ ...emptyPeer(dstIp), port: dst.port, service: '' }, 'refused', {
      responseFlags: 'DENY',
      error: `calls to the agent's own port ${dst.port} are refused`,
    });
    return;
  }
  const state = deps.state();
  const match = state.serviceAt(dstIp, dst.port);
  if (match) {
    void toService(
      deps,
      source,
      client,
      match.service,
      match.port.targetPort ?? dst.port,
      `${dstIp}:${dst.port}`,
      started,
      srcPeer,
      { ip: dstIp, port: dst.port },
    );
    return;
  }
  const workload = state.workloadByIp(dstIp);
  if (
    workload &&
    isEnrolled(
      workload.metadata.labels ?? {},
      state.namespaceLabels(workload.metadata.namespace ?? ''),
    )
  ) {
    void viaHbone(
      deps,
      source,
      client,
      [{ ip: dstIp, port: dst.port, workload, service: undefined }],
      started,
      srcPeer,
    );
    return;
  }
  void passthrough(deps, source, client, dstIp, dst.port, workload, started, srcPeer);
}

/** The pending-connect slot of each client, released once its upstream is up (or it closes). */
const pendingSlots = new WeakMap<Socket, () => void>();
const upstreamReady = (client: Socket) => pendingSlots.get(client)?.();

const emptyPeer = (ip: string): Peer => ({ workload: '', namespace: '', principal: '', ip });

async function toService(
  deps: OutboundDeps,
  source: LocalWorkload,
  client: Socket,
  service: Service,
  targetPort: number,
  vip: string,
  started: number,
  srcPeer: Peer,
  dialed: { ip: string; port: number },
): Promise<void> {
  const state = deps.state();
  const key = { namespace: service.metadata.namespace ?? '', name: service.metadata.name };
  const endpoints = state.endpoints(key).filter((w) => w.spec.addresses.length > 0);
  const byIp = new Map(endpoints.map((w) => [w.spec.addresses[0] ?? '', w]));
  const weights = new Map(endpoints.map((w) => [w.spec.addresses[0] ?? '', w.spec.weight ?? 1]));
  const order = deps.balancer.order(
    `${key.namespace}/${key.name}`,
    [...byIp.keys()],
    service.spec.loadBalancing?.mode,
    weights,
  );
  const targets: Target[] = order
    .slice(0, deps.maxAttempts)
    .map((ip) => ({ ip, port: targetPort, workload: byIp.get(ip), service }));
  if (targets.length === 0) {
    abortSide(client);
    deps.metrics.finish({
      direction: 'outbound',
      transport: 'hbone',
      source: srcPeer,
      destination: {
        ...emptyPeer(vip),
        port: targetPort,
        service: `${service.metadata.name}.${key.namespace}`,
      },
      sentBytes: 0,
      receivedBytes: 0,
      durationMs: performance.now() - started,
      responseFlags: 'UH',
      error: `service ${key.namespace}/${key.name} has no endpoints`,
    });
    return;
  }
  await viaHbone(deps, source, client, targets, started, srcPeer, dialed);
}

/** Tries the targets in order until one tunnel opens; then splices. */
async function viaHbone(
  deps: OutboundDeps,
  source: LocalWorkload,
  client: Socket,
  targets: Target[],
  started: number,
  srcPeer: Peer,
  /** The service VIP:port the workload dialed, when a target stands for it. */
  dialed?: { ip: string; port: number },
): Promise<void> {
  const failures: string[] = [];
  for (const target of targets) {
    // The client reset while an earlier endpoint was failing: no point in trying the next
    // one, but the connection still gets its record.
    if (client.destroyed) {
      failures.push('the client closed the connection before a tunnel opened');
      break;
    }
    const expected = target.workload ? workloadIdentity(target.workload, deps.trustDomain) : '';
    const endpoint = `${target.ip}:${target.port}`;
    const destination = {
      ...peerOf(target.workload, target.ip, deps.trustDomain, expected),
      port: target.port,
      service: target.service
        ? `${target.service.metadata.name}.${target.service.metadata.namespace}`
        : '',
    };
    let tunnel: Duplex;
    try {
      await deps.warmIdentity(source.identity);
      tunnel = await deps.pool.connect({
        key: {
          sourceIdentity: source.identity,
          sourceNetns: source.netns,
          expectedIdentity: expected,
          destination: hostPort(target.ip, AGENT_PORTS.hbone),
        },
        authority: hostPort(target.ip, target.port),
        headers: {
          forwarded: `for="${hostPort(srcPeer.ip, client.remotePort ?? 0)}"`,
          baggage: `k8s.namespace.name=${source.ref.namespace},k8s.workload.name=${source.ref.name}`,
        },
      });
    } catch (err) {
      failures.push(`${endpoint}: ${describeError(err).split('\n')[0]}`);
      if (target.service && deps.balancer.failed(target.ip)) {
        deps.logger.warn(
          { endpoint, service: destination.service },
          'endpoint ejected after consecutive failures',
        );
      }
      continue;
    }
    if (target.service) {
      deps.balancer.succeeded(target.ip);
      deps.balancer.opened(target.ip);
    }
    upstreamReady(client);
    deps.metrics.opened({
      direction: 'outbound',
      transport: 'hbone',
      source: srcPeer,
      destination,
      responseFlags: '-',
    });
    deps.connections.add({
      direction: 'outbound',
      path: 'hbone',
      source: srcPeer,
      sourcePort: client.remotePort,
      destination,
      dialed,
      socket: client,
      socketFaces: 'source',
    });
    void splice(client, tunnel).then((r) => {
      deps.connections.remove(client);
      if (target.service) deps.balancer.closed(target.ip);
      deps.metrics.finish({
        direction: 'outbound',
        transport: 'hbone',
        source: srcPeer,
        destination,
        receivedBytes: r.bytesAtoB,
        sentBytes: r.bytesBtoA,
        durationMs: performance.now() - started,
        responseFlags: '-',
        error: r.error?.message,
      });
    });
    return;
  }
  const clientGone = client.destroyed;
  abortSide(client);
  const last = targets.at(-1);
  deps.metrics.finish({
    direction: 'outbound',
    transport: 'hbone',
    source: srcPeer,
    destination: {
      ...peerOf(last?.workload, last?.ip ?? '', deps.trustDomain),
      port: last?.port ?? 0,
      service: last?.service
        ? `${last.service.metadata.name}.${last.service.metadata.namespace}`
        : '',
    },
    sentBytes: 0,
    receivedBytes: 0,
    durationMs: performance.now() - started,
    responseFlags: clientGone ? 'DC' : 'UF',
    error: failures.join('; '),
  });
}

async function passthrough(
  deps: OutboundDeps,
  source: LocalWorkload,
  client: Socket,
  ip: string,
  port: number,
  workload: Workload | undefined,
  started: number,
  srcPeer: Peer,
): Promise<void> {
  const destination = {
    ...peerOf(workload, ip, deps.trustDomain, ''),
    principal: '',
    port,
    service: '',
  };
  let upstream: Socket;
  try {
    upstream = await connectFromNetns({
      netns: source.netns,
      family: family(ip),
      mark: deps.mark,
      host: ip,
      port,
      timeoutMs: deps.connectTimeoutMs,
      allowHalfOpen: true,
      linger: RESET_ON_CLOSE,
    });
  } catch (err) {
    abortSide(client);
    deps.metrics.finish({
      direction: 'outbound',
      transport: 'passthrough',
      source: srcPeer,
      destination,
      sentBytes: 0,
      receivedBytes: 0,
      durationMs: performance.now() - started,
      responseFlags: 'UF',
      error: describeError(err).split('\n')[0],
    });
    return;
  }
  upstreamReady(client);
  deps.metrics.opened({
    direction: 'outbound',
    transport: 'passthrough',
    source: srcPeer,
    destination,
    responseFlags: '-',
  });
  deps.connections.add({
    direction: 'outbound',
    path: 'passthrough',
    source: srcPeer,
    sourcePort: client.remotePort,
    destination,
    socket: client,
    socketFaces: 'source',
  });
  void splice(client, upstream).then((r) => {
    deps.connections.remove(client);
    deps.metrics.finish({
      direction: 'outbound',
      transport: 'passthrough',
      source: srcPeer,
      destination,
      receivedBytes: r.bytesAtoB,
      sentBytes: r.bytesBtoA,
      durationMs: performance.now() - started,
      responseFlags: '-',
      error: r.error?.message,
    });
  });
}

export function hostPort(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}
