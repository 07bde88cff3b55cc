/** `meshctl config set|view`: the connection settings file (like a kubeconfig). */
import type { Command } from 'commander';
import { configPath, resolveConnection, writeCtlConfig } from './config.js';
import { labContext, usesLab } from './lab-context.js';

export function registerConfigCommands(program: Command): void {
  const config = program.command('config').description("meshctl's connection settings");
  config
    .command('set')
    .description('write the server address(es) and the CA directory to the config file')
    .requiredOption('--server <host:port[,host:port]>', 'meshd server address(es), tried in order')
    .requiredOption('--ca-dir <dir>', 'CA directory with admin.pem, admin.key, bundle.pem')
    .option('--config <file>', 'the file (default $MESHCTL_CONFIG or ~/.meshd/config.yaml)')
    .action((opts: { server: string; caDir: string; config?: string }) => {
      const path = configPath(opts.config);
      writeCtlConfig(path, { servers: opts.server.split(','), caDir: opts.caDir });
      console.log(`wrote ${path}`);
    });
  config
    .command('view')
    .description('show the settings meshctl would use')
    .option('--config <file>', 'the file (default $MESHCTL_CONFIG or ~/.meshd/config.yaml)')
    .action((opts: { config?: string }) => {
      const lab = usesLab({ config: opts.config }) ? labContext() : undefined;
      const resolved = lab ?? resolveConnection({ config: opts.config });
      console.log(
        `config: ${lab ? `none; using lab ${lab.id} (inside netns ${lab.netns})` : configPath(opts.config)}\nservers: ${resolved.servers.join(', ')}\ncaDir: ${resolved.caDir}`,
      );
    });
}
