/** `meshd agent` as a process: start, then stop gracefully on SIGTERM/SIGINT. */
import type { AgentConfig } from '../config.js';
import { runUntilSignalled } from '../lifecycle.js';
import type { LevelControl, Logger } from '../telemetry/index.js';
import { startAgent } from './app.js';
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
  await runUntilSignalled(handle, logger);
}
