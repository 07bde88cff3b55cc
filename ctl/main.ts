/** meshctl: the operator's command line. */
import { Command } from 'commander';
import { describeError } from '../daemon/errors.js';
import { meshdVersion } from '../daemon/paths.js';
import { assertSupportedRuntime } from '../daemon/runtime.js';
import { registerAgentCommands } from './agent-cmd.js';
import { registerCaCommands } from './ca-cmd.js';
import { registerCertsCommand } from './certs-cmd.js';
import { registerCheckCommand } from './check-cmd.js';
import { registerCompletionCommands } from './completion-cmd.js';
import { registerConfigCommands } from './config-cmd.js';
import { registerEnrollCommands } from './enroll-cmd.js';
import { registerInstallCommands } from './install-cmd.js';
import { registerLabCommands } from './lab-cmd.js';
import { registerResourceCommands } from './resource-cmd.js';
import { registerTokenCommands } from './token-cmd.js';
import { registerWaypointCommands } from './waypoint-cmd.js';
import { registerWhyCommand } from './why-cmd.js';

export function buildProgram(): Command {
  const program = new Command('meshctl')
    .description('operate a meshd service mesh')
    .version(meshdVersion())
    .showHelpAfterError()
    .enablePositionalOptions();
  registerResourceCommands(program);
  registerEnrollCommands(program);
  registerWhyCommand(program);
  registerCheckCommand(program);
  registerWaypointCommands(program);
  registerCaCommands(program);
  registerConfigCommands(program);
  registerCertsCommand(program);
  registerLabCommands(program);
  registerTokenCommands(program);
  registerAgentCommands(program);
  registerInstallCommands(program);
  registerCompletionCommands(program);
  return program;
}

async function main(): Promise<void> {
  assertSupportedRuntime();
  await buildProgram().parseAsync(process.argv);
}

main().catch((err: unknown) => {
  console.error(`meshctl: ${describeError(err)}`);
  process.exit(1);
});
