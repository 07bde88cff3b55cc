/**
 * What `meshctl waypoint list|status|delete` and `meshctl check` say about waypoints, computed
 * purely from a registry snapshot with the same rules the agents apply (MeshState's bindings,
 * the outbound plan's ready replicas), so what they report is what traffic does.
 */
import { ANNOTATION_REPLICA_OF, waypointReplicas } from '../../daemon/agent/index.js';
import {
  type AuthorizationPolicy,
  LABEL_USE_WAYPOINT,
  LABEL_WAYPOINT,
  MeshState,
  type NamespacedName,
  type Resource,
  type Service,
  validateResource,
  type Waypoint,
  type Workload,
  waypointServes,
} from '../../daemon/model/index.js';
import { policiesForTarget } from '../../daemon/policy/index.js';

/** How an object came to be bound: the field or label that names the waypoint. */
export type BindingVia = 'spec.waypoint' | 'label' | 'namespace label';

export interface BoundObject {
  kind: 'Service' | 'Workload';
  namespace: string;
  name: string;
  via: BindingVia;
}

export interface ReplicaView {
  name: string;
  node: string;
  addresses: string[];
  /** Labelled `meshd.io/waypoint` with an address: agents send to it. */
  ready: boolean;
}

export interface PolicyView {
  name: string;
  action: string;
  /** The targetRefs that reach this waypoint: `Waypoint/wp`, `Service/api`. */
  targets: string[];
}

export interface WaypointView {
  namespace: string;
  name: string;
  /** Undefined: the Waypoint does not exist (bindings to it refuse traffic). */
  trafficType: Waypoint['spec']['trafficType'] | undefined;
  /** spec.replicas, when the Waypoint asks for a number. */
  wantedReplicas: number | undefined;
  replicas: ReplicaView[];
  bound: BoundObject[];
  /** Objects naming this waypoint themselves whose kind its trafficType does not serve. */
  ignored: BoundObject[];
  policies: PolicyView[];
  problems: { severity: 'fail' | 'warn'; message: string; hint?: string }[];
}

const ref = (r: { metadata: { namespace?: string | undefined; name: string } }) => ({
  namespace: r.metadata.namespace ?? '',
  name: r.metadata.name,
});

const fullName = (n: NamespacedName) => `${n.namespace}/${n.name}`;

const same = (a: NamespacedName, b: NamespacedName) =>
  a.namespace === b.namespace && a.name === b.name;

export const isReplica = (w: Workload): boolean =>
  w.metadata.annotations?.[ANNOTATION_REPLICA_OF] !== undefined ||
  w.metadata.labels?.[LABEL_WAYPOINT] !== undefined;

/** The name a workload is a replica of (annotation, else the ready label); undefined: none. */
const replicaOf = (w: Workload): string | undefined =>
  w.metadata.annotations?.[ANNOTATION_REPLICA_OF] ?? w.metadata.labels?.[LABEL_WAYPOINT];

function serviceVia(s: Service, source: 'service' | 'workload' | 'namespace'): BindingVia {
  if (source === 'namespace') return 'namespace label';
  return s.spec.waypoint !== undefined ? 'spec.waypoint' : 'label';
}

/** The waypoint a Service names itself, and how: spec.waypoint beats the label. */
function ownOfService(s: Service): { name: string; via: BindingVia } | undefined {
  if (s.spec.waypoint !== undefined) return { name: s.spec.waypoint, via: 'spec.waypoint' };
  const label = s.metadata.labels?.[LABEL_USE_WAYPOINT];
  return label === undefined ? undefined : { name: label, via: 'label' };
}

/**
 * Every binding in the mesh, as the agents resolve it: each Service (any) and each enrolled
 * Workload that is not itself a replica, with the waypoint it is bound to. A binding to a
 * Waypoint that does not exist is included (it refuses traffic); "none" and trafficType
 * mismatches are not bindings.
 */
export function allBindings(state: MeshState): (BoundObject & { waypoint: NamespacedName })[] {
  const out: (BoundObject & { waypoint: NamespacedName })[] = [];
  for (const s of state.list('Service')) {
    const b = state.waypointForService(ref(s));
    if (b)
      out.push({
        kind: 'Service',
        ...ref(s),
        via: serviceVia(s, b.source),
        waypoint: { namespace: b.namespace, name: b.name },
      });
  }
  for (const w of state.list('Workload')) {
    if (isReplica(w) || !state.isEnrolled(w)) continue;
    const b = state.waypointForWorkload(ref(w));
    if (b)
      out.push({
        kind: 'Workload',
        ...ref(w),
        via: b.source === 'namespace' ? 'namespace label' : 'label',
        waypoint: { namespace: b.namespace, name: b.name },
      });
  }
  return out;
}

/** Registered replicas of a waypoint (ready or not), sorted by name. */
export function replicasOf(state: MeshState, waypoint: NamespacedName): ReplicaView[] {
  const ready = new Set(waypointReplicas(state, waypoint).map((w) => w.metadata.name));
  return state
    .list('Workload', waypoint.namespace)
    .filter((w) => replicaOf(w) === waypoint.name)
    .map((w) => ({
      name: w.metadata.name,
      node: w.spec.node,
      addresses: [...w.spec.addresses],
      ready: ready.has(w.metadata.name),
    }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** The waypoint policies it enforces: targetRefs naming it or a Service bound to it. */
function policiesOf(
  state: MeshState,
  waypoint: NamespacedName,
  services: BoundObject[],
): PolicyView[] {
  const all = state.list('AuthorizationPolicy', waypoint.namespace);
  const found = new Map<string, AuthorizationPolicy>();
  const targets = [{ waypoint }, ...services.map((s) => ({ service: s, waypoint }))];
  for (const target of targets)
    for (const p of policiesForTarget(all, target)) found.set(p.metadata.name, p);
  const reaches = (kind: string, name: string) =>
    kind === 'Waypoint' ? name === waypoint.name : services.some((s) => s.name === name);
  return [...found.values()]
    .map((p) => ({
      name: p.metadata.name,
      action: p.spec.action,
      targets: (p.spec.targetRefs ?? [])
        .filter((t) => reaches(t.kind, t.name))
        .map((t) => `${t.kind}/${t.name}`),
    }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** Own labels naming this waypoint on objects its trafficType does not serve (not bindings). */
function ignoredBy(state: MeshState, waypoint: NamespacedName, w: Waypoint): BoundObject[] {
  const out: BoundObject[] = [];
  const { trafficType } = w.spec;
  if (!waypointServes(trafficType, 'service')) {
    for (const s of state.list('Service', waypoint.namespace)) {
      const own = ownOfService(s);
      if (own?.name === waypoint.name) out.push({ kind: 'Service', ...ref(s), via: own.via });
    }
  }
  if (!waypointServes(trafficType, 'workload')) {
    for (const wl of state.list('Workload', waypoint.namespace)) {
      if (!isReplica(wl) && wl.metadata.labels?.[LABEL_USE_WAYPOINT] === waypoint.name)
        out.push({ kind: 'Workload', ...ref(wl), via: 'label' });
    }
  }
  return out;
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** "2 services, 1 workload" ("nothing" when empty). */
export function describeBound(bound: readonly BoundObject[]): string {
  const services = bound.filter((b) => b.kind === 'Service').length;
  const workloads = bound.length - services;
  if (bound.length === 0) return 'nothing';
  return [
    ...(services ? [plural(services, 'service')] : []),
    ...(workloads ? [plural(workloads, 'workload')] : []),
  ].join(', ');
}

/** How to start a replica: said wherever a waypoint has none. */
export function startHint(waypoint: NamespacedName): string {
  const { namespace, name } = waypoint;
  return `start one beside an agent: systemctl start meshd-waypoint@${namespace}_${name} (meshctl install systemd), or meshctl waypoint generate ${name} -n ${namespace} | kubectl apply -f -`;
}

/** Everything `meshctl waypoint status` shows about one waypoint, existing or not. */
export function waypointView(
  state: MeshState,
  waypoint: NamespacedName,
  bindings = allBindings(state),
): WaypointView {
  const resource = state.get({ kind: 'Waypoint', ...waypoint });
  const bound = bindings
    .filter((b) => same(b.waypoint, waypoint))
    .map(({ waypoint: _, ...b }) => b);
  const replicas = replicasOf(state, waypoint);
  const ready = replicas.filter((r) => r.ready).length;
  const services = bound.filter((b) => b.kind === 'Service');
  const problems: WaypointView['problems'] = [];
  const what = describeBound(bound);
  if (!resource) {
    problems.push({
      severity: 'fail',
      message: `the Waypoint does not exist${bound.length ? `: traffic to the ${what} bound to it is refused` : ''}`,
      hint: `create it: meshctl waypoint apply ${waypoint.name} -n ${waypoint.namespace}`,
    });
  } else if (ready === 0) {
    problems.push({
      severity: bound.length ? 'fail' : 'warn',
      message: `no ready replica${replicas.length ? ` (${replicas.length} registered, none serving)` : ''}${bound.length ? `: traffic to the ${what} bound to it is refused` : ''}`,
      hint: startHint(waypoint),
    });
  }
  const wanted = resource?.spec.replicas;
  if (resource && ready > 0 && wanted !== undefined && ready < wanted) {
    problems.push({
      severity: 'warn',
      message: `${ready} of ${wanted} replicas ready (spec.replicas)`,
      hint: startHint(waypoint),
    });
  }
  const unready = replicas.filter((r) => !r.ready);
  if (ready > 0 && unready.length > 0) {
    problems.push({
      severity: 'warn',
      message: `replica${unready.length === 1 ? '' : 's'} ${unready.map((r) => r.name).join(', ')} registered but not serving (starting, draining, or stopped without deregistering)`,
      hint: 'see the replica log (journalctl -u meshd-waypoint@… or kubectl logs)',
    });
  }
  const ignored = resource ? ignoredBy(state, waypoint, resource) : [];
  if (ignored.length > 0) {
    problems.push({
      severity: 'warn',
      message: `${ignored.map((o) => `${o.kind.toLowerCase()} ${o.name} (${o.via})`).join(', ')} name${ignored.length === 1 ? 's' : ''} it, but trafficType ${resource?.spec.trafficType} does not serve ${ignored.length === 1 ? 'it' : 'them'}: that traffic goes direct`,
      hint: `meshctl waypoint apply ${waypoint.name} -n ${waypoint.namespace} --for all`,
    });
  }
  if (resource && bound.length === 0 && ignored.length === 0) {
    problems.push({
      severity: 'warn',
      message: 'nothing is bound to it: it carries no traffic',
      hint: `bind a namespace: meshctl waypoint apply ${waypoint.name} -n ${waypoint.namespace} --enroll-namespace, or a Service: meshctl label service NAME -n ${waypoint.namespace} ${LABEL_USE_WAYPOINT}=${waypoint.name}`,
    });
  }
  return {
    ...waypoint,
    trafficType: resource?.spec.trafficType,
    wantedReplicas: wanted,
    replicas,
    bound,
    ignored,
    policies: policiesOf(state, waypoint, services),
    problems,
  };
}

/** One row of `meshctl waypoint list` / `get waypoints`. */
export interface WaypointRow {
  namespace: string;
  name: string;
  trafficType: string;
  ready: number;
  registered: number;
  services: number;
  workloads: number;
}

export function waypointRows(state: MeshState, namespace?: string): WaypointRow[] {
  const bindings = allBindings(state);
  return state
    .list('Waypoint', namespace)
    .map((w) => {
      const view = waypointView(state, ref(w), bindings);
      return {
        ...ref(w),
        trafficType: w.spec.trafficType,
        ready: view.replicas.filter((r) => r.ready).length,
        registered: view.replicas.length,
        services: view.bound.filter((b) => b.kind === 'Service').length,
        workloads: view.bound.filter((b) => b.kind === 'Workload').length,
      };
    })
    .sort((a, b) => fullName(a).localeCompare(fullName(b)));
}

/**
 * The targetRefs of a waypoint policy that no waypoint enforces, each with why: a Waypoint
 * that does not exist or has no ready replica, a Service that does not exist or is bound to no
 * waypoint (agents ignore targetRefs policies: it then protects nothing) or to one that does
 * not exist or has no ready replica. Empty: every target is enforced.
 */
export function unenforcedTargets(
  state: MeshState,
  policy: AuthorizationPolicy,
): { target: string; why: string; hint: string }[] {
  const namespace = policy.metadata.namespace ?? '';
  const out: { target: string; why: string; hint: string }[] = [];
  const waypointProblem = (wp: NamespacedName): string | undefined => {
    if (!state.get({ kind: 'Waypoint', ...wp })) return 'does not exist';
    if (waypointReplicas(state, wp).length === 0) return 'has no ready replica';
    return undefined;
  };
  for (const t of policy.spec.targetRefs ?? []) {
    const target = `${t.kind}/${t.name}`;
    if (t.kind === 'Waypoint') {
      const wp = { namespace, name: t.name };
      const why = waypointProblem(wp);
      if (why)
        out.push({
          target,
          why: `waypoint ${fullName(wp)} ${why}`,
          hint: state.get({ kind: 'Waypoint', ...wp })
            ? startHint(wp)
            : `create it (meshctl waypoint apply ${t.name} -n ${namespace}) or fix the targetRef`,
        });
      continue;
    }
    const service = { namespace, name: t.name };
    if (!state.get({ kind: 'Service', ...service })) {
      out.push({
        target,
        why: `service ${fullName(service)} does not exist`,
        hint: 'fix the targetRef (a targetRef names a Service of the policy’s own namespace)',
      });
      continue;
    }
    const binding = state.waypointForService(service);
    if (!binding) {
      out.push({
        target,
        why: `service ${fullName(service)} is bound to no waypoint (agents do not apply targetRefs policies)`,
        hint: `bind it: meshctl label service ${t.name} -n ${namespace} ${LABEL_USE_WAYPOINT}=WAYPOINT (a waypoint serving service traffic), or use spec.selector for an L4 policy`,
      });
      continue;
    }
    const why = waypointProblem(binding);
    if (why)
      out.push({
        target,
        why: `service ${fullName(service)} is bound to waypoint ${fullName(binding)}, which ${why} (its traffic is refused meanwhile)`,
        hint: binding.waypoint
          ? startHint(binding)
          : `create it: meshctl waypoint apply ${binding.name} -n ${binding.namespace}`,
      });
  }
  return out;
}

/** `get waypoints` READY: "ready/registered" replicas, from the Workloads alone. */
export function waypointReadyContext(workloads: readonly unknown[]): {
  waypointReady: (namespace: string, name: string) => string;
} {
  const state = new MeshState();
  state.replaceAll(
    workloads.flatMap((w) => {
      const v = validateResource(w);
      return v.ok && v.resource.kind === 'Workload' ? [v.resource as Resource] : [];
    }),
    0,
  );
  return {
    waypointReady: (namespace, name) => {
      const replicas = replicasOf(state, { namespace, name });
      return `${replicas.filter((r) => r.ready).length}/${replicas.length}`;
    },
  };
}
