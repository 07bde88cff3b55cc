/**
 * MeshState: the resources an agent (or a waypoint, or meshctl) works from, with the indexes
 * the data path needs — workload by IP, service by VIP:port, endpoints by selector, workloads
 * by node, the policies that apply to a workload, enrollment and waypoint bindings. Pure: no
 * I/O; a snapshot replaces everything, and each change event updates only what it touches.
 */
import { LABEL_USE_WAYPOINT, ROOT_NAMESPACE } from './common.js';
import { isEnrolled } from './enrollment.js';
import { hostPort, ipKey } from './ip.js';
import type { AuthorizationPolicy } from './kinds/authorization-policy.js';
import type { HTTPRoute } from './kinds/http-route.js';
import type { MtlsMode, PeerAuthentication } from './kinds/peer-authentication.js';
import type { Service, ServicePort } from './kinds/service.js';
import { type Waypoint, waypointServes } from './kinds/waypoint.js';
import type { Workload } from './kinds/workload.js';
import { InvalidResourceError } from './manifest.js';
import {
  isNamespaced,
  KINDS,
  type Kind,
  keyToRef,
  type Resource,
  type ResourceOf,
  type ResourceRef,
  refKey,
  refToString,
  resourceRef,
} from './resource.js';
import { isEmptySelector, type LabelSelector, type Labels } from './selector.js';
import { ALL_NAMESPACES, SelectorMatcher, WorkloadLabelIndex } from './selector-index.js';
import { validateResource } from './validate.js';

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

/** A namespace and a name: how lookups name a workload or service. */
export interface NamespacedName {
  namespace: string;
  name: string;
}

export interface ServiceMatch {
  service: Service;
  port: ServicePort;
}

export const DEFAULT_MTLS_MODE: MtlsMode = 'PERMISSIVE';

export interface EffectiveMtls {
  mode: MtlsMode;
  /** The PeerAuthentication that decided, or undefined for the default (PERMISSIVE). */
  policy: PeerAuthentication | undefined;
}

export interface WaypointBinding {
  namespace: string;
  name: string;
  /** Where the binding came from: the service (spec.waypoint or label), the workload's label or the namespace's. */
  source: 'service' | 'workload' | 'namespace';
  /** The Waypoint resource; undefined when it does not exist (yet): fail closed. */
  waypoint: Waypoint | undefined;
}

export const STATE_FORMAT = 'meshd-state/v1';

export interface MeshStateJSON {
  format: typeof STATE_FORMAT;
  revision: number;
  resources: Resource[];
}

const EMPTY: ReadonlySet<string> = new Set();

function addTo<K, V>(map: Map<K, Set<V>>, key: K, value: V): void {
  let set = map.get(key);
  if (!set) {
    set = new Set();
    map.set(key, set);
  }
  set.add(value);
}

function removeFrom<K, V>(map: Map<K, Set<V>>, key: K, value: V): void {
  const set = map.get(key);
  if (!set) return;
  set.delete(value);
  if (set.size === 0) map.delete(key);
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

function minKey(keys: ReadonlySet<string> | undefined): string | undefined {
  let best: string | undefined;
  for (const k of keys ?? EMPTY) if (best === undefined || k < best) best = k;
  return best;
}

function sameLabels(a: Labels | undefined, b: Labels | undefined): boolean {
  const ea = Object.entries(a ?? {});
  const other = b ?? {};
  if (ea.length !== Object.keys(other).length) return false;
  return ea.every(([k, v]) => Object.hasOwn(other, k) && other[k] === v);
}

const workloadKey = (w: NamespacedName) => refKey({ kind: 'Workload', ...w });
const serviceKey = (s: NamespacedName) => refKey({ kind: 'Service', ...s });
const policyScope = (namespace: string) =>
  namespace === ROOT_NAMESPACE ? ALL_NAMESPACES : namespace;
const isWide = (selector: LabelSelector | undefined) =>
  selector === undefined || isEmptySelector(selector);

/** Collects keys of affected workloads and services while an event is applied. */
class Affected {
  readonly workloads = new Set<string>();
  readonly services = new Set<string>();
  readonly track: boolean;
  constructor(track: boolean) {
    this.track = track;
  }
  addWorkloads(keys: Iterable<string>): void {
    if (this.track) for (const k of keys) this.workloads.add(k);
  }
  addServices(keys: Iterable<string>): void {
    if (this.track) for (const k of keys) this.services.add(k);
  }
}

const sortedRefs = (keys: Set<string>) => [...keys].sort().map(keyToRef);

export class MeshState {
  #revision = 0;
  readonly #byKind = new Map<Kind, Map<string, Resource>>(KINDS.map((k) => [k, new Map()]));
  /** namespace → kind → keys, for the namespaced kinds. */
  readonly #byNamespace = new Map<string, Map<Kind, Set<string>>>();
  readonly #workloadsByIp = new Map<string, Set<string>>();
  readonly #workloadsByNode = new Map<string, Set<string>>();
  readonly #servicesByAddress = new Map<string, Set<string>>();
  readonly #servicesByVip = new Map<string, Set<string>>();
  #labels = new WorkloadLabelIndex();
  #endpoints = new SelectorMatcher(this.#labels);
  #authz = new SelectorMatcher(this.#labels);
  #peer = new SelectorMatcher(this.#labels);
  /** Namespace-wide policies (no or empty selector) by namespace; the root namespace's are mesh-wide. */
  readonly #authzWide = new Map<string, Set<string>>();
  readonly #peerWide = new Map<string, Set<string>>();
  readonly #routesByService = new Map<string, Set<string>>();

  /** The revision of the last snapshot or event applied (0: nothing yet). */
  get revision(): number {
    return this.#revision;
  }

  /** Replaces the whole state with a snapshot. Later duplicates of one ref win. */
  replaceAll(resources: readonly Resource[], revision: number): void {
    for (const map of this.#byKind.values()) map.clear();
    for (const index of [
      this.#byNamespace,
      this.#workloadsByIp,
      this.#workloadsByNode,
      this.#servicesByAddress,
      this.#servicesByVip,
      this.#authzWide,
      this.#peerWide,
      this.#routesByService,
    ]) {
      index.clear();
    }
    this.#labels = new WorkloadLabelIndex();
    this.#endpoints = new SelectorMatcher(this.#labels);
    this.#authz = new SelectorMatcher(this.#labels);
    this.#peer = new SelectorMatcher(this.#labels);
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
    return this.#byKind.get(ref.kind)?.get(refKey(ref)) as ResourceOf<K> | undefined;
  }

  /** Resources of a kind, optionally of one namespace, sorted by namespace and name. */
  list<K extends Kind>(kind: K, namespace?: string): ResourceOf<K>[] {
    const map = this.#byKind.get(kind) ?? new Map<string, Resource>();
    const keys =
      namespace === undefined || !isNamespaced(kind)
        ? map.keys()
        : (this.#byNamespace.get(namespace)?.get(kind) ?? EMPTY).values();
    return this.#resolve(kind, keys);
  }

  /** How many resources of a kind (or of all kinds) the state holds. */
  size(kind?: Kind): number {
    if (kind) return this.#byKind.get(kind)?.size ?? 0;
    let n = 0;
    for (const map of this.#byKind.values()) n += map.size;
    return n;
  }

  #resolve<K extends Kind>(kind: K, keys: Iterable<string>): ResourceOf<K>[] {
    const map = this.#byKind.get(kind);
    const out: ResourceOf<K>[] = [];
    for (const k of [...keys].sort()) {
      const r = map?.get(k);
      if (r) out.push(r as ResourceOf<K>);
    }
    return out;
  }

  /** Labels of a namespace ({} when it has none or does not exist). */
  namespaceLabels(namespace: string): Labels {
    return this.get({ kind: 'Namespace', namespace: '', name: namespace })?.metadata.labels ?? {};
  }

  /** The workload that owns an address (IPv4, IPv6 in any spelling, or IPv4-mapped IPv6). */
  workloadByIp(ip: string): Workload | undefined {
    const k = ipKey(ip);
    const key = k === undefined ? undefined : minKey(this.#workloadsByIp.get(k));
    return key === undefined ? undefined : this.#workload(key);
  }

  /** Every workload claiming an address (more than one is a conflict; workloadByIp picks the first). */
  workloadsByIp(ip: string): Workload[] {
    const k = ipKey(ip);
    return k === undefined ? [] : this.#resolve('Workload', this.#workloadsByIp.get(k) ?? EMPTY);
  }

  workloadsOnNode(node: string): Workload[] {
    return this.#resolve('Workload', this.#workloadsByNode.get(node) ?? EMPTY);
  }

  /** The service (and its port) at VIP:port; on a conflict, the first by namespace and name. */
  serviceAt(ip: string, port: number): ServiceMatch | undefined {
    const k = ipKey(ip);
    if (k === undefined) return undefined;
    const key = minKey(this.#servicesByAddress.get(hostPort(k, port)));
    const service = key === undefined ? undefined : this.#service(key);
    const p = service?.spec.ports.find((x) => x.port === port);
    return service && p ? { service, port: p } : undefined;
  }

  /** Services with this VIP, on any port. */
  servicesByVip(ip: string): Service[] {
    const k = ipKey(ip);
    return k === undefined ? [] : this.#resolve('Service', this.#servicesByVip.get(k) ?? EMPTY);
  }

  /** The workloads a service's selector picks in its namespace, sorted. */
  endpoints(service: NamespacedName): Workload[] {
    return this.#resolve('Workload', this.#endpoints.selected(serviceKey(service)));
  }

  /** The services whose selector picks this workload, sorted. */
  servicesOf(workload: NamespacedName): Service[] {
    return this.#resolve('Service', this.#endpoints.selectedBy(workloadKey(workload)));
  }

  /** The workloads a Service, AuthorizationPolicy or PeerAuthentication applies to, sorted. */
  workloadsSelectedBy(ref: ResourceRef): Workload[] {
    const key = refKey(ref);
    if (ref.kind === 'Service') return this.#resolve('Workload', this.#endpoints.selected(key));
    if (ref.kind !== 'AuthorizationPolicy' && ref.kind !== 'PeerAuthentication') return [];
    const policy = this.get(ref) as AuthorizationPolicy | PeerAuthentication | undefined;
    if (!policy) return [];
    if (isWide(policy.spec.selector)) {
      return this.#resolve('Workload', this.#labels.inScope(policyScope(ref.namespace)));
    }
    const matcher = ref.kind === 'AuthorizationPolicy' ? this.#authz : this.#peer;
    return this.#resolve('Workload', matcher.selected(key));
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
    const keys = new Set(this.#authz.selectedBy(workloadKey(workload)));
    for (const k of this.#authzWide.get(workload.namespace) ?? EMPTY) keys.add(k);
    for (const k of this.#authzWide.get(ROOT_NAMESPACE) ?? EMPTY) keys.add(k);
    return this.#resolve('AuthorizationPolicy', keys);
  }

  /**
   * The mTLS mode for a workload's inbound traffic, as Istio decides it: a PeerAuthentication
   * whose selector picks the workload, else its namespace's namespace-wide one, else the mesh-wide
   * one (root namespace), else PERMISSIVE. Ties go to the workload's own namespace, then the
   * oldest (creationTimestamp), then the name.
   */
  peerAuthenticationFor(workload: NamespacedName): EffectiveMtls {
    const pick = (keys: Iterable<string>): PeerAuthentication | undefined => {
      const policies = this.#resolve('PeerAuthentication', keys);
      const rank = (p: PeerAuthentication) => [
        p.metadata.namespace === workload.namespace ? 0 : 1,
        p.metadata.creationTimestamp ? Date.parse(p.metadata.creationTimestamp) : Infinity,
      ];
      return policies
        .map((p, i) => ({ p, i, r: rank(p) }))
        .sort(
          (a, b) => (a.r[0] ?? 0) - (b.r[0] ?? 0) || (a.r[1] ?? 0) - (b.r[1] ?? 0) || a.i - b.i,
        )[0]?.p;
    };
    const policy =
      pick(this.#peer.selectedBy(workloadKey(workload))) ??
      pick(this.#peerWide.get(workload.namespace) ?? EMPTY) ??
      pick(this.#peerWide.get(ROOT_NAMESPACE) ?? EMPTY);
    return policy ? { mode: policy.spec.mtls.mode, policy } : { mode: DEFAULT_MTLS_MODE, policy };
  }

  /** HTTPRoutes whose parentRefs name this service, sorted. */
  routesFor(service: NamespacedName): HTTPRoute[] {
    return this.#resolve('HTTPRoute', this.#routesByService.get(serviceKey(service)) ?? EMPTY);
  }

  #binding(
    namespace: string,
    name: string | undefined,
    source: WaypointBinding['source'],
    target: 'service' | 'workload',
  ): WaypointBinding | undefined {
    if (name === undefined || name === 'none') return undefined;
    const waypoint = this.get({ kind: 'Waypoint', namespace, name });
    if (waypoint && !waypointServes(waypoint.spec.trafficType, target)) return undefined;
    return { namespace, name, source, waypoint };
  }

  /**
   * The waypoint traffic to a service goes via: `spec.waypoint`, else the service's
   * `meshd.io/use-waypoint` label, else its namespace's; "none" opts out. A waypoint whose
   * trafficType does not serve services gives no binding.
   */
  waypointForService(service: NamespacedName): WaypointBinding | undefined {
    const s = this.#service(serviceKey(service));
    if (!s) return undefined;
    const own = s.spec.waypoint ?? s.metadata.labels?.[LABEL_USE_WAYPOINT];
    if (own !== undefined) return this.#binding(service.namespace, own, 'service', 'service');
    const ns = this.namespaceLabels(service.namespace)[LABEL_USE_WAYPOINT];
    return this.#binding(service.namespace, ns, 'namespace', 'service');
  }

  /** As waypointForService, for traffic addressed to a workload (label on it or its namespace). */
  waypointForWorkload(workload: NamespacedName): WaypointBinding | undefined {
    const w = this.#workload(workloadKey(workload));
    if (!w) return undefined;
    const own = w.metadata.labels?.[LABEL_USE_WAYPOINT];
    if (own !== undefined) return this.#binding(workload.namespace, own, 'workload', 'workload');
    const ns = this.namespaceLabels(workload.namespace)[LABEL_USE_WAYPOINT];
    return this.#binding(workload.namespace, ns, 'namespace', 'workload');
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
    const problems: string[] = [];
    const j = json as Partial<MeshStateJSON> | null;
    if (j === null || typeof j !== 'object' || j.format !== STATE_FORMAT) {
      throw new InvalidResourceError('saved state unreadable', [`format: must be ${STATE_FORMAT}`]);
    }
    if (typeof j.revision !== 'number' || !Number.isSafeInteger(j.revision) || j.revision < 0) {
      problems.push('revision: must be a non-negative integer');
    }
    if (!Array.isArray(j.resources)) problems.push('resources: must be a list');
    const resources: Resource[] = [];
    const seen = new Set<string>();
    (Array.isArray(j.resources) ? j.resources : []).forEach((raw: unknown, i) => {
      const result = validateResource(raw);
      if (!result.ok) {
        for (const e of result.errors)
          problems.push(`resources[${i}]${e.path ? `.${e.path}` : ''}: ${e.message}`);
        return;
      }
      const ref = resourceRef(result.resource);
      if (seen.has(refKey(ref))) problems.push(`resources[${i}]: duplicate ${refToString(ref)}`);
      seen.add(refKey(ref));
      resources.push(result.resource);
    });
    if (problems.length > 0) throw new InvalidResourceError('saved state invalid', problems);
    const state = new MeshState();
    state.replaceAll(resources, j.revision as number);
    return state;
  }

  // ---- writes -----------------------------------------------------------------------------

  #workload(key: string): Workload | undefined {
    return this.#byKind.get('Workload')?.get(key) as Workload | undefined;
  }

  #service(key: string): Service | undefined {
    return this.#byKind.get('Service')?.get(key) as Service | undefined;
  }

  #put(resource: Resource, affected: Affected): Resource {
    const r = deepFreeze(resource);
    const ref = resourceRef(r);
    const key = refKey(ref);
    const map = this.#byKind.get(r.kind);
    const old = map?.get(key);
    map?.set(key, r);
    if (!old && isNamespaced(r.kind)) {
      let kinds = this.#byNamespace.get(ref.namespace);
      if (!kinds) {
        kinds = new Map();
        this.#byNamespace.set(ref.namespace, kinds);
      }
      addTo(kinds, r.kind, key);
    }
    this.#reindex(key, old, r, affected);
    return r;
  }

  #delete(ref: ResourceRef, affected: Affected): Resource | undefined {
    const key = refKey(ref);
    const map = this.#byKind.get(ref.kind);
    const old = map?.get(key);
    if (!old) return undefined;
    map?.delete(key);
    if (isNamespaced(ref.kind)) {
      const kinds = this.#byNamespace.get(ref.namespace);
      if (kinds) {
        removeFrom(kinds, ref.kind, key);
        if (kinds.size === 0) this.#byNamespace.delete(ref.namespace);
      }
    }
    this.#reindex(key, old, undefined, affected);
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
        this.#reindexService(key, old as Service, now as Service, affected);
        break;
      case 'AuthorizationPolicy':
      case 'PeerAuthentication':
        this.#reindexPolicy(key, kind, old, now, affected);
        break;
      case 'Waypoint':
        this.#touchNamespace(((now ?? old) as Waypoint).metadata.namespace, affected);
        break;
      case 'HTTPRoute':
        this.#reindexRoute(key, old as HTTPRoute, now as HTTPRoute, affected);
        break;
    }
  }

  #touchNamespace(namespace: string, affected: Affected): void {
    if (!affected.track) return;
    affected.addWorkloads(this.#labels.inScope(namespace));
    affected.addServices(this.#byNamespace.get(namespace)?.get('Service') ?? EMPTY);
  }

  #reindexNamespace(
    old: ResourceOf<'Namespace'> | undefined,
    now: ResourceOf<'Namespace'> | undefined,
    affected: Affected,
  ): void {
    if (sameLabels(old?.metadata.labels, now?.metadata.labels) && old && now) return;
    this.#touchNamespace((now ?? old)?.metadata.name ?? '', affected);
  }

  #reindexWorkload(
    key: string,
    old: Workload | undefined,
    now: Workload | undefined,
    affected: Affected,
  ): void {
    if (old) {
      for (const a of old.spec.addresses) {
        const k = ipKey(a);
        if (k !== undefined) removeFrom(this.#workloadsByIp, k, key);
      }
      removeFrom(this.#workloadsByNode, old.spec.node, key);
      affected.addServices(this.#endpoints.selectedBy(key));
    }
    if (now) {
      for (const a of now.spec.addresses) {
        const k = ipKey(a);
        if (k !== undefined) addTo(this.#workloadsByIp, k, key);
      }
      addTo(this.#workloadsByNode, now.spec.node, key);
      if (!old || !sameLabels(old.metadata.labels, now.metadata.labels)) {
        this.#labels.set(key, now.metadata.namespace, now.metadata.labels);
        this.#endpoints.updateWorkload(key);
        this.#authz.updateWorkload(key);
        this.#peer.updateWorkload(key);
      }
      affected.addServices(this.#endpoints.selectedBy(key));
    } else {
      this.#labels.delete(key);
      this.#endpoints.updateWorkload(key);
      this.#authz.updateWorkload(key);
      this.#peer.updateWorkload(key);
    }
    affected.addWorkloads([key]);
  }

  #reindexService(
    key: string,
    old: Service | undefined,
    now: Service | undefined,
    affected: Affected,
  ): void {
    const addressKeys = (s: Service) =>
      s.spec.addresses.flatMap((a) => {
        const k = ipKey(a);
        return k === undefined ? [] : [k];
      });
    if (old) {
      for (const k of addressKeys(old)) {
        removeFrom(this.#servicesByVip, k, key);
        for (const p of old.spec.ports)
          removeFrom(this.#servicesByAddress, hostPort(k, p.port), key);
      }
    }
    if (now) {
      for (const k of addressKeys(now)) {
        addTo(this.#servicesByVip, k, key);
        for (const p of now.spec.ports) addTo(this.#servicesByAddress, hostPort(k, p.port), key);
      }
      const delta = this.#endpoints.setOwner(key, now.metadata.namespace, now.spec.selector);
      affected.addWorkloads(delta.added);
      affected.addWorkloads(delta.removed);
    } else {
      affected.addWorkloads(this.#endpoints.deleteOwner(key).removed);
    }
    affected.addServices([key]);
  }

  #reindexPolicy(
    key: string,
    kind: 'AuthorizationPolicy' | 'PeerAuthentication',
    old: Resource | undefined,
    now: Resource | undefined,
    affected: Affected,
  ): void {
    const matcher = kind === 'AuthorizationPolicy' ? this.#authz : this.#peer;
    const wide = kind === 'AuthorizationPolicy' ? this.#authzWide : this.#peerWide;
    const selectorOf = (r: Resource) =>
      (r as AuthorizationPolicy | PeerAuthentication).spec.selector;
    if (old) {
      const ns = old.metadata.namespace ?? '';
      if (isWide(selectorOf(old))) {
        if (affected.track) affected.addWorkloads(this.#labels.inScope(policyScope(ns)));
        removeFrom(wide, ns, key);
      } else if (!now || isWide(selectorOf(now))) {
        affected.addWorkloads(matcher.deleteOwner(key).removed);
      } else {
        affected.addWorkloads(matcher.selected(key));
      }
    }
    if (now) {
      const ns = now.metadata.namespace ?? '';
      const selector = selectorOf(now);
      if (selector === undefined || isEmptySelector(selector)) {
        addTo(wide, ns, key);
        if (affected.track) affected.addWorkloads(this.#labels.inScope(policyScope(ns)));
      } else {
        matcher.setOwner(key, policyScope(ns), selector);
        affected.addWorkloads(matcher.selected(key));
      }
    }
  }

  #reindexRoute(
    key: string,
    old: HTTPRoute | undefined,
    now: HTTPRoute | undefined,
    affected: Affected,
  ): void {
    const parents = (r: HTTPRoute) =>
      r.spec.parentRefs.map((p) => serviceKey({ namespace: r.metadata.namespace, name: p.name }));
    if (old) for (const s of parents(old)) removeFrom(this.#routesByService, s, key);
    if (now) for (const s of parents(now)) addTo(this.#routesByService, s, key);
    affected.addServices([...(old ? parents(old) : []), ...(now ? parents(now) : [])]);
  }
}
