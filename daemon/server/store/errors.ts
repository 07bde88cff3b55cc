/** The store's error classes: MESHD_E_STORE, MESHD_E_CONFLICT, MESHD_E_COMPACTED. */
import { MeshdError, type MeshdErrorOptions } from '../../errors.js';

/** The backend failed: I/O, corrupt files, lock, etcd unreachable or refusing, bad arguments. */
export class StoreError extends MeshdError {
  constructor(message: string, options: MeshdErrorOptions = {}) {
    super('MESHD_E_STORE', message, options);
  }
}

/** A compare-and-swap expectation did not hold; nothing of the commit was applied. */
export class ConflictError extends MeshdError {
  readonly key: string;
  /** The modRevision the caller expected (0: must not exist). */
  readonly expected: number;
  /** The modRevision found (0: the key does not exist). */
  readonly actual: number;

  constructor(key: string, expected: number, actual: number) {
    const want = expected === 0 ? 'it not to exist' : `modRevision ${expected}`;
    const found = actual === 0 ? 'it does not exist' : `its modRevision is ${actual}`;
    super(
      'MESHD_E_CONFLICT',
      `conflict on ${JSON.stringify(key)}: expected ${want}, but ${found}`,
      {
        hint: 'read it again and retry',
      },
    );
    this.key = key;
    this.expected = expected;
    this.actual = actual;
  }
}

/** A watch asked for revisions that were compacted away. */
export class CompactedError extends MeshdError {
  /** The oldest revision a watch can still start from (events after it are kept). */
  readonly compactRevision: number;
  readonly requestedRevision: number;

  constructor(requestedRevision: number, compactRevision: number) {
    super(
      'MESHD_E_COMPACTED',
      `cannot watch from revision ${requestedRevision}: the store is compacted up to revision ${compactRevision}`,
      { hint: 'list again and watch from the revision of that list' },
    );
    this.compactRevision = compactRevision;
    this.requestedRevision = requestedRevision;
  }
}
