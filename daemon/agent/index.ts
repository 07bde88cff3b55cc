/**
 * The node proxy (`meshd agent`). Today: the node's identity (join, node and workload
 * certificates, trust bundle) and its admin/metrics/readiness endpoints. Capture, HBONE and
 * policy arrive with the node-proxy issue.
 */

export { StateSync, type StateSyncOptions, type SyncSource } from '../discovery/index.js';
export type { ConnectionEnd, ConnectionInfo, ConnectionPath } from '../proxy/index.js';
export {
  type AgentDeps,
  type AgentHandle,
  type CertificateRow,
  certificateRows,
  startAgent,
} from './app.js';
export { AgentIdentity, type AgentIdentityOptions } from './identity.js';
export { NODE_FILES } from './node-identity.js';
export {
  type OutboundInput,
  type OutboundPlan,
  planOutbound,
  type RefuseReason,
  waypointReplicas,
} from './outbound-plan.js';
export { runAgent } from './run.js';
export { ANNOTATION_REPLICA_OF } from './waypoint-endpoint.js';
