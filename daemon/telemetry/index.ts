/** Metrics, logging, the admin HTTP server and readiness. Issue 5. */

export {};
