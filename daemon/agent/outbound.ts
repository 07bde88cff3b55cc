/**
 * Captured outbound connections (15001), carried out after planOutbound decided the path: a
 * Service VIP:port → an endpoint (balanced, with fallback and ejection) over HBONE; a mesh
 * workload → HBONE to its :15008 expecting its identity; a service or workload bound to a
 * waypoint → HBONE to a replica of the waypoint, `:authority` the dialed address; anything else
 * → passthrough; a refusal → reset. Every connection to the peer leaves from the source
 * workload's namespace with the bypass mark.
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { AGENT_PORTS, type LocalWorkload, peerOf, plainIp } from '../discovery/index.js';
import { describeError, errorReason } from '../errors.js';
import { abortSide, type HbonePool, RESET_ON_CLOSE, splice } from '../hbone/index.js';
import { type MeshState, type Service, type Workload, workloadIdentity } from '../model/index.js';
import { connectFromNetns, originalDst } from '../net/index.js';
import type { Balancer, ConnectionLimiter, ConnectionTable } from '../proxy/index.js';
import type {
  ConnectionRecord,
  DataplaneMetrics,
  Logger,
  Peer,
  ResponseFlag,
} from '../telemetry/index.js';
import { type OutboundPlan, planOutbound } from './outbound-plan.js';

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

/** One tunnel to try: HBONE to `tunnelIp`:15008 expecting `expectedIdentity`. */
interface Target {
  tunnelIp: string;
  /** The CONNECT's `:authority`: the endpoint's ip:port, or the dialed address for a waypoint. */
  authority: { ip: string; port: number };
  expectedIdentity: string;
  /** Labels the record: the endpoint (or the waypoint replica) and the service dialed. */
  destination: ConnectionRecord['destination'];
  /** Balanced endpoints report success and failure to the balancer under this key. */
  balanced: boolean;
}

const family = (ip: string): 4 | 6 => (ip.includes(':') ? 6 : 4);

/**
 * One captured connection's outcome, recorded once: `finish` with the destination it reached
 * (or tried last), the transport and the response flag.
 */
class OutboundOutcome {
  readonly #started = performance.now();
  readonly metrics: DataplaneMetrics;
  readonly source: Peer;

  constructor(metrics: DataplaneMetrics, source: Peer) {
    this.metrics = metrics;
    this.source = source;
  }

  opened(transport: Transport, destination: ConnectionRecord['destination']): void {
    this.metrics.opened({
      direction: 'outbound',
      transport,
      source: this.source,
      destination,
      responseFlags: '-',
    });
  }

  finish(
    transport: Transport,
    destination: ConnectionRecord['destination'],
    flag: ResponseFlag,
    bytes?: { sent: number; received: number },
    error?: string,
  ): void {
    this.metrics.finish({
      direction: 'outbound',
      transport,
      source: this.source,
      destination,
      sentBytes: bytes?.sent ?? 0,
      receivedBytes: bytes?.received ?? 0,
      durationMs: performance.now() - this.#started,
      responseFlags: flag,
      error,
    });
  }
}

type Transport = 'hbone' | 'passthrough' | 'refused';

export function handleOutbound(
  deps: OutboundDeps,
  source: LocalWorkload,
  client: Socket,
  limiter: ConnectionLimiter,
): void {
  client.on('error', () => {}); // reported through the outcome's record
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
  const dialed = { ip: plainIp(dst.address), port: dst.port };
  const srcPeer = peerOf(
    source.resource,
    plainIp(client.remoteAddress),
    deps.trustDomain,
    source.identity,
  );
  const outcome = new OutboundOutcome(deps.metrics, srcPeer);
  const state = deps.state();
  const plan = planOutbound(state, { dst: dialed, source: source.resource });
  carryOut(deps, source, client, outcome, plan, dialed);
}

function carryOut(
  deps: OutboundDeps,
  source: LocalWorkload,
  client: Socket,
  outcome: OutboundOutcome,
  plan: OutboundPlan,
  dialed: { ip: string; port: number },
): void {
  switch (plan.kind) {
    case 'refuse':
      refuse(deps, client, outcome, plan, dialed);
      return;
    case 'service':
      void viaHbone(deps, source, client, outcome, serviceTargets(deps, plan), dialed);
      return;
    case 'workload':
      void viaHbone(deps, source, client, outcome, [directTarget(deps, plan.workload, dialed)]);
      return;
    case 'waypoint':
      void viaHbone(deps, source, client, outcome, waypointTargets(deps, plan, dialed), dialed);
      return;
    case 'passthrough':
      void passthrough(deps, source, client, outcome, dialed, plan.workload);
      return;
  }
}

/** The pending-connect slot of each client, released once its upstream is up (or it closes). */
const pendingSlots = new WeakMap<Socket, () => void>();
const upstreamReady = (client: Socket) => pendingSlots.get(client)?.();

const emptyPeer = (ip: string): Peer => ({ workload: '', namespace: '', principal: '', ip });
const serviceName = (s: Service | undefined) =>
  s ? `${s.metadata.name}.${s.metadata.namespace}` : '';

function refuse(
  deps: OutboundDeps,
  client: Socket,
  outcome: OutboundOutcome,
  plan: Extract<OutboundPlan, { kind: 'refuse' }>,
  dialed: { ip: string; port: number },
): void {
  abortSide(client);
  const destination = plan.workload
    ? { ...peerOf(plan.workload, dialed.ip, deps.trustDomain), port: dialed.port }
    : { ...emptyPeer(dialed.ip), port: dialed.port };
  const transport = plan.reason === 'agent-port' ? 'refused' : 'hbone';
  outcome.finish(
    transport,
    { ...destination, service: serviceName(plan.service) },
    plan.flag,
    undefined,
    plan.message,
  );
}

function directTarget(
  deps: OutboundDeps,
  workload: Workload,
  at: { ip: string; port: number },
  service?: Service,
): Target {
  const expected = workloadIdentity(workload, deps.trustDomain);
  return {
    tunnelIp: at.ip,
    authority: at,
    expectedIdentity: expected,
    destination: {
      ...peerOf(workload, at.ip, deps.trustDomain, expected),
      port: at.port,
      service: serviceName(service),
    },
    balanced: service !== undefined,
  };
}

function serviceTargets(
  deps: OutboundDeps,
  plan: Extract<OutboundPlan, { kind: 'service' }>,
): Target[] {
  const { service, targetPort, endpoints } = plan;
  const byIp = new Map(endpoints.map((w) => [w.spec.addresses[0] ?? '', w]));
  const weights = new Map(endpoints.map((w) => [w.spec.addresses[0] ?? '', w.spec.weight ?? 1]));
  const order = deps.balancer.order(
    `${service.metadata.namespace}/${service.metadata.name}`,
    [...byIp.keys()],
    service.spec.loadBalancing?.mode,
    weights,
  );
  return order
    .slice(0, deps.maxAttempts)
    .map((ip) => directTarget(deps, byIp.get(ip) as Workload, { ip, port: targetPort }, service));
}

/** Replicas in turn; each tunnel carries the dialed address for the waypoint to resolve. */
function waypointTargets(
  deps: OutboundDeps,
  plan: Extract<OutboundPlan, { kind: 'waypoint' }>,
  dialed: { ip: string; port: number },
): Target[] {
  const start = Math.floor(Math.random() * plan.replicas.length);
  const rotated = [...plan.replicas.slice(start), ...plan.replicas.slice(0, start)];
  return rotated.slice(0, deps.maxAttempts).map((replica) => {
    const ip = replica.spec.addresses[0] ?? '';
    const expected = workloadIdentity(replica, deps.trustDomain);
    return {
      tunnelIp: ip,
      authority: dialed,
      expectedIdentity: expected,
      destination: {
        ...peerOf(replica, ip, deps.trustDomain, expected),
        port: dialed.port,
        service: serviceName(plan.service),
      },
      balanced: false,
    };
  });
}

/** Tries the targets in order until one tunnel opens; then splices. */
async function viaHbone(
  deps: OutboundDeps,
  source: LocalWorkload,
  client: Socket,
  outcome: OutboundOutcome,
  targets: Target[],
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
    const endpoint = hostPort(target.tunnelIp, AGENT_PORTS.hbone);
    let tunnel: Duplex;
    try {
      await deps.warmIdentity(source.identity);
      tunnel = await deps.pool.connect({
        key: {
          sourceIdentity: source.identity,
          sourceNetns: source.netns,
          expectedIdentity: target.expectedIdentity,
          destination: endpoint,
        },
        authority: hostPort(target.authority.ip, target.authority.port),
        headers: {
          forwarded: `for="${hostPort(outcome.source.ip, client.remotePort ?? 0)}"`,
          baggage: `k8s.namespace.name=${source.ref.namespace},k8s.workload.name=${source.ref.name}`,
        },
      });
    } catch (err) {
      failures.push(`${endpoint}: ${describeError(err).split('\n')[0]}`);
      if (target.balanced && deps.balancer.failed(target.tunnelIp)) {
        deps.logger.warn(
          { endpoint, service: target.destination.service },
          'endpoint ejected after consecutive failures',
        );
      }
      continue;
    }
    if (target.balanced) {
      deps.balancer.succeeded(target.tunnelIp);
      deps.balancer.opened(target.tunnelIp);
    }
    upstreamReady(client);
    outcome.opened('hbone', target.destination);
    deps.connections.add({
      direction: 'outbound',
      path: 'hbone',
      source: outcome.source,
      sourcePort: client.remotePort,
      destination: target.destination,
      dialed,
      socket: client,
      socketFaces: 'source',
    });
    void splice(client, tunnel).then((r) => {
      deps.connections.remove(client);
      if (target.balanced) deps.balancer.closed(target.tunnelIp);
      outcome.finish(
        'hbone',
        target.destination,
        '-',
        { received: r.bytesAtoB, sent: r.bytesBtoA },
        r.error?.message,
      );
    });
    return;
  }
  const clientGone = client.destroyed;
  abortSide(client);
  const last = targets.at(-1);
  outcome.finish(
    'hbone',
    last?.destination ?? { ...emptyPeer(''), port: 0, service: '' },
    clientGone ? 'DC' : 'UF',
    undefined,
    failures.join('; '),
  );
}

async function passthrough(
  deps: OutboundDeps,
  source: LocalWorkload,
  client: Socket,
  outcome: OutboundOutcome,
  dialed: { ip: string; port: number },
  workload: Workload | undefined,
): Promise<void> {
  const { ip, port } = dialed;
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
    outcome.finish('passthrough', destination, 'UF', undefined, describeError(err).split('\n')[0]);
    return;
  }
  upstreamReady(client);
  outcome.opened('passthrough', destination);
  deps.connections.add({
    direction: 'outbound',
    path: 'passthrough',
    source: outcome.source,
    sourcePort: client.remotePort,
    destination,
    socket: client,
    socketFaces: 'source',
  });
  void splice(client, upstream).then((r) => {
    deps.connections.remove(client);
    outcome.finish(
      'passthrough',
      destination,
      '-',
      { received: r.bytesAtoB, sent: r.bytesBtoA },
      r.error?.message,
    );
  });
}

export function hostPort(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}
