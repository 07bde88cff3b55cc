/** Waypoint: a named L7 proxy in a namespace that services and workloads can send traffic via. */
import { z } from 'zod';
import { ALWAYS, int, namespacedMetadata, resourceSchema } from '../common.js';

export const TRAFFIC_TYPES = ['service', 'workload', 'all'] as const;
export type TrafficType = (typeof TRAFFIC_TYPES)[number];

export const waypointSpec = z.strictObject({
  trafficType: z.enum(TRAFFIC_TYPES).default('service'),
  replicas: int(1, 100).optional(),
});

const waypointMetadata = namespacedMetadata().superRefine((metadata, ctx) => {
  if (metadata.name === 'none') {
    ctx.addIssue({
      code: 'custom',
      path: ['name'],
      input: metadata.name,
      message: '"none" is reserved: meshd.io/use-waypoint=none means "no waypoint"',
    });
  }
}, ALWAYS);

export const waypointSchema = resourceSchema(
  'Waypoint',
  waypointMetadata,
  waypointSpec.prefault({}),
);

export type Waypoint = z.output<typeof waypointSchema>;

/** Whether a waypoint of this traffic type serves traffic addressed to a service or a workload. */
export function waypointServes(trafficType: TrafficType, target: 'service' | 'workload'): boolean {
  return trafficType === 'all' || trafficType === target;
}
