import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Command } from 'commander';
import { bashCompletion, completionTree, rootOf, zshCompletion } from '../../ctl/install/index.js';
import { packageRoot } from '../../daemon/paths.js';

const meshctl = join(packageRoot(), 'dist/ctl/main.js');
const scratch = mkdtempSync(join(tmpdir(), 'meshd-completion-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

function meshctlOutput(args: string[]): string {
  const r = spawnSync(process.execPath, [meshctl, ...args], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

let scripts = 0;
/**
 * What bash offers for `line` (the cursor at its end): the script is sourced in a fresh
 * `bash`, COMP_WORDS/COMP_CWORD set as readline would, the completion function called.
 */
function bashCompletes(script: string, line: string, fn = '_meshctl'): string[] {
  const file = join(scratch, `completion-${++scripts}.bash`);
  writeFileSync(file, script);
  const words = line.split(' ');
  const program = [
    `source ${JSON.stringify(file)}`,
    `COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')})`,
    `COMP_CWORD=${words.length - 1}`,
    `COMP_LINE=${JSON.stringify(line)}`,
    `COMP_POINT=${line.length}`,
    fn,
    // biome-ignore lint/suspicious/noTemplateCurlyInString: bash's syntax
    'printf "%s\\n" "${COMPREPLY[@]}"',
  ].join('\n');
  const r = spawnSync('bash', ['--norc', '--noprofile', '-c', program], {
    encoding: 'utf8',
    timeout: 10_000,
  });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, '', `bash complained about the script:\n${r.stderr}`);
  return r.stdout.split('\n').filter((w) => w !== '');
}

test('meshctl completion bash: commands, nested groups and long options complete', () => {
  const script = meshctlOutput(['completion', 'bash']);
  const complete = (line: string) => bashCompletes(script, line);
  assert.ok(complete('meshctl la').includes('lab'), complete('meshctl la').join(' '));
  assert.ok(complete('meshctl la').every((w) => w.startsWith('la')));
  for (const sub of ['up', 'down', 'status', 'exec']) {
    assert.ok(complete('meshctl lab ').includes(sub), `lab ${sub}`);
  }
  assert.ok(complete('meshctl agent ').includes('workloads'));
  assert.ok(complete('meshctl install ').includes('systemd'));
  assert.ok(complete('meshctl get --').includes('--output'));
  assert.ok(complete('meshctl get --').includes('--namespace'));
  assert.deepEqual(complete('meshctl lab up --no-'), ['--no-demo', '--no-mesh']);
  assert.deepEqual(complete('meshctl install systemd --ro'), ['--root', '--role']);
  assert.deepEqual(complete('meshctl completion '), ['bash', 'zsh']);
  // The value of an option is not a command: after `-o json` the command is still `get`.
  assert.ok(complete('meshctl get -o json --na').includes('--namespace'));
  assert.ok(complete('meshctl --version lab ').includes('up'));
  // A value is left to bash's default (file name) completion, and so is everything after --.
  assert.deepEqual(complete('meshctl apply -f '), []);
  assert.deepEqual(complete('meshctl lab exec n1-w1 -- cu'), []);
});

test('bash: --opt=value, which bash splits at "=", is skipped as one option', () => {
  const script = meshctlOutput(['completion', 'bash']);
  // readline's COMP_WORDBREAKS makes `--output=json` three words: --output, =, json.
  assert.ok(bashCompletes(script, 'meshctl get --output = json --na').includes('--namespace'));
  assert.deepEqual(bashCompletes(script, 'meshctl get --output = '), []);
});

test('the script follows the program tree it is given: new commands need no change here', () => {
  const program = new Command('fleet').option('-v, --verbose', 'more output');
  const pool = program.command('pool').description('node pools');
  const nodes = pool.command('nodes').description('nodes of a pool');
  nodes.command('drain').option('--grace <seconds>', 'how long').option('--force', 'now');
  nodes.command('list').option('-o, --output <format>', 'table or json');
  program.command('status');
  // From any command up to its program, as `meshctl completion` does at action time.
  assert.equal(rootOf(nodes.commands[0] as Command), program);
  const tree = completionTree(program);
  assert.deepEqual(
    tree.map((n) => n.path.join(' ')),
    ['', 'pool', 'pool nodes', 'pool nodes drain', 'pool nodes list', 'status'],
  );
  const script = bashCompletion(program);
  assert.match(script, /^complete -o default -F _fleet fleet$/m);
  const complete = (line: string) => bashCompletes(script, line, '_fleet');
  assert.deepEqual(complete('fleet '), ['pool', 'status', 'help']);
  assert.deepEqual(complete('fleet pool nodes '), ['drain', 'list', 'help']);
  assert.deepEqual(complete('fleet -v pool nodes drain --'), ['--grace', '--force', '--help']);
  assert.deepEqual(complete('fleet pool nodes drain --grace 10 --f'), ['--force']);
  assert.deepEqual(complete('fleet --'), ['--verbose', '--help']);
});

test('meshctl completion zsh: a #compdef function with every command and nested group', () => {
  const script = meshctlOutput(['completion', 'zsh']);
  assert.match(script, /^#compdef meshctl\n/);
  assert.match(script, /^_meshctl\(\) \{$/m);
  assert.match(script, /^ {2}compdef _meshctl meshctl$/m);
  const spec = (path: string) => {
    const line = script.split('\n').find((l) => l.startsWith(`    '${path}') `));
    assert.ok(line, `no entry for "${path}"`);
    return line;
  };
  for (const command of ['lab', 'get', 'apply', 'install', 'agent', 'completion']) {
    assert.match(spec(''), new RegExp(`'${command}:`), command);
  }
  for (const sub of ['up', 'down', 'status', 'exec'])
    assert.match(spec('lab'), new RegExp(`'${sub}:`));
  assert.match(spec('agent'), /'workloads:/);
  assert.match(spec('get'), /'--output:table, json or yaml'/);
  assert.match(spec('get'), /vopts=\(.*-o --output/);
  // Descriptions keep their text: ":" escaped for _describe, "'" for the shell.
  assert.match(spec(''), /'ca:the mesh'\\''s certificate authority'/);
  const zsh = spawnSync('zsh', ['--version'], { encoding: 'utf8' });
  if (zsh.error === undefined) {
    const file = join(scratch, '_meshctl');
    writeFileSync(file, script);
    const parsed = spawnSync('zsh', ['-n', file], { encoding: 'utf8' });
    assert.equal(parsed.status, 0, parsed.stderr);
  }
});

test('zsh and bash scripts come from the same tree', () => {
  const program = new Command('fleet');
  program.command('pool').option('--size <n>', 'nodes: how many');
  assert.match(zshCompletion(program), /'pool'\) cmds=\(\) opts=\('--size:nodes\\: how many' /);
  assert.match(bashCompletion(program), /'pool'\) cmds='' opts='--size --help' vopts='--size' ;;/);
});
