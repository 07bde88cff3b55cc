/** Workload: addresses on a node with a service account (its identity); from CNI or by hand. */
import { z } from 'zod';
import type { SpiffeId } from '../../identity/index.js';
import {
  ALWAYS,
  APP_PROTOCOLS,
  dnsLabel,
  dnsSubdomain,
  ipAddress,
  namespacedMetadata,
  port,
  portName,
  resourceSchema,
  rule,
  unique,
  uniqueAddresses,
} from '../common.js';

const workloadPort = z.strictObject({
  name: portName().optional(),
  port: port(),
  protocol: z.enum(APP_PROTOCOLS).optional(),
});

export const workloadSpec = z
  .strictObject({
    node: dnsLabel(),
    addresses: z.array(ipAddress()).min(1),
    serviceAccount: dnsSubdomain().default('default'),
    ports: z.array(workloadPort).optional(),
    hostNetwork: z.boolean().optional(),
    /** Relative share of a Service's connections this endpoint gets (capacity). */
    weight: rule(z.number(), (v) =>
      Number.isInteger(v) && v >= 1 && v <= 1000 ? undefined : 'must be an integer from 1 to 1000',
    ).optional(),
    netns: rule(z.string(), (v) =>
      v.startsWith('/') && !v.includes('\0') ? undefined : 'must be an absolute path',
    ).optional(),
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

export const workloadSchema = resourceSchema('Workload', namespacedMetadata(), workloadSpec);

export type Workload = z.output<typeof workloadSchema>;
export type WorkloadPort = z.output<typeof workloadPort>;

/** The workload's SPIFFE ID: `spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>`. */
export function workloadIdentity(workload: Workload, trustDomain: string): SpiffeId {
  const { namespace } = workload.metadata;
  return `spiffe://${trustDomain}/ns/${namespace}/sa/${workload.spec.serviceAccount}` as SpiffeId;
}
