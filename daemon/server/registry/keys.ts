/** Where resources live in the store: /registry/<Kind>/<namespace or _>/<name>. */
import type { ResourceRef } from '../../proto/index.js';

export const REGISTRY_PREFIX = '/registry/';
const CLUSTER_SCOPED = '_';

export function keyOf(ref: ResourceRef): string {
  return `${REGISTRY_PREFIX}${ref.kind}/${ref.namespace || CLUSTER_SCOPED}/${ref.name}`;
}

export function refOfKey(key: string): ResourceRef {
  const [kind = '', namespace = '', name = ''] = key.slice(REGISTRY_PREFIX.length).split('/');
  return { kind, namespace: namespace === CLUSTER_SCOPED ? '' : namespace, name };
}

/** The prefix of a kind, optionally narrowed to a namespace. */
export function listPrefix(kind?: string, namespace?: string): string {
  if (!kind) return REGISTRY_PREFIX;
  return namespace ? `${REGISTRY_PREFIX}${kind}/${namespace}/` : `${REGISTRY_PREFIX}${kind}/`;
}

export const refText = (ref: ResourceRef): string =>
  ref.namespace ? `${ref.kind} ${ref.namespace}/${ref.name}` : `${ref.kind} ${ref.name}`;
