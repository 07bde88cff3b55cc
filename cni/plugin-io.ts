/**
 * The process edges of meshd-cni: reading stdin (bounded in size and time) and appending log
 * records to the log file. Neither ever writes to stdout, and neither throws.
 */
import { appendFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import type { CniLogRecord } from './plugin.js';

export const STDIN_LIMITS = {
  /** A network configuration with a prevResult is a few KiB; 1 MiB is far beyond any real one. */
  maxBytes: 1024 * 1024,
  /** The runtime writes stdin and closes it at once; a stdin left open is a misuse. */
  timeoutMs: 10_000,
} as const;

export type StdinRead = { text: string } | { problem: string };

/** All of `stream` as UTF-8, or the reason it could not be read. A TTY reads as empty. */
export function readStdin(
  stream: Readable & { isTTY?: boolean },
  limits: { maxBytes: number; timeoutMs: number } = STDIN_LIMITS,
): Promise<StdinRead> {
  if (stream.isTTY) return Promise.resolve({ text: '' });
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (result: StdinRead) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      stream.off('data', onData);
      stream.pause();
      resolve(result);
    };
    const onData = (chunk: Buffer | string) => {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      size += buf.length;
      if (size > limits.maxBytes) {
        finish({ problem: `stdin is larger than ${limits.maxBytes} bytes` });
      } else chunks.push(buf);
    };
    const timer = setTimeout(
      () => finish({ problem: `stdin was not closed within ${limits.timeoutMs} ms` }),
      limits.timeoutMs,
    );
    stream.on('data', onData);
    stream.once('end', () => finish({ text: Buffer.concat(chunks).toString('utf8') }));
    stream.once('error', (err) => finish({ problem: `reading stdin failed: ${err.message}` }));
  });
}

/** Appends one JSON line to `logFile` (mode 0640 when created); failures are ignored. */
export function appendLog(record: CniLogRecord, logFile: string): void {
  if (logFile === '') return;
  try {
    appendFileSync(logFile, `${JSON.stringify(record)}\n`, { mode: 0o640 });
  } catch {
    // The log is for the operator; a read-only /var/log must not fail pod start-up.
  }
}
