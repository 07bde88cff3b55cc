/** `meshctl check`: is the mesh healthy? √ ‼ × per check, a hint for each problem. */
import type { Command } from 'commander';
import { type CheckResult, gatherFacts, runChecks } from './check/index.js';
import { addConnectionOptions } from './connect.js';
import { formatOutput, type OutputFormat, parseOutputFormat } from './output.js';

const MARK = { ok: '√', warn: '‼', fail: '×' } as const;

export function registerCheckCommand(program: Command): void {
  addConnectionOptions(
    program
      .command('check')
      .description(
        'check the mesh: servers, CA and trust bundle, agents, clocks, kernel features, capture, certificates, waypoints, policies',
      )
      .option('-o, --output <format>', 'table, json or yaml', parseOutputFormat, 'table')
      .option(
        '--monitoring-port <port>',
        "the servers' monitoring port (readiness)",
        (v) => Number(v),
        15014,
      ),
  ).action(async (opts: Parameters<typeof gatherFacts>[0] & { output: OutputFormat }) => {
    const results = runChecks(await gatherFacts(opts));
    console.log(formatOutput(opts.output, results, () => renderChecks(results)));
    if (results.some((r) => r.status === 'fail')) process.exitCode = 1;
  });
}

export function renderChecks(results: CheckResult[]): string {
  const lines: string[] = [];
  let area = '';
  for (const r of results) {
    if (r.check !== area) {
      area = r.check;
      lines.push(area);
    }
    lines.push(`  ${MARK[r.status]} ${r.subject}: ${r.message}`);
    if (r.hint && r.status !== 'ok') lines.push(`      hint: ${r.hint}`);
  }
  const count = (s: CheckResult['status']) => results.filter((r) => r.status === s).length;
  lines.push(
    '',
    `${count('ok')} passed, ${count('warn')} warning${count('warn') === 1 ? '' : 's'}, ${count('fail')} failed`,
  );
  return lines.join('\n');
}
