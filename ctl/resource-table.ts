/** The columns `meshctl get` shows per kind (UPPERCASE headers, one row per resource). */
import {
  type AuthorizationPolicy,
  type HTTPRoute,
  type Kind,
  LABEL_USE_WAYPOINT,
  type LabelSelector,
  type PeerAuthentication,
  type Resource,
  type Service,
  selectorToString,
  type Waypoint,
  type Workload,
} from '../daemon/model/index.js';

interface Columns {
  headers: string[];
  row(resource: Resource): string[];
}

const selector = (s: LabelSelector | undefined) => (s ? selectorToString(s) || '<all>' : '<all>');
const labels = (l: Record<string, string> | undefined) =>
  Object.entries(l ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(',') || '<none>';

const SPECIFIC: Record<Kind, Columns> = {
  Namespace: { headers: ['labels'], row: (r) => [labels(r.metadata.labels)] },
  Workload: {
    headers: ['node', 'addresses', 'service account', 'labels'],
    row: (r) => {
      const w = r as Workload;
      return [
        w.spec.node,
        w.spec.addresses.join(','),
        w.spec.serviceAccount,
        labels(w.metadata.labels),
      ];
    },
  },
  Service: {
    headers: ['addresses', 'ports', 'selector', 'waypoint'],
    row: (r) => {
      const s = r as Service;
      const ports = s.spec.ports.map((p) =>
        p.targetPort === p.port ? `${p.port}` : `${p.port}:${p.targetPort}`,
      );
      return [
        s.spec.addresses.join(','),
        ports.join(','),
        selector(s.spec.selector),
        s.spec.waypoint ?? s.metadata.labels?.[LABEL_USE_WAYPOINT] ?? '-',
      ];
    },
  },
  AuthorizationPolicy: {
    headers: ['action', 'applies to', 'rules'],
    row: (r) => {
      const p = r as AuthorizationPolicy;
      // A targetRefs policy is a waypoint's: name what it targets, not a selector it lacks.
      const target = p.spec.targetRefs
        ? p.spec.targetRefs.map((t) => `${t.kind}/${t.name}`).join(',')
        : selector(p.spec.selector);
      return [p.spec.action, target, String(p.spec.rules?.length ?? 0)];
    },
  },
  PeerAuthentication: {
    headers: ['mode', 'selector'],
    row: (r) => {
      const p = r as PeerAuthentication;
      return [p.spec.mtls.mode, selector(p.spec.selector)];
    },
  },
  Waypoint: {
    headers: ['traffic type'],
    row: (r) => [(r as Waypoint).spec.trafficType ?? 'service'],
  },
  HTTPRoute: {
    headers: ['parents', 'rules'],
    row: (r) => {
      const h = r as HTTPRoute;
      return [h.spec.parentRefs.map((p) => p.name).join(','), String(h.spec.rules.length)];
    },
  },
};

/** What some kinds show beyond the resource itself (`get waypoints`: READY from its replicas). */
export interface TableContext {
  /** "ready/registered" replicas of a Waypoint. */
  waypointReady?: (namespace: string, name: string) => string;
}

function withContext(kind: Kind, context: TableContext): Columns {
  const ready = context.waypointReady;
  if (kind !== 'Waypoint' || !ready) return SPECIFIC[kind];
  return {
    headers: [...SPECIFIC.Waypoint.headers, 'ready'],
    row: (r) => [...SPECIFIC.Waypoint.row(r), ready(r.metadata.namespace ?? '', r.metadata.name)],
  };
}

export function resourceColumns(kind: Kind, context: TableContext = {}): Columns {
  const specific = withContext(kind, context);
  const namespaced = kind !== 'Namespace';
  return {
    headers: [...(namespaced ? ['namespace'] : []), 'name', ...specific.headers, 'version'],
    row: (r) => [
      ...(namespaced ? [r.metadata.namespace ?? ''] : []),
      r.metadata.name,
      ...specific.row(r),
      String(r.metadata.resourceVersion ?? ''),
    ],
  };
}
