/** Metrics, logging, the monitoring/admin HTTP endpoint and readiness, shared by the roles. */

export {
  type HttpEndpoint,
  type HttpEndpointOptions,
  type HttpReply,
  hostPort,
  metricsRoute,
  type RouteHandler,
  readinessRoute,
  startHttpEndpoint,
} from './http-endpoint.js';
export * from './istio-metrics.js';
export {
  LOG_BURST,
  LOG_MAX_KEYS,
  LOG_WINDOW_MS,
  type LogEmit,
  LogLimiter,
  type LogLimiterOptions,
  rateLimitedLogger,
} from './log-limiter.js';
export {
  createJsonLogger,
  type JsonLoggerOptions,
  type LevelControl,
  LOG_LEVELS,
  type LogFields,
  type Logger,
  silentLogger,
} from './logger.js';
export * from './request-metrics.js';
