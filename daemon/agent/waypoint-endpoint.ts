/**
 * How a `meshd waypoint` on this host gets its place in the mesh, through the agent's local
 * socket (root only): the agent registers the replica as a Workload of this node (node
 * authorization: the server lets a node write only its own Workloads and sign only their
 * identities) and signs the replica's CSR with the node's credentials, so the waypoint holds
 * no node secret and its private key never leaves it. A replica registers twice: first without
 * the waypoint label (an identity, no traffic yet), then, serving, with it (agents send to it);
 * on stop it drops the label, drains and deregisters.
 */
import {
  LABEL_DATAPLANE_MODE,
  LABEL_WAYPOINT,
  type MeshState,
  type Resource,
  validateResource,
  type Workload,
  workloadIdentity,
} from '../model/index.js';

/** A Workload annotation naming the Waypoint a replica belongs to, ready or not. */
export const ANNOTATION_REPLICA_OF = 'meshd.io/waypoint-replica-of';

export interface WaypointRegistration {
  namespace: string;
  waypoint: string;
  replica: string;
  addresses: string[];
  netns?: string;
  /** Serving: agents may send to it. */
  ready: boolean;
}

export class LocalRequestError extends Error {
  readonly httpStatus: number;
  constructor(httpStatus: number, message: string) {
    super(message);
    this.httpStatus = httpStatus;
  }
}

export interface WaypointEndpointDeps {
  node: string;
  trustDomain: string;
  servers: string[];
  state: () => MeshState;
  /** Applies a Workload as this node; resolves once the local state has it. */
  apply: (workload: Workload) => Promise<void>;
  /** Deletes a Workload as this node (absent is fine). */
  remove: (namespace: string, name: string) => Promise<void>;
  signCsr: (csrDer: Uint8Array) => Promise<string[]>;
  roots: () => string[];
}

/** The Workload a replica registers as; a bad name is a 400 naming the field. */
export function replicaWorkload(node: string, r: WaypointRegistration): Workload {
  const labels: Record<string, string> = { [LABEL_DATAPLANE_MODE]: 'none' };
  if (r.ready) labels[LABEL_WAYPOINT] = r.waypoint;
  const result = validateResource({
    apiVersion: 'meshd.io/v1alpha1',
    kind: 'Workload',
    metadata: {
      name: r.replica,
      namespace: r.namespace,
      labels,
      annotations: { [ANNOTATION_REPLICA_OF]: r.waypoint },
    },
    spec: {
      node,
      addresses: r.addresses,
      serviceAccount: r.waypoint,
      ...(r.netns ? { netns: r.netns } : {}),
    },
  });
  if (!result.ok) {
    const why = result.errors.map((e) => `${e.path}: ${e.message}`).join('; ');
    throw new LocalRequestError(400, `waypoint replica ${r.namespace}/${r.replica}: ${why}`);
  }
  return result.resource as Resource as Workload;
}

export function waypointRoutes(deps: WaypointEndpointDeps) {
  const replicaOn = (namespace: string, name: string): Workload => {
    const w = deps.state().get({ kind: 'Workload', namespace, name });
    if (!w || w.spec.node !== deps.node || !w.metadata.annotations?.[ANNOTATION_REPLICA_OF]) {
      throw new LocalRequestError(
        404,
        `no waypoint replica ${namespace}/${name} is registered on node ${deps.node}: register it first`,
      );
    }
    return w;
  };
  return {
    '/v1/waypoint/register': async (body: unknown) => {
      const r = parseRegistration(body);
      const workload = replicaWorkload(deps.node, r);
      await deps.apply(workload);
      return {
        identity: workloadIdentity(workload, deps.trustDomain),
        trustDomain: deps.trustDomain,
        servers: deps.servers,
        node: deps.node,
      };
    },
    '/v1/waypoint/certificate': async (body: unknown) => {
      const { namespace, replica, csr } = body as Record<string, unknown>;
      if (typeof namespace !== 'string' || typeof replica !== 'string' || typeof csr !== 'string')
        throw new LocalRequestError(400, 'namespace, replica and csr (base64 DER) are required');
      replicaOn(namespace, replica);
      const certChain = await deps.signCsr(Buffer.from(csr, 'base64'));
      return { certChain, roots: deps.roots() };
    },
    '/v1/waypoint/deregister': async (body: unknown) => {
      const { namespace, replica } = body as Record<string, unknown>;
      if (typeof namespace !== 'string' || typeof replica !== 'string')
        throw new LocalRequestError(400, 'namespace and replica are required');
      replicaOn(namespace, replica);
      await deps.remove(namespace, replica);
      return { removed: `${namespace}/${replica}` };
    },
  } satisfies Record<string, (body: unknown) => Promise<unknown>>;
}

function parseRegistration(body: unknown): WaypointRegistration {
  const b = (body ?? {}) as Partial<WaypointRegistration>;
  const missing = (['namespace', 'waypoint', 'replica'] as const).filter(
    (k) => typeof b[k] !== 'string' || b[k] === '',
  );
  if (missing.length > 0 || !Array.isArray(b.addresses) || b.addresses.length === 0) {
    throw new LocalRequestError(
      400,
      `a waypoint registration needs namespace, waypoint, replica and addresses${missing.length ? ` (missing: ${missing.join(', ')})` : ''}`,
    );
  }
  return { ...(b as WaypointRegistration), ready: b.ready === true };
}
