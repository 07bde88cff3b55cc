// `meshd server` as a process: start errors exit 1 with one clear line; a started server logs
// where it listens, reloads on SIGHUP and exits 0 on SIGTERM. Everything binds 127.0.0.1 only.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { initCa } from '../../daemon/identity/index.js';

const MAIN = new URL('../../daemon/main.js', import.meta.url).pathname;
let dir: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'meshd-server-main-'));
  await initCa({ dir: join(dir, 'ca'), trustDomain: 'cluster.local' });
});
after(() => rmSync(dir, { recursive: true, force: true }));

function env(extra: Record<string, string>): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    MESHD_LISTEN_ADDRESS: '127.0.0.1',
    MESHD_GRPC_PORT: '0',
    MESHD_MONITORING_PORT: '0',
    MESHD_DATA_DIR: join(dir, 'data'),
    MESHD_CA_DIR: join(dir, 'ca'),
    ...extra,
  };
}

function meshdServer(
  extra: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [MAIN, 'server'],
      { env: env(extra), timeout: 10_000 },
      (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr }),
    );
  });
}

test('a missing CA directory: exit 1 naming the file and what to do', async () => {
  const r = await meshdServer({ MESHD_CA_DIR: '/nonexistent/meshd-ca' });
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    /^meshd: MESHD_E_CA: cannot read \/nonexistent\/meshd-ca\/ca\.json \(hint: make the CA with "meshctl ca init --out DIR"\)\n/,
  );
});

test('a bad variable: exit 1 naming it', async () => {
  const r = await meshdServer({ MESHD_CERT_MAX_TTL: '1s' });
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    /^meshd: MESHD_E_CONFIG: MESHD_CERT_MAX_TTL="1s": must be between 5m and 2160h\n/,
  );
});

test('the gRPC port in use: exit 1 with the address', async () => {
  const blocker = createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  const port = (blocker.address() as { port: number }).port;
  try {
    const r = await meshdServer({ MESHD_GRPC_PORT: String(port) });
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      new RegExp(
        `meshd: MESHD_E_LISTEN: cannot listen for gRPC on 127\\.0\\.0\\.1:${port}: .*EADDRINUSE`,
      ),
    );
    const lines = r.stderr.split('\n');
    const last = lines.findIndex((l) => l.startsWith('meshd: '));
    assert.ok(
      last >= 0 && lines.slice(0, last).every((l) => l.startsWith('{')),
      `before the error line, only JSON log lines: ${r.stderr}`,
    );
  } finally {
    blocker.close();
  }
});

test('started: logs where it listens, reloads on SIGHUP, exits 0 on SIGTERM', async () => {
  const child = spawn(process.execPath, [MAIN, 'server'], {
    env: env({ MESHD_LOG_LEVEL: 'info' }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  let stderr = '';
  const seen = (re: RegExp) =>
    new Promise<RegExpExecArray>((resolve, reject) => {
      const check = () => {
        const m = re.exec(stderr);
        if (m) {
          child.stderr.off('data', check);
          child.off('exit', onExit);
          resolve(m);
        }
      };
      const onExit = () => reject(new Error(`exited before ${re}: ${stderr}`));
      child.stderr.on('data', check);
      child.once('exit', onExit);
      check();
    });
  child.stderr.setEncoding('utf8').on('data', (c: string) => {
    stderr += c;
  });
  try {
    const m = await seen(/"msg":"meshd server listening".*"monitoring":"127\.0\.0\.1:(\d+)"/);
    const ready = await fetch(`http://127.0.0.1:${m[1]}/healthz/ready`);
    assert.equal(ready.status, 200);
    child.kill('SIGHUP');
    await seen(/"msg":"CA and workloads reloaded"/);
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.kill('SIGTERM');
    assert.equal(await exited, 0, stderr);
    assert.match(stderr, /"msg":"stopped"/);
    for (const line of stderr.trim().split('\n')) JSON.parse(line); // JSON lines only
  } finally {
    clearTimeout(killer);
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});
