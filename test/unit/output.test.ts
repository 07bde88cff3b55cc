import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { formatTable, parseOutputFormat } from '../../ctl/output.js';

const golden = (name: string) =>
  readFileSync(new URL(`../../../test/golden/${name}`, import.meta.url), 'utf8').trimEnd();

test('tables: UPPERCASE headers, aligned columns, no trailing spaces (golden)', () => {
  const table = formatTable(
    ['name', 'kind', 'ipv4', 'netns'],
    [
      ['n1', 'node', '172.30.0.11', 'mdl-ab12cd-n1'],
      ['n1-w1', 'workload', '10.40.1.2', 'mdl-ab12cd-n1-w1'],
      ['n2-w10', 'workload', '10.40.2.11', ''],
    ],
  );
  assert.equal(table, golden('table.txt'));
});

test('output format is checked', () => {
  assert.equal(parseOutputFormat('json'), 'json');
  assert.throws(() => parseOutputFormat('xml'), /unknown output format "xml"/);
});
