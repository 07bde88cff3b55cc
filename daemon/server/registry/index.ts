export { type CacheListener, type ChangeBatch, RegistryCache } from './cache.js';
export { CombinedWorkloadDirectory, RegistryWorkloadDirectory } from './directory.js';
export { keyOf, REGISTRY_PREFIX, refOfKey } from './keys.js';
export { NodePresence } from './presence.js';
export { type RegistryServiceDeps, registryHandlers } from './service.js';
