/**
 * Entry point of an extra data-path thread (threads.ts starts it as a worker). It keeps a copy
 * of the registry state fed by the main thread, asks the main thread for certificates, and
 * serves its own SO_REUSEPORT listeners in every captured workload: the kernel spreads new
 * connections over the threads' listeners, and each thread has its own HBONE pool.
 */
import { type MessagePort, parentPort, workerData } from 'node:worker_threads';
import { Registry } from 'prom-client';
import type { LogLevel } from '../config.js';
import type { LocalWorkload } from '../discovery/index.js';
import { describeError } from '../errors.js';
import type { CertificateSource, HbonePool } from '../hbone/index.js';
import { MeshState, type Resource, type StateEvent } from '../model/index.js';
import { trimMallocArenas } from '../net/index.js';
import type { ConnectionInfo } from '../proxy/index.js';
import { createJsonLogger } from '../telemetry/index.js';
import { DataPath, type DataPathOptions } from './data-path.js';
import { ThreadRpc } from './thread-rpc.js';

export interface ThreadData {
  /** 1.. (the main thread is 0). */
  index: number;
  options: DataPathOptions;
  logLevel: LogLevel;
}

export interface IssuedForThread {
  /** notAfter: epoch milliseconds. */
  cert: { serial: string; certChainPem: string; keyPem: string; notAfter: number };
  roots: string[];
}

/** What a thread reports when the main thread collects metrics and connections. */
export interface ThreadReport {
  metrics: Awaited<ReturnType<Registry['getMetricsAsJSON']>>;
  connections: ConnectionInfo[];
  pool: ReturnType<HbonePool['stats']>;
}

/** How long a certificate fetched from the main thread is used before asking again. */
const CERTIFICATE_REFRESH_MS = 5_000;
/** A copy this close to its notAfter is not used while a fresh one is fetched. */
const CERTIFICATE_EXPIRY_MARGIN_MS = 60_000;
const CERTIFICATE_CALL_TIMEOUT_MS = 30_000;

/**
 * Certificates held by the main thread's AgentIdentity. A copy is reused for a few seconds;
 * after that, using it also fetches a fresh one in the background (so a rotation reaches this
 * thread within seconds and no connection waits for the main thread), unless the copy is
 * about to expire: then the caller waits for the fresh one.
 */
class CertificatesFromMain implements CertificateSource {
  roots: string[] = [];
  readonly #rpc: () => ThreadRpc;
  readonly #cache = new Map<string, { fetchedAt: number; cert: IssuedForThread['cert'] }>();
  readonly #inFlight = new Map<string, Promise<IssuedForThread['cert']>>();

  constructor(rpc: () => ThreadRpc) {
    this.#rpc = rpc;
  }

  certificate(spiffeId: string): Promise<IssuedForThread['cert']> {
    const cached = this.#cache.get(spiffeId);
    if (cached && Date.now() - cached.fetchedAt < CERTIFICATE_REFRESH_MS) {
      return Promise.resolve(cached.cert);
    }
    const fetching = this.#fetch(spiffeId);
    if (!cached || cached.cert.notAfter - Date.now() < CERTIFICATE_EXPIRY_MARGIN_MS) {
      return fetching;
    }
    fetching.catch(() => {});
    return Promise.resolve(cached.cert);
  }

  forget(spiffeId: string): void {
    this.#cache.delete(spiffeId);
  }

  #fetch(spiffeId: string): Promise<IssuedForThread['cert']> {
    const running = this.#inFlight.get(spiffeId);
    if (running) return running;
    const fetching = this.#rpc()
      .call<IssuedForThread>('certificate', spiffeId, CERTIFICATE_CALL_TIMEOUT_MS)
      .then(({ cert, roots }) => {
        this.roots = roots;
        this.#cache.set(spiffeId, { fetchedAt: Date.now(), cert });
        return cert;
      })
      .finally(() => this.#inFlight.delete(spiffeId));
    this.#inFlight.set(spiffeId, fetching);
    return fetching;
  }
}

function runThread(port: MessagePort, data: ThreadData): void {
  const logger = createJsonLogger({
    level: data.logLevel,
    base: { role: 'agent', node: data.options.node, thread: data.index },
  });
  const state = new MeshState();
  const registry = new Registry();
  let rpc: ThreadRpc | undefined;
  const certificates = new CertificatesFromMain(() => rpc as ThreadRpc);
  const path = new DataPath(
    data.options,
    () => state,
    certificates,
    registry,
    logger.child({ component: 'dataplane' }),
  );
  let recheckQueued = false;
  const recheckSoon = () => {
    if (recheckQueued) return;
    recheckQueued = true;
    setImmediate(() => {
      recheckQueued = false;
      path.recheck();
    });
  };
  rpc = new ThreadRpc(
    port,
    {
      ready: () => true,
      snapshot: (s: { resources: Resource[]; revision: number }) => {
        state.replaceAll(s.resources, s.revision);
        recheckSoon();
      },
      event: (event: StateEvent) => {
        state.apply(event);
        recheckSoon();
      },
      capture: (view: LocalWorkload) => path.capture(view),
      update: (view: LocalWorkload) => {
        const captured = path.get(`${view.ref.namespace}/${view.ref.name}`);
        if (captured) captured.workload = view;
      },
      handOver: (key: string) => path.handOver(key),
      // Answers once this thread's listeners of the workload are closed: its last
      // connections have ended, so the main thread may remove the capture rules.
      release: async (key: string) => {
        await (await path.release(key))?.closed;
      },
      collect: async (): Promise<ThreadReport> => ({
        metrics: await registry.getMetricsAsJSON(),
        connections: path.connections.list(),
        pool: path.pool.stats(),
      }),
      logLevel: (level: LogLevel) => logger.setLevel(level),
      // The main thread's memory trimmer found the agent quiet: this thread's V8 heap gives
      // back its freed pages too (each isolate has its own), then malloc its arenas.
      trim: () => {
        (globalThis as { gc?: (o: object) => void }).gc?.({
          type: 'major',
          execution: 'sync',
          flavor: 'last-resort',
        });
        trimMallocArenas();
      },
      // Then the thread ends on its own, so that Node hands its last log lines over first.
      stop: async (drainMs: number) => {
        const left = await path.close(drainMs);
        setImmediate(() => port.close());
        return left;
      },
    },
    'the main thread',
    (method, err) =>
      logger.error(
        { notice: method, err: describeError(err) },
        'applying an update from the main thread failed',
      ),
  );
}

if (parentPort) runThread(parentPort, workerData as ThreadData);
