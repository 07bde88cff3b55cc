/** What the data path needs to know about a local captured workload. */
import type { MeshState, NamespacedName, Workload } from '../model/index.js';
import { workloadIdentity } from '../model/index.js';
import type { Peer } from '../telemetry/index.js';

export const AGENT_PORTS = { outbound: 15001, inboundPlaintext: 15006, hbone: 15008 } as const;
export const AGENT_PORT_SET: ReadonlySet<number> = new Set(Object.values(AGENT_PORTS));

export interface LocalWorkload {
  ref: NamespacedName;
  resource: Workload;
  identity: string;
  netns: string;
  addresses: ReadonlySet<string>;
}

export function localWorkload(resource: Workload, trustDomain: string): LocalWorkload {
  return {
    ref: { namespace: resource.metadata.namespace ?? '', name: resource.metadata.name },
    resource,
    identity: workloadIdentity(resource, trustDomain),
    netns: resource.spec.netns ?? '',
    addresses: new Set(resource.spec.addresses),
  };
}

/** Istio's principal form: the SPIFFE ID without the scheme. */
export const principal = (spiffeId: string | undefined): string =>
  (spiffeId ?? '').replace(/^spiffe:\/\//, '');

export function peerOf(
  workload: Workload | undefined,
  ip: string,
  trustDomain: string,
  identity?: string,
): Peer {
  const labels = workload?.metadata.labels;
  const app = labels?.app ?? labels?.['app.kubernetes.io/name'] ?? '';
  const version = labels?.version ?? labels?.['app.kubernetes.io/version'] ?? '';
  return {
    workload: workload?.metadata.name ?? '',
    namespace: workload?.metadata.namespace ?? '',
    principal: principal(
      identity ?? (workload ? workloadIdentity(workload, trustDomain) : undefined),
    ),
    ip,
    app,
    version,
    canonicalService: labels?.['service.istio.io/canonical-name'] ?? app,
    canonicalRevision: labels?.['service.istio.io/canonical-revision'] ?? version,
  };
}

/** Folds IPv4-mapped IPv6 (a dual-stack listener's view of v4 peers) to plain IPv4. */
export const plainIp = (ip: string | undefined): string =>
  (ip ?? '').replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/, '$1');

export function workloadAt(state: MeshState, ip: string): Workload | undefined {
  return state.workloadByIp(ip);
}
