/**
 * Picking a Service endpoint: round robin or least connections, skipping endpoints that failed
 * several times in a row (passive outlier ejection, for a back-off period that doubles on
 * repeat ejections). If every endpoint is ejected, all are tried again (better than none).
 */
import type { LoadBalancingMode } from '../model/index.js';

export interface OutlierOptions {
  consecutiveFailures: number;
  baseEjectionMs: number;
  maxEjectionMs: number;
}

const DEFAULT_OUTLIER: OutlierOptions = {
  consecutiveFailures: 3,
  baseEjectionMs: 5_000,
  maxEjectionMs: 60_000,
};

interface EndpointHealth {
  failures: number;
  ejections: number;
  ejectedUntil: number;
  active: number;
}

export class Balancer {
  readonly #health = new Map<string, EndpointHealth>();
  /** Smooth weighted round robin state per service: endpoint → current weight. */
  readonly #current = new Map<string, Map<string, number>>();
  readonly #outlier: OutlierOptions;
  readonly #now: () => number;

  constructor(outlier: Partial<OutlierOptions> = {}, now: () => number = Date.now) {
    this.#outlier = { ...DEFAULT_OUTLIER, ...outlier };
    this.#now = now;
  }

  /**
   * Endpoints in the order to try them (first choice first, then the others as fallbacks).
   * `weights` (default 1 each) skew round robin (smooth weighted round robin, as nginx does:
   * weights 3:1 give a a,a,b,a pattern) and least connections (active / weight).
   */
  order(
    service: string,
    endpoints: readonly string[],
    mode: LoadBalancingMode = 'RoundRobin',
    weights: ReadonlyMap<string, number> = new Map(),
  ): string[] {
    if (endpoints.length === 0) return [];
    const now = this.#now();
    const healthy = endpoints.filter((e) => (this.#health.get(e)?.ejectedUntil ?? 0) <= now);
    const pool = healthy.length > 0 ? healthy : [...endpoints];
    const weight = (e: string) => weights.get(e) ?? 1;
    const ejected = endpoints.filter((e) => !pool.includes(e));
    if (mode === 'LeastConnections') {
      const load = (e: string) => this.#active(e) / weight(e);
      return [...[...pool].sort((a, b) => load(a) - load(b)), ...ejected];
    }
    const first = this.#nextWeighted(service, pool, weight);
    return [first, ...pool.filter((e) => e !== first), ...ejected];
  }

  #nextWeighted(service: string, pool: readonly string[], weight: (e: string) => number): string {
    const current = this.#current.get(service) ?? new Map<string, number>();
    this.#current.set(service, current);
    for (const e of current.keys()) if (!pool.includes(e)) current.delete(e);
    let total = 0;
    let best = pool[0] ?? '';
    let bestValue = Number.NEGATIVE_INFINITY;
    for (const e of pool) {
      const value = (current.get(e) ?? 0) + weight(e);
      current.set(e, value);
      total += weight(e);
      if (value > bestValue) {
        best = e;
        bestValue = value;
      }
    }
    current.set(best, bestValue - total);
    return best;
  }

  opened(endpoint: string): void {
    this.#entry(endpoint).active += 1;
  }

  closed(endpoint: string): void {
    const h = this.#entry(endpoint);
    h.active = Math.max(0, h.active - 1);
  }

  succeeded(endpoint: string): void {
    const h = this.#entry(endpoint);
    h.failures = 0;
    if (h.ejectedUntil <= this.#now()) h.ejections = 0;
  }

  /** Returns true when this failure ejected the endpoint. */
  failed(endpoint: string): boolean {
    const h = this.#entry(endpoint);
    h.failures += 1;
    if (h.failures < this.#outlier.consecutiveFailures) return false;
    h.failures = 0;
    const period = Math.min(
      this.#outlier.maxEjectionMs,
      this.#outlier.baseEjectionMs * 2 ** h.ejections,
    );
    h.ejections += 1;
    h.ejectedUntil = this.#now() + period;
    return true;
  }

  isEjected(endpoint: string): boolean {
    return (this.#health.get(endpoint)?.ejectedUntil ?? 0) > this.#now();
  }

  #active(endpoint: string): number {
    return this.#health.get(endpoint)?.active ?? 0;
  }

  #entry(endpoint: string): EndpointHealth {
    let h = this.#health.get(endpoint);
    if (!h) {
      h = { failures: 0, ejections: 0, ejectedUntil: 0, active: 0 };
      this.#health.set(endpoint, h);
    }
    return h;
  }
}
