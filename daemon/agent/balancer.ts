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
  readonly #cursor = new Map<string, number>();
  readonly #outlier: OutlierOptions;
  readonly #now: () => number;

  constructor(outlier: Partial<OutlierOptions> = {}, now: () => number = Date.now) {
    this.#outlier = { ...DEFAULT_OUTLIER, ...outlier };
    this.#now = now;
  }

  /** Endpoints in the order to try them (first choice first, then the others as fallbacks). */
  order(
    service: string,
    endpoints: readonly string[],
    mode: LoadBalancingMode = 'RoundRobin',
  ): string[] {
    if (endpoints.length === 0) return [];
    const now = this.#now();
    const healthy = endpoints.filter((e) => (this.#health.get(e)?.ejectedUntil ?? 0) <= now);
    const pool = healthy.length > 0 ? healthy : [...endpoints];
    let ordered: string[];
    if (mode === 'LeastConnections') {
      ordered = [...pool].sort((a, b) => this.#active(a) - this.#active(b));
    } else {
      const start = (this.#cursor.get(service) ?? 0) % pool.length;
      this.#cursor.set(service, start + 1);
      ordered = [...pool.slice(start), ...pool.slice(0, start)];
    }
    const ejected = endpoints.filter((e) => !pool.includes(e));
    return [...ordered, ...ejected];
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
