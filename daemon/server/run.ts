/**
 * `meshd server` as a process: start, then SIGTERM/SIGINT → graceful close, SIGHUP → reload
 * the CA directory and workloads file (daemon/lifecycle). Resolves once the server has stopped.
 */
import type { ServerConfig } from '../config.js';
import { runUntilSignalled } from '../lifecycle.js';
import { grpc } from '../proto/index.js';
import type { Logger } from '../telemetry/index.js';
import { startServer } from './app.js';

export async function runServer(config: Readonly<ServerConfig>, logger: Logger): Promise<void> {
  // grpc-js logs to console.error by default; keep stderr JSON lines (process-wide setting).
  const grpcLog = logger.child({ component: 'grpc-js' });
  grpc.setLogger({
    error: (...args: unknown[]) => grpcLog.warn({}, args.map(String).join(' ')),
  });
  const handle = await startServer(config, { logger });
  await runUntilSignalled(handle, logger);
}
