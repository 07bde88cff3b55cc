/** The kinds, the Resource union and resource identity (ref, key, ordering). */
import type { z } from 'zod';
import {
  type AuthorizationPolicy,
  authorizationPolicySchema,
} from './kinds/authorization-policy.js';
import { type HTTPRoute, httpRouteSchema } from './kinds/http-route.js';
import { type Namespace, namespaceSchema } from './kinds/namespace.js';
import { type PeerAuthentication, peerAuthenticationSchema } from './kinds/peer-authentication.js';
import { type Service, serviceSchema } from './kinds/service.js';
import { type Waypoint, waypointSchema } from './kinds/waypoint.js';
import { type Workload, workloadSchema } from './kinds/workload.js';

/** Every kind, in the order resources are listed and applied (Namespace first). */
export const KINDS = [
  'Namespace',
  'Workload',
  'Service',
  'AuthorizationPolicy',
  'PeerAuthentication',
  'Waypoint',
  'HTTPRoute',
] as const;

export type Kind = (typeof KINDS)[number];

export type Resource =
  | Namespace
  | Workload
  | Service
  | AuthorizationPolicy
  | PeerAuthentication
  | Waypoint
  | HTTPRoute;

export type ResourceOf<K extends Kind> = Extract<Resource, { kind: K }>;

export const RESOURCE_SCHEMAS: { readonly [K in Kind]: z.ZodType<ResourceOf<K>> } = {
  Namespace: namespaceSchema,
  Workload: workloadSchema,
  Service: serviceSchema,
  AuthorizationPolicy: authorizationPolicySchema,
  PeerAuthentication: peerAuthenticationSchema,
  Waypoint: waypointSchema,
  HTTPRoute: httpRouteSchema,
};

/** Which resource: `namespace` is "" for the cluster-wide kind (Namespace). */
export interface ResourceRef {
  kind: Kind;
  namespace: string;
  name: string;
}

export function isKind(value: unknown): value is Kind {
  return typeof value === 'string' && (KINDS as readonly string[]).includes(value);
}

/** Every kind lives in a namespace except Namespace itself. */
export function isNamespaced(kind: Kind): boolean {
  return kind !== 'Namespace';
}

export function resourceRef(resource: Resource): ResourceRef {
  return {
    kind: resource.kind,
    namespace: resource.kind === 'Namespace' ? '' : resource.metadata.namespace,
    name: resource.metadata.name,
  };
}

/** `Service shop/web`, `Namespace shop`: how messages and tables name a resource. */
export function refToString(ref: ResourceRef): string {
  return ref.namespace === ''
    ? `${ref.kind} ${ref.name}`
    : `${ref.kind} ${ref.namespace}/${ref.name}`;
}

/**
 * A map key for a ref. The separator (a space) sorts below every character a name may hold,
 * so keys of one kind order like refs do.
 */
export function refKey(ref: ResourceRef): string {
  return `${ref.kind} ${ref.namespace} ${ref.name}`;
}

export function keyToRef(key: string): ResourceRef {
  const [kind, namespace = '', name = ''] = key.split(' ');
  return { kind: kind as Kind, namespace, name };
}

const KIND_ORDER = new Map<string, number>(KINDS.map((k, i) => [k, i]));

/** Orders refs by kind (KINDS order), then namespace, then name. */
export function compareRefs(a: ResourceRef, b: ResourceRef): number {
  const byKind = (KIND_ORDER.get(a.kind) ?? 99) - (KIND_ORDER.get(b.kind) ?? 99);
  if (byKind !== 0) return byKind;
  if (a.namespace !== b.namespace) return a.namespace < b.namespace ? -1 : 1;
  if (a.name !== b.name) return a.name < b.name ? -1 : 1;
  return 0;
}

/** A sorted copy (stable, deterministic): kind, namespace, name. */
export function sortResources<R extends Resource>(resources: readonly R[]): R[] {
  return resources
    .map((r) => ({ r, ref: resourceRef(r) }))
    .sort((a, b) => compareRefs(a.ref, b.ref))
    .map((x) => x.r);
}
