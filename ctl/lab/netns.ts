/**
 * Namespace-level operations of the lab. Every `ip` call names a namespace (`ip -n NS` or
 * `ip netns exec NS`), so nothing here can change the host's own network namespace.
 */
import { run, runSync } from '../../daemon/command.js';

export const ipIn = (netns: string, ...args: string[]) => run(['ip', '-n', netns, ...args]);

export async function addNetns(name: string): Promise<void> {
  await run(['ip', 'netns', 'add', name]);
  await ipIn(name, 'link', 'set', 'lo', 'up');
}

export async function sysctlIn(netns: string, settings: Record<string, string | number>) {
  const pairs = Object.entries(settings).map(([k, v]) => `${k}=${v}`);
  await run(['ip', 'netns', 'exec', netns, 'sysctl', '-q', '-w', ...pairs]);
}

export function listNetns(): string[] {
  const { stdout } = runSync(['ip', 'netns', 'list']);
  return stdout
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter(Boolean);
}

export function pidsIn(netns: string): number[] {
  try {
    const { stdout } = runSync(['ip', 'netns', 'pids', netns]);
    return stdout.split(/\s+/).filter(Boolean).map(Number).filter(Number.isInteger);
  } catch {
    return []; // the namespace is already gone
  }
}

const sleepSync = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGTERM every process in the namespaces, SIGKILL whatever is left after graceMs. */
export function killProcessesIn(namespaces: string[], graceMs = 1000): void {
  const self = new Set([process.pid, process.ppid]);
  const pids = namespaces.flatMap(pidsIn).filter((pid) => !self.has(pid));
  for (const pid of pids) signal(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (pids.some(alive) && Date.now() < deadline) sleepSync(20);
  for (const pid of pids.filter(alive)) signal(pid, 'SIGKILL');
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already exited
  }
}

/** Deletes a namespace; its veths go with it. Returns an error text, or undefined. */
export function deleteNetnsSync(name: string): string | undefined {
  try {
    runSync(['ip', 'netns', 'del', name]);
    return undefined;
  } catch (err) {
    return listNetns().includes(name) ? (err as Error).message : undefined;
  }
}
