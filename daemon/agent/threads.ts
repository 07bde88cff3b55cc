/**
 * The agent's extra data-path threads (MESHD_AGENT_THREADS > 1): worker threads that each
 * run a DataPath (thread-main.ts) beside the main thread's. The main thread stays in charge:
 * it installs capture rules, then tells every thread to serve the workload; it forwards every
 * registry change and hands out certificates; it collects metrics and connections when asked,
 * and drains the threads when the agent stops.
 */
import { Worker } from 'node:worker_threads';
import type { LogLevel } from '../config.js';
import type { LocalWorkload, StateSync } from '../discovery/index.js';
import { describeError, MeshdError } from '../errors.js';
import type { StateChange } from '../model/index.js';
import { resourceRef } from '../model/index.js';
import type { Logger } from '../telemetry/index.js';
import type { DataPathOptions } from './data-path.js';
import type { IssuedForThread, ThreadData, ThreadReport } from './thread-main.js';
import { ThreadRpc } from './thread-rpc.js';

const START_TIMEOUT_MS = 15_000;
const CAPTURE_TIMEOUT_MS = 30_000;
const COLLECT_TIMEOUT_MS = 5_000;
/** Beyond the drain: each thread's close() waits up to 1 s for access records. */
const STOP_GRACE_MS = 3_000;
/** After its stop: how long a thread may take to end before it is terminated. */
const EXIT_WAIT_MS = 2_000;
/** A release waits for the threads' connections of the workload as long as the main's. */
const RELEASE_TIMEOUT_MS = 3_600_000;

interface Thread {
  index: number;
  worker: Worker;
  rpc: ThreadRpc;
}

export interface DataPathThreadsOptions {
  /** Extra threads (the main thread is not counted). */
  count: number;
  options: DataPathOptions;
  logLevel: LogLevel;
  sync: Pick<StateSync, 'state' | 'onChange'>;
  certificates: {
    certificate(spiffeId: string): Promise<{
      serial: string;
      certChainPem: string;
      keyPem: string;
      notAfter: Date;
    }>;
    readonly roots: string[];
  };
  logger: Logger;
  /** A thread stopped on its own (crashed): the agent cannot serve its share any more. */
  onFailure(err: Error): void;
  /** For tests: another thread script, and shorter timeouts. */
  script?: URL;
  startTimeoutMs?: number;
  collectTimeoutMs?: number;
}

export class DataPathThreads {
  readonly #threads: Thread[];
  readonly #unsubscribe: () => void;
  readonly #logger: Logger;
  #stopping = false;

  readonly #collectTimeoutMs: number;

  private constructor(
    threads: Thread[],
    unsubscribe: () => void,
    logger: Logger,
    collectTimeoutMs: number,
  ) {
    this.#threads = threads;
    this.#unsubscribe = unsubscribe;
    this.#logger = logger;
    this.#collectTimeoutMs = collectTimeoutMs;
  }

  static async start(o: DataPathThreadsOptions): Promise<DataPathThreads> {
    const threads: Thread[] = [];
    let self: DataPathThreads | undefined;
    const certificate = async (spiffeId: string): Promise<IssuedForThread> => {
      const c = await o.certificates.certificate(spiffeId);
      return {
        cert: {
          serial: c.serial,
          certChainPem: c.certChainPem,
          keyPem: c.keyPem,
          notAfter: c.notAfter.getTime(),
        },
        roots: o.certificates.roots,
      };
    };
    for (let index = 1; index <= o.count; index++) {
      const data: ThreadData = { index, options: o.options, logLevel: o.logLevel };
      const worker = new Worker(o.script ?? new URL('./thread-main.js', import.meta.url), {
        workerData: data,
        name: `meshd-data-path-${index}`,
      });
      const rpc = new ThreadRpc(worker, { certificate }, `data-path thread ${index}`);
      worker.on('error', (err) => {
        o.logger.error({ thread: index, err: describeError(err) }, 'data-path thread failed');
      });
      worker.once('exit', (code) => {
        rpc.close(`it exited (code ${code})`);
        if (self?.stopping) return;
        o.onFailure(
          new MeshdError(
            'MESHD_E_THREAD',
            `data-path thread ${index} exited (code ${code}); its listeners are gone`,
          ),
        );
      });
      threads.push({ index, worker, rpc });
    }
    const unsubscribe = o.sync.onChange((change) => forwardChange(threads, o.sync, change));
    self = new DataPathThreads(
      threads,
      unsubscribe,
      o.logger,
      o.collectTimeoutMs ?? COLLECT_TIMEOUT_MS,
    );
    try {
      const timeoutMs = o.startTimeoutMs ?? START_TIMEOUT_MS;
      await Promise.all(threads.map((t) => t.rpc.call('ready', null, timeoutMs)));
      forwardChange(threads, o.sync, 'snapshot');
    } catch (err) {
      await self.#terminate();
      throw new MeshdError(
        'MESHD_E_THREAD',
        `starting the data-path threads failed: ${(err as Error).message}`,
        {
          cause: err,
          hint: 'a "data-path thread failed" line logged before says why, if the thread got that far; MESHD_AGENT_THREADS=1 runs the agent without extra threads',
        },
      );
    }
    return self;
  }

  get count(): number {
    return this.#threads.length;
  }

  get stopping(): boolean {
    return this.#stopping;
  }

  /** Every thread serves `view` (the main thread has installed its rules). */
  async capture(view: LocalWorkload): Promise<void> {
    await this.#all('capture', view, CAPTURE_TIMEOUT_MS);
  }

  update(view: LocalWorkload): void {
    for (const t of this.#threads) t.rpc.notify('update', view);
  }

  /** Every thread closes `key`'s listeners now and keeps its connections (DataPath.handOver). */
  async handOver(key: string): Promise<void> {
    await this.#all('handOver', key, CAPTURE_TIMEOUT_MS);
  }

  /** Resolves once every thread's connections of `key` have ended and its listeners closed. */
  async release(key: string): Promise<void> {
    await this.#all('release', key, RELEASE_TIMEOUT_MS);
  }

  /** Each thread runs a memory-reducing collection and malloc_trim (memory-trimmer.ts). */
  trim(): void {
    for (const t of this.#threads) t.rpc.notify('trim', null);
  }

  setLogLevel(level: LogLevel): void {
    for (const t of this.#threads) t.rpc.notify('logLevel', level);
  }

  /**
   * Each thread's metrics, connections and pool figures; a thread that does not answer in
   * time is left out (and named in `unanswered`, and logged), so the others still show.
   */
  async collect(): Promise<{ reports: ThreadReport[]; unanswered: number[] }> {
    const results = await Promise.allSettled(
      this.#threads.map((t) => t.rpc.call<ThreadReport>('collect', null, this.#collectTimeoutMs)),
    );
    const reports: ThreadReport[] = [];
    const unanswered: number[] = [];
    results.forEach((r, i) => {
      if (r.status === 'fulfilled') reports.push(r.value);
      else {
        const index = this.#threads[i]?.index ?? i + 1;
        unanswered.push(index);
        this.#logger.warn(
          { thread: index, err: describeError(r.reason) },
          'a data-path thread did not report its metrics and connections',
        );
      }
    });
    return { reports, unanswered };
  }

  /** Drains every thread (as DataPath.close) and ends it. */
  async close(drainMs: number): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#unsubscribe();
    await Promise.allSettled(
      this.#threads.map((t) => t.rpc.call('stop', drainMs, drainMs + STOP_GRACE_MS)),
    );
    // A stopped thread ends by itself, after Node has passed its last log lines on.
    await Promise.all(this.#threads.map((t) => exited(t.worker, EXIT_WAIT_MS)));
  }

  /** Ends every thread at once (a failed start: nothing to drain). */
  async #terminate(): Promise<void> {
    this.#stopping = true;
    this.#unsubscribe();
    await Promise.all(this.#threads.map((t) => t.worker.terminate()));
  }

  #all<T>(method: string, arg: unknown, timeoutMs: number): Promise<T[]> {
    return Promise.all(this.#threads.map((t) => t.rpc.call<T>(method, arg, timeoutMs)));
  }
}

function exited(worker: Worker, timeoutMs: number): Promise<void> {
  if (worker.threadId === -1) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => void worker.terminate().then(() => resolve()), timeoutMs);
    worker.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** The threads keep a copy of the registry state: a snapshot, then each applied change. */
function forwardChange(
  threads: Thread[],
  sync: Pick<StateSync, 'state'>,
  change: StateChange | 'snapshot',
) {
  const state = sync.state;
  if (change === 'snapshot') {
    const { resources, revision } = state.toJSON();
    for (const t of threads) t.rpc.notify('snapshot', { resources, revision });
    return;
  }
  if (!change.applied) return;
  const revision = state.revision;
  const event = change.current
    ? { type: 'put', resource: change.current, revision }
    : change.previous
      ? { type: 'delete', ref: resourceRef(change.previous), revision }
      : undefined;
  if (!event) return;
  for (const t of threads) t.rpc.notify('event', event);
}
