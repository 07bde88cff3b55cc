/**
 * Inbound traffic of a captured workload: HBONE CONNECT streams (15008) and captured plaintext
 * (15006). Both check PeerAuthentication and AuthorizationPolicy for this workload before
 * connecting to the application (from inside its namespace, with the bypass mark), and keep
 * the connection in a live set so a policy change can re-check it and close it if now denied.
 */
import type { Socket } from 'node:net';
import {
  AGENT_PORT_SET,
  GuardedPortsCache,
  type LocalWorkload,
  peerOf,
  plainIp,
} from '../discovery/index.js';
import { describeError, errorReason } from '../errors.js';
import {
  abortSide,
  type ConnectDecision,
  type ConnectRequest,
  RESET_ON_CLOSE,
  splice,
} from '../hbone/index.js';
import type { MeshState } from '../model/index.js';
import { connectFromNetns, originalDst } from '../net/index.js';
import { type ConnectionAttributes, checkWaypointOnly, evaluate } from '../policy/index.js';
import type { ConnectionTable } from '../proxy/index.js';
import type {
  ConnectionRecord,
  DataplaneMetrics,
  Logger,
  ResponseFlag,
} from '../telemetry/index.js';

export interface InboundDeps {
  state: () => MeshState;
  trustDomain: string;
  metrics: DataplaneMetrics;
  /** Live connections for the admin endpoint: one add when up, one remove at the end. */
  connections: ConnectionTable;
  logger: Logger;
  mark: number;
  connectTimeoutMs: number;
}

interface LiveConnection {
  attributes: ConnectionAttributes;
  close(reason: string, policy: string | undefined): void;
}

/** The connections of one workload that policy may have to cut. */
export class LiveConnections {
  readonly #live = new Set<LiveConnection>();

  add(c: LiveConnection): () => void {
    this.#live.add(c);
    return () => this.#live.delete(c);
  }

  /** Re-evaluates every live connection; closes the denied ones. Returns how many were closed. */
  recheck(
    decide: (a: ConnectionAttributes) => { allowed: boolean; reason: string; policy?: string },
  ): number {
    let closed = 0;
    for (const c of [...this.#live]) {
      const d = decide(c.attributes);
      if (!d.allowed) {
        this.#live.delete(c);
        c.close(d.reason, d.policy);
        closed += 1;
      }
    }
    return closed;
  }

  closeAll(reason: string): void {
    for (const c of [...this.#live]) c.close(reason, undefined);
    this.#live.clear();
  }

  get size(): number {
    return this.#live.size;
  }
}

/** Per workload, so a plaintext connection or a re-check does not work the ports out again. */
const guardedCaches = new WeakMap<LocalWorkload, GuardedPortsCache>();

function decideFor(deps: InboundDeps, workload: LocalWorkload) {
  let guarded = guardedCaches.get(workload);
  if (!guarded) {
    guarded = new GuardedPortsCache();
    guardedCaches.set(workload, guarded);
  }
  const cache = guarded;
  return (attributes: ConnectionAttributes) => {
    const state = deps.state();
    const ports = cache.get(state, workload.ref, deps.trustDomain);
    const bypass = ports.length > 0 ? checkWaypointOnly(ports, attributes) : undefined;
    if (bypass) return bypass;
    return evaluate(
      {
        policies: state.authorizationPoliciesFor(workload.ref),
        mtls: state.peerAuthenticationFor(workload.ref),
      },
      attributes,
    );
  };
}

const family = (ip: string): 4 | 6 => (ip.includes(':') ? 6 : 4);

type InboundRecord = Omit<
  ConnectionRecord,
  'sentBytes' | 'receivedBytes' | 'durationMs' | 'responseFlags'
>;

/** The one record of an inbound connection, where it ends (refused, failed or closed). */
function finishInbound(
  deps: InboundDeps,
  record: InboundRecord,
  started: number,
  flag: ResponseFlag,
  outcome: { error?: string; policy?: string; sent?: number; received?: number } = {},
): void {
  deps.metrics.finish({
    ...record,
    sentBytes: outcome.sent ?? 0,
    receivedBytes: outcome.received ?? 0,
    durationMs: performance.now() - started,
    responseFlags: flag,
    error: outcome.error,
    policy: outcome.policy,
  });
}

/** Connects to the application and splices; records the connection when it ends. */
async function toApplication(
  deps: InboundDeps,
  workload: LocalWorkload,
  live: LiveConnections,
  attributes: ConnectionAttributes,
  record: InboundRecord,
  started: number,
  sourcePort: number | undefined,
  signal?: AbortSignal,
): Promise<Socket> {
  return connectFromNetns({
    signal,
    netns: workload.netns,
    family: family(attributes.destinationIp),
    mark: deps.mark,
    host: attributes.destinationIp,
    port: attributes.destinationPort,
    timeoutMs: deps.connectTimeoutMs,
    allowHalfOpen: true,
    linger: RESET_ON_CLOSE,
  }).then((upstream) => {
    deps.metrics.opened({ ...record, responseFlags: '-' });
    let closedBy: { reason: string; policy: string | undefined } | undefined;
    // The application's own failure (a reset, a broken pipe): the record says so.
    let failed: Error | undefined;
    upstream.on('error', (err: Error) => {
      failed ??= err;
    });
    const remove = live.add({
      attributes,
      close(reason, policy) {
        closedBy = { reason, policy };
        upstream.destroy();
      },
    });
    deps.connections.add({
      direction: 'inbound',
      path: record.transport === 'hbone' ? 'hbone' : 'plaintext',
      source: record.source,
      sourcePort,
      destination: record.destination,
      socket: upstream,
      socketFaces: 'destination',
    });
    upstream.once('close', () => {
      remove();
      deps.connections.remove(upstream);
      finishInbound(deps, record, started, closedBy?.policy ? 'DENY' : '-', {
        // From the application's side: bytes it wrote went to the client.
        sent: upstream.bytesRead,
        received: upstream.bytesWritten,
        error: closedBy ? `closed: ${closedBy.reason}` : failed?.message,
        policy: closedBy?.policy,
      });
    });
    return upstream;
  });
}

/** The HBONE server's decision for one CONNECT to this workload. */
export function hboneConnectHandler(
  deps: InboundDeps,
  workload: LocalWorkload,
  live: LiveConnections,
) {
  const decide = decideFor(deps, workload);
  return async (req: ConnectRequest): Promise<ConnectDecision> => {
    const started = performance.now();
    const { ip, port } = req.authority;
    const sourceIp = plainIp(req.source.ip);
    const state = deps.state();
    const record = {
      direction: 'inbound' as const,
      transport: 'hbone',
      source: peerOf(state.workloadByIp(sourceIp), sourceIp, deps.trustDomain, req.peer.spiffeId),
      destination: {
        ...peerOf(workload.resource, ip, deps.trustDomain, workload.identity),
        port,
        service: '',
      },
    };
    const refuse = (
      status: 400 | 401 | 503,
      reason: string,
      flags: ResponseFlag,
      policy?: string,
    ): ConnectDecision => {
      finishInbound(deps, record, started, flags, { error: reason, policy });
      return { status, reason };
    };
    if (!workload.addresses.has(ip))
      return refuse(
        400,
        `${ip} is not an address of ${workload.ref.namespace}/${workload.ref.name}`,
        'NR',
      );
    if (AGENT_PORT_SET.has(port)) return refuse(400, `port ${port} belongs to the agent`, 'NR');
    const attributes: ConnectionAttributes = {
      sourceIdentity: req.peer.spiffeId,
      sourceIp,
      destinationIp: ip,
      destinationPort: port,
    };
    const decision = decide(attributes);
    if (!decision.allowed) {
      deps.metrics.denied.inc({ reason: decision.reason, policy: decision.policy ?? '' });
      return refuse(401, `denied: ${decision.reason}`, 'DENY', decision.policy);
    }
    try {
      // The source's own port travels in `forwarded` (the HBONE connection's port is shared).
      const from = req.forwardedFor;
      const sourcePort = from && plainIp(from.ip) === sourceIp ? from.port : undefined;
      const upstream = await toApplication(
        deps,
        workload,
        live,
        attributes,
        record,
        started,
        sourcePort,
        req.signal,
      );
      return { status: 200, upstream };
    } catch (err) {
      if (req.signal.aborted) return refuse(503, 'the client cancelled the stream', 'DC');
      return refuse(
        503,
        `upstream ${ip}:${port} unreachable: ${describeError(err).split('\n')[0]}`,
        'UF',
      );
    }
  };
}

/** Captured plaintext into this workload (15006): PeerAuthentication, then policy without identity. */
export function handlePlaintextInbound(
  deps: InboundDeps,
  workload: LocalWorkload,
  live: LiveConnections,
  client: Socket,
): void {
  const started = performance.now();
  client.on('error', () => {});
  let dst: { address: string; port: number };
  try {
    dst = originalDst(client);
  } catch (err) {
    deps.metrics.rejected.inc({ listener: 'inbound-plaintext', reason: errorReason(err) });
    client.destroy();
    return;
  }
  const sourceIp = plainIp(client.remoteAddress);
  const state = deps.state();
  const record = {
    direction: 'inbound' as const,
    transport: 'plaintext',
    source: peerOf(state.workloadByIp(sourceIp), sourceIp, deps.trustDomain, ''),
    destination: {
      ...peerOf(workload.resource, plainIp(dst.address), deps.trustDomain, workload.identity),
      port: dst.port,
      service: '',
    },
  };
  const attributes: ConnectionAttributes = {
    sourceIp,
    destinationIp: plainIp(dst.address),
    destinationPort: dst.port,
  };
  const decision = decideFor(deps, workload)(attributes);
  if (!decision.allowed) {
    deps.metrics.denied.inc({ reason: decision.reason, policy: decision.policy ?? '' });
    abortSide(client);
    finishInbound(deps, record, started, 'DENY', {
      error: `denied: ${decision.reason}`,
      policy: decision.policy,
    });
    return;
  }
  toApplication(deps, workload, live, attributes, record, started, client.remotePort).then(
    (upstream) => void splice(client, upstream),
    (err: unknown) => {
      abortSide(client);
      finishInbound(deps, record, started, 'UF', { error: describeError(err).split('\n')[0] });
    },
  );
}

/** The re-check function for this workload (used on policy changes). */
export function recheckLive(
  deps: InboundDeps,
  workload: LocalWorkload,
  live: LiveConnections,
): number {
  const closed = live.recheck(decideFor(deps, workload));
  if (closed > 0)
    deps.logger.info(
      { workload: workload.ref, closed },
      'policy changed: closed connections it now denies',
    );
  return closed;
}
