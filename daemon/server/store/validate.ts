/** Checks every backend applies to a commit before touching anything. */
import { StoreError } from './errors.js';
import type { StoreOp } from './types.js';

/** No lone UTF-16 surrogates: the text survives UTF-8 (disk, etcd) unchanged. */
const wellFormed = (s: string) => (s as unknown as { isWellFormed(): boolean }).isWellFormed();

export function checkKey(key: unknown): asserts key is string {
  if (typeof key !== 'string' || key === '' || !wellFormed(key)) {
    throw new StoreError(`invalid store key ${JSON.stringify(key)}: a non-empty string is needed`);
  }
}

export function checkRevision(what: string, revision: unknown): asserts revision is number {
  if (typeof revision !== 'number' || !Number.isSafeInteger(revision) || revision < 0) {
    throw new StoreError(`invalid ${what} ${String(revision)}: a non-negative integer is needed`);
  }
}

/** Keys are strings, values well-formed strings, expectations integers ≥ 0, no key twice. */
export function checkOps(ops: readonly StoreOp[]): void {
  if (!Array.isArray(ops)) throw new StoreError('commit needs an array of operations');
  const seen = new Set<string>();
  for (const op of ops) {
    if (op?.type !== 'put' && op?.type !== 'delete') {
      throw new StoreError(`invalid store operation type ${JSON.stringify(op?.type)}`);
    }
    checkKey(op.key);
    if (seen.has(op.key)) {
      throw new StoreError(`key ${JSON.stringify(op.key)} appears twice in one commit`);
    }
    seen.add(op.key);
    if (op.type === 'put' && (typeof op.value !== 'string' || !wellFormed(op.value))) {
      throw new StoreError(`invalid value for ${JSON.stringify(op.key)}: a string is needed`);
    }
    if (op.expectModRevision !== undefined) {
      checkRevision(`expectModRevision of ${JSON.stringify(op.key)}`, op.expectModRevision);
    }
  }
}
