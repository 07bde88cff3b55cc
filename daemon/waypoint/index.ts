/** The L7 proxy (`meshd waypoint`): HTTP policy, routes, retries. Planned (DESIGN §13). */

export * from './l7/index.js';
