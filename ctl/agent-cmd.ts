/**
 * `meshctl agent workloads|services|policies|certs|connections`: one agent's view, read from
 * its admin endpoint (by --node, --lab, --admin; see agent-admin.ts) or from a saved
 * /config_dump (-f). Tables for people, -o json|yaml for scripts (with node and revision).
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { CertificateRow, ConnectionInfo } from '../daemon/agent/index.js';
import { MeshdError } from '../daemon/errors.js';
import { type AgentTarget, agentAdminGet } from './agent-admin.js';
import {
  connectionsTable,
  nodeNameOf,
  parseDump,
  policiesTable,
  policyRows,
  serviceRows,
  servicesTable,
  sortConnections,
  stateOf,
  workloadRows,
  workloadsTable,
} from './agent-tables.js';
import { certificateRowsOf, certsTable } from './certs-cmd.js';
import { formatOutput, type OutputFormat, parseOutputFormat } from './output.js';

interface AgentOptions extends AgentTarget {
  file?: string;
  output: OutputFormat;
}

/** What one view prints: the node, the registry revision where it has one, and the rows. */
interface Report<R> {
  node: string;
  revision?: number;
  rows: R[];
}

interface View<R> {
  name: string;
  description: string;
  /** The admin path read when no -f is given. */
  path: string;
  /** The key of the rows in -o json|yaml. */
  key: string;
  read(value: unknown, source: string, target: AgentTarget): Report<R>;
  table(rows: R[]): string;
}

function fromDump<R>(
  rowsOf: (dump: ReturnType<typeof parseDump>, state: ReturnType<typeof stateOf>) => R[],
) {
  return (value: unknown, source: string): Report<R> => {
    const dump = parseDump(value, source);
    return {
      node: nodeNameOf(dump),
      revision: dump.registry.revision,
      rows: rowsOf(dump, stateOf(dump, source)),
    };
  };
}

const workloads: View<ReturnType<typeof workloadRows>[number]> = {
  name: 'workloads',
  description: "the node's workloads: addresses, identity, netns and whether they are captured",
  path: '/config_dump',
  key: 'workloads',
  read: fromDump((dump, state) => workloadRows(dump, state)),
  table: workloadsTable,
};

const services: View<ReturnType<typeof serviceRows>[number]> = {
  name: 'services',
  description: 'the services the agent knows: addresses, ports and how many endpoints',
  path: '/config_dump',
  key: 'services',
  read: fromDump((_dump, state) => serviceRows(state)),
  table: servicesTable,
};

const policies: View<ReturnType<typeof policyRows>[number]> = {
  name: 'policies',
  description: 'the AuthorizationPolicies and PeerAuthentications the agent enforces from',
  path: '/config_dump',
  key: 'policies',
  read: fromDump((_dump, state) => policyRows(state)),
  table: policiesTable,
};

/** The node's name from its own certificate (`spiffe://<td>/node/<name>`), if listed. */
const nodeOfCerts = (rows: CertificateRow[]) =>
  /\/node\/([^/]+)$/.exec(rows.find((r) => r.identity.includes('/node/'))?.identity ?? '')?.[1];

const certs: View<CertificateRow> = {
  name: 'certs',
  description: 'the certificates the agent holds: identity, serial, validity, issuer',
  path: '/certs',
  key: 'certificates',
  read(value, source, target) {
    const rows = certificateRowsOf(value, source);
    const dump = value as { node?: unknown; nodeName?: unknown };
    const named =
      typeof dump.node === 'string'
        ? nodeNameOf({ node: dump.node, nodeName: dump.nodeName as string | undefined })
        : undefined;
    return { node: named ?? nodeOfCerts(rows) ?? target.node ?? '', rows };
  },
  table: certsTable,
};

const connections: View<ConnectionInfo> = {
  name: 'connections',
  description:
    'live connections the agent proxies: direction, path, both ends and identities, bytes, age',
  path: '/connections',
  key: 'connections',
  read(value, source) {
    const v = (value ?? {}) as { node?: unknown; nodeName?: unknown; connections?: unknown };
    if (!Array.isArray(v.connections)) {
      throw new MeshdError('MESHD_E_AGENT_ADMIN', `${source} holds no "connections" list`, {
        hint: "expected the JSON of the agent's /connections or /config_dump (agents from before /connections do not list them)",
      });
    }
    const node =
      typeof v.nodeName === 'string'
        ? v.nodeName
        : typeof v.node === 'string'
          ? nodeNameOf({ node: v.node })
          : '';
    return { node, rows: sortConnections(v.connections as ConnectionInfo[]) };
  },
  table: connectionsTable,
};

function readSaved(file: string): unknown {
  const name = file === '-' ? 'stdin' : file;
  let text: string;
  try {
    text = readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (cause) {
    throw new MeshdError('MESHD_E_AGENT_ADMIN', `cannot read ${name}`, { cause });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (cause) {
    throw new MeshdError('MESHD_E_AGENT_ADMIN', `${name} is not JSON`, {
      cause,
      hint: 'pass the JSON the agent serves at /config_dump',
    });
  }
}

function render<R>(view: View<R>, report: Report<R>, output: OutputFormat): string {
  const doc = {
    node: report.node,
    ...(report.revision === undefined ? {} : { revision: report.revision }),
    [view.key]: report.rows,
  };
  return formatOutput(output, doc, () => view.table(report.rows));
}

function register<R>(agent: Command, view: View<R>): void {
  agent
    .command(view.name)
    .description(view.description)
    .option('--node <name>', "the agent's node: a lab's node, or this host's (default: this host)")
    .option('--lab <id>', 'the lab whose node --node names, when several labs run')
    .option('--admin <host:port>', 'the admin endpoint itself (default 127.0.0.1:15000)')
    .option('-f, --file <file>', `read a saved /config_dump JSON (or ${view.path}; - for stdin)`)
    .option('-o, --output <format>', 'table, json or yaml', parseOutputFormat, 'table')
    .action(async (opts: AgentOptions) => {
      const target: AgentTarget = { node: opts.node, lab: opts.lab, admin: opts.admin };
      const source = opts.file
        ? opts.file === '-'
          ? 'stdin'
          : opts.file
        : `${view.path} of ${opts.admin ?? opts.node ?? 'this host'}`;
      const value = opts.file ? readSaved(opts.file) : await agentAdminGet(target, view.path);
      console.log(render(view, view.read(value, source, target), opts.output));
    });
}

export function registerAgentCommands(program: Command): void {
  const agent = program
    .command('agent')
    .description(
      "one agent's view, from its admin endpoint (127.0.0.1:15000 on its host) or a saved /config_dump",
    );
  register(agent, workloads);
  register(agent, services);
  register(agent, policies);
  register(agent, certs);
  register(agent, connections);
}
