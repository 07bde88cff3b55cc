/** `meshctl certs`: the certificates one agent holds, from its admin endpoint or a saved dump. */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { CertificateRow } from '../daemon/agent/index.js';
import { MeshdError } from '../daemon/errors.js';
import { type AgentTarget, agentAdminGet } from './agent-admin.js';
import { formatOutput, formatTable, type OutputFormat, parseOutputFormat } from './output.js';

export function registerCertsCommand(program: Command): void {
  program
    .command('certs')
    .description('the certificates an agent holds: identity, serial, validity, issuer')
    .option(
      '--admin <host:port>',
      "the agent's admin endpoint (default 127.0.0.1:15000: run on the agent's host)",
    )
    .option('--node <name>', "the agent's node: a lab's node, or this host's")
    .option('--lab <id>', 'the lab whose node --node names, when several labs run')
    .option('-f, --file <file>', 'read a saved /certs or /config_dump JSON instead')
    .option('-o, --output <format>', 'table, json or yaml', parseOutputFormat, 'table')
    .action(async (opts: AgentTarget & { file?: string; output: OutputFormat }) => {
      const rows = opts.file
        ? certificateRowsOf(JSON.parse(readFileSync(opts.file, 'utf8')), opts.file)
        : certificateRowsOf(await agentAdminGet(opts, '/certs'), '/certs');
      console.log(formatOutput(opts.output, rows, () => certsTable(rows)));
    });
}

export function certsTable(rows: CertificateRow[]): string {
  const sorted = [...rows].sort(
    (a, b) => rank(a) - rank(b) || a.identity.localeCompare(b.identity),
  );
  return formatTable(
    ['identity', 'state', 'serial', 'not before', 'not after', 'issuer'],
    sorted.map((r) => [
      r.identity,
      r.state,
      r.serial ?? '-',
      r.notBefore ?? '-',
      r.notAfter ?? '-',
      r.issuer ?? '-',
    ]),
  );
}

/** The node's own certificate first, then workloads. */
const rank = (row: CertificateRow) => (row.identity.includes('/node/') ? 0 : 1);

/** The certificate list of a /certs answer (a list) or a /config_dump (its `certificates`). */
export function certificateRowsOf(value: unknown, source: string): CertificateRow[] {
  const rows = Array.isArray(value) ? value : (value as { certificates?: unknown })?.certificates;
  if (!Array.isArray(rows)) {
    throw new MeshdError('MESHD_E_AGENT_ADMIN', `${source} holds no certificate list`, {
      hint: "expected the JSON of the agent's /certs or /config_dump",
    });
  }
  return rows as CertificateRow[];
}
