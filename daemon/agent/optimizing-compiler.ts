/**
 * Turns V8's optimizing compiler (Turbofan) on once the agent is ready, when the operator asks
 * for it (MESHD_AGENT_TURBOFAN=on-ready).
 *
 * bin/meshd starts the agent with --no-opt. Turned on from the start, Turbofan compiles
 * start-up code that never runs again and pulls its own code pages of the node binary into the
 * process for good (~5 MiB of the idle agent). Turned on here, only code that gets hot under
 * traffic is compiled by it: less CPU per request and per new connection, for more memory under
 * load (docs/benchmarks.md, "Turbofan"). V8 reads the flag at each tier-up decision, so setting
 * it at run time applies to every function that gets hot later (a unit test checks that this
 * still holds on the pinned Node).
 */
import { setFlagsFromString } from 'node:v8';
import type { TurbofanMode } from '../config.js';
import type { Logger } from '../telemetry/index.js';

export function enableOptimizingCompiler(mode: TurbofanMode, logger: Logger): void {
  if (mode === 'off') return;
  setFlagsFromString('--turbofan');
  logger.info({ turbofan: mode }, 'optimizing compiler on for code that gets hot');
}
