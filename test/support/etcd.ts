/**
 * A throw-away single-member etcd for tests: Debian's /usr/bin/etcd (package etcd-server) on
 * 127.0.0.1 with free ports and a mkdtemp data directory. Nothing but two loopback listeners
 * appears in the host namespace, and stop() (also run on process exit) removes everything.
 *
 *   const etcd = await startEtcd();     // { url: 'etcd://127.0.0.1:PORT', endpoints, stop }
 *   after(() => etcd.stop());
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const ETCD_BIN = process.env.MESHD_TEST_ETCD ?? '/usr/bin/etcd';

export interface TestEtcd {
  /** etcd://127.0.0.1:PORT (add a /prefix for a store of its own). */
  url: string;
  /** 127.0.0.1:PORT */
  endpoints: string[];
  clientPort: number;
  dataDir: string;
  readonly pid: number;
  /** SIGTERM (SIGKILL after 5 s), then remove the data directory. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL, keeping the data: a crashed or partitioned etcd. */
  kill(): Promise<void>;
  /** SIGKILL, then start again on the same ports and data (waits until healthy). */
  restart(): Promise<void>;
}

export interface StartEtcdOptions {
  /** Bound on etcd answering /health (default 20 s). */
  startTimeoutMs?: number;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address
          ? resolve(address.port)
          : reject(new Error('no port')),
      );
    });
  });
}

async function healthy(port: number): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/health`, {
      signal: AbortSignal.timeout(1000),
    });
    const body = (await res.json()) as { health?: string };
    return res.ok && body.health === 'true';
  } catch {
    return false;
  }
}

function exited(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

async function startOnce(timeoutMs: number): Promise<TestEtcd> {
  const [clientPort, peerPort] = [await freePort(), await freePort()];
  const dataDir = mkdtempSync(join(tmpdir(), 'meshd-etcd-'));
  const client = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const name = 'meshd-test';
  const args = [
    `--name=${name}`,
    `--data-dir=${dataDir}`,
    `--listen-client-urls=${client}`,
    `--advertise-client-urls=${client}`,
    `--listen-peer-urls=${peer}`,
    `--initial-advertise-peer-urls=${peer}`,
    `--initial-cluster=${name}=${peer}`,
    '--initial-cluster-state=new',
    `--initial-cluster-token=meshd-test-${process.pid}-${clientPort}`,
    '--log-level=error',
    '--logger=zap',
  ];
  let child: ChildProcess;
  let stderr = '';
  const killOnExit = () => child.kill('SIGKILL');
  process.on('exit', killOnExit);

  const halt = async (signal: 'SIGTERM' | 'SIGKILL') => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill(signal);
      if (!(await exited(child, 5000))) {
        child.kill('SIGKILL');
        await exited(child, 5000);
      }
    }
  };
  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      await halt('SIGTERM');
      process.removeListener('exit', killOnExit);
      rmSync(dataDir, { recursive: true, force: true });
    })();
    return stopped;
  };

  const launch = async () => {
    stderr = '';
    child = spawn(ETCD_BIN, args, {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      if (stderr.length < 16_000) stderr += chunk.toString('utf8');
    });
    const deadline = Date.now() + timeoutMs;
    while (!(await healthy(clientPort))) {
      if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
        const why =
          child.exitCode !== null ? `exited with ${child.exitCode}` : 'did not become healthy';
        const err = new Error(
          `etcd on 127.0.0.1:${clientPort} ${why} within ${timeoutMs} ms: ${stderr.trim().slice(-2000)}`,
        );
        await stop();
        throw err;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  await launch();
  return {
    url: `etcd://127.0.0.1:${clientPort}`,
    endpoints: [`127.0.0.1:${clientPort}`],
    clientPort,
    dataDir,
    get pid() {
      return child.pid!;
    },
    stop,
    kill: () => halt('SIGKILL'),
    restart: async () => {
      await halt('SIGKILL');
      await launch();
    },
  };
}

/** Starts etcd; retries (twice) when a port picked as free was taken in the meantime. */
export async function startEtcd(options: StartEtcdOptions = {}): Promise<TestEtcd> {
  if (!existsSync(ETCD_BIN)) {
    throw new Error(`${ETCD_BIN} is missing: install Debian's etcd-server (scripts/setup.sh does)`);
  }
  let last: Error | undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startOnce(options.startTimeoutMs ?? 20_000);
    } catch (err) {
      last = err as Error;
      if (!/address already in use/i.test(last.message)) break;
    }
  }
  throw last;
}
