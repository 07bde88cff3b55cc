/**
 * What the L7 engine asks of the waypoint, per request: the authorization decision (the
 * policies whose targetRefs name the Service or this Waypoint, read afresh each request so a
 * change reaches the next request of an open connection), the upstream tunnel (HBONE to the
 * endpoint's :15008 as the waypoint), and the one record of each request (metrics, access log).
 */
import type { Duplex } from 'node:stream';
import type { HbonePool } from '../hbone/index.js';
import {
  type AuthorizationPolicy,
  type MeshState,
  type NamespacedName,
  type Workload,
  workloadIdentity,
} from '../model/index.js';
import {
  authorizeRequest,
  authorizeWaypointConnection,
  describeDecision,
  policiesForTarget,
} from '../policy/index.js';
import {
  type LabelledPeer,
  type Logger,
  peerLabels,
  type RequestMetrics,
} from '../telemetry/index.js';
import { type WaypointDestination, workloadOfEndpoint } from './destination.js';
import type {
  AuthorizeResult,
  DownstreamContext,
  Endpoint,
  L7Hooks,
  L7LogEvent,
  RequestRecord,
  RequestView,
} from './l7/index.js';

export interface WaypointRequestsOptions {
  state: () => MeshState;
  waypoint: NamespacedName;
  trustDomain: string;
  /** The waypoint's own SPIFFE ID: it dials endpoints as itself. */
  identity: string;
  pool: HbonePool;
  metrics: RequestMetrics;
  logger: Logger;
}

type Bound = Exclude<WaypointDestination, { kind: 'refuse' }>;

const principalOf = (spiffeId: string | undefined) => (spiffeId ?? '').replace(/^spiffe:\/\//, '');
const hostPort = (ip: string, port: number) =>
  ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;

export class WaypointRequests {
  readonly #o: WaypointRequestsOptions;
  readonly #destinations = new WeakMap<DownstreamContext, Bound>();
  /** Label views of workloads by key, worked out once per registry revision (per request they cost). */
  readonly #peers = new Map<string, LabelledPeer>();
  #peersRevision = -1;

  constructor(options: WaypointRequestsOptions) {
    this.#o = options;
  }

  /** The destination a tunnel was accepted for (its context object is the key). */
  remember(ctx: DownstreamContext, destination: Bound): void {
    this.#destinations.set(ctx, destination);
  }

  hooks(): L7Hooks {
    return {
      authorize: (req, ctx) => this.authorize(req, ctx),
      authorizeConnection: (ctx) => this.authorizeConnection(ctx),
      connect: (endpoint, signal) => this.connect(endpoint, signal),
      record: (r) => this.record(r),
      log: (event) => this.log(event),
    };
  }

  authorize(req: RequestView, ctx: DownstreamContext): AuthorizeResult {
    const policies = this.#policies(ctx);
    if (policies.length === 0) return { allowed: true };
    const decision = authorizeRequest(policies, {
      sourceIdentity: ctx.sourcePrincipal,
      sourceIp: ctx.sourceIp,
      destinationIp: ctx.destination.ip,
      destinationPort: ctx.destination.port,
      host: req.authority,
      method: req.method,
      path: req.path,
      headers: req.headers,
    });
    if (decision.allowed) return { allowed: true };
    const deciding = decision.policy ?? allowPolicies(policies);
    return {
      allowed: false,
      policy: deciding,
      rule: decision.rule,
      message: describeDecision(decision),
    };
  }

  /** Opaque TCP through the waypoint: its policies at L4 (principals, namespaces, ipBlocks, ports). */
  authorizeConnection(ctx: DownstreamContext): AuthorizeResult {
    const policies = this.#policies(ctx);
    if (policies.length === 0) return { allowed: true };
    const decision = authorizeWaypointConnection(policies, {
      sourceIdentity: ctx.sourcePrincipal,
      sourceIp: ctx.sourceIp,
      destinationIp: ctx.destination.ip,
      destinationPort: ctx.destination.port,
    });
    if (decision.allowed) return { allowed: true };
    return {
      allowed: false,
      policy: decision.policy ?? allowPolicies(policies),
      message: describeDecision(decision),
    };
  }

  #policies(ctx: DownstreamContext) {
    const destination = this.#destinations.get(ctx);
    const service = destination?.kind === 'service' ? refOf(destination.service) : undefined;
    return policiesForTarget(this.#o.state().list('AuthorizationPolicy'), {
      service,
      waypoint: this.#o.waypoint,
    });
  }

  connect(endpoint: Endpoint, signal: AbortSignal): Promise<Duplex> {
    const ref = workloadOfEndpoint(endpoint.id);
    const workload = ref ? this.#o.state().get({ kind: 'Workload', ...ref }) : undefined;
    const expected = workload ? workloadIdentity(workload, this.#o.trustDomain) : '';
    return this.#o.pool.connect({
      key: {
        sourceIdentity: this.#o.identity,
        sourceNetns: '',
        expectedIdentity: expected,
        destination: hostPort(endpoint.ip, 15008),
      },
      authority: hostPort(endpoint.ip, endpoint.port),
      signal,
    });
  }

  /** A workload's labels for the metrics, by source IP or endpoint id, cached per revision. */
  #peer(
    key: string,
    principal: string,
    find: (s: MeshState) => Workload | undefined,
  ): LabelledPeer {
    const state = this.#o.state();
    if (state.revision !== this.#peersRevision) {
      this.#peers.clear();
      this.#peersRevision = state.revision;
    }
    const cacheKey = `${key}\0${principal}`;
    let peer = this.#peers.get(cacheKey);
    if (!peer) {
      const w = find(state);
      const who = principal || (w ? principalOf(workloadIdentity(w, this.#o.trustDomain)) : '');
      peer = peerLabels(view(w), who);
      if (this.#peers.size > 10_000) this.#peers.clear();
      this.#peers.set(cacheKey, peer);
    }
    return peer;
  }

  record(r: RequestRecord): void {
    const destination = this.#destinations.get(r.ctx);
    const sourceIp = r.ctx.sourceIp;
    const endpoint = r.endpoint ?? '';
    const endpointWorkload = workloadOfEndpoint(endpoint);
    const sourcePeer = this.#peer(`src:${sourceIp}`, principalOf(r.ctx.sourcePrincipal), (s) =>
      s.workloadByIp(sourceIp),
    );
    const targetPeer = this.#peer(`dst:${endpoint}`, '', (s) =>
      endpointWorkload ? s.get({ kind: 'Workload', ...endpointWorkload }) : undefined,
    );
    const service = destination?.kind === 'service' ? destination.service : undefined;
    const serviceNs = service?.metadata.namespace ?? '';
    const fqdn = service
      ? `${service.metadata.name}.${serviceNs}.svc.cluster.local`
      : r.ctx.authority;
    const grpc = r.grpcStatus !== undefined;
    this.#o.metrics.record({
      source: sourcePeer,
      destination: targetPeer,
      destinationService: fqdn,
      destinationServiceName: service?.metadata.name ?? '',
      destinationServiceNamespace: serviceNs,
      requestProtocol: r.protocol === 'tcp' ? 'tcp' : grpc ? 'grpc' : 'http',
      responseCode: r.status,
      grpcStatus: r.grpcStatus,
      responseFlags: r.responseFlags,
      durationMs: r.durationMs,
      requestBytes: r.requestBytes,
      responseBytes: r.responseBytes,
    });
    this.#o.logger.info(
      {
        src: principalOf(r.ctx.sourcePrincipal),
        srcIp: r.ctx.sourceIp,
        waypoint: principalOf(this.#o.identity),
        method: r.method,
        authority: r.authority,
        path: r.path,
        protocol: r.protocol,
        status: r.status,
        grpcStatus: r.grpcStatus,
        durationMs: Math.round(r.durationMs * 1000) / 1000,
        requestBytes: r.requestBytes,
        responseBytes: r.responseBytes,
        endpoint: endpointWorkload
          ? `${endpointWorkload.namespace}/${endpointWorkload.name}`
          : r.endpoint,
        service: service ? `${serviceNs}/${service.metadata.name}` : undefined,
        route: undefined,
        policy: r.policy,
        flags: r.responseFlags,
        traceId: r.traceId,
        requestId: r.requestId,
      },
      'request complete',
    );
  }

  log(event: L7LogEvent): void {
    const fields = { code: event.code, suppressed: event.suppressed, ...event.fields };
    if (event.level === 'warn') this.#o.logger.warn(fields, event.message);
    else if (event.level === 'info') this.#o.logger.info(fields, event.message);
    else this.#o.logger.debug(fields, event.message);
  }
}

/** Denied because no ALLOW rule matched: the ALLOW policies that applied are the ones to read. */
function allowPolicies(policies: readonly AuthorizationPolicy[]): string {
  return policies
    .filter((p) => p.spec.action === 'ALLOW')
    .map((p) => `${p.metadata.namespace}/${p.metadata.name}`)
    .join(',');
}

function refOf(r: { metadata: { namespace?: string | undefined; name: string } }) {
  return { namespace: r.metadata.namespace ?? '', name: r.metadata.name };
}

function view(w: Workload | undefined) {
  return w
    ? {
        name: w.metadata.name,
        namespace: w.metadata.namespace ?? '',
        labels: w.metadata.labels ?? {},
      }
    : undefined;
}
