/**
 * The node proxy's data path: reconciles the set of captured workloads with the registry
 * (enrolled Workloads of this node that have a network namespace), owns the HBONE pool, and
 * re-checks live connections whenever the state changes.
 */
import { existsSync } from 'node:fs';
import type { Registry } from 'prom-client';
import type { StateSync } from '../discovery/index.js';
import { type LocalWorkload, localWorkload } from '../discovery/index.js';
import { describeError } from '../errors.js';
import type { HbonePool, HbonePoolStats } from '../hbone/index.js';
import type { Workload } from '../model/index.js';
import type { ConnectionInfo } from '../proxy/index.js';
import { compareConnections } from '../proxy/index.js';
import type { DataplaneMetrics, Logger } from '../telemetry/index.js';
import { DataPath, type DataPathOptions, workloadKey } from './data-path.js';
import type { AgentIdentity } from './identity.js';
import type { DataPathThreads } from './threads.js';

export type DataplaneOptions = Omit<DataPathOptions, 'ownsRules' | 'reusePort'>;

/** How long after a failed capture the agent tries again. */
const CAPTURE_RETRY_MS = 5_000;

export class Dataplane {
  readonly #path: DataPath;
  readonly #threads: DataPathThreads | undefined;
  readonly #options: DataplaneOptions;
  readonly #sync: StateSync;
  readonly #logger: Logger;
  #reconciling: Promise<void> = Promise.resolve();
  #pending = false;
  #closed = false;
  #reconciledOnce = false;
  readonly #unsubscribe: () => void;
  readonly #goneReported = new Set<string>();
  /**
   * Released workloads whose listeners still wait for their connections: the same workload in
   * the same namespace is not captured again until they have closed.
   */
  readonly #releasing = new Map<string, { netns: string; closed: Promise<void> }>();
  /** A failed capture is tried again after a while, not only on the next registry change. */
  #retry: NodeJS.Timeout | undefined;
  #onGone: ((workload: Workload) => Promise<void>) | undefined;

  constructor(
    options: DataplaneOptions,
    sync: StateSync,
    identity: AgentIdentity,
    registry: Registry,
    logger: Logger,
    threads?: DataPathThreads,
  ) {
    this.#options = options;
    this.#sync = sync;
    this.#logger = logger;
    this.#threads = threads;
    this.#path = new DataPath(
      { ...options, ownsRules: true, reusePort: threads !== undefined },
      () => sync.state,
      identity,
      registry,
      logger,
    );
    this.#unsubscribe = sync.onChange(() => this.reconcile());
  }

  get metrics(): DataplaneMetrics {
    return this.#path.metrics;
  }

  /** The main thread's pool (each data-path thread has its own: see live()). */
  get pool(): HbonePool {
    return this.#path.pool;
  }

  /** The main thread's connection table (see live() for every thread's). */
  get connections() {
    return this.#path.connections;
  }

  /** True once the first reconcile after a state arrived has finished. */
  get ready(): boolean {
    return this.#reconciledOnce;
  }

  captured(): LocalWorkload[] {
    return this.#path.workloads();
  }

  /**
   * Every thread's live connections (in one stable order) and HBONE pools (summed), from one
   * round of asking the threads.
   */
  async live(): Promise<{ connections: ConnectionInfo[]; pool: HbonePoolStats }> {
    const connections = this.#path.connections.list();
    const pool = this.#path.pool.stats();
    if (!this.#threads) return { connections, pool };
    const { reports } = await this.#threads.collect();
    return {
      connections: [...connections, ...reports.flatMap((r) => r.connections)].sort(
        compareConnections,
      ),
      pool: reports.reduce((sum, r) => addPoolStats(sum, r.pool), pool),
    };
  }

  /** Coalesces bursts of changes into one pass at a time. */
  reconcile(): void {
    if (this.#closed) return;
    if (this.#pending) return;
    this.#pending = true;
    this.#reconciling = this.#reconciling.then(async () => {
      this.#pending = false;
      await this.#reconcileNow().catch((err: unknown) =>
        this.#logger.error(
          { err: describeError(err) },
          'reconcile failed; retrying on the next change',
        ),
      );
    });
  }

  async #reconcileNow(): Promise<void> {
    const state = this.#sync.state;
    const desired = new Map<string, LocalWorkload>();
    for (const w of state.workloadsOnNode(this.#options.node)) {
      if (!w.spec.netns) continue;
      if (!existsSync(w.spec.netns)) {
        this.#gone(w as Workload);
        continue;
      }
      if (!state.isEnrolled(w)) continue;
      const view = localWorkload(w as Workload, this.#options.trustDomain);
      desired.set(workloadKey(view), view);
    }
    for (const current of this.#path.workloads()) {
      const key = workloadKey(current);
      const next = desired.get(key);
      if (next && next.netns === current.netns && next.identity !== current.identity) {
        await this.#handOver(key);
        this.#logger.info(
          { workload: key, identity: next.identity, previous: current.identity },
          'workload identity changed; captured again with it, open connections keep the old one',
        );
      } else if (!next || next.netns !== current.netns) {
        await this.#release(key);
        this.#logger.info(
          { workload: key },
          next ? 'workload moved to a new namespace; the old one released' : 'workload released',
        );
      } else {
        const captured = this.#path.get(key);
        if (captured) captured.workload = next;
        this.#threads?.update(next);
      }
    }
    for (const [key, view] of desired) {
      // In the same namespace its old listeners (and, until they close, its old rules) are
      // still there: the pass after they close captures it again. A new pod of the same name
      // has a new namespace and is captured at once.
      if (this.#path.get(key) || this.#releasing.get(key)?.netns === view.netns) continue;
      try {
        await this.#capture(view);
        this.#logger.info(
          { workload: key, netns: view.netns, identity: view.identity },
          'workload captured',
        );
      } catch (err) {
        this.#logger.error(
          { workload: key, err: describeError(err), retryInMs: CAPTURE_RETRY_MS },
          'capturing the workload failed',
        );
        this.#retryLater();
      }
    }
    this.#path.recheck();
    this.metrics.captured.set(this.#path.size);
    if (this.#sync.source !== 'empty') this.#reconciledOnce = true;
  }

  #retryLater(): void {
    if (this.#retry || this.#closed) return;
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      this.reconcile();
    }, CAPTURE_RETRY_MS).unref();
  }

  /** Rules and the main thread's listeners first, then every data-path thread's. */
  async #capture(view: LocalWorkload): Promise<void> {
    await this.#path.capture(view);
    if (!this.#threads) return;
    try {
      await this.#threads.capture(view);
    } catch (err) {
      // All or nothing: the kernel hands new connections to every thread's listener, so a
      // workload some threads do not serve must not count as captured.
      // Tried again later like any failed capture (#retryLater), not at once in a loop.
      await this.#release(workloadKey(view), { recapture: false });
      throw err;
    }
  }

  /**
   * Same namespace, new identity: every thread closes the workload's listeners now (the rules
   * stay), so that this pass captures it again with the new certificate; connections already
   * open end as they would, under the old one.
   */
  async #handOver(key: string): Promise<void> {
    await Promise.all([
      this.#path.handOver(key),
      this.#threads
        ?.handOver(key)
        .catch((err: unknown) =>
          this.#logger.warn(
            { workload: key, err: describeError(err) },
            'a data-path thread did not hand the workload over',
          ),
        ),
    ]);
  }

  /**
   * The capture rules go once every thread's connections of the workload have ended; then,
   * unless `recapture` is false, a reconcile captures it again if it is still wanted.
   */
  async #release(key: string, { recapture = true } = {}): Promise<void> {
    const others = this.#threads
      ?.release(key)
      .catch((err: unknown) =>
        this.#logger.warn(
          { workload: key, err: describeError(err) },
          'a data-path thread did not release the workload',
        ),
      );
    const netns = this.#path.get(key)?.workload.netns ?? '';
    const { closed } = (await this.#path.release(key, others)) ?? {};
    if (!closed) return;
    const entry = { netns, closed };
    this.#releasing.set(key, entry);
    void closed.then(() => {
      if (this.#releasing.get(key) === entry) this.#releasing.delete(key);
      if (recapture) this.reconcile();
    });
  }
  /**
   * A workload whose namespace no longer exists: its container went away while no agent was
   * there to see the CNI DEL (which succeeds without the agent). Workloads registered by
   * meshd-cni are deregistered; ones an operator registered are only reported.
   */
  #gone(workload: Workload): void {
    const key = `${workload.metadata.namespace}/${workload.metadata.name}`;
    if (this.#goneReported.has(key)) return;
    this.#goneReported.add(key);
    const fromCni = Boolean(workload.metadata.annotations?.['meshd.io/container-id']);
    this.#logger.warn(
      { workload: key, netns: workload.spec.netns, deregister: fromCni },
      'workload namespace is gone',
    );
    const handler = this.#onGone;
    if (fromCni && handler) {
      handler(workload)
        .catch((err: unknown) =>
          this.#logger.warn(
            { workload: key, err: describeError(err) },
            'deregistering a gone workload failed; will retry',
          ),
        )
        .finally(() => this.#goneReported.delete(key));
    }
  }

  /** Called for CNI-registered workloads whose namespace is gone (the agent deregisters them). */
  onGone(handler: (workload: Workload) => Promise<void>): void {
    this.#onGone = handler;
  }

  /**
   * Stops serving on every thread: listeners close at once, live connections get up to
   * `drainMs` to finish, then the rest is reset, each with its access record. Capture rules
   * stay in place (fail closed) for the next agent to adopt.
   */
  async close(drainMs = 0): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retry);
    this.#unsubscribe();
    await this.#reconciling;
    await Promise.all([this.#path.close(drainMs), this.#threads?.close(drainMs)]);
  }
}

function sumCounts(a: Record<string, number>, b: Record<string, number>) {
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = (out[k] ?? 0) + v;
  return out;
}

function addPoolStats(a: HbonePoolStats, b: HbonePoolStats): HbonePoolStats {
  return {
    ...a,
    keys: a.keys + b.keys,
    connections: a.connections + b.connections,
    streams: a.streams + b.streams,
    dials: a.dials + b.dials,
    handshakes: a.handshakes + b.handshakes,
    setupFailures: a.setupFailures + b.setupFailures,
    peakSetupsPerKey: Math.max(a.peakSetupsPerKey, b.peakSetupsPerKey),
    goaways: a.goaways + b.goaways,
    retries: a.retries + b.retries,
    refused: sumCounts(a.refused, b.refused),
    perKey: [...a.perKey, ...b.perKey],
  };
}
