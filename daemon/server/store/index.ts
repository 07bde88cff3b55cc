/**
 * The control plane's resource store: one interface (get/list/commit with compare-and-swap,
 * watch from a revision) and two backends, `file` (default, embedded) and `etcd` (several
 * servers on one etcd cluster). See docs/store.md.
 */
import type { Logger } from '../../telemetry/index.js';
import { type EtcdStoreOptions, openEtcdStore } from './etcd.js';
import { type FileStoreOptions, openFileStore } from './file.js';
import type { Store } from './types.js';
import { parseStoreUrl } from './url.js';

export { CompactedError, ConflictError, StoreError } from './errors.js';
export { EtcdStore, type EtcdStoreOptions, openEtcdStore } from './etcd.js';
export { FileStore, type FileStoreOptions, openFileStore } from './file.js';
export { type FollowHandlers, type FollowOptions, follow } from './follow.js';
export type {
  Store,
  StoredItem,
  StoreEvent,
  StoreOp,
  WatchHandle,
} from './types.js';
export {
  DEFAULT_ETCD_PREFIX,
  type EtcdEndpoint,
  parseStoreUrl,
  type StoreLocation,
} from './url.js';

export interface OpenStoreOptions
  extends Omit<FileStoreOptions, 'logger'>,
    Omit<EtcdStoreOptions, 'logger'> {
  logger?: Logger;
  /** Resolves a relative file store path (default process.cwd()). */
  cwd?: string;
}

/**
 * Opens the store a URL names: 'file:///var/lib/meshd/server/store' or a bare path → the file
 * store; 'etcd://host:port[,host:port…][/prefix]' → etcd. Throws StoreError (MESHD_E_STORE).
 */
export async function openStore(url: string, options: OpenStoreOptions = {}): Promise<Store> {
  const location = parseStoreUrl(url, options.cwd);
  if (location.kind === 'file') return openFileStore(location.dir, options);
  return openEtcdStore(location.endpoints, location.prefix, options);
}
