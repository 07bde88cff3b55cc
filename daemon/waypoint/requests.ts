/**
 * What the L7 engine asks of the waypoint, per request: the authorization decision (the
 * policies whose targetRefs name the Service or this Waypoint, read afresh each request so a
 * change reaches the next request of an open connection), the upstream tunnel (HBONE to the
 * endpoint's :15008 as the waypoint), and the one record of each request (metrics, access log).
 */
import type { Duplex } from 'node:stream';
import type { HbonePool } from '../hbone/index.js';
import {
  type MeshState,
  type NamespacedName,
  type Workload,
  workloadIdentity,
} from '../model/index.js';
import { authorizeRequest, describeDecision, policiesForTarget } from '../policy/index.js';
import { type Logger, peerLabels, type RequestMetrics } from '../telemetry/index.js';
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
      connect: (endpoint, signal) => this.connect(endpoint, signal),
      record: (r) => this.record(r),
      log: (event) => this.log(event),
    };
  }

  authorize(req: RequestView, ctx: DownstreamContext): AuthorizeResult {
    const destination = this.#destinations.get(ctx);
    const service = destination?.kind === 'service' ? refOf(destination.service) : undefined;
    const state = this.#o.state();
    const policies = policiesForTarget(state.list('AuthorizationPolicy'), {
      service,
      waypoint: this.#o.waypoint,
    });
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
    // Denied because no ALLOW rule matched: the ALLOW policies that applied are the ones to read.
    const deciding =
      decision.policy ??
      policies
        .filter((p) => p.spec.action === 'ALLOW')
        .map((p) => `${p.metadata.namespace}/${p.metadata.name}`)
        .join(',');
    return {
      allowed: false,
      policy: deciding,
      rule: decision.rule,
      message: describeDecision(decision),
    };
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

  record(r: RequestRecord): void {
    const state = this.#o.state();
    const destination = this.#destinations.get(r.ctx);
    const source = state.workloadByIp(r.ctx.sourceIp);
    const endpoint = workloadOfEndpoint(r.endpoint);
    const target = endpoint ? state.get({ kind: 'Workload', ...endpoint }) : undefined;
    const service = destination?.kind === 'service' ? destination.service : undefined;
    const serviceNs = service?.metadata.namespace ?? '';
    const fqdn = service
      ? `${service.metadata.name}.${serviceNs}.svc.cluster.local`
      : r.ctx.authority;
    const grpc = r.grpcStatus !== undefined;
    this.#o.metrics.record({
      source: peerLabels(view(source), principalOf(r.ctx.sourcePrincipal)),
      destination: peerLabels(
        view(target),
        target ? principalOf(workloadIdentity(target, this.#o.trustDomain)) : '',
      ),
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
        endpoint: endpoint ? `${endpoint.namespace}/${endpoint.name}` : r.endpoint,
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
