/** meshd: one binary, one role per process (`server`, `agent`, `waypoint`). */
import { Command } from 'commander';
import { type Env, loadAgentConfig, loadServerConfig } from './config.js';
import { describeError, MeshdError } from './errors.js';
import { assertSupportedRuntime } from './runtime.js';

function roleCommand(name: string, tracking: string, load?: (env: Env) => object): Command {
  return new Command(name)
    .option('--print-config', 'print the resolved configuration (from MESHD_* variables) and exit')
    .action((opts: { printConfig?: boolean }) => {
      const config = load ? load(process.env) : {};
      if (opts.printConfig) {
        console.log(JSON.stringify(config, null, 2));
        return;
      }
      throw new MeshdError('MESHD_E_NOT_BUILT', `the ${name} role is not part of this build yet`, {
        hint: tracking,
      });
    });
}

async function main(): Promise<void> {
  assertSupportedRuntime();
  const program = new Command('meshd').description('meshd node proxy, control plane and waypoint');
  program.addCommand(
    roleCommand('server', 'built by issue 4 (control plane)', loadServerConfig).description(
      'the control plane',
    ),
  );
  program.addCommand(
    roleCommand('agent', 'built by issue 5 (node proxy)', loadAgentConfig).description(
      'the node proxy',
    ),
  );
  program.addCommand(
    roleCommand('waypoint', 'planned after the node proxy (DESIGN §13)').description(
      'the L7 proxy',
    ),
  );
  await program.parseAsync(process.argv);
}

main().catch((err: unknown) => {
  console.error(`meshd: ${describeError(err)}`);
  process.exit(1);
});
