/**
 * Proxying pieces shared by the agent and the waypoint: endpoint balancing with outlier
 * ejection, per-workload connection limits and the table of live connections.
 */

export * from './balancer.js';
export * from './connections.js';
export * from './limits.js';
