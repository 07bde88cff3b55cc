/**
 * The L7 proxy (`meshd waypoint`): one replica of one Waypoint. It terminates the HBONE tunnels
 * agents hand off to it, applies L7 authorization per request and proxies HTTP/1.1, HTTP/2
 * (h2c, gRPC) or opaque TCP to the destination's endpoints over HBONE, as itself.
 */

export { startWaypoint, type WaypointHandle } from './app.js';
export {
  endpointsOf,
  resolveDestination,
  type WaypointDestination,
  workloadOfEndpoint,
} from './destination.js';
export * from './l7/index.js';
export { runWaypoint } from './run.js';
