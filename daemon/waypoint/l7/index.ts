/** The waypoint's L7 proxy engine (DESIGN §13): HTTP/1.1, h2c/gRPC and opaque TCP per tunnel. */
export { LoadCounter, pickEndpoint } from './balance.js';
export {
  configuredProtocol,
  type Detection,
  detectProtocol,
  H2_PREFACE,
  type TunnelProtocol,
} from './detect.js';
export { L7Engine, type L7EngineOptions, type L7Stats } from './engine.js';
export {
  downstreamResponseHeaders,
  grpcStatusOf,
  h2ForwardHeaders,
  isGrpc,
  traceIdOf,
  upstreamRequestHeaders,
} from './headers.js';
export {
  clientErrorStatus,
  DENIED_TEXT,
  deniedReply,
  grpcMessage,
  type LocalReply,
  upstreamFailureReply,
} from './replies.js';
export {
  type AppProtocol,
  type AuthorizeResult,
  DEFAULT_L7_LIMITS,
  type DownstreamContext,
  type Endpoint,
  type HttpVersion,
  type L7Hooks,
  type L7Limits,
  type L7LogCode,
  type L7LogEvent,
  type L7Target,
  type RequestRecord,
  type RequestView,
  type ResponseFlag,
} from './types.js';
