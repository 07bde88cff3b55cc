/** `meshctl waypoint apply`: the Waypoint (and the Namespace label) to write, from what exists. */
import { MeshdError } from '../../daemon/errors.js';
import {
  LABEL_USE_WAYPOINT,
  type Namespace,
  type NamespacedName,
  type Resource,
  TRAFFIC_TYPES,
  type TrafficType,
  validateResource,
  type Waypoint,
} from '../../daemon/model/index.js';

export function parseTrafficType(value: string): TrafficType {
  if ((TRAFFIC_TYPES as readonly string[]).includes(value)) return value as TrafficType;
  throw new MeshdError('MESHD_E_BAD_REQUEST', `--for ${JSON.stringify(value)}: unknown`, {
    hint: `use ${TRAFFIC_TYPES.join(', ')}: which traffic the waypoint carries (addressed to a Service VIP, to a workload IP, or both)`,
  });
}

function validated<T extends Resource>(candidate: unknown, what: string): T {
  const result = validateResource(candidate);
  if (!result.ok) {
    const why = result.errors.map((e) => `${e.path}: ${e.message}`).join('; ');
    throw new MeshdError('MESHD_E_INVALID_RESOURCE', `${what}: ${why}`);
  }
  return result.resource as T;
}

/**
 * The Waypoint to apply: the existing one (labels, annotations, spec.replicas and its
 * resourceVersion kept, so a concurrent change is refused rather than lost) with trafficType
 * from --for; a new one with --for or `service`.
 */
export function waypointToApply(
  ref: NamespacedName,
  existing: Waypoint | undefined,
  trafficType: TrafficType | undefined,
): Waypoint {
  const spec = {
    ...(existing?.spec ?? {}),
    trafficType: trafficType ?? existing?.spec.trafficType ?? 'service',
  };
  return validated<Waypoint>(
    {
      apiVersion: 'meshd.io/v1alpha1',
      kind: 'Waypoint',
      metadata: existing ? { ...existing.metadata } : { name: ref.name, namespace: ref.namespace },
      spec,
    },
    `waypoint ${ref.namespace}/${ref.name}`,
  );
}

/**
 * The Namespace with `meshd.io/use-waypoint=<name>`, its other labels kept; undefined when it
 * already has it. A namespace that is not in the registry yet is created with the label.
 */
export function namespaceToEnroll(
  namespace: string,
  existing: Namespace | undefined,
  waypoint: string,
): Namespace | undefined {
  if (existing?.metadata.labels?.[LABEL_USE_WAYPOINT] === waypoint) return undefined;
  const metadata = existing ? { ...existing.metadata } : { name: namespace };
  return validated<Namespace>(
    {
      apiVersion: 'meshd.io/v1alpha1',
      kind: 'Namespace',
      metadata: {
        ...metadata,
        labels: { ...(existing?.metadata.labels ?? {}), [LABEL_USE_WAYPOINT]: waypoint },
      },
    },
    `namespace ${namespace}`,
  );
}
