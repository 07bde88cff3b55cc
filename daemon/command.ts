/**
 * Running external programs (ip, iptables, CNI plugins) with a timeout and errors that name
 * the command, its exit status and what it printed. Async for normal work; sync for teardown
 * paths that must also work from signal and exit handlers.
 */
import { spawn, spawnSync } from 'node:child_process';
import { MeshdError } from './errors.js';

export interface RunOptions {
  /** Bytes written to the program's stdin. */
  input?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  /** Exit statuses that count as success besides 0. */
  okStatuses?: number[];
}

export interface RunResult {
  status: number;
  stdout: string;
  stderr: string;
}

const DEFAULT_TIMEOUT_MS = 30_000;
const MAX_OUTPUT_BYTES = 4 * 1024 * 1024;

export class CommandError extends MeshdError {
  readonly argv: readonly string[];
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;

  constructor(argv: readonly string[], result: Partial<RunResult> & { reason: string }) {
    const output = (result.stderr || result.stdout || '').trim().slice(0, 2000);
    super('MESHD_E_COMMAND', `${argv.join(' ')}: ${result.reason}${output ? `: ${output}` : ''}`);
    this.argv = argv;
    this.status = result.status ?? null;
    this.stdout = result.stdout ?? '';
    this.stderr = result.stderr ?? '';
  }
}

function check(argv: readonly string[], result: RunResult, okStatuses: number[]): RunResult {
  if (result.status === 0 || okStatuses.includes(result.status)) return result;
  throw new CommandError(argv, { ...result, reason: `exited with status ${result.status}` });
}

export function run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const [file, ...args] = argv;
  if (!file) throw new TypeError('run: empty argv');
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env: options.env ?? process.env, stdio: 'pipe' });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.on('error', (cause) => {
      clearTimeout(timer);
      reject(new CommandError(argv, { reason: `could not start: ${cause.message}` }));
    });
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      const result = {
        status: status ?? -1,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      };
      if (timedOut) {
        reject(new CommandError(argv, { ...result, reason: `timed out after ${timeoutMs} ms` }));
      } else if (signal) {
        reject(new CommandError(argv, { ...result, reason: `killed by ${signal}` }));
      } else {
        try {
          resolve(check(argv, result, options.okStatuses ?? []));
        } catch (e) {
          reject(e);
        }
      }
    });
    child.stdin.on('error', () => {}); // a program that exits without reading stdin is not an error here
    child.stdin.end(options.input ?? '');
  });
}

export function runSync(argv: readonly string[], options: RunOptions = {}): RunResult {
  const [file, ...args] = argv;
  if (!file) throw new TypeError('runSync: empty argv');
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const r = spawnSync(file, args, {
    env: options.env ?? process.env,
    input: options.input ?? '',
    timeout: timeoutMs,
    maxBuffer: MAX_OUTPUT_BYTES,
    encoding: 'utf8',
  });
  const result = { status: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  if (r.error) {
    const reason =
      (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT'
        ? `timed out after ${timeoutMs} ms`
        : `could not start: ${r.error.message}`;
    throw new CommandError(argv, { ...result, reason });
  }
  if (r.signal) throw new CommandError(argv, { ...result, reason: `killed by ${r.signal}` });
  return check(argv, result, options.okStatuses ?? []);
}
