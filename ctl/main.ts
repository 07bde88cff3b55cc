/** meshctl: the operator's command line. */
import { Command } from 'commander';
import { describeError } from '../daemon/errors.js';
import { assertSupportedRuntime } from '../daemon/runtime.js';
import { registerLabCommands } from './lab-cmd.js';

export function buildProgram(): Command {
  const program = new Command('meshctl')
    .description('operate a meshd service mesh')
    .version(process.env.npm_package_version ?? '0.1.0')
    .showHelpAfterError()
    .enablePositionalOptions();
  registerLabCommands(program);
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
