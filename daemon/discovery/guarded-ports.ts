/**
 * Which ports of a workload only a waypoint may reach (the facts for the policy's
 * checkWaypointOnly): the target ports of its Services that are bound to a waypoint and
 * protected there by an L7 policy. A binding to a waypoint that does not exist still guards:
 * nothing may skip a policy that nobody enforces.
 */
import type { MeshState, NamespacedName } from '../model/index.js';
import { type GuardedPort, policiesForTarget } from '../policy/index.js';

export function guardedPorts(
  state: MeshState,
  workload: NamespacedName,
  trustDomain: string,
): GuardedPort[] {
  const out: GuardedPort[] = [];
  for (const service of state.servicesOf(workload)) {
    const ref = { namespace: service.metadata.namespace ?? '', name: service.metadata.name };
    const binding = state.waypointForService(ref);
    if (!binding) continue;
    const policies = policiesForTarget(state.list('AuthorizationPolicy'), {
      service: ref,
      waypoint: { namespace: binding.namespace, name: binding.name },
    });
    if (policies.length === 0) continue;
    for (const port of service.spec.ports) {
      out.push({
        targetPort: port.targetPort ?? port.port,
        service: `${ref.namespace}/${ref.name}`,
        waypointIdentity: `spiffe://${trustDomain}/ns/${binding.namespace}/sa/${binding.name}`,
        policies: policies.map((p) => `${p.metadata.namespace}/${p.metadata.name}`),
      });
    }
  }
  return out;
}

/** guardedPorts, worked out again only when the state changed (it runs per connection). */
export class GuardedPortsCache {
  #revision = -1;
  #state: MeshState | undefined;
  readonly #byWorkload = new Map<string, GuardedPort[]>();

  get(state: MeshState, workload: NamespacedName, trustDomain: string): GuardedPort[] {
    if (state !== this.#state || state.revision !== this.#revision) {
      this.#state = state;
      this.#revision = state.revision;
      this.#byWorkload.clear();
    }
    const key = `${workload.namespace}/${workload.name}`;
    let ports = this.#byWorkload.get(key);
    if (!ports) {
      ports = guardedPorts(state, workload, trustDomain);
      this.#byWorkload.set(key, ports);
    }
    return ports;
  }
}
