/**
 * HBONE (DESIGN §3, §4): HTTP/2 CONNECT over mutual TLS 1.3 on port 15008, compatible with
 * Istio's ztunnel. HboneServer is the inbound side of one workload's :15008; HbonePool opens
 * outbound tunnels over pooled connections; splice() copies a tunnel to a TCP socket with
 * half-close; the header helpers format and parse what travels with a CONNECT.
 */
export { type CertificateSource, SecureContexts } from './contexts.js';
export { HboneError, type HbonePhase, HboneRefusedError } from './errors.js';
export {
  type ForwardedFor,
  formatBaggage,
  formatForwarded,
  formatHostPort,
  type HostPort,
  isTraceparent,
  newTraceparent,
  parseBaggage,
  parseForwarded,
  parseHostPort,
} from './headers.js';
export { deadPeerPings, type KeepaliveOptions, startKeepalive } from './keepalive.js';
export { endGracefully, lingerOff, RESET_ON_CLOSE } from './linger.js';
export {
  DEFAULT_POOL_LIMITS,
  type HboneConnectOptions,
  HbonePool,
  type HbonePoolLimits,
  type HbonePoolOptions,
  type HbonePoolStats,
  type HboneRequestHeaders,
  type PoolKey,
  poolKeyId,
} from './pool.js';
export {
  type ConnectDecision,
  type ConnectRequest,
  DEFAULT_SERVER_LIMITS,
  type Endpoint,
  type HboneRejectReason,
  HboneServer,
  type HboneServerLimits,
  type HboneServerOptions,
  type HboneServerStats,
  type PeerIdentity,
  type RejectedInfo,
} from './server.js';
export {
  type AdmitRefusal,
  DEFAULT_SOURCE_GUARD_LIMITS,
  SourceGuard,
  type SourceGuardLimits,
} from './source-guard.js';
export { abortSide, type SpliceResult, splice } from './splice.js';
export {
  HBONE_ALPN,
  type HboneTlsMaterial,
  hboneSecureContext,
  type TlsRejectReason,
} from './tls.js';
export { TokenBucket, type TokenBucketLimits } from './token-bucket.js';
export { DEFAULT_HTTP2_TUNING, type Http2Tuning } from './tuning.js';

/** The HBONE port inside every enrolled workload's netns. */
export const HBONE_PORT = 15008;
