/** Services by VIP and by VIP:port, and their endpoints: the workloads their selector picks. */
import { hostPort, ipKey } from '../ip.js';
import type { Service, ServicePort } from '../kinds/service.js';
import { SelectorMatcher, type WorkloadLabelIndex } from '../selector-index.js';
import type { Affected } from './affected.js';
import { addTo, EMPTY, minKey, removeFrom } from './key-sets.js';

export interface ServiceMatch {
  service: Service;
  port: ServicePort;
}

const addressKeys = (s: Service) =>
  s.spec.addresses.flatMap((a) => {
    const k = ipKey(a);
    return k === undefined ? [] : [k];
  });

export class ServiceIndex {
  /** `ip:port` (canonical ip) → service keys. */
  readonly #byAddress = new Map<string, Set<string>>();
  /** Canonical ip → service keys, whatever the port. */
  readonly #byVip = new Map<string, Set<string>>();
  readonly #endpoints: SelectorMatcher;

  constructor(labels: WorkloadLabelIndex) {
    this.#endpoints = new SelectorMatcher(labels);
  }

  /** Files `now` in place of `old`; the service and the workloads that joined or left its endpoints are affected. */
  update(
    key: string,
    old: Service | undefined,
    now: Service | undefined,
    affected: Affected,
  ): void {
    if (old) {
      for (const k of addressKeys(old)) {
        removeFrom(this.#byVip, k, key);
        for (const p of old.spec.ports) removeFrom(this.#byAddress, hostPort(k, p.port), key);
      }
    }
    if (now) {
      for (const k of addressKeys(now)) {
        addTo(this.#byVip, k, key);
        for (const p of now.spec.ports) addTo(this.#byAddress, hostPort(k, p.port), key);
      }
      const delta = this.#endpoints.setOwner(key, now.metadata.namespace, now.spec.selector);
      affected.addWorkloads(delta.added);
      affected.addWorkloads(delta.removed);
    } else {
      affected.addWorkloads(this.#endpoints.deleteOwner(key).removed);
    }
    affected.addServices([key]);
  }

  /** Re-matches a workload whose labels changed (or that was deleted) against every selector. */
  rematchWorkload(workloadKey: string): void {
    this.#endpoints.updateWorkload(workloadKey);
  }

  /** The key of the service at VIP:port; on a conflict, the first by namespace and name. */
  keyAt(ip: string, port: number): string | undefined {
    const k = ipKey(ip);
    return k === undefined ? undefined : minKey(this.#byAddress.get(hostPort(k, port)));
  }

  keysByVip(ip: string): ReadonlySet<string> {
    const k = ipKey(ip);
    return k === undefined ? EMPTY : (this.#byVip.get(k) ?? EMPTY);
  }

  /** Keys of the workloads a service's selector picks. */
  endpointKeys(serviceKey: string): ReadonlySet<string> {
    return this.#endpoints.selected(serviceKey);
  }

  /** Keys of the services whose selector picks a workload. */
  keysSelecting(workloadKey: string): ReadonlySet<string> {
    return this.#endpoints.selectedBy(workloadKey);
  }
}
