// The README's main command on its own: `meshctl lab up` builds three nodes, the control
// plane, an agent per node and the demo app, and prints what to try. Every printed step is run
// here exactly as written; then `meshctl why` is compared with the data plane for an allowed
// and a denied pair, `meshctl check` must fail for a stopped agent, and `lab down` must leave
// nothing behind.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { LAB_STATE_ROOT } from '../../ctl/lab/index.js';

const root = new URL('../../..', import.meta.url).pathname;
const id = `demo${randomBytes(3).toString('hex')}`;
// The steps use the lab because nothing else is configured: keep a user's config out of it.
const env: NodeJS.ProcessEnv = {
  ...process.env,
  MESHCTL_LAB: id,
  MESHCTL_CONFIG: `/nonexistent/meshctl-${id}.yaml`,
};
delete env.MESHCTL_SERVER;
delete env.MESHCTL_CA_DIR;

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

function sh(command: string, timeoutMs = 60_000): Promise<Ran> {
  return new Promise((resolve) => {
    const child = spawn('sh', ['-c', command], { cwd: root, env, timeout: timeoutMs });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => {
      stdout += c;
    });
    child.stderr.on('data', (c) => {
      stderr += c;
    });
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The commands under "try:", without their trailing comments. */
function printedSteps(output: string): string[] {
  const lines = output.split('\n');
  return lines
    .slice(lines.indexOf('try:') + 1)
    .filter((l) => l.startsWith('  '))
    .map((l) => l.replace(/\s+# [^#]*$/, '').trim());
}

const agentPid = async (node: string) => {
  const { stdout } = await sh(
    `for p in $(ip netns pids mdl-${id}-${node}); do tr '\\0' ' ' </proc/$p/cmdline | grep -q 'main.js agent' && echo $p; done`,
  );
  return Number(stdout.trim());
};

test('lab up: the demo and every printed step work as written; check, why; lab down removes all', async () => {
  const up = await sh(`bin/meshctl lab up --id ${id}`, 180_000);
  let downRan = false;
  try {
    assert.equal(up.code, 0, up.stderr);
    assert.match(up.stderr, /demo: client -> frontend -> backend -> redis answers/);
    assert.match(up.stderr, /demo: meshd waypoint demo\/waypoint started on n3/);
    const steps = printedSteps(up.stdout);
    assert.equal(steps.length, 11, up.stdout);
    const expectations: [RegExp, (r: Ran) => void][] = [
      [
        /lab exec client -- curl -s http:\/\/10\.96\.0\.10\/$/,
        (r) =>
          assert.match(
            r.stdout,
            /^frontend \(frontend\) -> backend v[12] \(backend-v[12]\): visit \d+/,
          ),
      ],
      [
        /curl -s -X POST .*http:\/\/10\.96\.0\.10\/$/,
        (r) => assert.equal(r.stdout, 'RBAC: access denied 403\n'),
      ],
      [
        /grep '"status":403' .*waypoint\.log/,
        (r) => assert.match(r.stdout, /"method":"POST".*"policy":"demo\/frontend-read-only"/),
      ],
      [
        /^for i in/,
        (r) => {
          assert.match(r.stdout, /backend v1/);
          assert.match(r.stdout, /backend v2/);
        },
      ],
      [
        /curl -sS -m 3 http:\/\/10\.96\.0\.20\//,
        (r) => assert.notEqual(r.code, 0, 'client may not call backend'),
      ],
      [/meshctl why client/, (r) => assert.match(r.stdout, /decision: DENY/)],
      [
        /get workloads -n demo/,
        (r) => {
          for (const name of ['client', 'frontend', 'backend-v1', 'backend-v2', 'redis'])
            assert.match(r.stdout, new RegExp(`\\b${name}\\b`));
        },
      ],
      [
        /meshctl check$/,
        (r) => {
          assert.equal(r.code, 0, r.stdout + r.stderr);
          assert.doesNotMatch(r.stdout, /×/);
          assert.match(r.stdout, / 0 failed/);
        },
      ],
      [
        /agent connections --node n1/,
        (r) => assert.match(r.stdout, /DIRECTION|no live connections/i),
      ],
      [
        /metrics \| grep istio_tcp_connections_opened/,
        (r) => assert.match(r.stdout, /istio_tcp_connections_opened_total\{/),
      ],
    ];
    for (const [i, step] of steps.slice(0, -1).entries()) {
      const [pattern, expect] = expectations[i] ?? [];
      assert.ok(pattern?.test(step), `step ${i + 1} is "${step}"`);
      const ran = await sh(step);
      if (pattern !== expectations[4]?.[0]) assert.equal(ran.code, 0, `${step}\n${ran.stderr}`);
      expect?.(ran);
    }

    // why agrees with the data plane: frontend may call backend, client may not.
    const allowedWhy = await sh('bin/meshctl why frontend 10.96.0.20:80 -n demo');
    assert.match(allowedWhy.stdout, /decision: ALLOW/);
    const allowed = await sh('bin/meshctl lab exec frontend -- curl -sS -m 5 http://10.96.0.20/');
    assert.match(allowed.stdout, /^backend v[12]/);
    const deniedWhy = await sh('bin/meshctl why client 10.96.0.20:80 -n demo');
    assert.match(deniedWhy.stdout, /decision: DENY/);
    const denied = await sh('bin/meshctl lab exec client -- curl -sS -m 5 http://10.96.0.20/');
    assert.notEqual(denied.code, 0);

    // A stopped agent: × for its node, with a hint, and a non-zero exit.
    process.kill(await agentPid('n3'), 'SIGTERM');
    const deadline = Date.now() + 20_000;
    let check: Ran;
    do {
      check = await sh('bin/meshctl check');
    } while (check.code === 0 && Date.now() < deadline);
    assert.equal(check.code, 1, check.stdout);
    assert.match(check.stdout, /× n3: agent disconnected/);
    assert.match(check.stdout, /hint: start or restart meshd agent on n3/);

    const down = await sh(steps.at(-1) ?? '');
    downRan = true;
    assert.equal(down.code, 0, down.stderr);
    assert.match(down.stdout, new RegExp(`removed: ${id}`));
  } finally {
    if (!downRan) await sh(`bin/meshctl lab down --lab ${id}`);
  }
  const netns = await sh('ip netns list');
  assert.doesNotMatch(netns.stdout, new RegExp(`mdl-${id}-`));
  assert.equal(existsSync(`${LAB_STATE_ROOT}/${id}`), false, 'the lab state is removed');
});
