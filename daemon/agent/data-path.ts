/**
 * What one thread of the agent needs to carry captured traffic: the workloads' listeners, the
 * HBONE pool, TLS contexts, the connection table and the data-path metrics. The main thread
 * has one (dataplane.ts, which also decides what is captured); each extra data-path thread
 * has its own (threads.ts), fed with the same registry state and certificates.
 */
import type { Socket } from 'node:net';
import { Gauge, type Registry } from 'prom-client';
import type { LocalWorkload } from '../discovery/index.js';
import {
  type CertificateSource,
  DEFAULT_HTTP2_TUNING,
  HbonePool,
  SecureContexts,
  SourceGuard,
} from '../hbone/index.js';
import type { MeshState } from '../model/index.js';
import {
  connectFromNetns,
  setSendBuffer,
  setTcpKeepalive,
  setTcpUserTimeout,
} from '../net/index.js';
import { Balancer, ConnectionTable } from '../proxy/index.js';
import { DataplaneMetrics, type Logger, rateLimitedLogger } from '../telemetry/index.js';
import { CapturedWorkload } from './captured.js';

export interface DataPathOptions {
  node: string;
  trustDomain: string;
  /** SO_MARK of every socket the agent opens; the capture rules let it pass. */
  mark: number;
  connectTimeoutMs: number;
  handshakeTimeoutMs: number;
  idleTimeoutMs: number;
  /** Per captured workload and thread: open connections, and connects waiting for a tunnel. */
  maxConnectionsPerWorkload: number;
  maxPendingConnectsPerWorkload: number;
  /** False on extra data-path threads: the main thread installs and removes capture rules. */
  ownsRules: boolean;
  /** SO_REUSEPORT on the captured listeners (more than one data-path thread). */
  reusePort: boolean;
  /** The HBONE listeners' defences (this thread's share of the agent's limits). */
  defences: HboneDefences;
}

/** docs/dataplane.md "Limits and defences". */
export interface HboneDefences {
  maxHandshakes: number;
  maxHandshakesPerSource: number;
  cancelledStreamBurst: number;
  cancelledStreamRate: number;
  penaltyMs: number;
  streamRatePerSource: number;
  /** A tunnel with streams whose peer is silent this long is dead (PING deadline). */
  deadPeerTimeoutMs: number;
}

const family = (ip: string): 4 | 6 => (ip.includes(':') ? 6 : 4);

/** A connection window of DATA plus room for frame headers, TLS records and control frames. */
const TUNNEL_SEND_BUFFER_BYTES =
  DEFAULT_HTTP2_TUNING.connectionWindow + DEFAULT_HTTP2_TUNING.streamWindow;

/** After tearing connections down on close(): how long to wait for their access records. */
const SETTLE_AFTER_CLOSE_MS = 1_000;

export const workloadKey = (w: LocalWorkload): string => `${w.ref.namespace}/${w.ref.name}`;

export class DataPath {
  readonly metrics: DataplaneMetrics;
  readonly pool: HbonePool;
  /** What this thread proxies right now (the admin endpoint's /connections). */
  readonly connections = new ConnectionTable();
  readonly #options: DataPathOptions;
  readonly #state: () => MeshState;
  readonly #logger: Logger;
  /**
   * For everything a peer or a client can cause once per connection (refusals, failed
   * handshakes, ejections): rate-limited, so a flood of them cannot flood the log.
   */
  readonly #connectionLog: Logger;
  readonly #contexts: SecureContexts;
  readonly #captured = new Map<string, CapturedWorkload>();
  /** Captures still starting: a release waits for them (it may come from another thread). */
  readonly #starting = new Map<string, Promise<unknown>>();
  /** Released workloads whose listeners wait for their last connections. */
  readonly #releasing = new Set<CapturedWorkload>();
  /** Workloads handed over to a new capture whose old connections are still open. */
  readonly #handedOver = new Set<CapturedWorkload>();
  readonly #balancer = new Balancer();
  /** One set of per-source defences for every captured workload's HBONE listener. */
  readonly #guard: SourceGuard;

  constructor(
    options: DataPathOptions,
    state: () => MeshState,
    certificates: CertificateSource,
    registry: Registry,
    logger: Logger,
  ) {
    this.#options = options;
    this.#state = state;
    this.#logger = logger;
    this.#contexts = new SecureContexts(certificates);
    const d = options.defences;
    this.#guard = new SourceGuard({
      maxHandshakes: d.maxHandshakes,
      maxHandshakesPerSource: d.maxHandshakesPerSource,
      handshakeTimeoutMs: options.handshakeTimeoutMs,
      penaltyMs: d.penaltyMs,
      streamOpens: { burst: d.streamRatePerSource, ratePerSecond: d.streamRatePerSource },
    });
    this.metrics = new DataplaneMetrics(registry, logger.child({ log: 'access' }));
    this.#connectionLog = rateLimitedLogger(logger, this.metrics.warnings);
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
        }).then((socket) => {
          this.#tuneTunnel(socket);
          return socket;
        });
      },
      limits: {
        deadPeerTimeoutMs: options.defences.deadPeerTimeoutMs,
        idleTimeoutMs: options.idleTimeoutMs,
        connectTimeoutMs: options.connectTimeoutMs,
        handshakeTimeoutMs: options.handshakeTimeoutMs,
      },
      logger: this.#connectionLog,
    });
    registerPoolMetrics(registry, () => this.pool.stats());
  }

  get size(): number {
    return this.#captured.size;
  }

  /**
   * A tunnel socket's kernel side.
   * - A send buffer that holds a whole HTTP/2 connection window: Node's HTTP/2 stops reading
   *   its socket while one of its writes waits for room, so two agents both blocked on a
   *   full buffer (bulk traffic both ways on one connection) would each wait for the other
   *   to read, and a dead peer's end would go unseen. What may be unsent is bounded by the
   *   peer's window anyway: the kernel holds it instead of Node's write queue.
   * - The kernel's own watch, beside the PING deadline: data unacknowledged for twice the
   *   dead-peer time aborts the connection (TCP_USER_TIMEOUT), and an idle one is probed (TCP
   *   keepalive), so a vanished host is found even while this thread is too busy to PING.
   */
  #tuneTunnel(socket: Socket): void {
    const deadMs = this.#options.defences.deadPeerTimeoutMs;
    try {
      setSendBuffer(socket, TUNNEL_SEND_BUFFER_BYTES);
      setTcpUserTimeout(socket, 2 * deadMs);
      setTcpKeepalive(socket, {
        idleSeconds: Math.max(1, Math.ceil(deadMs / 1000)),
        intervalSeconds: 1,
        count: 3,
      });
    } catch (err) {
      // A socket already closed: its close handlers do the rest.
      this.#logger.debug({ err }, 'tuning an HBONE socket failed');
    }
  }

  workloads(): LocalWorkload[] {
    return [...this.#captured.values()].map((c) => c.workload);
  }

  get(key: string): CapturedWorkload | undefined {
    return this.#captured.get(key);
  }

  /** Starts serving `view` (and, when this thread owns them, installs its capture rules). */
  async capture(view: LocalWorkload): Promise<void> {
    const key = workloadKey(view);
    if (this.#captured.has(key) || this.#starting.has(key)) {
      throw new Error(`${key} is captured already (or being captured)`);
    }
    const captured = new CapturedWorkload(this.#capturedDeps(), view);
    const starting = captured.start();
    this.#starting.set(
      key,
      starting.catch(() => {}),
    );
    try {
      await starting;
      this.#captured.set(key, captured);
    } finally {
      this.#starting.delete(key);
    }
  }

  /**
   * Takes `key` out of the mesh (CapturedWorkload.release) once a capture of it still starting
   * has finished; resolves then, with `closed`: the moment its listeners are closed (after its
   * last connections). Undefined when it was not captured.
   */
  async release(
    key: string,
    others?: Promise<void>,
  ): Promise<{ closed: Promise<void> } | undefined> {
    await this.#starting.get(key);
    const captured = this.#captured.get(key);
    if (!captured) return undefined;
    this.#captured.delete(key);
    this.#releasing.add(captured);
    await captured.release(undefined, others);
    const closed = captured.closed();
    void closed.then(() => this.#releasing.delete(captured));
    return { closed };
  }

  /**
   * Closes `key`'s listeners at once and forgets it, leaving its rules and its open
   * connections (CapturedWorkload.handOver), so that it can be captured again right away.
   */
  async handOver(key: string): Promise<void> {
    await this.#starting.get(key);
    const captured = this.#captured.get(key);
    if (!captured) return;
    this.#captured.delete(key);
    this.#handedOver.add(captured);
    captured.handOver();
    void captured.drained().then(() => this.#handedOver.delete(captured));
  }

  /** Policy or state changed: close live connections that are now denied. */
  recheck(): void {
    // Connections a handed-over capture still carries stay under policy too.
    for (const captured of [...this.#captured.values(), ...this.#handedOver]) captured.recheck();
  }

  #capturedDeps() {
    const o = this.#options;
    const common = {
      state: this.#state,
      trustDomain: o.trustDomain,
      metrics: this.metrics,
      connections: this.connections,
      logger: this.#connectionLog,
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
      logger: this.#connectionLog,
      handshakeTimeoutMs: o.handshakeTimeoutMs,
      guard: this.#guard,
      serverLimits: {
        cancelledStreamBurst: o.defences.cancelledStreamBurst,
        cancelledStreamRate: o.defences.cancelledStreamRate,
        deadPeerTimeoutMs: o.defences.deadPeerTimeoutMs,
      },
      tuneTunnel: (socket: Socket) => this.#tuneTunnel(socket),
      ownsRules: o.ownsRules,
      reusePort: o.reusePort,
    };
  }

  /**
   * Stops serving: listeners close at once, live connections get up to `drainMs` to finish,
   * then the rest is reset, each with its access record. Capture rules stay in place (fail
   * closed) for the next agent to adopt. Returns how many connections were still open at the
   * end (logged as a warning).
   */
  async close(drainMs = 0): Promise<number> {
    await Promise.all(this.#starting.values());
    const outbound = drainMs > 0 ? Promise.race([this.pool.close(), delay(drainMs)]) : undefined;
    const all = [...this.#captured.values(), ...this.#releasing, ...this.#handedOver];
    await Promise.all(all.map((c) => c.stop(drainMs)));
    await outbound;
    this.#captured.clear();
    this.#releasing.clear();
    this.#handedOver.clear();
    this.pool.destroy();
    // The workloads' stop() reset what the drain left; this catches anything not accepted on
    // their listeners. A cut connection closes over the next event-loop turns and only then
    // gets its access record (with its error), and the process exits right after close().
    this.connections.abortAll();
    const left = await this.connections.settled(SETTLE_AFTER_CLOSE_MS);
    if (left > 0) {
      this.#logger.warn({ connections: left }, 'connections still open when the agent stopped');
    }
    // The last window's summaries, so that no suppressed count is lost with the process.
    this.metrics.closeLogs();
    return left;
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
