/** `meshctl token create`: one-time join tokens for new nodes (made by meshd server). */
import { type Command, InvalidArgumentError } from 'commander';
import { parse, showDuration } from '../daemon/config.js';
import { DEFAULT_TIMEOUT_MS } from '../daemon/proto/index.js';
import { defaultCaDir, defaultServer, IdentityClient, loadAdminCredentials } from './client.js';

const durationArg = (value: string): number => {
  try {
    return parse.durationMs(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
};

const nodeArg = (value: string): string => {
  try {
    return parse.dnsLabel(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
};

interface CreateOptions {
  node: string;
  ttl: number;
  server: string;
  caDir: string;
  timeout: number;
}

export function registerTokenCommands(program: Command): void {
  const token = program.command('token').description('one-time join tokens for new nodes');

  token
    .command('create')
    .description(
      'make a one-time join token for a node (prints only the token on stdout; expiry on stderr)',
    )
    .requiredOption('--node <name>', 'the node that will join (a DNS label)', nodeArg)
    .option('--ttl <duration>', 'how long the token stays valid (1m to 7d)', durationArg, 3_600_000)
    .option('--server <host:port>', 'meshd server (env MESHCTL_SERVER)', defaultServer())
    .option(
      '--ca-dir <dir>',
      'CA directory with admin.pem, admin.key, bundle.pem (env MESHCTL_CA_DIR)',
      defaultCaDir(),
    )
    .option('--timeout <duration>', 'deadline of the call', durationArg, DEFAULT_TIMEOUT_MS)
    .action(async (opts: CreateOptions) => {
      const client = new IdentityClient({
        ...loadAdminCredentials(opts.caDir),
        server: opts.server,
        timeoutMs: opts.timeout,
      });
      try {
        const created = await client.createJoinToken({
          node: opts.node,
          ttlSeconds: Math.ceil(opts.ttl / 1000),
        });
        process.stdout.write(`${created.token}\n`);
        const expires = new Date(created.expiresAtUnix * 1000).toISOString();
        process.stderr.write(
          `join token for node ${opts.node}, valid once until ${expires} (${showDuration(opts.ttl)})\n`,
        );
      } finally {
        client.close();
      }
    });
}
