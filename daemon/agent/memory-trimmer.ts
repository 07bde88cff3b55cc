/**
 * Gives memory back to the kernel once the agent goes quiet after work.
 *
 * Under load V8 grows its heap up to twice the live size (bin/meshd's --heap-growing-percent)
 * and keeps freed pages in its page pool, and glibc keeps the freed 64 KiB socket and HTTP/2
 * buffers in its arenas: without this, an agent stays at its peak size until the next burst
 * (docs/benchmarks.md, "Agent memory"). When the process used little CPU over the last
 * interval and enough since the last trim to have grown, it runs V8's memory-reducing
 * collection (gc's 'last-resort' flavor: compaction and the page pool released, ~50 ms) and
 * then malloc_trim(0).
 */
import type { Logger } from '../telemetry/index.js';

export interface MemoryTrimmerOptions {
  /** How often activity is looked at. Default 10 s. */
  intervalMs?: number;
  /** Quiet: CPU time in the last interval below this share of it. Default 0.02 (2 %). */
  quietCpuShare?: number;
  /**
   * Trim again only after at least this much CPU time since the last trim. Default 2 s: the
   * collection stops the agent for ~50 ms, which a lightly loaded agent (always "quiet") must
   * not pay every few intervals. Growth worth giving back takes work; start-up always counts.
   */
  busyCpuMs?: number;
  /** malloc_trim; returns whether memory went back. */
  trim: () => boolean;
  /** Process CPU time (user + system) in microseconds; injectable for tests. */
  cpuMicros?: () => number;
  logger?: Logger;
}

function processCpuMicros(): number {
  const { user, system } = process.cpuUsage();
  return user + system;
}

export class MemoryTrimmer {
  readonly #options: Required<Omit<MemoryTrimmerOptions, 'logger'>>;
  readonly #logger: Logger | undefined;
  #timer: NodeJS.Timeout | undefined;
  #lastTickCpu = 0;
  #lastTrimCpu = 0;
  #trims = 0;

  constructor(options: MemoryTrimmerOptions) {
    this.#options = {
      intervalMs: options.intervalMs ?? 10_000,
      quietCpuShare: options.quietCpuShare ?? 0.02,
      busyCpuMs: options.busyCpuMs ?? 2_000,
      trim: options.trim,
      cpuMicros: options.cpuMicros ?? processCpuMicros,
    };
    this.#logger = options.logger;
  }

  /** Trims done so far (for tests and the admin view). */
  get trims(): number {
    return this.#trims;
  }

  start(): void {
    if (this.#timer) return;
    this.#lastTickCpu = this.#options.cpuMicros();
    this.#timer = setInterval(() => this.tick(), this.#options.intervalMs);
    this.#timer.unref();
  }

  /** One look at the last interval; the timer calls it, tests call it directly. */
  tick(): void {
    if (!this.#timer) return; // closed, or stopped after a failed trim
    const { cpuMicros, intervalMs, quietCpuShare, busyCpuMs } = this.#options;
    const now = cpuMicros();
    const lastInterval = now - this.#lastTickCpu;
    this.#lastTickCpu = now;
    const quiet = lastInterval < intervalMs * 1000 * quietCpuShare;
    // Start-up (snapshot, certificates, listeners) is the first burst, whatever it cost.
    const worked = this.#trims === 0 || now - this.#lastTrimCpu >= busyCpuMs * 1000;
    if (!quiet || !worked) return;
    this.#lastTrimCpu = now;
    try {
      const started = performance.now();
      const rssBefore = process.memoryUsage.rss();
      (globalThis as { gc?: (o: object) => void }).gc?.({
        type: 'major',
        execution: 'sync',
        flavor: 'last-resort',
      });
      this.#options.trim();
      this.#trims += 1;
      const mib = (bytes: number) => Math.round(bytes / 104_857.6) / 10;
      this.#logger?.debug(
        {
          pauseMs: Math.round(performance.now() - started),
          rssBeforeMiB: mib(rssBefore),
          rssAfterMiB: mib(process.memoryUsage.rss()),
        },
        'memory trimmed',
      );
    } catch (err) {
      this.#logger?.warn({ err: (err as Error).message }, 'malloc_trim failed; not retried');
      this.close();
    }
  }

  close(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
