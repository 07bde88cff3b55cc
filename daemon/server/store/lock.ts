/**
 * One server per store directory: a `LOCK` file holding the owner's pid, created atomically
 * (written to a temporary name, then hard-linked, which fails if LOCK exists). A lock whose pid
 * is no longer running (or is a zombie) is stale — left by a crash — and is taken over.
 */

import { readFileSync } from 'node:fs';
import { link, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { StoreError } from './errors.js';
import { writeFileDurably } from './snapshot.js';

export const LOCK_FILE = 'LOCK';

export interface DirLock {
  readonly path: string;
  release(): Promise<void>;
}

function running(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    // "pid (comm) S …": a zombie (Z) or dead (X) process no longer holds anything.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return true; // no /proc: trust kill(0)
  }
}

async function holder(path: string): Promise<number | undefined> {
  try {
    const pid = Number.parseInt((await readFile(path, 'utf8')).trim(), 10);
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

export async function lockDir(
  dir: string,
  onStale?: (pid: number | undefined) => void,
): Promise<DirLock> {
  const path = join(dir, LOCK_FILE);
  const tmp = join(dir, `${LOCK_FILE}.${process.pid}.tmp`);
  try {
    await writeFileDurably(tmp, `${process.pid}\n`);
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await link(tmp, path);
        return {
          path,
          release: async () => {
            if ((await holder(path).catch(() => undefined)) === process.pid) {
              await rm(path, { force: true });
            }
          },
        };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const pid = await holder(path);
      if (pid !== undefined && running(pid)) {
        const who = pid === process.pid ? 'this process (opened twice)' : `pid ${pid}`;
        throw new StoreError(`the store directory ${dir} is locked by ${who} (${path})`, {
          hint: 'another meshd server uses this directory; stop it, or give this one its own --store',
        });
      }
      onStale?.(pid);
      await rm(path, { force: true });
    }
    throw new StoreError(`cannot lock the store directory ${dir}: ${path} keeps reappearing`);
  } catch (err) {
    if (err instanceof StoreError) throw err;
    throw new StoreError(`cannot lock the store directory ${dir}: ${(err as Error).message}`, {
      cause: err,
    });
  } finally {
    await rm(tmp, { force: true }).catch(() => {});
  }
}
