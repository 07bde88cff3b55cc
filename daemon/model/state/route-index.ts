/** HTTPRoutes by the services their parentRefs name (same namespace as the route). */
import type { HTTPRoute } from '../kinds/http-route.js';
import type { Affected } from './affected.js';
import { addTo, EMPTY, removeFrom } from './key-sets.js';
import { serviceKey } from './keys.js';

const parentKeys = (r: HTTPRoute) =>
  r.spec.parentRefs.map((p) => serviceKey({ namespace: r.metadata.namespace, name: p.name }));

export class RouteIndex {
  /** Service key → route keys. */
  readonly #byService = new Map<string, Set<string>>();

  /** Files `now` in place of `old`; the parents it had and has are affected (their routes changed). */
  update(
    key: string,
    old: HTTPRoute | undefined,
    now: HTTPRoute | undefined,
    affected: Affected,
  ): void {
    if (old) for (const s of parentKeys(old)) removeFrom(this.#byService, s, key);
    if (now) for (const s of parentKeys(now)) addTo(this.#byService, s, key);
    affected.addServices([...(old ? parentKeys(old) : []), ...(now ? parentKeys(now) : [])]);
  }

  keysFor(serviceKey: string): ReadonlySet<string> {
    return this.#byService.get(serviceKey) ?? EMPTY;
  }
}
