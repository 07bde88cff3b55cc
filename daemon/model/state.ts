/**
 * MeshState: the resources an agent (or a waypoint, or meshctl) works from, with the indexes
 * the data path needs — workload by IP, service by VIP:port, endpoints by selector, workloads
 * by node, the policies that apply to a workload, enrollment, waypoint bindings and replicas.
 * Pure: no I/O; a snapshot replaces everything, and each change event updates only what it
 * touches.
 *
 * This class is the one public face; each concern's index is its own module under state/
 * (resources, workloads, services, policies, routes, waypoints). The indexes hold keys, the
 * resource store holds the resources, and this class routes each event to the indexes of its
 * kind and collects what the event affected.
 */
import { isEnrolled } from './enrollment.js';
import type { AuthorizationPolicy } from './kinds/authorization-policy.js';
import type { HTTPRoute } from './kinds/http-route.js';
import type { PeerAuthentication } from './kinds/peer-authentication.js';
import type { Service } from './kinds/service.js';
import type { Waypoint } from './kinds/waypoint.js';
import type { Workload } from './kinds/workload.js';
import {
  KINDS,
  type Kind,
  type Resource,
  type ResourceOf,
  type ResourceRef,
  refKey,
  resourceRef,
} from './resource.js';
import type { Labels } from './selector.js';
import { Affected, sortedRefs } from './state/affected.js';
import { minKey } from './state/key-sets.js';
import { type NamespacedName, serviceKey, workloadKey } from './state/keys.js';
import { type MeshStateJSON, parseSavedState, STATE_FORMAT } from './state/persistence.js';
import {
  DEFAULT_MTLS_MODE,
  type EffectiveMtls,
  PolicyIndex,
  pickPeerAuthentication,
} from './state/policy-index.js';
import { ResourceStore } from './state/resource-store.js';
import { RouteIndex } from './state/route-index.js';
import { ServiceIndex, type ServiceMatch } from './state/service-index.js';
import {
  bindWaypoint,
  ownWaypointOfService,
  ownWaypointOfWorkload,
  type WaypointBinding,
  WaypointReplicaIndex,
} from './state/waypoint-index.js';
import { sameLabels, WorkloadIndex } from './state/workload-index.js';

export type { NamespacedName } from './state/keys.js';
export { type MeshStateJSON, STATE_FORMAT } from './state/persistence.js';
export { DEFAULT_MTLS_MODE, type EffectiveMtls } from './state/policy-index.js';
export type { ServiceMatch } from './state/service-index.js';
export type { WaypointBinding } from './state/waypoint-index.js';

export type StateEvent =
  | { type: 'put'; resource: Resource; revision: number }
  | { type: 'delete'; ref: ResourceRef; revision: number }
  | { type: 'delete'; resource: Resource; revision: number };

/** What one event changed, for the agent to act on just that. */
export interface StateChange {
  /** False when the event was older than the state's revision and was ignored. */
  applied: boolean;
  previous: Resource | undefined;
  current: Resource | undefined;
  /** Workloads whose view (enrollment, policies, services, waypoint) may have changed; sorted. */
  workloads: ResourceRef[];
  /** Services whose view (definition, endpoints, routes, waypoint) may have changed; sorted. */
  services: ResourceRef[];
}

export class MeshState {
  #revision = 0;
  // Not readonly: a snapshot starts every index afresh rather than emptying each one.
  #store = new ResourceStore();
  #workloads = new WorkloadIndex();
  #services = new ServiceIndex(this.#workloads.labels);
  #policies = new PolicyIndex(this.#workloads.labels);
  #routes = new RouteIndex();
  #replicas = new WaypointReplicaIndex();

  /** The revision of the last snapshot or event applied (0: nothing yet). */
  get revision(): number {
    return this.#revision;
  }

  /** Replaces the whole state with a snapshot. Later duplicates of one ref win. */
  replaceAll(resources: readonly Resource[], revision: number): void {
    this.#store = new ResourceStore();
    this.#workloads = new WorkloadIndex();
    this.#services = new ServiceIndex(this.#workloads.labels);
    this.#policies = new PolicyIndex(this.#workloads.labels);
    this.#routes = new RouteIndex();
    this.#replicas = new WaypointReplicaIndex();
    const quiet = new Affected(false);
    for (const r of resources) this.#put(r, quiet);
    this.#revision = revision;
  }

  /** Applies one change; events older than the state's revision are ignored (replays). */
  apply(event: StateEvent): StateChange {
    if (event.revision < this.#revision) {
      return {
        applied: false,
        previous: undefined,
        current: undefined,
        workloads: [],
        services: [],
      };
    }
    this.#revision = event.revision;
    const affected = new Affected(true);
    let previous: Resource | undefined;
    let current: Resource | undefined;
    if (event.type === 'put') {
      previous = this.get(resourceRef(event.resource));
      current = this.#put(event.resource, affected);
    } else {
      const ref = 'ref' in event ? event.ref : resourceRef(event.resource);
      previous = this.#delete(ref, affected);
    }
    return {
      applied: true,
      previous,
      current,
      workloads: sortedRefs(affected.workloads),
      services: sortedRefs(affected.services),
    };
  }

  // ---- reads ------------------------------------------------------------------------------

  get<K extends Kind>(ref: ResourceRef & { kind: K }): ResourceOf<K> | undefined {
    return this.#store.get(ref.kind, refKey(ref)) as ResourceOf<K> | undefined;
  }

  /** Resources of a kind, optionally of one namespace, sorted by namespace and name. */
  list<K extends Kind>(kind: K, namespace?: string): ResourceOf<K>[] {
    return this.#store.resolve(kind, this.#store.keys(kind, namespace));
  }

  /** How many resources of a kind (or of all kinds) the state holds. */
  size(kind?: Kind): number {
    return this.#store.size(kind);
  }

  /** Labels of a namespace ({} when it has none or does not exist). */
  namespaceLabels(namespace: string): Labels {
    return this.get({ kind: 'Namespace', namespace: '', name: namespace })?.metadata.labels ?? {};
  }

  /** The workload that owns an address (IPv4, IPv6 in any spelling, or IPv4-mapped IPv6). */
  workloadByIp(ip: string): Workload | undefined {
    const key = minKey(this.#workloads.keysByIp(ip));
    return key === undefined ? undefined : this.#workload(key);
  }

  /** Every workload claiming an address (more than one is a conflict; workloadByIp picks the first). */
  workloadsByIp(ip: string): Workload[] {
    return this.#store.resolve('Workload', this.#workloads.keysByIp(ip));
  }

  workloadsOnNode(node: string): Workload[] {
    return this.#store.resolve('Workload', this.#workloads.keysOnNode(node));
  }

  /** The service (and its port) at VIP:port; on a conflict, the first by namespace and name. */
  serviceAt(ip: string, port: number): ServiceMatch | undefined {
    const key = this.#services.keyAt(ip, port);
    const service = key === undefined ? undefined : this.#service(key);
    const p = service?.spec.ports.find((x) => x.port === port);
    return service && p ? { service, port: p } : undefined;
  }

  /** Services with this VIP, on any port. */
  servicesByVip(ip: string): Service[] {
    return this.#store.resolve('Service', this.#services.keysByVip(ip));
  }

  /** The workloads a service's selector picks in its namespace, sorted. */
  endpoints(service: NamespacedName): Workload[] {
    return this.#store.resolve('Workload', this.#services.endpointKeys(serviceKey(service)));
  }

  /** The services whose selector picks this workload, sorted. */
  servicesOf(workload: NamespacedName): Service[] {
    return this.#store.resolve('Service', this.#services.keysSelecting(workloadKey(workload)));
  }

  /** The workloads a Service, AuthorizationPolicy or PeerAuthentication applies to, sorted. */
  workloadsSelectedBy(ref: ResourceRef): Workload[] {
    const key = refKey(ref);
    if (ref.kind === 'Service') {
      return this.#store.resolve('Workload', this.#services.endpointKeys(key));
    }
    if (ref.kind !== 'AuthorizationPolicy' && ref.kind !== 'PeerAuthentication') return [];
    const policy = this.get(ref) as AuthorizationPolicy | PeerAuthentication | undefined;
    if (!policy) return [];
    return this.#store.resolve('Workload', this.#policies.workloadKeysOf(ref.kind, key, policy));
  }

  /** DESIGN §7: whether the agent captures this workload's traffic. */
  isEnrolled(workload: NamespacedName | Workload): boolean {
    const w = 'metadata' in workload ? workload : this.#workload(workloadKey(workload));
    if (!w) return false;
    return isEnrolled(w.metadata.labels, this.namespaceLabels(w.metadata.namespace));
  }

  /**
   * The AuthorizationPolicies that apply to a workload: those whose selector picks it (in its
   * namespace, or any namespace for the root namespace's), its namespace's namespace-wide ones
   * and the mesh-wide ones (root namespace, no selector). Sorted by namespace and name.
   */
  authorizationPoliciesFor(workload: NamespacedName): AuthorizationPolicy[] {
    const keys = this.#policies.authorizationKeysFor(workload, workloadKey(workload));
    return this.#store.resolve('AuthorizationPolicy', keys);
  }

  /**
   * The mTLS mode for a workload's inbound traffic, as Istio decides it: a PeerAuthentication
   * whose selector picks the workload, else its namespace's namespace-wide one, else the mesh-wide
   * one (root namespace), else PERMISSIVE. Ties go to the workload's own namespace, then the
   * oldest (creationTimestamp), then the name.
   */
  peerAuthenticationFor(workload: NamespacedName): EffectiveMtls {
    for (const keys of this.#policies.peerAuthenticationTiers(workload, workloadKey(workload))) {
      const candidates = this.#store.resolve('PeerAuthentication', keys);
      const policy = pickPeerAuthentication(candidates, workload.namespace);
      if (policy) return { mode: policy.spec.mtls.mode, policy };
    }
    return { mode: DEFAULT_MTLS_MODE, policy: undefined };
  }

  /** HTTPRoutes whose parentRefs name this service, sorted. */
  routesFor(service: NamespacedName): HTTPRoute[] {
    return this.#store.resolve('HTTPRoute', this.#routes.keysFor(serviceKey(service)));
  }

  /**
   * The waypoint traffic to a service goes via: `spec.waypoint`, else the service's
   * `meshd.io/use-waypoint` label, else its namespace's; "none" opts out. A waypoint whose
   * trafficType does not serve services gives no binding.
   */
  waypointForService(service: NamespacedName): WaypointBinding | undefined {
    const s = this.#service(serviceKey(service));
    if (!s) return undefined;
    return this.#bindWaypoint('service', service.namespace, ownWaypointOfService(s));
  }

  /** As waypointForService, for traffic addressed to a workload (label on it or its namespace). */
  waypointForWorkload(workload: NamespacedName): WaypointBinding | undefined {
    const w = this.#workload(workloadKey(workload));
    if (!w) return undefined;
    return this.#bindWaypoint('workload', workload.namespace, ownWaypointOfWorkload(w));
  }

  /**
   * The workloads that run a waypoint: those of its namespace labelled `meshd.io/waypoint` with
   * its name, sorted by name. Whether the Waypoint resource exists does not matter.
   */
  waypointReplicas(waypoint: NamespacedName): Workload[] {
    return this.#store.resolve('Workload', this.#replicas.replicaKeys(waypoint));
  }

  #bindWaypoint(
    target: 'service' | 'workload',
    namespace: string,
    own: string | undefined,
  ): WaypointBinding | undefined {
    return bindWaypoint(target, namespace, own, this.namespaceLabels(namespace), (name) =>
      this.get({ kind: 'Waypoint', namespace, name }),
    );
  }

  // ---- persistence ------------------------------------------------------------------------

  /** Every resource, sorted by kind, namespace and name, with the revision. */
  toJSON(): MeshStateJSON {
    const resources: Resource[] = [];
    for (const kind of KINDS) resources.push(...this.list(kind));
    return { format: STATE_FORMAT, revision: this.#revision, resources };
  }

  /** Rebuilds a state from toJSON's output, validating every resource. */
  static fromJSON(json: unknown): MeshState {
    const { resources, revision } = parseSavedState(json);
    const state = new MeshState();
    state.replaceAll(resources, revision);
    return state;
  }

  // ---- writes -----------------------------------------------------------------------------

  #workload(key: string): Workload | undefined {
    return this.#store.get('Workload', key) as Workload | undefined;
  }

  #service(key: string): Service | undefined {
    return this.#store.get('Service', key) as Service | undefined;
  }

  #put(resource: Resource, affected: Affected): Resource {
    const { key, old } = this.#store.put(resource);
    this.#reindex(key, old, resource, affected);
    return resource;
  }

  #delete(ref: ResourceRef, affected: Affected): Resource | undefined {
    const { key, old } = this.#store.delete(ref);
    if (old) this.#reindex(key, old, undefined, affected);
    return old;
  }

  /** Moves the indexes of one resource from `old` to `now` (either may be absent). */
  #reindex(
    key: string,
    old: Resource | undefined,
    now: Resource | undefined,
    affected: Affected,
  ): void {
    const kind = (now ?? old)?.kind;
    switch (kind) {
      case 'Namespace':
        this.#reindexNamespace(
          old as ResourceOf<'Namespace'>,
          now as ResourceOf<'Namespace'>,
          affected,
        );
        break;
      case 'Workload':
        this.#reindexWorkload(key, old as Workload, now as Workload, affected);
        break;
      case 'Service':
        this.#services.update(key, old as Service, now as Service, affected);
        break;
      case 'AuthorizationPolicy':
      case 'PeerAuthentication':
        this.#policies.update(key, kind, old, now, affected);
        break;
      case 'Waypoint':
        // Bindings name waypoints of their own namespace: its services and workloads may move.
        this.#touchNamespace(((now ?? old) as Waypoint).metadata.namespace, affected);
        break;
      case 'HTTPRoute':
        this.#routes.update(key, old as HTTPRoute, now as HTTPRoute, affected);
        break;
    }
  }

  /** Marks everything in a namespace: its labels feed enrollment and waypoint bindings. */
  #touchNamespace(namespace: string, affected: Affected): void {
    if (!affected.track) return;
    affected.addWorkloads(this.#workloads.keysIn(namespace));
    affected.addServices(this.#store.keys('Service', namespace));
  }

  #reindexNamespace(
    old: ResourceOf<'Namespace'> | undefined,
    now: ResourceOf<'Namespace'> | undefined,
    affected: Affected,
  ): void {
    if (sameLabels(old?.metadata.labels, now?.metadata.labels) && old && now) return;
    this.#touchNamespace((now ?? old)?.metadata.name ?? '', affected);
  }

  /** A workload's services are affected both before and after: it may leave or join endpoints. */
  #reindexWorkload(
    key: string,
    old: Workload | undefined,
    now: Workload | undefined,
    affected: Affected,
  ): void {
    if (old) affected.addServices(this.#services.keysSelecting(key));
    if (this.#workloads.update(key, old, now)) {
      this.#services.rematchWorkload(key);
      this.#policies.rematchWorkload(key);
    }
    if (now) affected.addServices(this.#services.keysSelecting(key));
    for (const waypoint of this.#replicas.update(key, old, now)) {
      this.#touchWaypointBindings(waypoint, affected);
    }
    affected.addWorkloads([key]);
  }

  /**
   * Marks the services and workloads bound to a waypoint, whose view includes its replicas.
   * Bindings are not indexed: they are worked out here from the waypoint's namespace, which
   * costs a walk of that namespace per replica event. Replicas are few and change rarely, while
   * a binding index would cost on every service, workload and namespace event.
   */
  #touchWaypointBindings(waypoint: NamespacedName, affected: Affected): void {
    if (!affected.track) return;
    const { namespace, name } = waypoint;
    const namespaceLabels = this.namespaceLabels(namespace);
    const waypointNamed = (n: string) => this.get({ kind: 'Waypoint', namespace, name: n });
    const boundHere = (target: 'service' | 'workload', own: string | undefined) =>
      bindWaypoint(target, namespace, own, namespaceLabels, waypointNamed)?.name === name;
    for (const key of this.#store.keys('Service', namespace)) {
      const s = this.#service(key);
      if (s && boundHere('service', ownWaypointOfService(s))) affected.addServices([key]);
    }
    for (const key of this.#workloads.keysIn(namespace)) {
      const w = this.#workload(key);
      if (w && boundHere('workload', ownWaypointOfWorkload(w))) affected.addWorkloads([key]);
    }
  }
}
