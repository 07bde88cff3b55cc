/** Service: virtual IPs and ports in front of the workloads its selector picks. */
import { z } from 'zod';
import {
  ALWAYS,
  APP_PROTOCOLS,
  dnsLabel,
  ipAddress,
  namespacedMetadata,
  port,
  portName,
  resourceSchema,
  unique,
  uniqueAddresses,
} from '../common.js';
import { labelSelectorSchema } from '../selector.js';

export const LOAD_BALANCING_MODES = ['RoundRobin', 'LeastConnections'] as const;

const servicePort = z
  .strictObject({
    name: portName().optional(),
    port: port(),
    /** Defaults to `port`. */
    targetPort: port().optional(),
    protocol: z.enum(APP_PROTOCOLS).optional(),
  })
  .transform(({ name, port, targetPort, protocol }) => ({
    ...(name === undefined ? {} : { name }),
    port,
    targetPort: targetPort ?? port,
    ...(protocol === undefined ? {} : { protocol }),
  }));

export const serviceSpec = z
  .strictObject({
    addresses: z.array(ipAddress()).min(1),
    ports: z.array(servicePort).min(1),
    selector: labelSelectorSchema,
    waypoint: dnsLabel().optional(),
    loadBalancing: z
      .strictObject({ mode: z.enum(LOAD_BALANCING_MODES).default('RoundRobin') })
      .optional(),
  })
  .superRefine((spec, ctx) => {
    uniqueAddresses(spec.addresses, ctx, 'addresses');
    unique(
      spec.ports,
      (p) => p.port,
      ctx,
      (i) => ['ports', i, 'port'],
      'port',
    );
    unique(
      spec.ports,
      (p) => p.name,
      ctx,
      (i) => ['ports', i, 'name'],
      'port name',
    );
  }, ALWAYS);

export const serviceSchema = resourceSchema('Service', namespacedMetadata(), serviceSpec);

export type Service = z.output<typeof serviceSchema>;
export type ServicePort = Service['spec']['ports'][number];
export type LoadBalancingMode = (typeof LOAD_BALANCING_MODES)[number];
