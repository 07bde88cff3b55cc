/**
 * Per-workload bounds on the outbound path: how many connections may be open and how many
 * may be waiting for their tunnel at once. Past either bound a new connection is refused at
 * once (Istio's response flag UO, upstream overflow) instead of queueing without limit.
 */
export interface WorkloadLimits {
  maxConnections: number;
  maxPendingConnects: number;
}

export class ConnectionLimiter {
  readonly #limits: WorkloadLimits;
  #open = 0;
  #pending = 0;

  constructor(limits: WorkloadLimits) {
    this.#limits = limits;
  }

  /** A slot for a new connection, or undefined (with the reason) when a bound is reached. */
  admit(): { connected(): void; closed(): void } | { refused: string } {
    if (this.#open >= this.#limits.maxConnections) {
      return { refused: `${this.#open} connections open (limit ${this.#limits.maxConnections})` };
    }
    if (this.#pending >= this.#limits.maxPendingConnects) {
      return {
        refused: `${this.#pending} connects pending (limit ${this.#limits.maxPendingConnects})`,
      };
    }
    this.#open += 1;
    this.#pending += 1;
    let pending = true;
    let open = true;
    const settle = () => {
      if (pending) {
        pending = false;
        this.#pending -= 1;
      }
    };
    return {
      connected: settle,
      closed: () => {
        settle();
        if (open) {
          open = false;
          this.#open -= 1;
        }
      },
    };
  }

  get open(): number {
    return this.#open;
  }

  get pending(): number {
    return this.#pending;
  }
}
