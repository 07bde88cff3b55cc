/** Shared helpers for e2e tests in the netns lab. */
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Lab } from '../../ctl/lab/index.js';

export const supportScript = (name: string): string =>
  fileURLToPath(new URL(`./${name}.js`, import.meta.url));

/** Resolves once the child prints `line` on stdout; rejects on exit or after timeoutMs. */
export function waitForLine(child: ChildProcess, line: string, timeoutMs = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = '';
    let stderr = '';
    const timer = setTimeout(
      () => done(new Error(`no "${line}" within ${timeoutMs} ms: ${stderr}`)),
      timeoutMs,
    );
    const onData = (chunk: Buffer) => {
      seen += chunk.toString();
      if (seen.split('\n').includes(line)) done();
    };
    const onExit = (code: number | null) =>
      done(new Error(`exited (${code}) before "${line}": ${stderr}`));
    child.stderr?.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    child.stdout?.on('data', onData);
    child.once('exit', onExit);
    function done(err?: Error) {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.off('exit', onExit);
      if (err) reject(err);
      else resolve();
    }
  });
}

/** Starts the echo server in a workload and waits until it listens. */
export async function startEchoServer(
  lab: Lab,
  workload: string,
  port: number,
): Promise<ChildProcess> {
  const child = lab.spawn(workload, [process.execPath, supportScript('echo-server'), String(port)]);
  await waitForLine(child, 'listening');
  return child;
}

export function stop(child: ChildProcess | undefined): void {
  if (child && child.exitCode === null) child.kill('SIGTERM');
}
