/** `meshd waypoint` as a process: start, then drain and stop on SIGTERM/SIGINT. */
import type { WaypointConfig } from '../config.js';
import { runUntilSignalled } from '../lifecycle.js';
import type { Logger } from '../telemetry/index.js';
import { startWaypoint } from './app.js';

export async function runWaypoint(config: Readonly<WaypointConfig>, logger: Logger): Promise<void> {
  const handle = await startWaypoint(config, { logger });
  await runUntilSignalled(handle, logger);
}
