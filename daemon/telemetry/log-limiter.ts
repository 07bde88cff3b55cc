/**
 * A rate limit for log lines that a peer or a local client can cause once per connection (a
 * refused handshake, a denied connection's access record): one misbehaving client wrote 54 MB
 * of agent log in 70 s. Lines are grouped by a caller-chosen key of low cardinality (message,
 * reason, workload; never an address or a port). Per key and window, the first `burst` lines
 * are written; the rest are counted, and when the window ends one summary line stands for
 * them: the same level, the fields of the last suppressed line plus `suppressed: N`, and the
 * message with " (N more like this in the last 10 s)" appended. Metrics count every event;
 * only the log is limited.
 */
import type { LogFields, Logger } from './logger.js';

export type LogEmit = (fields: LogFields, msg: string) => void;

export interface LogLimiterOptions {
  /** Lines of one key written per window; more are counted (default 10). */
  burst?: number;
  /** Length of a window in ms (default 10 s). */
  windowMs?: number;
  /** Keys tracked in one window; lines of further keys share one overflow key (default 1,000). */
  maxKeys?: number;
  now?: () => number;
  /** Runs `fn` after `ms` (default: an unref'd setTimeout); returns how to cancel it. */
  schedule?: (fn: () => void, ms: number) => () => void;
  /** Called once per suppressed line (meshd_log_lines_suppressed_total). */
  onSuppressed?: () => void;
}

/**
 * 10 lines per 10 s per key: enough to show what is going on (and every line of a normal
 * agent, which refuses a connection now and then), while a flood of one kind costs at most
 * 11 lines per 10 s. An access record is ~600 bytes, so a flood keeps to ~40 KB a minute per
 * key.
 */
export const LOG_BURST = 10;
export const LOG_WINDOW_MS = 10_000;
/**
 * Keys come from the agent's own vocabulary (messages, reasons, workloads it knows), so a
 * thousand is far above what a node uses; the bound only keeps memory fixed whatever happens.
 */
export const LOG_MAX_KEYS = 1_000;

interface KeyState {
  written: number;
  suppressed: number;
  /** The last suppressed line: its fields and level make the summary. */
  last: { emit: LogEmit; fields: LogFields; msg: string } | undefined;
}

const OVERFLOW_KEY = '\0overflow';

const defaultSchedule = (fn: () => void, ms: number) => {
  const timer = setTimeout(fn, ms);
  timer.unref();
  return () => clearTimeout(timer);
};

export class LogLimiter {
  readonly #burst: number;
  readonly #windowMs: number;
  readonly #maxKeys: number;
  readonly #now: () => number;
  readonly #schedule: (fn: () => void, ms: number) => () => void;
  readonly #onSuppressed: () => void;
  readonly #keys = new Map<string, KeyState>();
  #windowStart = 0;
  #cancel: (() => void) | undefined;
  #closed = false;

  constructor(options: LogLimiterOptions = {}) {
    this.#burst = options.burst ?? LOG_BURST;
    this.#windowMs = options.windowMs ?? LOG_WINDOW_MS;
    this.#maxKeys = options.maxKeys ?? LOG_MAX_KEYS;
    this.#now = options.now ?? Date.now;
    this.#schedule = options.schedule ?? defaultSchedule;
    this.#onSuppressed = options.onSuppressed ?? (() => {});
  }

  /** Writes the line through `emit` or counts it; true when it was written. */
  submit(key: string, emit: LogEmit, fields: LogFields, msg: string): boolean {
    if (this.#closed) {
      emit(fields, msg);
      return true;
    }
    const state = this.#stateOf(key);
    if (state.written < this.#burst) {
      state.written += 1;
      emit(fields, msg);
      return true;
    }
    state.suppressed += 1;
    state.last = { emit, fields, msg };
    this.#onSuppressed();
    return false;
  }

  /** Ends the window now: one summary line per key that had suppressed lines. */
  flush(): void {
    this.#cancel?.();
    this.#cancel = undefined;
    const seconds = Math.max(1, Math.round((this.#now() - this.#windowStart) / 1000));
    const keys = [...this.#keys];
    this.#keys.clear();
    for (const [key, state] of keys) summarize(key, state, seconds);
  }

  /** Flushes, then lets every later line through: the counts of a stopping agent are kept. */
  close(): void {
    this.flush();
    this.#closed = true;
  }

  /** The state of `key` in this window; starts the window on its first line. */
  #stateOf(key: string): KeyState {
    let state = this.#keys.get(key);
    if (state) return state;
    if (this.#keys.size === 0) this.#startWindow();
    // Past the bound, every new key shares one, so memory stays fixed.
    const k = this.#keys.size >= this.#maxKeys ? OVERFLOW_KEY : key;
    state = this.#keys.get(k);
    if (!state) {
      state = { written: 0, suppressed: 0, last: undefined };
      this.#keys.set(k, state);
    }
    return state;
  }

  #startWindow(): void {
    this.#windowStart = this.#now();
    this.#cancel = this.#schedule(() => {
      this.#cancel = undefined;
      this.flush();
    }, this.#windowMs);
  }
}

function summarize(key: string, state: KeyState, seconds: number): void {
  const { last, suppressed } = state;
  if (!last || suppressed === 0) return;
  if (key === OVERFLOW_KEY) {
    last.emit(
      { ...last.fields, suppressed, overflow: true },
      `${suppressed} more lines of many kinds in the last ${seconds} s (the last: ${last.msg})`,
    );
    return;
  }
  last.emit(
    { ...last.fields, suppressed },
    `${last.msg} (${suppressed} more like this in the last ${seconds} s)`,
  );
}

/** The fields whose values, with the level and message, make the key of a line by default. */
const DEFAULT_KEY_FIELDS = ['workload', 'reason', 'listener', 'service'] as const;

const keyPart = (v: unknown): string =>
  v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);

/**
 * A logger whose error, warn and info lines go through `limiter`, keyed by level, message and
 * `keyFields` (pick fields of few values: a remote address would make every line its own
 * kind). Debug lines pass: an operator who turns them on asked for every one.
 */
export function rateLimitedLogger(
  logger: Logger,
  limiter: LogLimiter,
  keyFields: readonly string[] = DEFAULT_KEY_FIELDS,
): Logger {
  const at = (level: 'error' | 'warn' | 'info'): LogEmit => {
    const emit: LogEmit = (fields, msg) => logger[level](fields, msg);
    return (fields, msg) => {
      let key = `${level}\0${msg}`;
      for (const f of keyFields) key += `\0${keyPart(fields[f])}`;
      limiter.submit(key, emit, fields, msg);
    };
  };
  return {
    error: at('error'),
    warn: at('warn'),
    info: at('info'),
    debug: (fields, msg) => logger.debug(fields, msg),
    child: (fields) => rateLimitedLogger(logger.child(fields), limiter, keyFields),
  };
}
