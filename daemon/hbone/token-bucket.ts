/**
 * A token bucket: up to `burst` events at once, then `ratePerSecond` on average. The HBONE
 * defences count cancelled streams and stream opens with it. Time comes from the caller, so
 * tests drive it without timers; no timer runs per bucket.
 */
export interface TokenBucketLimits {
  burst: number;
  ratePerSecond: number;
}

export class TokenBucket {
  readonly #limits: TokenBucketLimits;
  #tokens: number;
  #lastMs: number;

  constructor(limits: TokenBucketLimits, nowMs: number) {
    this.#limits = limits;
    this.#tokens = limits.burst;
    this.#lastMs = nowMs;
  }

  /** Takes one token; false when the bucket is empty (the event is over the budget). */
  take(nowMs: number): boolean {
    this.#refill(nowMs);
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  /** Whole tokens left at `nowMs`. */
  available(nowMs: number): number {
    this.#refill(nowMs);
    return Math.floor(this.#tokens);
  }

  /** True once the bucket has refilled completely: its owner may forget it. */
  full(nowMs: number): boolean {
    this.#refill(nowMs);
    return this.#tokens >= this.#limits.burst;
  }

  #refill(nowMs: number): void {
    const elapsed = Math.max(0, nowMs - this.#lastMs);
    this.#lastMs = Math.max(this.#lastMs, nowMs);
    const { burst, ratePerSecond } = this.#limits;
    this.#tokens = Math.min(burst, this.#tokens + (elapsed * ratePerSecond) / 1000);
  }
}
