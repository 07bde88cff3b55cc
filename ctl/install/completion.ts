/**
 * Shell completion scripts generated from a commander program tree: every command path
 * (`lab`, `lab up`, `agent workloads`, …) with its subcommands and long options, so a new
 * command or option completes without touching this file.
 */
import type { Command, Option } from 'commander';

export interface CompletionOption {
  /** Long flag (`--output`), else the short one. */
  flag: string;
  /** Every spelling (`-o`, `--output`), for skipping the value that follows. */
  spellings: string[];
  takesValue: boolean;
  description: string;
}

export interface CompletionNode {
  /** Command names from the program down, the program itself excluded ([] for the program). */
  path: string[];
  /** Subcommands; for a command without any, the choices of its first argument. */
  subcommands: { name: string; description: string }[];
  options: CompletionOption[];
}

/** The program a command belongs to: up the `parent` chain. */
export function rootOf(command: Command): Command {
  let root = command;
  while (root.parent) root = root.parent;
  return root;
}

const WORD = /^[A-Za-z0-9][A-Za-z0-9_.:-]*$/;
const FLAG = /^--?[A-Za-z0-9][A-Za-z0-9_.:-]*$/;

/** Names go into the scripts unquoted: anything but a plain word would need escaping. */
function checkWord(word: string, where: 'command' | 'option'): string {
  if (!(where === 'command' ? WORD : FLAG).test(word))
    throw new Error(`completion: ${where} ${JSON.stringify(word)} is not a plain word`);
  return word;
}

function describeOption(option: Option): CompletionOption {
  const spellings = [option.short, option.long].filter((s): s is string => !!s);
  const flag = option.long ?? option.short ?? '';
  for (const s of spellings) checkWord(s, 'option');
  return {
    flag,
    spellings,
    takesValue: option.required || option.optional,
    description: option.description,
  };
}

/** Every command of the tree, the program first, parents before children. */
export function completionTree(program: Command): CompletionNode[] {
  const help = program.createHelp();
  const nodes: CompletionNode[] = [];
  const visit = (command: Command, path: string[]) => {
    const subcommands = help.visibleCommands(command).map((c) => ({
      name: checkWord(c.name(), 'command'),
      description: c.description(),
    }));
    // A command without subcommands offers the choices of its first argument instead
    // (`completion bash|zsh`).
    const first = command.registeredArguments[0];
    if (subcommands.length === 0 && first?.argChoices) {
      for (const choice of first.argChoices) {
        subcommands.push({ name: checkWord(choice, 'command'), description: first.description });
      }
    }
    const options = help.visibleOptions(command).map(describeOption);
    nodes.push({ path, subcommands, options });
    for (const child of command.commands) {
      if (subcommands.some((s) => s.name === child.name())) visit(child, [...path, child.name()]);
    }
  };
  visit(program, []);
  return nodes;
}

const functionName = (program: Command) => `_${program.name().replace(/[^A-Za-z0-9_]/g, '_')}`;

const longFlags = (node: CompletionNode) =>
  node.options.map((o) => o.flag).filter((f) => f.startsWith('--'));

const valueSpellings = (node: CompletionNode) =>
  node.options.filter((o) => o.takesValue).flatMap((o) => o.spellings);

/** A bash script defining the completion function and registering it with `complete`. */
export function bashCompletion(program: Command): string {
  const name = program.name();
  const fn = functionName(program);
  const cases = completionTree(program).map((node) => {
    const cmds = node.subcommands.map((s) => s.name).join(' ');
    return `    '${node.path.join(' ')}') cmds='${cmds}' opts='${longFlags(node).join(' ')}' vopts='${valueSpellings(node).join(' ')}' ;;`;
  });
  return `# bash completion for ${name}, generated from its commands by \`${name} completion bash\`.
# Load it in this shell:   source <(${name} completion bash)
# or for every shell:      ${name} completion bash > /etc/bash_completion.d/${name}

# Sets cmds, opts and vopts (options that take a value) for a command path ('' = ${name}).
${fn}_spec() {
  case "$1" in
${cases.join('\n')}
    *) cmds='' opts='' vopts='' ;;
  esac
}

${fn}() {
  local cur=\${COMP_WORDS[COMP_CWORD]} prev=\${COMP_WORDS[COMP_CWORD-1]}
  local cmdpath='' word i skip=0 cmds opts vopts
  COMPREPLY=()
  for ((i = 1; i < COMP_CWORD; i++)); do
    word=\${COMP_WORDS[i]}
    # bash splits --opt=value into --opt, =, value: the value is still to be skipped.
    if [[ $word == '=' ]]; then skip=1; continue; fi
    if ((skip)); then skip=0; continue; fi
    # After --, the words belong to another program (lab exec NAME -- CMD …).
    if [[ $word == '--' ]]; then return 0; fi
    ${fn}_spec "$cmdpath"
    if [[ $word == -* ]]; then
      if [[ " $vopts " == *" $word "* ]]; then skip=1; fi
      continue
    fi
    if [[ " $cmds " == *" $word "* ]]; then cmdpath=\${cmdpath:+$cmdpath }$word; fi
  done
  # A value of an option: leave it to the default (file name) completion.
  if ((skip)) || [[ $cur == '=' || $prev == '=' ]]; then return 0; fi
  ${fn}_spec "$cmdpath"
  if [[ $cur == -* ]]; then
    mapfile -t COMPREPLY < <(compgen -W "$opts" -- "$cur")
  else
    mapfile -t COMPREPLY < <(compgen -W "$cmds" -- "$cur")
  fi
  return 0
}

complete -o default -F ${fn} ${name}
`;
}

/** `'text'` for zsh, with `:` escaped as _describe wants it. */
function zshItem(word: string, description: string): string {
  const text = `${word}:${description.replace(/\s+/g, ' ').replace(/:/g, '\\:')}`;
  return `'${text.replace(/'/g, "'\\''")}'`;
}

/** A zsh completion function file (`#compdef`), for a directory of $fpath. */
export function zshCompletion(program: Command): string {
  const name = program.name();
  const fn = functionName(program);
  const cases = completionTree(program).map((node) => {
    const cmds = node.subcommands.map((s) => zshItem(s.name, s.description)).join(' ');
    const opts = node.options
      .filter((o) => o.flag.startsWith('--'))
      .map((o) => zshItem(o.flag, o.description))
      .join(' ');
    return `    '${node.path.join(' ')}') cmds=(${cmds}) opts=(${opts}) vopts=(${valueSpellings(node).join(' ')}) ;;`;
  });
  return `#compdef ${name}
# zsh completion for ${name}, generated from its commands by \`${name} completion zsh\`.
# Install:  ${name} completion zsh > "\${fpath[1]}/_${name}"   (then start a new zsh)
# or, after compinit, in this shell:  source <(${name} completion zsh)

# Sets cmds and opts ("name:description") and vopts (options that take a value) for a command
# path ('' = ${name}).
${fn}_spec() {
  case "$1" in
${cases.join('\n')}
    *) cmds=() opts=() vopts=() ;;
  esac
}

${fn}() {
  local -a cmds opts vopts
  local cmdpath='' word i skip=0
  for ((i = 2; i < CURRENT; i++)); do
    word=\${words[i]}
    if ((skip)); then skip=0; continue; fi
    # After --, the words belong to another program (lab exec NAME -- CMD …).
    if [[ $word == -- ]]; then _files; return; fi
    ${fn}_spec "$cmdpath"
    if [[ $word == -* ]]; then
      if [[ $word != *=* ]] && (( \${vopts[(Ie)$word]} )); then skip=1; fi
      continue
    fi
    if (( \${cmds[(I)\${(b)word}:*]} )); then cmdpath=\${cmdpath:+$cmdpath }$word; fi
  done
  if ((skip)); then _files; return; fi
  ${fn}_spec "$cmdpath"
  if [[ \${words[CURRENT]} == -* ]]; then
    _describe -t options 'option' opts
  elif (( \${#cmds} )); then
    _describe -t commands 'command' cmds
  else
    _files
  fi
}

# Autoloaded from $fpath, this file is the body of ${fn}: define, then complete; sourced, register.
if [[ $funcstack[1] == ${fn} ]]; then
  ${fn} "$@"
else
  compdef ${fn} ${name}
fi
`;
}
