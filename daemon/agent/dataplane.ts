/**
 * The node proxy's data path: reconciles the set of captured workloads with the registry
 * (enrolled Workloads of this node that have a network namespace), owns the HBONE pool, and
 * re-checks live connections whenever the state changes.
 */
import { existsSync } from 'node:fs';
import { Gauge, type Registry } from 'prom-client';
import { describeError } from '../errors.js';
import type { MeshState, Workload } from '../model/index.js';
import { connectFromNetns } from '../net/index.js';
import type { Logger } from '../telemetry/index.js';
import { Balancer } from './balancer.js';
import { CapturedWorkload } from './captured.js';
import { ConnectionTable } from './connections.js';
import { SecureContexts } from './contexts.js';
import { DataplaneMetrics } from './dataplane-metrics.js';
import { HbonePool } from './hbone/index.js';
import type { AgentIdentity } from './identity.js';
import type { StateSync } from './state-sync.js';
import { type LocalWorkload, localWorkload } from './workload-view.js';

export interface DataplaneOptions {
  node: string;
  trustDomain: string;
  /** SO_MARK of every socket the agent opens; the capture rules let it pass. */
  mark: number;
  connectTimeoutMs: number;
  handshakeTimeoutMs: number;
  idleTimeoutMs: number;
  /** Per captured workload: open outbound connections, and connects waiting for a tunnel. */
  maxConnectionsPerWorkload: number;
  maxPendingConnectsPerWorkload: number;
}

const family = (ip: string): 4 | 6 => (ip.includes(':') ? 6 : 4);

/** After tearing connections down on close(): how long to wait for their access records. */
const SETTLE_AFTER_CLOSE_MS = 1_000;

export class Dataplane {
  readonly metrics: DataplaneMetrics;
  readonly pool: HbonePool;
  /** What the agent proxies right now (the admin endpoint's /connections). */
  readonly connections = new ConnectionTable();
  readonly #options: DataplaneOptions;
  readonly #sync: StateSync;
  readonly #logger: Logger;
  readonly #contexts: SecureContexts;
  readonly #captured = new Map<string, CapturedWorkload>();
  readonly #balancer = new Balancer();
  #reconciling: Promise<void> = Promise.resolve();
  #pending = false;
  #closed = false;
  #reconciledOnce = false;
  readonly #unsubscribe: () => void;
  readonly #goneReported = new Set<string>();
  #onGone: ((workload: Workload) => Promise<void>) | undefined;

  constructor(
    options: DataplaneOptions,
    sync: StateSync,
    identity: AgentIdentity,
    registry: Registry,
    logger: Logger,
  ) {
    this.#options = options;
    this.#sync = sync;
    this.#logger = logger;
    this.#contexts = new SecureContexts(identity);
    this.metrics = new DataplaneMetrics(registry, logger.child({ log: 'access' }));
    this.pool = new HbonePool({
      trustDomain: options.trustDomain,
      secureContext: (sourceIdentity: string) => this.#contexts.cached(sourceIdentity),
      dial: (key) => {
        const [host = '', port = '15008'] = splitHostPort(key.destination);
        return connectFromNetns({
          netns: key.sourceNetns,
          family: family(host),
          mark: options.mark,
          host,
          port: Number(port),
          timeoutMs: options.connectTimeoutMs,
        });
      },
      limits: {
        idleTimeoutMs: options.idleTimeoutMs,
        connectTimeoutMs: options.connectTimeoutMs,
        handshakeTimeoutMs: options.handshakeTimeoutMs,
      },
      logger,
    });
    this.#unsubscribe = sync.onChange(() => this.reconcile());
    registerPoolMetrics(registry, () => this.pool.stats());
  }

  /** True once the first reconcile after a state arrived has finished. */
  get ready(): boolean {
    return this.#reconciledOnce;
  }

  captured(): LocalWorkload[] {
    return [...this.#captured.values()].map((c) => c.workload);
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
      desired.set(`${view.ref.namespace}/${view.ref.name}`, view);
    }
    for (const [key, captured] of this.#captured) {
      const next = desired.get(key);
      if (
        !next ||
        next.netns !== captured.workload.netns ||
        next.identity !== captured.workload.identity
      ) {
        this.#captured.delete(key);
        await captured.release();
        this.#logger.info(
          { workload: key },
          next ? 'workload changed; capturing again' : 'workload released',
        );
      } else {
        captured.workload = next;
      }
    }
    for (const [key, view] of desired) {
      if (this.#captured.has(key)) continue;
      const captured = new CapturedWorkload(this.#capturedDeps(state), view);
      try {
        await captured.start();
        this.#captured.set(key, captured);
        this.#logger.info(
          { workload: key, netns: view.netns, identity: view.identity },
          'workload captured',
        );
      } catch (err) {
        this.#logger.error(
          { workload: key, err: describeError(err) },
          'capturing the workload failed',
        );
      }
    }
    for (const captured of this.#captured.values()) captured.recheck();
    this.metrics.captured.set(this.#captured.size);
    if (this.#sync.source !== 'empty') this.#reconciledOnce = true;
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

  #capturedDeps(_state: MeshState) {
    const o = this.#options;
    const common = {
      state: () => this.#sync.state,
      trustDomain: o.trustDomain,
      metrics: this.metrics,
      connections: this.connections,
      logger: this.#logger,
      mark: o.mark,
      connectTimeoutMs: o.connectTimeoutMs,
    };
    return {
      outbound: {
        ...common,
        pool: this.pool,
        balancer: this.#balancer,
        maxAttempts: 3,
        warmIdentity: (id: string) => this.#contexts.forIdentity(id),
      },
      inbound: common,
      contexts: this.#contexts,
      limits: {
        maxConnections: o.maxConnectionsPerWorkload,
        maxPendingConnects: o.maxPendingConnectsPerWorkload,
      },
      trustDomain: o.trustDomain,
      mark: o.mark,
      logger: this.#logger,
      handshakeTimeoutMs: o.handshakeTimeoutMs,
    };
  }

  /**
   * Stops serving: listeners close at once, live connections get up to `drainMs` to finish,
   * then the rest is reset, each with its access record. Capture rules stay in place (fail
   * closed) for the next agent to adopt.
   */
  async close(drainMs = 0): Promise<void> {
    this.#closed = true;
    this.#unsubscribe();
    await this.#reconciling;
    const outbound = drainMs > 0 ? Promise.race([this.pool.close(), delay(drainMs)]) : undefined;
    await Promise.all([...this.#captured.values()].map((c) => c.stop(drainMs)));
    await outbound;
    this.#captured.clear();
    this.pool.destroy();
    // The workloads' stop() reset what the drain left; this catches anything not accepted on
    // their listeners. A cut connection closes over the next event-loop turns and only then
    // gets its access record (with its error), and the process exits right after close().
    this.connections.abortAll();
    const left = await this.connections.settled(SETTLE_AFTER_CLOSE_MS);
    if (left > 0) {
      this.#logger.warn({ connections: left }, 'connections still open when the agent stopped');
    }
  }
}

/** The pool's own counters, read when Prometheus scrapes. */
function registerPoolMetrics(
  registry: Registry,
  stats: () => ReturnType<HbonePool['stats']>,
): void {
  const gauge = (name: string, help: string, read: (s: ReturnType<HbonePool['stats']>) => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read(stats()));
      },
    });
  gauge(
    'meshd_hbone_pool_connections',
    'Pooled outbound HBONE (HTTP/2) connections',
    (s) => s.connections,
  );
  gauge('meshd_hbone_pool_streams', 'Live outbound CONNECT streams', (s) => s.streams);
  gauge(
    'meshd_hbone_pool_handshakes',
    'Outbound TLS handshakes completed since start',
    (s) => s.handshakes,
  );
  gauge(
    'meshd_hbone_pool_setup_failures',
    'Outbound HBONE connection set-ups that failed since start',
    (s) => s.setupFailures,
  );
}

const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

function splitHostPort(value: string): [string, string] {
  const m = /^\[(.+)\]:(\d+)$/.exec(value) ?? /^([^:]+):(\d+)$/.exec(value);
  return [m?.[1] ?? value, m?.[2] ?? ''];
}
