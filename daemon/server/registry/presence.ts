/**
 * Which agents watch this server: one record per node, kept (disconnected) after its stream
 * ends so `meshctl get nodes` can say when a node was last seen. In memory only: after a
 * restart a node shows again as soon as its agent reconnects (agents retry within seconds).
 */
import type { NodeStatus } from '../../proto/index.js';

interface Presence {
  streams: number;
  peer: string;
  connectedSince: number;
  disconnectedAt?: number;
  revisionSent: number;
  clockSkewMs: number;
  version: string;
}

export interface StreamStart {
  node: string;
  peer: string;
  /** The agent's clock when it sent the Watch request (0 when the agent did not say). */
  agentTimeMs: number;
  version: string;
}

/** What the Watch handler reports for one stream. */
export interface StreamPresence {
  sent(revision: number): void;
  ended(): void;
}

/** Most nodes remembered; the longest-disconnected are forgotten first. */
const MAX_NODES = 10_000;

export class NodePresence {
  readonly #nodes = new Map<string, Presence>();
  readonly #now: () => number;

  constructor(now: () => number) {
    this.#now = now;
  }

  started(start: StreamStart): StreamPresence {
    const now = this.#now();
    const current = this.#nodes.get(start.node);
    const record: Presence = {
      streams: (current?.disconnectedAt === undefined ? (current?.streams ?? 0) : 0) + 1,
      peer: start.peer,
      connectedSince: now,
      revisionSent: current?.revisionSent ?? 0,
      clockSkewMs: start.agentTimeMs > 0 ? start.agentTimeMs - now : 0,
      version: start.version,
    };
    this.#nodes.set(start.node, record);
    this.#prune();
    let ended = false;
    return {
      sent: (revision) => {
        record.revisionSent = Math.max(record.revisionSent, revision);
      },
      ended: () => {
        if (ended) return;
        ended = true;
        record.streams -= 1;
        if (record.streams <= 0) record.disconnectedAt = this.#now();
      },
    };
  }

  /** Every node known from presence or from registered Workloads, sorted by name. */
  list(workloadCounts: Map<string, number>): NodeStatus[] {
    const names = new Set([...this.#nodes.keys(), ...workloadCounts.keys()]);
    return [...names].sort().map((name) => {
      const p = this.#nodes.get(name);
      return {
        name,
        connected: Boolean(p && p.disconnectedAt === undefined),
        peer: p?.peer ?? '',
        connectedSince: p ? new Date(p.connectedSince).toISOString() : '',
        disconnectedAt: p?.disconnectedAt ? new Date(p.disconnectedAt).toISOString() : '',
        revisionSent: p?.revisionSent ?? 0,
        clockSkewMs: p?.clockSkewMs ?? 0,
        workloads: workloadCounts.get(name) ?? 0,
        version: p?.version ?? '',
      };
    });
  }

  #prune(): void {
    if (this.#nodes.size <= MAX_NODES) return;
    const gone = [...this.#nodes.entries()]
      .filter(([, p]) => p.disconnectedAt !== undefined)
      .sort(([, a], [, b]) => (a.disconnectedAt ?? 0) - (b.disconnectedAt ?? 0));
    for (const [name] of gone.slice(0, this.#nodes.size - MAX_NODES)) this.#nodes.delete(name);
  }
}
