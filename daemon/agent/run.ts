/** `meshd agent` as a process: start, then stop gracefully on SIGTERM/SIGINT. */
import type { AgentConfig } from '../config.js';
import { describeError } from '../errors.js';
import { runUntilSignalled } from '../lifecycle.js';
import type { LevelControl, Logger } from '../telemetry/index.js';
import { type AgentHandle, startAgent } from './app.js';
import { enableOptimizingCompiler } from './optimizing-compiler.js';

export async function runAgent(
  config: Readonly<AgentConfig>,
  logger: Logger & LevelControl,
): Promise<void> {
  const handle = await startAgent(config, { logger, levels: logger });
  logger.info(
    { admin: handle.adminPort, metrics: handle.metricsPort, readiness: handle.readinessPort },
    'agent ready',
  );
  enableOptimizingCompiler(config.turbofan, logger);
  await Promise.race([runUntilSignalled(handle, logger), stopOnThreadFailure(handle, logger)]);
}

/** A data-path thread stopped on its own: the agent exits with this code after its drain. */
export const THREAD_FAILURE_EXIT_CODE = 70;

/**
 * A failed data-path thread took its listeners with it, so the agent drains, stops and exits
 * with THREAD_FAILURE_EXIT_CODE for its supervisor (systemd's Restart=on-failure, the
 * DaemonSet) to start it again.
 */
export async function stopOnThreadFailure(handle: AgentHandle, logger: Logger): Promise<void> {
  const err = await handle.threadFailed;
  logger.error(
    { err: describeError(err) },
    'the agent stops: a data-path thread is gone; its supervisor starts it again',
  );
  process.exitCode = THREAD_FAILURE_EXIT_CODE;
  await handle
    .close()
    .catch((closeErr: unknown) =>
      logger.error({ err: describeError(closeErr) }, 'shutdown failed'),
    );
}
