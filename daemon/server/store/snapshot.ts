/**
 * The file store's snapshot: every item at one revision, in `snapshot.json`. Written to a
 * temporary file, fsync'd, renamed over the old one and the directory fsync'd, so a crash
 * leaves either the old or the new snapshot, never a mix.
 */
import { open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { StoreError } from './errors.js';
import type { StoredItem } from './types.js';

export const SNAPSHOT_FILE = 'snapshot.json';
const FORMAT = 'meshd-store-snapshot/v1';

export interface SnapshotImage {
  /** The store revision the items were taken at. */
  revision: number;
  /** Watches can resume from this revision on (events before it are not on disk). */
  compactRevision: number;
  items: StoredItem[];
}

export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Writes bytes to path durably: write, fsync, close. */
export async function writeFileDurably(path: string, data: string | Buffer): Promise<void> {
  const handle = await open(path, 'w', 0o600);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export async function writeSnapshot(dir: string, image: SnapshotImage): Promise<void> {
  const path = join(dir, SNAPSHOT_FILE);
  const tmp = `${path}.tmp`;
  const body = {
    format: FORMAT,
    revision: image.revision,
    compactRevision: image.compactRevision,
    items: image.items,
  };
  try {
    await writeFileDurably(tmp, `${JSON.stringify(body)}\n`);
    await rename(tmp, path);
    await fsyncDir(dir);
  } catch (cause) {
    await rm(tmp, { force: true }).catch(() => {});
    throw new StoreError(`cannot write the store snapshot ${path}: ${(cause as Error).message}`, {
      cause,
    });
  }
}

function invalid(path: string, reason: string): StoreError {
  return new StoreError(`the store snapshot ${path} is invalid: ${reason}`, {
    hint: 'restore the store directory from a backup',
  });
}

const isRev = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 0;

/** The snapshot of dir, or undefined when there is none yet (a new store). */
export async function readSnapshot(dir: string): Promise<SnapshotImage | undefined> {
  const path = join(dir, SNAPSHOT_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new StoreError(`cannot read the store snapshot ${path}: ${(cause as Error).message}`, {
      cause,
    });
  }
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch (cause) {
    throw invalid(path, `not JSON (${(cause as Error).message})`);
  }
  if (body?.format !== FORMAT) throw invalid(path, `format is not ${FORMAT}`);
  const { revision, compactRevision, items } = body;
  if (!isRev(revision) || !isRev(compactRevision) || compactRevision > revision) {
    throw invalid(path, 'bad revision or compactRevision');
  }
  if (!Array.isArray(items)) throw invalid(path, 'items is not a list');
  const seen = new Set<string>();
  for (const item of items as StoredItem[]) {
    if (
      typeof item?.key !== 'string' ||
      typeof item.value !== 'string' ||
      !isRev(item.createRevision) ||
      !isRev(item.modRevision) ||
      item.createRevision > item.modRevision ||
      item.modRevision > revision ||
      seen.has(item.key)
    ) {
      throw invalid(path, `bad item ${JSON.stringify(item?.key)}`);
    }
    seen.add(item.key);
  }
  return { revision, compactRevision, items: items as StoredItem[] };
}
