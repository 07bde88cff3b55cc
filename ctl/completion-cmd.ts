/** `meshctl completion bash|zsh`: a completion script generated from meshctl's own commands. */
import { Argument, type Command } from 'commander';
import { bashCompletion, rootOf, zshCompletion } from './install/index.js';

export function registerCompletionCommands(program: Command): void {
  program
    .command('completion')
    .description('print a shell completion script (bash or zsh) for every command and option')
    .addArgument(new Argument('<shell>', 'bash or zsh').choices(['bash', 'zsh']))
    .addHelpText(
      'after',
      [
        '',
        'Load it:',
        '  source <(meshctl completion bash)                      # this bash',
        '  meshctl completion bash > /etc/bash_completion.d/meshctl',
        // biome-ignore lint/suspicious/noTemplateCurlyInString: zsh's syntax, printed as it is
        '  meshctl completion zsh > "${fpath[1]}/_meshctl"        # then start a new zsh',
      ].join('\n'),
    )
    .action((shell: 'bash' | 'zsh', _opts: unknown, command: Command) => {
      // The whole program, whatever registered it: walk up from this command.
      const root = rootOf(command);
      process.stdout.write(shell === 'bash' ? bashCompletion(root) : zshCompletion(root));
    });
}
