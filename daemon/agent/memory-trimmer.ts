/**
 * Gives memory back to the kernel once the agent goes quiet after work.
 *
 * Under load V8 grows its heap up to twice the live size (bin/meshd's --heap-growing-percent)
 * and keeps freed pages in its page pool, and glibc keeps the freed 64 KiB socket and HTTP/2
 * buffers in its arenas: without this, an agent stays at its peak size until the next burst
 * (docs/benchmarks.md, "Agent memory"). When the process used little CPU over the last quiet
 * window and enough since the last trim to have grown, it runs V8's memory-reducing
 * collection (gc's 'last-resort' flavor: compaction and the page pool released, ~50 ms) and
 * then malloc_trim(0). The window slides by a short interval, so the trim follows the end of a
 * burst by one window, not by up to two. One more trim follows a window later: what the end of
 * the load frees late (pooled HBONE connections closing on their idle timers, their peers'
 * sessions with them) goes back too, instead of waiting for the next 2 s of work.
 */
import type { Logger } from '../telemetry/index.js';

export interface MemoryTrimmerOptions {
  /** How often activity is looked at. Default 2 s. */
  intervalMs?: number;
  /**
   * The window activity is judged over, a whole number of intervals (rounded up). Default
   * 10 s: a short window would call the gaps of bursty traffic quiet and pause it.
   */
  quietWindowMs?: number;
  /** Quiet: CPU time in the last window below this share of it. Default 0.02 (2 %). */
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
  /** CPU readings of the last ticks, oldest first: the window is the first to the last. */
  #readings: number[] = [];
  #lastTrimCpu = 0;
  #trims = 0;
  /** Ticks since the last trim; the follow-up trim waits a whole window. */
  #ticksSinceTrim = 0;
  #followUpDue = false;

  constructor(options: MemoryTrimmerOptions) {
    const intervalMs = options.intervalMs ?? 2_000;
    this.#options = {
      intervalMs,
      quietWindowMs: Math.max(intervalMs, options.quietWindowMs ?? 10_000),
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
    this.#readings = [this.#options.cpuMicros()];
    this.#timer = setInterval(() => this.tick(), this.#options.intervalMs);
    this.#timer.unref();
  }

  /** One look at the last window; the timer calls it, tests call it directly. */
  tick(): void {
    if (!this.#timer) return; // closed, or stopped after a failed trim
    const { cpuMicros, intervalMs, quietWindowMs, quietCpuShare, busyCpuMs } = this.#options;
    const now = cpuMicros();
    const windowTicks = Math.ceil(quietWindowMs / intervalMs);
    this.#readings.push(now);
    if (this.#readings.length > windowTicks + 1) this.#readings.shift();
    this.#ticksSinceTrim += 1;
    // Until a whole window has passed since start-up, no judgement: a part of one is too short.
    if (this.#readings.length <= windowTicks) return;
    const windowCpu = now - (this.#readings[0] ?? now);
    const quiet = windowCpu < windowTicks * intervalMs * 1000 * quietCpuShare;
    if (!quiet) return;
    // Start-up (snapshot, certificates, listeners) is the first burst, whatever it cost.
    const worked = this.#trims === 0 || now - this.#lastTrimCpu >= busyCpuMs * 1000;
    const followUp = this.#followUpDue && this.#ticksSinceTrim >= windowTicks;
    if (!worked && !followUp) return;
    this.#followUpDue = worked;
    this.#trim();
  }

  #trim(): void {
    const before = this.#options.cpuMicros();
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
    // The trim's own CPU (up to a second after a large burst) is neither work worth trimming
    // again for nor activity that makes the next window busy.
    const cost = this.#options.cpuMicros() - before;
    this.#readings = this.#readings.map((r) => r + cost);
    this.#lastTrimCpu = before + cost;
    this.#ticksSinceTrim = 0;
  }

  close(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
