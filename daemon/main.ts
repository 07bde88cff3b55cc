/** meshd: one binary, one role per process (`server`, `agent`, `waypoint`). */
import { Command } from 'commander';
import {
  type AgentConfig,
  type Env,
  loadAgentConfig,
  loadServerConfig,
  loadWaypointConfig,
  type ServerConfig,
  type WaypointConfig,
} from './config.js';
import { describeError, MeshdError } from './errors.js';
import { assertSupportedRuntime } from './runtime.js';
import { createJsonLogger } from './telemetry/index.js';

/** Secrets (join tokens) never reach a terminal or a log. */
function redactSecrets(key: string, value: unknown): unknown {
  return /token|secret|password/i.test(key) && typeof value === 'string' ? '<redacted>' : value;
}

/** A flag that sets a MESHD_* variable (flags win over the environment). */
interface FlagForVariable {
  flag: string;
  variable: string;
  description: string;
}

function roleCommand<C extends object>(
  name: string,
  tracking: string,
  load?: (env: Env) => C,
  start?: (config: C) => Promise<void>,
  flags: FlagForVariable[] = [],
): Command {
  const command = new Command(name).option(
    '--print-config',
    'print the resolved configuration (from MESHD_* variables) and exit',
  );
  for (const f of flags) command.option(f.flag, `${f.description} (sets ${f.variable})`);
  return command.action(async (opts: Record<string, string | boolean | undefined>) => {
    const env: Record<string, string | undefined> = { ...process.env };
    for (const f of flags) {
      const key = command.options.find((o) => o.flags === f.flag)?.attributeName() ?? '';
      if (typeof opts[key] === 'string') env[f.variable] = opts[key] as string;
    }
    const config = load ? load(env) : ({} as C);
    if (opts.printConfig === true) {
      console.log(JSON.stringify(config, redactSecrets, 2));
      return;
    }
    if (start) {
      await start(config);
      process.exit(); // process.exitCode when a role set one (the agent: 70 after a thread failed)
    }
    throw new MeshdError('MESHD_E_NOT_BUILT', `the ${name} role is not part of this build yet`, {
      hint: tracking,
    });
  });
}

/*
 * Each role's code is imported when that role starts, not at the top: an agent never loads
 * the control plane's modules (store, CA, registry) and a server never loads the data path's.
 * Every module a process loads stays resident (docs/benchmarks.md, "Agent memory").
 */
async function startServerRole(config: Readonly<ServerConfig>): Promise<void> {
  const logger = createJsonLogger({ level: config.logLevel, base: { role: 'server' } });
  const { runServer } = await import('./server/index.js');
  await runServer(config, logger);
}

async function startAgentRole(config: Readonly<AgentConfig>): Promise<void> {
  const { runAgent } = await import('./agent/index.js');
  const logger = createJsonLogger({
    level: config.logLevel,
    base: { role: 'agent', node: config.nodeName },
  });
  await runAgent(config, logger);
}

async function startWaypointRole(config: Readonly<WaypointConfig>): Promise<void> {
  const { runWaypoint } = await import('./waypoint/index.js');
  const logger = createJsonLogger({
    level: config.logLevel,
    base: { role: 'waypoint', waypoint: `${config.waypoint.namespace}/${config.waypoint.name}` },
  });
  await runWaypoint(config, logger);
}

async function main(): Promise<void> {
  assertSupportedRuntime();
  const program = new Command('meshd').description('meshd node proxy, control plane and waypoint');
  program.addCommand(
    roleCommand('server', '', loadServerConfig, startServerRole, [
      {
        flag: '--store <url>',
        variable: 'MESHD_STORE',
        description:
          'file:///path (default <data dir>/store) or etcd://host:port[,host:port][/prefix]',
      },
    ]).description('the control plane: CA and registry over gRPC/mTLS, join tokens, discovery'),
  );
  program.addCommand(
    roleCommand('agent', '', loadAgentConfig, startAgentRole).description(
      'the node proxy: node identity and workload certificates (capture and HBONE: issue 5)',
    ),
  );
  program.addCommand(
    roleCommand('waypoint', '', loadWaypointConfig, startWaypointRole).description(
      'the L7 proxy: one replica of a Waypoint (MESHD_WAYPOINT=<namespace>/<name>)',
    ),
  );
  await program.parseAsync(process.argv);
}

main().catch((err: unknown) => {
  console.error(`meshd: ${describeError(err)}`);
  process.exit(1);
});
