/**
 * Per-source defences of the HBONE listeners of one data-path thread (every captured
 * workload's :15008 shares one guard, so a peer cannot multiply its budget by the number of
 * workloads it targets):
 * - connections still in the TLS handshake are bounded per source IP (more are refused at
 *   once) and in total (at the cap the oldest pending one is closed: a real handshake takes
 *   milliseconds, so the oldest are the stalled ones); under pressure (more than half the cap
 *   in use) new connections get a short handshake deadline;
 * - a source that was cut off for abuse (rapid reset) is refused for a penalty time, so
 *   reconnecting, which costs the agent a TLS handshake each time, does not pay;
 * - stream opens are rate-limited per source IP.
 * Before the handshake only the IP is known: the source workload dials from its own netns,
 * so the IP is the workload's.
 */
import { TokenBucket, type TokenBucketLimits } from './token-bucket.js';

export interface SourceGuardLimits {
  /** Connections in the TLS handshake at once, all sources together (per thread). */
  maxHandshakes: number;
  /** Connections in the TLS handshake at once from one source IP. */
  maxHandshakesPerSource: number;
  handshakeTimeoutMs: number;
  /** The handshake deadline while more than half of maxHandshakes are in use. */
  pressuredHandshakeTimeoutMs: number;
  /** How long a source cut off for abuse has its new connections refused. */
  penaltyMs: number;
  /** CONNECT streams one source IP may open: a burst, then this many per second. */
  streamOpens: TokenBucketLimits;
}

export const DEFAULT_SOURCE_GUARD_LIMITS: Readonly<SourceGuardLimits> = Object.freeze({
  maxHandshakes: 512,
  maxHandshakesPerSource: 64,
  handshakeTimeoutMs: 10_000,
  pressuredHandshakeTimeoutMs: 2_000,
  penaltyMs: 10_000,
  streamOpens: Object.freeze({ burst: 5_000, ratePerSecond: 5_000 }),
});

/** Why a connection was refused before its handshake (low cardinality: a metric label). */
export type AdmitRefusal = 'penalized' | 'handshake-limit-source';

export interface PendingHandshake {
  /** The deadline this connection's handshake gets. */
  readonly timeoutMs: number;
  /** The handshake ended (verified, failed or closed): frees the slot. Idempotent. */
  done(): void;
}

interface PendingEntry {
  ip: string;
  evict: () => void;
}

/** Tables keyed by source IP are swept when they grow past this. */
const SWEEP_AT = 4_096;

export class SourceGuard {
  readonly limits: SourceGuardLimits;
  readonly #now: () => number;
  /** Insertion order is age: the first entry is the oldest pending handshake. */
  readonly #pending = new Map<symbol, PendingEntry>();
  readonly #pendingBySource = new Map<string, number>();
  readonly #penalties = new Map<string, number>();
  readonly #streamBuckets = new Map<string, TokenBucket>();
  #evicted = 0;

  constructor(limits: Partial<SourceGuardLimits> = {}, now: () => number = Date.now) {
    this.limits = { ...DEFAULT_SOURCE_GUARD_LIMITS, ...limits };
    this.#now = now;
  }

  /**
   * A new connection from `ip`: refused (penalty, per-source cap), or admitted to its
   * handshake. `evict` closes it when the total cap needs its slot for a newer one.
   */
  admit(ip: string, evict: () => void): PendingHandshake | { refused: AdmitRefusal } {
    const until = this.#penalties.get(ip);
    if (until !== undefined) {
      if (this.#now() < until) return { refused: 'penalized' };
      this.#penalties.delete(ip);
    }
    const fromSource = this.#pendingBySource.get(ip) ?? 0;
    if (fromSource >= this.limits.maxHandshakesPerSource) {
      return { refused: 'handshake-limit-source' };
    }
    while (this.#pending.size >= this.limits.maxHandshakes) this.#evictOldest();
    const pressured = this.#pending.size >= this.limits.maxHandshakes / 2;
    const id = Symbol(ip);
    this.#pending.set(id, { ip, evict });
    this.#pendingBySource.set(ip, fromSource + 1);
    let open = true;
    return {
      timeoutMs: pressured
        ? Math.min(this.limits.pressuredHandshakeTimeoutMs, this.limits.handshakeTimeoutMs)
        : this.limits.handshakeTimeoutMs,
      done: () => {
        if (!open) return;
        open = false;
        this.#forget(id, ip);
      },
    };
  }

  /** Cuts `ip` off: its new connections are refused for penaltyMs. */
  penalize(ip: string): void {
    if (this.#penalties.size >= SWEEP_AT) this.#sweepPenalties();
    this.#penalties.set(ip, this.#now() + this.limits.penaltyMs);
  }

  /** One CONNECT stream from `ip`; false when the source is over its stream budget. */
  takeStream(ip: string): boolean {
    const now = this.#now();
    let bucket = this.#streamBuckets.get(ip);
    if (!bucket) {
      if (this.#streamBuckets.size >= SWEEP_AT) this.#sweepBuckets(now);
      bucket = new TokenBucket(this.limits.streamOpens, now);
      this.#streamBuckets.set(ip, bucket);
    }
    return bucket.take(now);
  }

  stats(): { pendingHandshakes: number; evicted: number; penalized: number } {
    return {
      pendingHandshakes: this.#pending.size,
      evicted: this.#evicted,
      penalized: this.#penalties.size,
    };
  }

  #forget(id: symbol, ip: string): void {
    if (!this.#pending.delete(id)) return;
    const left = (this.#pendingBySource.get(ip) ?? 1) - 1;
    if (left > 0) this.#pendingBySource.set(ip, left);
    else this.#pendingBySource.delete(ip);
  }

  #evictOldest(): void {
    const first = this.#pending.entries().next();
    if (first.done) return;
    const [id, entry] = first.value;
    this.#forget(id, entry.ip);
    this.#evicted++;
    entry.evict();
  }

  #sweepPenalties(): void {
    const now = this.#now();
    for (const [ip, until] of this.#penalties) if (until <= now) this.#penalties.delete(ip);
  }

  #sweepBuckets(now: number): void {
    for (const [ip, bucket] of this.#streamBuckets) {
      if (bucket.full(now)) this.#streamBuckets.delete(ip);
    }
  }
}
