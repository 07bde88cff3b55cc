/**
 * What every role knows of the mesh: the registry state kept in sync with the server (and its
 * copy on disk), and the views of workloads the data path needs (identities, peers, ports).
 */

export * from './guarded-ports.js';
export * from './state-sync.js';
export * from './workload-view.js';
