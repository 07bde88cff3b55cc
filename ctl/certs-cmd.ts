/** `meshctl certs`: the certificates one agent holds, from its admin endpoint or a saved dump. */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { CertificateRow } from '../daemon/agent/index.js';
import { MeshdError } from '../daemon/errors.js';
import { formatTable, type OutputFormat, parseOutputFormat } from './output.js';

const DEFAULT_ADMIN = '127.0.0.1:15000';

export function registerCertsCommand(program: Command): void {
  program
    .command('certs')
    .description('the certificates an agent holds: identity, serial, validity, issuer')
    .option(
      '--admin <host:port>',
      "the agent's admin endpoint (run on the agent's host)",
      DEFAULT_ADMIN,
    )
    .option('-f, --file <file>', 'read a saved /certs or /config_dump JSON instead')
    .option('-o, --output <format>', 'table or json', parseOutputFormat, 'table')
    .action(async (opts: { admin: string; file?: string; output: OutputFormat }) => {
      const rows = opts.file ? fromFile(opts.file) : await fromAgent(opts.admin);
      console.log(opts.output === 'json' ? JSON.stringify(rows, null, 2) : certsTable(rows));
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

function rowsOf(value: unknown, source: string): CertificateRow[] {
  const rows = Array.isArray(value) ? value : (value as { certificates?: unknown })?.certificates;
  if (!Array.isArray(rows)) {
    throw new MeshdError('MESHD_E_BAD_REQUEST', `${source} holds no certificate list`, {
      hint: "expected the JSON of the agent's /certs or /config_dump",
    });
  }
  return rows as CertificateRow[];
}

function fromFile(file: string): CertificateRow[] {
  return rowsOf(JSON.parse(readFileSync(file, 'utf8')), file);
}

async function fromAgent(admin: string): Promise<CertificateRow[]> {
  const url = `http://${admin}/certs`;
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  } catch (cause) {
    throw new MeshdError(
      'MESHD_E_CONTROL_PLANE',
      `cannot reach the agent's admin endpoint at ${url}`,
      {
        cause,
        hint: "run meshctl on the agent's host (the endpoint listens on loopback) or pass --admin",
      },
    );
  }
  if (!res.ok) throw new MeshdError('MESHD_E_CONTROL_PLANE', `${url} answered ${res.status}`);
  return rowsOf(await res.json(), url);
}
