/**
 * A minimal structured logger: one JSON object per line (pino's shape: `level`, `time`, `msg`
 * plus fields), written to stderr unless told otherwise. Roles take a Logger, so tests inject
 * one that records lines, and pino can replace this later without touching callers.
 * Never pass secrets (keys, join tokens) as fields.
 */
import type { LogLevel } from '../config.js';

export type LogFields = Record<string, unknown>;
type LogFn = (fields: LogFields, msg: string) => void;

export interface Logger {
  error: LogFn;
  warn: LogFn;
  info: LogFn;
  debug: LogFn;
  /** A logger that adds `fields` to every line. */
  child(fields: LogFields): Logger;
}

const SEVERITY: Record<LogLevel, number> = {
  fatal: 60,
  error: 50,
  warn: 40,
  info: 30,
  debug: 20,
  trace: 10,
};

export interface JsonLoggerOptions {
  /** Lines below this level are dropped (default info). */
  level?: LogLevel;
  /** Where a finished line (with its newline) goes; default process.stderr. */
  write?: (line: string) => void;
  /** Fields on every line, e.g. `{ role: 'server' }`. */
  base?: LogFields;
  now?: () => number;
}

function serializable(value: unknown): unknown {
  if (value instanceof Error) return { message: value.message, ...pickCode(value) };
  if (value instanceof Date) return value.toISOString();
  if (typeof value === 'bigint') return value.toString();
  return value;
}

/**
 * Adds `{ ...base, ...fields }` to the record without building that object (the access log
 * writes a line per connection): the call's fields win, undefined values are left out, and the
 * record's own keys (level, time, msg) are never overwritten.
 */
function addFields(record: LogFields, base: LogFields, fields: LogFields): void {
  const put = (k: string, v: unknown) => {
    if (v !== undefined && !Object.hasOwn(record, k)) record[k] = serializable(v);
  };
  for (const k in base) put(k, Object.hasOwn(fields, k) ? fields[k] : base[k]);
  for (const k in fields) if (!Object.hasOwn(base, k)) put(k, fields[k]);
}

function pickCode(err: Error): LogFields {
  return 'code' in err && typeof err.code === 'string' ? { code: err.code } : {};
}

const BATCH_FLUSH_BYTES = 64 * 1024;

/**
 * Lines to stderr, one write per event-loop turn instead of one per line: stderr to a file or a
 * pipe (journald) is a synchronous write, and the access log writes a line per connection (a
 * write per line was 2.5 % of the agent's CPU at 1,600 connections/s). Pending lines are
 * written on the next turn, at 64 KiB, and on exit.
 */
function batchedStderr(): (line: string) => void {
  let pending: string[] = [];
  let bytes = 0;
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    if (pending.length === 0) return;
    const chunk = pending.join('');
    pending = [];
    bytes = 0;
    process.stderr.write(chunk);
  };
  process.once('exit', flush);
  return (line) => {
    pending.push(line);
    bytes += line.length;
    if (bytes >= BATCH_FLUSH_BYTES) flush();
    else if (!scheduled) {
      scheduled = true;
      setImmediate(flush);
    }
  };
}

/** One queue for every logger of the process, so that lines keep their order. */
let sharedStderr: ((line: string) => void) | undefined;

function stderrLines(): (line: string) => void {
  sharedStderr ??= batchedStderr();
  return sharedStderr;
}

/** A logger whose level can change at run time (the agent's /logging endpoint). */
export interface LevelControl {
  level(): LogLevel;
  setLevel(level: LogLevel): void;
}

export const LOG_LEVELS = Object.keys(SEVERITY) as LogLevel[];

export function createJsonLogger(options: JsonLoggerOptions = {}): Logger & LevelControl {
  let current: LogLevel = options.level ?? 'info';
  let min = SEVERITY[current];
  const write = options.write ?? stderrLines();
  const now = options.now ?? Date.now;
  const make = (base: LogFields): Logger => {
    const at =
      (level: LogLevel): LogFn =>
      (fields, msg) => {
        if (SEVERITY[level] < min) return;
        const record: LogFields = { level, time: new Date(now()).toISOString(), msg };
        addFields(record, base, fields);
        let line: string;
        try {
          line = JSON.stringify(record);
        } catch {
          line = JSON.stringify({
            level,
            time: record.time,
            msg,
            logError: 'unserializable fields',
          });
        }
        write(`${line}\n`);
      };
    return {
      error: at('error'),
      warn: at('warn'),
      info: at('info'),
      debug: at('debug'),
      child: (fields) => make({ ...base, ...fields }),
    };
  };
  return Object.assign(make(options.base ?? {}), {
    level: () => current,
    setLevel(level: LogLevel) {
      current = level;
      min = SEVERITY[level];
    },
  });
}

/** Drops everything (tests, library defaults). */
export const silentLogger: Logger = {
  error() {},
  warn() {},
  info() {},
  debug() {},
  child: () => silentLogger,
};
