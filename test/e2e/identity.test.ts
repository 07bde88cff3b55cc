// Identity across hosts in the lab: meshd server on node 1, an agent on node 2 that joins with a
// one-time token made by meshctl, holds a node certificate openssl verifies, survives a restart
// without the token, and a reused token is refused.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Lab } from '../../ctl/lab/index.js';
import { run } from '../../daemon/command.js';
import { initCa } from '../../daemon/identity/index.js';
import { stop, waitForOutput } from '../support/lab-helpers.js';

const root = new URL('../../..', import.meta.url).pathname;
const meshd = join(root, 'dist/daemon/main.js');
const meshctl = join(root, 'bin/meshctl');
let lab: Lab;
let dir: string;
let caDir: string;
const running: ChildProcess[] = [];
let server: ChildProcess;

function startRole(node: string, role: string, env: Record<string, string>): ChildProcess {
  const vars = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  const child = lab.spawn(node, ['env', ...vars, process.execPath, meshd, role]);
  running.push(child);
  return child;
}

function agentEnv(stateDir: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    MESHD_NODE_NAME: 'n2',
    MESHD_SERVER: `${lab.member('n1').ipv4}:15012`,
    MESHD_STATE_DIR: stateDir,
    MESHD_CNI_SOCKET: join(stateDir, 'cni.sock'),
    ...extra,
  };
}

before(async () => {
  lab = await Lab.create({ nodes: 2, workloads: 0 });
  dir = mkdtempSync(join(tmpdir(), 'meshd-identity-e2e-'));
  caDir = join(dir, 'ca');
  await initCa({ dir: caDir, trustDomain: 'cluster.local' });
  server = startRole('n1', 'server', {
    MESHD_CA_DIR: caDir,
    MESHD_DATA_DIR: join(dir, 'server'),
  });
  await waitForOutput(server, /"msg":"meshd server listening"/);
});

after(() => {
  for (const child of running) stop(child);
  assert.deepEqual(lab.destroy(), []);
  rmSync(dir, { recursive: true, force: true });
});

async function tokenFor(node: string): Promise<string> {
  const { stdout } = await lab.exec('n1', [
    meshctl,
    'token',
    'create',
    '--node',
    node,
    '--ca-dir',
    caDir,
  ]);
  return stdout.trim();
}

test('an agent on node 2 joins with a token and holds a node certificate that openssl verifies', async () => {
  const stateDir = join(dir, 'agent-n2');
  const agent = startRole(
    'n2',
    'agent',
    agentEnv(stateDir, {
      MESHD_JOIN_TOKEN: await tokenFor('n2'),
      MESHD_CA_BUNDLE: join(caDir, 'bundle.pem'),
    }),
  );
  await waitForOutput(agent, /"msg":"agent ready"/);
  assert.equal(statSync(join(stateDir, 'node.key')).mode & 0o777, 0o600);
  const { stdout } = await run([
    'openssl',
    'verify',
    '-CAfile',
    join(caDir, 'bundle.pem'),
    '-untrusted',
    join(stateDir, 'node.pem'),
    join(stateDir, 'node.pem'),
  ]);
  assert.match(stdout, /OK/);
  const text = await run([
    'openssl',
    'x509',
    '-in',
    join(stateDir, 'node.pem'),
    '-noout',
    '-ext',
    'subjectAltName',
  ]);
  assert.match(text.stdout, /URI:spiffe:\/\/cluster\.local\/node\/n2/);
  const certs = await lab.exec('n2', [meshctl, 'certs']);
  assert.match(certs.stdout, /^IDENTITY\s+STATE\s+SERIAL\s+NOT BEFORE\s+NOT AFTER\s+ISSUER$/m);
  assert.match(certs.stdout, /^spiffe:\/\/cluster\.local\/node\/n2\s+valid\s+[0-9a-f]+\s/m);
  stop(agent);
  await new Promise((r) => agent.once('exit', r));

  // Restarted without a token: the saved certificate is enough.
  const again = startRole('n2', 'agent', agentEnv(stateDir));
  await waitForOutput(again, /"msg":"agent ready"/);
  stop(again);
  await new Promise((r) => again.once('exit', r));
});

test('a reused join token is refused and the agent exits with the reason', async () => {
  const token = await tokenFor('n2');
  const first = startRole(
    'n2',
    'agent',
    agentEnv(join(dir, 'first'), {
      MESHD_JOIN_TOKEN: token,
      MESHD_CA_BUNDLE: join(caDir, 'bundle.pem'),
    }),
  );
  await waitForOutput(first, /"msg":"agent ready"/);
  stop(first);
  const second = startRole(
    'n2',
    'agent',
    agentEnv(join(dir, 'second'), {
      MESHD_JOIN_TOKEN: token,
      MESHD_CA_BUNDLE: join(caDir, 'bundle.pem'),
      MESHD_ADMIN_PORT: '15100',
    }),
  );
  const line = await waitForOutput(second, /MESHD_E_JOIN/);
  assert.match(line, /could not join/);
  const reason = await waitForOutput(second, /already used/).catch((e: Error) => e.message);
  assert.match(reason, /already used/);
  const code = await new Promise<number | null>((r) =>
    second.exitCode !== null ? r(second.exitCode) : second.once('exit', r),
  );
  assert.equal(code, 1);
});

test('an agent follows the registry, and restarted while the server is down serves its saved state', async () => {
  const stateDir = join(dir, 'agent-registry');
  const env = agentEnv(stateDir, {
    MESHD_JOIN_TOKEN: await tokenFor('n2'),
    MESHD_CA_BUNDLE: join(caDir, 'bundle.pem'),
  });
  const agent = startRole('n2', 'agent', env);
  await waitForOutput(agent, /"msg":"registry stream established"/);
  const manifest = join(dir, 'wl.yaml');
  writeFileSync(
    manifest,
    'apiVersion: meshd.io/v1alpha1\nkind: Workload\nmetadata: { name: db-1, namespace: shop }\nspec: { node: n2, addresses: [10.40.2.9], serviceAccount: db }\n',
  );
  await lab.exec('n1', [meshctl, 'apply', '-f', manifest, '--ca-dir', caDir]);
  const dump = async () =>
    JSON.parse(
      (await lab.exec('n2', ['curl', '-sS', 'http://127.0.0.1:15000/config_dump'])).stdout,
    ) as {
      registry: { source: string; resources: { metadata: { name: string } }[] };
    };
  const deadline = Date.now() + 10_000;
  while (!(await dump()).registry.resources.some((r) => r.metadata.name === 'db-1')) {
    assert.ok(Date.now() < deadline, 'the agent received the applied Workload');
    await new Promise((r) => setTimeout(r, 100));
  }
  stop(agent);
  await new Promise((r) => agent.once('exit', r));
  stop(server);
  await new Promise((r) => server.once('exit', r));

  const restarted = startRole('n2', 'agent', agentEnv(stateDir));
  await waitForOutput(restarted, /"msg":"agent ready"/);
  const offline = await dump();
  assert.equal(offline.registry.source, 'disk');
  assert.ok(offline.registry.resources.some((r) => r.metadata.name === 'db-1'));
  stop(restarted);
});
