/**
 * Per-request endpoint choice: least request with the power of two choices (Envoy's default
 * for LEAST_REQUEST): two distinct random candidates, the one with fewer requests in flight
 * wins, the first on a tie. Pure; randomness and the load figures are injected.
 */
import type { Endpoint } from './types.js';

/**
 * Picks among `endpoints` not in `tried`; undefined when none is left. `random()` returns
 * [0, 1) like Math.random.
 */
export function pickEndpoint(
  endpoints: readonly Endpoint[],
  load: (id: string) => number,
  random: () => number,
  tried?: ReadonlySet<string>,
): Endpoint | undefined {
  let pool = endpoints;
  if (tried !== undefined && tried.size > 0) pool = endpoints.filter((e) => !tried.has(e.id));
  const n = pool.length;
  if (n <= 1) return pool[0];
  const a = Math.min(n - 1, Math.floor(random() * n));
  let b = Math.min(n - 2, Math.floor(random() * (n - 1)));
  if (b >= a) b++;
  const ea = pool[a] as Endpoint;
  const eb = pool[b] as Endpoint;
  return load(eb.id) < load(ea.id) ? eb : ea;
}

/** Requests in flight per endpoint id; an id at zero is forgotten (endpoints churn). */
export class LoadCounter {
  readonly #counts = new Map<string, number>();

  readonly get = (id: string): number => this.#counts.get(id) ?? 0;

  inc(id: string): void {
    this.#counts.set(id, (this.#counts.get(id) ?? 0) + 1);
  }

  dec(id: string): void {
    const n = (this.#counts.get(id) ?? 0) - 1;
    if (n > 0) this.#counts.set(id, n);
    else this.#counts.delete(id);
  }

  get size(): number {
    return this.#counts.size;
  }
}
