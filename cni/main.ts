/**
 * meshd-cni entry, executed by the container runtime: reads stdin (bounded) and the CNI
 * environment, runs the verb, prints exactly one JSON document (or nothing) on stdout and exits
 * 0 or 1. Logs go to the configured log file, never to stdout. It imports only cni/ files that
 * start fast (not cni/index.ts, which pulls in the capture code and the daemon).
 */

import { type CniOutcome, cniErrorOutcome, runCni } from './plugin.js';
import { unixSocketSend } from './plugin-agent.js';
import { CNI_ERROR } from './plugin-config.js';
import { appendLog, readStdin } from './plugin-io.js';

let answered = false;

function answer(outcome: CniOutcome): void {
  if (answered) return;
  answered = true;
  const exit = () => process.exit(outcome.exitCode);
  if (outcome.stdout === '') exit();
  else process.stdout.write(outcome.stdout, exit);
}

function crashed(err: unknown): void {
  answer(
    cniErrorOutcome(
      CNI_ERROR.internal,
      `meshd-cni failed unexpectedly: ${err instanceof Error ? err.message : String(err)}`,
      'this is a bug in meshd-cni',
    ),
  );
}

process.on('uncaughtException', crashed);
process.on('unhandledRejection', crashed);

const input = await readStdin(process.stdin);
answer(
  await runCni({
    env: process.env,
    stdin: 'text' in input ? input.text : '',
    ...('problem' in input ? { stdinProblem: input.problem } : {}),
    send: unixSocketSend,
    log: appendLog,
  }),
);
