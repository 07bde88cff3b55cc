/** Output shared by meshctl commands: aligned tables with UPPERCASE headers, or JSON. */

export type OutputFormat = 'table' | 'json';

export function parseOutputFormat(value: string): OutputFormat {
  if (value === 'table' || value === 'json') return value;
  throw new Error(`unknown output format "${value}" (use table or json)`);
}

/** Rows are printed in the order given; callers sort so the output is stable. */
export function formatTable(headers: string[], rows: string[][]): string {
  const all = [headers.map((h) => h.toUpperCase()), ...rows];
  const widths = headers.map((_, col) => Math.max(...all.map((row) => (row[col] ?? '').length)));
  return all
    .map((row) =>
      row
        .map((cell, col) => (col === row.length - 1 ? cell : cell.padEnd(widths[col] ?? 0)))
        .join('   ')
        .trimEnd(),
    )
    .join('\n');
}
