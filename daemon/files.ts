import { closeSync, fsyncSync, openSync, renameSync, writeFileSync } from 'node:fs';

/**
 * Replaces `path` with `text` so that readers see the old file or the new one, never a part:
 * write a temporary file beside it with `mode`, fsync it, rename it over. Keys and state
 * files use this; a crash leaves at most a stray `.tmp-<pid>` file.
 */
export function writeFileAtomic(path: string, text: string, mode: number): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text, { mode });
  const fd = openSync(tmp, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}
