/** Connecting meshctl to the registry: servers tried in order until one answers. */
import type { Command } from 'commander';
import { MeshdError } from '../daemon/errors.js';
import { ControlPlaneCallError, grpc, RegistryClient } from '../daemon/proto/index.js';
import { loadAdminCredentials } from './client.js';
import type { ConnectionFlags } from './config.js';
import { connectionOrLab } from './lab-context.js';

export function addConnectionOptions(command: Command): Command {
  return command
    .option(
      '--config <file>',
      'meshctl config file (default $MESHCTL_CONFIG or ~/.meshd/config.yaml)',
    )
    .option('--server <host:port[,host:port]>', 'meshd server address(es), tried in order')
    .option('--ca-dir <dir>', 'CA directory with admin.pem, admin.key, bundle.pem');
}

/** Runs `fn` against the first server that is reachable; other errors are final. */
export async function withRegistry<T>(
  flags: ConnectionFlags,
  fn: (client: RegistryClient) => Promise<T>,
): Promise<T> {
  const { servers, caDir } = connectionOrLab(flags);
  const creds = loadAdminCredentials(caDir);
  let last: unknown;
  for (const server of servers) {
    const client = new RegistryClient({ ...creds, server });
    try {
      return await fn(client);
    } catch (err) {
      last = err;
      const unreachable =
        err instanceof ControlPlaneCallError && err.status === grpc.status.UNAVAILABLE;
      if (!unreachable) throw err;
    } finally {
      client.close();
    }
  }
  throw last ?? new MeshdError('MESHD_E_CONTROL_PLANE', 'no meshd server address configured');
}
