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

/** Resolves with the first stderr/stdout line matching `pattern`; rejects on exit or timeout. */
export function waitForOutput(
  child: ChildProcess,
  pattern: RegExp,
  timeoutMs = 15_000,
): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffer = '';
    const timer = setTimeout(
      () => done(new Error(`no output matching ${pattern} within ${timeoutMs} ms:\n${buffer}`)),
      timeoutMs,
    );
    const onData = (chunk: Buffer) => {
      buffer += chunk.toString();
      const line = buffer.split('\n').find((l) => pattern.test(l));
      if (line !== undefined) done(undefined, line);
    };
    const onExit = (code: number | null) =>
      done(new Error(`exited (${code}) before printing ${pattern}:\n${buffer}`));
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', onExit);
    function done(err?: Error, line?: string) {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.stderr?.off('data', onData);
      child.off('exit', onExit);
      if (err) reject(err);
      else resolve(line ?? '');
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

/** Polls `fn` every `everyMs` (200) ms until `ok` holds for its value; fails after `timeoutMs`, showing the last. */
export async function eventually<T>(
  what: string,
  fn: () => Promise<T>,
  ok: (v: T) => boolean,
  timeoutMs = 15_000,
  everyMs = 200,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn().catch(() => undefined as T);
    if (value !== undefined && ok(value)) return value;
    if (Date.now() > deadline)
      throw new Error(`timed out: ${what} (last: ${JSON.stringify(value)})`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * Appends each complete line a stream writes to `into`; a line split across chunks is kept
 * until its end arrives (a log search must not miss a line cut in two).
 */
export function collectLines(
  stream: NodeJS.ReadableStream | null | undefined,
  into: string[],
): void {
  let partial = '';
  stream?.on('data', (chunk: Buffer) => {
    const parts = (partial + chunk.toString()).split('\n');
    partial = parts.pop() ?? '';
    for (const line of parts) if (line) into.push(line);
  });
}
