/** The control plane (`meshd server`): CA (Identity gRPC API), join tokens, node authorization. */

export { type ServerDeps, type ServerHandle, startServer } from './app.js';
export { runServer } from './run.js';
export { JoinTokenStore, TOKENS_FILE } from './tokens.js';
export { StaticWorkloadDirectory, type WorkloadDirectory } from './workloads.js';
