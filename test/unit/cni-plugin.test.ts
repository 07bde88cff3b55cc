// meshd-cni (docs/cni.md): runCni against a fake agent, the real unix-socket transport, and the
// built entry (dist/cni/main.js) as a container runtime runs it.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, describe, test } from 'node:test';
import {
  type AgentRequest,
  type AgentResponse,
  CNI_DEFAULTS,
  type CniLogRecord,
  handleCni,
  readStdin,
  runCni,
  unixSocketSend,
} from '../../cni/index.js';

const root = resolve(new URL('../../..', import.meta.url).pathname);

// ---------------------------------------------------------------- fixtures

const SANDBOX = '/var/run/netns/cni-5f2a';
const CONTAINER = '3f9c2a1b7d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4';

/** The result of `ptp` with host-local IPAM (dual stack), as the runtime hands it on. */
const PREV_RESULT = {
  cniVersion: '1.0.0',
  interfaces: [
    { name: 'veth3f9c2a1b', mac: '6a:1f:0e:11:22:33' },
    { name: 'eth0', mac: 'be:ef:00:11:22:33', sandbox: SANDBOX },
  ],
  ips: [
    { address: '10.40.1.2/24', gateway: '10.40.1.1', interface: 1 },
    { address: 'fd00:40:1::2/64', gateway: 'fd00:40:1::1', interface: 1 },
    { address: '169.254.1.1/32', interface: 0 },
  ],
  routes: [{ dst: '0.0.0.0/0', gw: '10.40.1.1' }, { dst: '::/0' }],
  dns: {},
};

function config(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    cniVersion: '1.0.0',
    name: 'meshd-net',
    type: 'meshd-cni',
    agentSocket: '/run/meshd/cni.sock',
    args: {
      cni: {
        labels: [
          { key: 'app', value: 'web' },
          { key: 'meshd.io/dataplane-mode', value: 'ambient' },
        ],
      },
    },
    prevResult: PREV_RESULT,
    ...extra,
  };
}

const ENV = {
  CNI_COMMAND: 'ADD',
  CNI_CONTAINERID: CONTAINER,
  CNI_NETNS: SANDBOX,
  CNI_IFNAME: 'eth0',
  CNI_PATH: '/opt/cni/bin',
  CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-7d9f;K8S_POD_INFRA_CONTAINER_ID=${CONTAINER};K8S_POD_UID=9b1d-uid`,
} as const;

type Env = Record<string, string | undefined>;
type Answer = AgentResponse | Error;

/** A fake agent: records what it is sent, answers from a function. */
function fakeAgent(answer: (req: AgentRequest) => Answer = () => ok()) {
  const requests: AgentRequest[] = [];
  return {
    requests,
    send: async (req: AgentRequest): Promise<AgentResponse> => {
      requests.push(structuredClone(req));
      const a = answer(req);
      if (a instanceof Error) throw a;
      return a;
    },
  };
}

const ok = (captured = true, workload = 'shop/web-7d9f'): AgentResponse => ({
  status: 200,
  body: { captured, workload },
});
const sysErr = (code: string) =>
  Object.assign(new Error(`connect ${code} /run/meshd/cni.sock`), { code });

async function run(
  env: Env,
  stdin: string | Record<string, unknown>,
  answer?: (req: AgentRequest) => Answer,
) {
  const agent = fakeAgent(answer);
  const logs: { record: CniLogRecord; file: string }[] = [];
  const out = await runCni({
    env,
    stdin: typeof stdin === 'string' ? stdin : JSON.stringify(stdin),
    send: agent.send,
    log: (record, file) => logs.push({ record, file }),
  });
  const doc = out.stdout === '' ? undefined : (JSON.parse(out.stdout) as Record<string, unknown>);
  return { out, doc, requests: agent.requests, logs };
}

// ---------------------------------------------------------------- errors

interface ErrorCase {
  name: string;
  env?: Env;
  stdin?: string | Record<string, unknown>;
  agent?: (req: AgentRequest) => Answer;
  code: number;
  msg: RegExp;
  /** The cniVersion the error document carries. */
  version?: string;
  agentCalled?: boolean;
}

const without = (key: string): Env => ({ ...ENV, [key]: undefined });

const ERROR_CASES: ErrorCase[] = [
  {
    name: 'missing CNI_COMMAND',
    env: without('CNI_COMMAND'),
    code: 4,
    msg: /^CNI_COMMAND is not set$/,
    version: '1.1.0',
  },
  {
    name: 'unknown CNI_COMMAND',
    env: { ...ENV, CNI_COMMAND: 'FROB' },
    code: 4,
    msg: /^CNI_COMMAND "FROB" is not a CNI verb$/,
  },
  {
    name: 'malformed stdin',
    stdin: '{"cniVersion": "1.0.0", ',
    code: 6,
    msg: /stdin is not valid JSON/,
    version: '1.1.0',
  },
  { name: 'empty stdin', stdin: '', code: 6, msg: /stdin is empty/ },
  { name: 'stdin not an object', stdin: '[1,2]', code: 6, msg: /not a JSON object/ },
  {
    name: 'unsupported cniVersion',
    stdin: config({ cniVersion: '0.3.1' }),
    code: 1,
    msg: /^cniVersion "0\.3\.1" is not supported; meshd-cni supports 0\.4\.0, 1\.0\.0, 1\.1\.0$/,
    version: '1.1.0',
  },
  {
    name: 'missing cniVersion',
    stdin: config({ cniVersion: undefined }),
    code: 1,
    msg: /cniVersion is not set/,
  },
  {
    name: 'missing prevResult',
    stdin: config({ prevResult: undefined }),
    code: 7,
    msg: /^prevResult is required: meshd-cni is a chained plugin/,
    version: '1.0.0',
  },
  {
    name: 'prevResult not an object',
    stdin: config({ prevResult: 'eth0' }),
    code: 7,
    msg: /prevResult must be a JSON object/,
  },
  {
    name: 'prevResult address not an IP',
    stdin: config({ prevResult: { ...PREV_RESULT, ips: [{ address: 'ten/24' }] } }),
    code: 7,
    msg: /prevResult\.ips\[0\]\.address is not an IP address/,
  },
  {
    name: 'missing CNI_CONTAINERID',
    env: without('CNI_CONTAINERID'),
    code: 4,
    msg: /^CNI_CONTAINERID is not set \(required for ADD\)$/,
  },
  {
    name: 'invalid CNI_CONTAINERID',
    env: { ...ENV, CNI_CONTAINERID: '-x;rm' },
    code: 4,
    msg: /CNI_CONTAINERID "-x;rm" is not a valid container id/,
  },
  {
    name: 'missing CNI_NETNS on ADD',
    env: without('CNI_NETNS'),
    code: 4,
    msg: /^CNI_NETNS is not set \(required for ADD\)$/,
  },
  {
    name: 'missing CNI_NETNS on CHECK',
    env: { ...without('CNI_NETNS'), CNI_COMMAND: 'CHECK' },
    code: 4,
    msg: /^CNI_NETNS is not set \(required for CHECK\)$/,
  },
  {
    name: 'missing CNI_IFNAME on ADD',
    env: without('CNI_IFNAME'),
    code: 4,
    msg: /^CNI_IFNAME is not set/,
  },
  {
    name: 'malformed CNI_ARGS on ADD',
    env: { ...ENV, CNI_ARGS: 'K8S_POD_NAME=web;oops' },
    code: 4,
    msg: /CNI_ARGS has a malformed pair "oops"/,
  },
  {
    name: 'agentSocket not absolute',
    stdin: config({ agentSocket: 'cni.sock' }),
    code: 7,
    msg: /^agentSocket must be an absolute path/,
  },
  {
    name: 'timeoutMs not a number',
    stdin: config({ timeoutMs: '30s' }),
    code: 7,
    msg: /^timeoutMs must be a whole number of milliseconds/,
  },
  {
    name: 'labels of the wrong shape',
    stdin: config({ args: { cni: { labels: [{ key: 'app' }] } } }),
    code: 7,
    msg: /^args\.cni\.labels\[0\] must be \{"key": string, "value": string\}$/,
  },
  {
    name: 'agent unreachable on ADD (no socket)',
    agent: () => sysErr('ENOENT'),
    code: 11,
    msg: /^meshd agent unreachable at \/run\/meshd\/cni\.sock \(ENOENT\): is meshd agent running on this node\?$/,
    agentCalled: true,
  },
  {
    name: 'agent unreachable on ADD (nobody listening)',
    agent: () => sysErr('ECONNREFUSED'),
    code: 11,
    msg: /\(ECONNREFUSED\): is meshd agent running on this node\?/,
    agentCalled: true,
  },
  {
    name: 'agent timeout on ADD',
    agent: () => Object.assign(new Error('no answer'), { code: 'ETIMEDOUT' }),
    code: 11,
    msg: /did not answer ADD within 30000 ms/,
    agentCalled: true,
  },
  {
    name: 'agent unreachable on CHECK',
    env: { ...ENV, CNI_COMMAND: 'CHECK' },
    agent: () => sysErr('ECONNREFUSED'),
    code: 11,
    msg: /is meshd agent running on this node\?/,
    agentCalled: true,
  },
  {
    name: 'other socket error on ADD',
    agent: () => sysErr('EACCES'),
    code: 5,
    msg: /talking to meshd agent at \/run\/meshd\/cni\.sock failed \(EACCES\)/,
    agentCalled: true,
  },
  {
    name: 'agent error passed through on ADD',
    agent: () => ({
      status: 500,
      body: {
        code: 100,
        msg: 'workload shop/web-7d9f is enrolled but was not captured within 20000 ms',
        details: 'see the meshd agent log',
      },
    }),
    code: 100,
    msg: /^workload shop\/web-7d9f is enrolled but was not captured within 20000 ms$/,
    agentCalled: true,
  },
  {
    name: 'agent error passed through on CHECK',
    env: { ...ENV, CNI_COMMAND: 'CHECK' },
    agent: () => ({ status: 500, body: { code: 100, msg: 'capture rules are missing' } }),
    code: 100,
    msg: /^capture rules are missing$/,
    agentCalled: true,
  },
  {
    name: 'agent answer that is not the protocol',
    agent: () => ({ status: 502, body: '<html>bad gateway</html>' }),
    code: 101,
    msg: /answered HTTP 502 without a CNI error/,
    agentCalled: true,
  },
  {
    name: 'agent 200 without captured',
    agent: () => ({ status: 200, body: { ok: true } }),
    code: 101,
    msg: /answered 200 without \{"captured", "workload"\}/,
    agentCalled: true,
  },
];

describe('CNI errors: code, msg, one JSON document on stdout, exit 1', () => {
  for (const c of ERROR_CASES) {
    test(c.name, async () => {
      const { out, doc, requests } = await run(c.env ?? ENV, c.stdin ?? config(), c.agent);
      assert.equal(out.exitCode, 1);
      assert.ok(out.stdout.endsWith('\n') && out.stdout.indexOf('\n') === out.stdout.length - 1);
      assert.ok(doc);
      assert.equal(doc.code, c.code, String(doc.msg));
      assert.match(String(doc.msg), c.msg);
      assert.deepEqual(Object.keys(doc).slice(0, 3), ['cniVersion', 'code', 'msg']);
      if (c.version) assert.equal(doc.cniVersion, c.version);
      assert.equal(requests.length > 0, c.agentCalled ?? false, 'whether the agent was asked');
    });
  }

  test('the agent error keeps its details; unreachable names the socket in details too', async () => {
    const passed = await run(ENV, config(), () => ({
      status: 503,
      body: {
        code: 11,
        msg: 'the registry refused or could not be reached',
        details: 'UNAVAILABLE',
      },
    }));
    assert.deepEqual(passed.doc, {
      cniVersion: '1.0.0',
      code: 11,
      msg: 'the registry refused or could not be reached',
      details: 'UNAVAILABLE',
    });
    const down = await run(ENV, config(), () => sysErr('ENOENT'));
    assert.match(String(down.doc?.details), /does not let a workload start uncaptured/);
  });

  test('stdin that could not be read is an I/O failure (5)', async () => {
    const out = await runCni({
      env: ENV,
      stdin: '',
      stdinProblem: 'stdin is larger than 1048576 bytes',
      send: fakeAgent().send,
    });
    assert.equal(out.exitCode, 1);
    assert.deepEqual(JSON.parse(out.stdout), {
      cniVersion: '1.1.0',
      code: 5,
      msg: 'could not read the network configuration from stdin',
      details: 'stdin is larger than 1048576 bytes',
    });
  });

  test('a throwing transport is an I/O failure (5), any other exception code 100', async () => {
    const out = await runCni({
      env: ENV,
      stdin: JSON.stringify(config()),
      send: () => {
        throw new TypeError('boom');
      },
    });
    assert.equal(JSON.parse(out.stdout).code, 5);
    const bug = await runCni({
      env: new Proxy<Env>(
        { ...ENV },
        {
          get(target, key) {
            if (key === 'CNI_ARGS') throw new RangeError('env broke');
            return target[key as string];
          },
        },
      ),
      stdin: JSON.stringify(config()),
      send: fakeAgent().send,
    });
    assert.equal(bug.exitCode, 1);
    assert.equal(JSON.parse(bug.stdout).code, 100);
    assert.match(JSON.parse(bug.stdout).msg, /^meshd-cni failed unexpectedly: env broke$/);
    const noisyLog = await runCni({
      env: ENV,
      stdin: JSON.stringify(config()),
      send: fakeAgent().send,
      log: () => {
        throw new Error('disk full');
      },
    });
    assert.equal(noisyLog.exitCode, 0, 'a failing log never changes the answer');
  });
});

// ---------------------------------------------------------------- ADD

describe('ADD', () => {
  test('prints prevResult unchanged (deep-equal and byte-equal), exit 0', async () => {
    const { out, doc } = await run(ENV, config());
    assert.equal(out.exitCode, 0);
    assert.deepEqual(doc, PREV_RESULT);
    assert.equal(out.stdout, `${JSON.stringify(PREV_RESULT)}\n`);
  });

  test('the result carries the requested cniVersion, the rest untouched and in order', async () => {
    const prev041 = {
      cniVersion: '0.4.0',
      interfaces: [{ name: 'eth0', sandbox: SANDBOX }],
      ips: [{ version: '4', address: '10.40.1.9/24', interface: 0 }],
      dns: { nameservers: ['10.96.0.10'] },
    };
    const a = await run(ENV, config({ cniVersion: '0.4.0', prevResult: prev041 }));
    assert.equal(a.out.stdout, `${JSON.stringify(prev041)}\n`);
    const { cniVersion: _, ...bare } = prev041;
    const b = await run(ENV, config({ cniVersion: '1.1.0', prevResult: bare }));
    assert.equal(b.out.stdout, `${JSON.stringify({ cniVersion: '1.1.0', ...bare })}\n`);
    const c = await run(ENV, config({ cniVersion: '1.1.0' }));
    assert.deepEqual(c.doc, { ...PREV_RESULT, cniVersion: '1.1.0' });
    assert.deepEqual(Object.keys(c.doc ?? {}), Object.keys(PREV_RESULT));
  });

  test('the agent gets identity from CNI_ARGS, labels from args.cni.labels, ips from prevResult', async () => {
    const { requests } = await run(
      { ...ENV, CNI_ARGS: `${ENV.CNI_ARGS};MESHD_SERVICE_ACCOUNT=web-sa` },
      config({ timeoutMs: 12_000 }),
    );
    assert.deepEqual(requests, [
      {
        socketPath: '/run/meshd/cni.sock',
        timeoutMs: 12_000,
        method: 'POST',
        path: '/v1/cni',
        body: {
          command: 'ADD',
          containerId: CONTAINER,
          netns: SANDBOX,
          ifName: 'eth0',
          cniVersion: '1.0.0',
          namespace: 'shop',
          name: 'web-7d9f',
          uid: '9b1d-uid',
          serviceAccount: 'web-sa',
          labels: { app: 'web', 'meshd.io/dataplane-mode': 'ambient' },
          ips: ['10.40.1.2', 'fd00:40:1::2'],
        },
      },
    ]);
  });

  test('without pod identity: name = first 12 chars of the container id, namespace default', async () => {
    const { requests } = await run(
      { ...ENV, CNI_ARGS: undefined },
      config({ args: undefined, agentSocket: undefined, timeoutMs: undefined }),
    );
    const req = requests[0];
    assert.equal(req?.socketPath, CNI_DEFAULTS.agentSocket);
    assert.equal(req?.timeoutMs, 30_000);
    assert.deepEqual(
      { ns: req?.body?.namespace, name: req?.body?.name, labels: req?.body?.labels },
      { ns: 'default', name: CONTAINER.slice(0, 12), labels: {} },
    );
    assert.equal(req?.body && 'uid' in req.body, false);
    assert.equal(req?.body && 'serviceAccount' in req.body, false);
  });

  test('labels also as an object; runtimeConfig.labels under args.cni.labels', async () => {
    const { requests } = await run(
      ENV,
      config({
        runtimeConfig: { labels: { tier: 'front', app: 'old' } },
        args: { cni: { labels: { app: 'web' } } },
      }),
    );
    assert.deepEqual(requests[0]?.body?.labels, { tier: 'front', app: 'web' });
  });

  test('ips: without interface indexes all are taken, duplicates once', async () => {
    const { requests } = await run(
      ENV,
      config({
        prevResult: {
          cniVersion: '1.0.0',
          ips: [
            { address: '10.40.1.2/24' },
            { address: '10.40.1.2/24' },
            { address: 'fd00::5/64' },
          ],
        },
      }),
    );
    assert.deepEqual(requests[0]?.body?.ips, ['10.40.1.2', 'fd00::5']);
  });

  test('a workload that is not enrolled (captured: false) is added all the same', async () => {
    const { out, logs } = await run(ENV, config(), () => ok(false));
    assert.equal(out.exitCode, 0);
    assert.deepEqual(JSON.parse(out.stdout), PREV_RESULT);
    assert.equal(logs.at(-1)?.record.captured, false);
  });

  test('logs go to the configured log file, never to stdout', async () => {
    const { logs } = await run(ENV, config({ logFile: '/tmp/x/meshd-cni.log' }));
    assert.equal(logs.length, 1);
    assert.equal(logs[0]?.file, '/tmp/x/meshd-cni.log');
    assert.deepEqual(
      {
        level: logs[0]?.record.level,
        command: logs[0]?.record.command,
        workload: logs[0]?.record.workload,
        captured: logs[0]?.record.captured,
      },
      { level: 'info', command: 'ADD', workload: 'shop/web-7d9f', captured: true },
    );
    const silent = await run(ENV, config({ logFile: '' }));
    assert.equal(silent.logs.length, 0);
  });
});

// ---------------------------------------------------------------- DEL, CHECK

describe('DEL', () => {
  const DEL = { ...ENV, CNI_COMMAND: 'DEL' };

  test('asks the agent, prints nothing, exit 0', async () => {
    const { out, requests } = await run(DEL, config(), () => ok(false));
    assert.deepEqual(out, { stdout: '', exitCode: 0 });
    assert.equal(requests[0]?.body?.command, 'DEL');
    assert.equal(requests[0]?.body?.name, 'web-7d9f');
  });

  test('of an unknown container (agent code 3) succeeds', async () => {
    const { out, logs } = await run(DEL, config(), () => ({
      status: 404,
      body: { code: 3, msg: `unknown container ${CONTAINER}` },
    }));
    assert.deepEqual(out, { stdout: '', exitCode: 0 });
    assert.match(String(logs[0]?.record.msg), /does not know/);
  });

  test('with the agent unreachable or slow succeeds and logs why', async () => {
    for (const code of ['ENOENT', 'ECONNREFUSED', 'ETIMEDOUT', 'EACCES']) {
      const { out, logs } = await run(DEL, config(), () => sysErr(code));
      assert.deepEqual(out, { stdout: '', exitCode: 0 }, code);
      const warn = logs.find((l) => l.record.level === 'warn');
      assert.match(String(warn?.record.msg), /DEL reported success without the agent/, code);
    }
  });

  test('with the namespace gone (no CNI_NETNS), no prevResult, no CNI_IFNAME', async () => {
    const { out, requests } = await run(
      { ...DEL, CNI_NETNS: '', CNI_IFNAME: undefined },
      config({ prevResult: undefined }),
    );
    assert.deepEqual(out, { stdout: '', exitCode: 0 });
    assert.deepEqual(
      {
        netns: requests[0]?.body?.netns,
        ifName: requests[0]?.body?.ifName,
        ips: requests[0]?.body?.ips,
      },
      { netns: '', ifName: '', ips: [] },
    );
  });

  test('bad CNI_ARGS, labels or prevResult do not stop a DEL', async () => {
    const { out, requests } = await run(
      { ...DEL, CNI_ARGS: 'garbage' },
      config({ args: { cni: { labels: 7 } }, prevResult: { ips: 'x' } }),
    );
    assert.deepEqual(out, { stdout: '', exitCode: 0 });
    assert.equal(requests[0]?.body?.name, CONTAINER.slice(0, 12));
  });

  test('other agent errors are passed on (the runtime retries DEL)', async () => {
    const { out, doc } = await run(DEL, config(), () => ({
      status: 503,
      body: { code: 11, msg: 'the registry refused or could not be reached' },
    }));
    assert.equal(out.exitCode, 1);
    assert.equal(doc?.code, 11);
  });

  test('still needs a valid config and CNI_CONTAINERID', async () => {
    assert.equal((await run(DEL, '{nope')).doc?.code, 6);
    assert.equal((await run(DEL, config({ cniVersion: '2.0.0' }))).doc?.code, 1);
    assert.equal((await run({ ...DEL, CNI_CONTAINERID: '' }, config())).doc?.code, 4);
  });
});

describe('CHECK', () => {
  test('asks the agent; success prints nothing', async () => {
    const { out, requests } = await run({ ...ENV, CNI_COMMAND: 'CHECK' }, config());
    assert.deepEqual(out, { stdout: '', exitCode: 0 });
    assert.equal(requests[0]?.body?.command, 'CHECK');
  });

  test('requires prevResult (7)', async () => {
    const { doc } = await run({ ...ENV, CNI_COMMAND: 'CHECK' }, config({ prevResult: undefined }));
    assert.equal(doc?.code, 7);
    assert.match(String(doc?.msg), /^prevResult is required: .*CHECK needs/);
  });
});

// ---------------------------------------------------------------- VERSION, STATUS, GC

describe('VERSION, STATUS, GC', () => {
  test('VERSION echoes the input cniVersion with the supported list; never asks the agent', async () => {
    const { out, doc, requests } = await run({ CNI_COMMAND: 'VERSION' }, { cniVersion: '1.0.0' });
    assert.equal(out.exitCode, 0);
    assert.deepEqual(doc, { cniVersion: '1.0.0', supportedVersions: ['0.4.0', '1.0.0', '1.1.0'] });
    assert.equal(requests.length, 0);
    const bare = await run({ CNI_COMMAND: 'VERSION' }, '');
    assert.deepEqual(bare.doc, {
      cniVersion: '1.1.0',
      supportedVersions: ['0.4.0', '1.0.0', '1.1.0'],
    });
    assert.deepEqual(JSON.parse(handleCni({ CNI_COMMAND: 'VERSION' }).stdout), bare.doc);
    assert.equal(JSON.parse(handleCni({}).stdout).msg, 'CNI_COMMAND is not set');
  });

  const STATUS = { CNI_COMMAND: 'STATUS', CNI_PATH: '/opt/cni/bin' };
  const statusConfig = config({ cniVersion: '1.1.0', prevResult: undefined });

  test('STATUS: agent ready → exit 0, no output', async () => {
    const { out, requests } = await run(STATUS, statusConfig, () => ({
      status: 200,
      body: { ready: true },
    }));
    assert.deepEqual(out, { stdout: '', exitCode: 0 });
    assert.deepEqual(
      requests.map((r) => [r.method, r.path, r.body, r.timeoutMs]),
      [['GET', '/v1/status', undefined, 5_000]],
    );
  });

  test('STATUS: agent not ready, unreachable or failing → 50', async () => {
    const answers: Answer[] = [
      { status: 200, body: { ready: false } },
      sysErr('ENOENT'),
      sysErr('ETIMEDOUT'),
      { status: 500, body: { code: 100, msg: 'broken' } },
      { status: 500, body: 'oops' },
    ];
    for (const a of answers) {
      const { out, doc } = await run(STATUS, statusConfig, () => a);
      assert.equal(out.exitCode, 1);
      assert.equal(doc?.code, 50, JSON.stringify(doc));
      assert.equal(doc?.cniVersion, '1.1.0');
    }
    const limited = await run(STATUS, statusConfig, () => ({
      status: 503,
      body: { code: 51, msg: 'capture rules cannot be checked' },
    }));
    assert.equal(limited.doc?.code, 51);
  });

  test('STATUS and GC need cniVersion 1.1.0 (1)', async () => {
    for (const verb of ['STATUS', 'GC']) {
      const { doc } = await run({ CNI_COMMAND: verb }, config({ cniVersion: '1.0.0' }));
      assert.equal(doc?.code, 1);
      assert.match(String(doc?.msg), new RegExp(`^${verb} needs cniVersion 1\\.1\\.0 or later`));
    }
  });

  test('GC succeeds without doing anything', async () => {
    const { out, requests } = await run(
      { CNI_COMMAND: 'GC' },
      config({
        cniVersion: '1.1.0',
        prevResult: undefined,
        'cni.dev/valid-attachments': [{ containerID: CONTAINER, ifname: 'eth0' }],
      }),
    );
    assert.deepEqual(out, { stdout: '', exitCode: 0 });
    assert.equal(requests.length, 0);
  });
});

// ---------------------------------------------------------------- real transport and process

const dirs: string[] = [];
const servers: Server[] = [];
after(() => {
  for (const s of servers) s.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'meshd-cni-'));
  dirs.push(d);
  return d;
}

interface Received {
  method: string | undefined;
  url: string | undefined;
  contentType: string | undefined;
  body: unknown;
}

/** A real agent stand-in on a unix socket. */
async function agentServer(
  reply: (req: Received) => { status: number; body: unknown } | 'hang',
): Promise<{ socketPath: string; received: Received[] }> {
  const socketPath = join(tempDir(), 'cni.sock');
  const received: Received[] = [];
  const server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const r: Received = {
        method: req.method,
        url: req.url,
        contentType: req.headers['content-type'],
        body: text === '' ? undefined : JSON.parse(text),
      };
      received.push(r);
      const a = reply(r);
      if (a === 'hang') return;
      res.writeHead(a.status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(a.body));
    });
  });
  servers.push(server);
  await new Promise<void>((done) => server.listen(socketPath, done));
  return { socketPath, received };
}

describe('unixSocketSend (the real transport)', () => {
  test('POSTs JSON and returns status and parsed body', async () => {
    const agent = await agentServer(() => ({
      status: 200,
      body: { captured: true, workload: 'a/b' },
    }));
    const res = await unixSocketSend({
      socketPath: agent.socketPath,
      timeoutMs: 5_000,
      method: 'POST',
      path: '/v1/cni',
      body: {
        command: 'ADD',
        containerId: 'c1',
        netns: '/n',
        ifName: 'eth0',
        cniVersion: '1.0.0',
        namespace: 'a',
        name: 'b',
        labels: {},
        ips: [],
      },
    });
    assert.deepEqual(res, { status: 200, body: { captured: true, workload: 'a/b' } });
    assert.equal(agent.received[0]?.contentType, 'application/json');
  });

  test('no socket → ENOENT; no answer in time → ETIMEDOUT', async () => {
    await assert.rejects(
      unixSocketSend({
        socketPath: join(tempDir(), 'missing.sock'),
        timeoutMs: 2_000,
        method: 'GET',
        path: '/v1/status',
      }),
      { code: 'ENOENT' },
    );
    const hung = await agentServer(() => 'hang');
    const t0 = Date.now();
    await assert.rejects(
      unixSocketSend({
        socketPath: hung.socketPath,
        timeoutMs: 150,
        method: 'GET',
        path: '/v1/status',
      }),
      { code: 'ETIMEDOUT' },
    );
    assert.ok(Date.now() - t0 < 2_000);
  });

  test('readStdin: bounded in size and time', async () => {
    const big = new PassThrough();
    const r1 = readStdin(big, { maxBytes: 10, timeoutMs: 1_000 });
    big.write('0123456789abc');
    assert.deepEqual(await r1, { problem: 'stdin is larger than 10 bytes' });
    const open = new PassThrough();
    assert.deepEqual(await readStdin(open, { maxBytes: 10, timeoutMs: 50 }), {
      problem: 'stdin was not closed within 50 ms',
    });
    const fine = new PassThrough();
    const r3 = readStdin(fine);
    fine.end('{"a":1}');
    assert.deepEqual(await r3, { text: '{"a":1}' });
  });
});

const MAIN = join(root, 'dist/cni/main.js');

function runMain(
  env: Env,
  stdin: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [MAIN], {
      env: { PATH: process.env.PATH, ...env } as NodeJS.ProcessEnv,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString('utf8');
    });
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString('utf8');
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('error', fail);
    child.on('close', (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr });
    });
    child.stdin.end(stdin);
  });
}

describe('dist/cni/main.js as the runtime runs it', () => {
  test('ADD against a unix-socket agent: prevResult on stdout, exit 0, log in the file', async () => {
    const agent = await agentServer(() => ({
      status: 200,
      body: { captured: true, workload: 'shop/web-7d9f' },
    }));
    const logFile = join(dirname(agent.socketPath), 'meshd-cni.log');
    const res = await runMain(
      ENV,
      JSON.stringify(config({ agentSocket: agent.socketPath, logFile })),
    );
    assert.equal(res.stderr, '');
    assert.equal(res.code, 0);
    assert.equal(res.stdout, `${JSON.stringify(PREV_RESULT)}\n`);
    const got = agent.received[0];
    assert.deepEqual(
      { method: got?.method, url: got?.url, body: got?.body },
      {
        method: 'POST',
        url: '/v1/cni',
        body: {
          command: 'ADD',
          containerId: CONTAINER,
          netns: SANDBOX,
          ifName: 'eth0',
          cniVersion: '1.0.0',
          namespace: 'shop',
          name: 'web-7d9f',
          uid: '9b1d-uid',
          labels: { app: 'web', 'meshd.io/dataplane-mode': 'ambient' },
          ips: ['10.40.1.2', 'fd00:40:1::2'],
        },
      },
    );
    const lines = readFileSync(logFile, 'utf8').trim().split('\n');
    assert.equal(lines.length, 1);
    assert.equal(JSON.parse(lines[0] ?? '').workload, 'shop/web-7d9f');
  });

  test('agent error and agent gone: one CNI error document on stdout, exit 1', async () => {
    const agent = await agentServer(() => ({
      status: 500,
      body: { code: 100, msg: 'not captured in time', details: 'see the agent log' },
    }));
    const logFile = join(dirname(agent.socketPath), 'meshd-cni.log');
    const failed = await runMain(
      ENV,
      JSON.stringify(config({ agentSocket: agent.socketPath, logFile })),
    );
    assert.equal(failed.code, 1);
    assert.equal(failed.stderr, '');
    assert.equal(
      failed.stdout,
      `${JSON.stringify({ cniVersion: '1.0.0', code: 100, msg: 'not captured in time', details: 'see the agent log' })}\n`,
    );
    const gone = join(tempDir(), 'nothing.sock');
    const down = await runMain(ENV, JSON.stringify(config({ agentSocket: gone, logFile })));
    assert.equal(down.code, 1);
    assert.equal(down.stdout.split('\n').length, 2);
    assert.equal(JSON.parse(down.stdout).code, 11);
    const del = await runMain(
      { ...ENV, CNI_COMMAND: 'DEL' },
      JSON.stringify(config({ agentSocket: gone, logFile })),
    );
    assert.deepEqual({ code: del.code, stdout: del.stdout }, { code: 0, stdout: '' });
  });

  test('an unwritable log file changes nothing; VERSION works without stdin', async () => {
    const res = await runMain(
      { CNI_COMMAND: 'GC' },
      JSON.stringify(config({ cniVersion: '1.1.0', logFile: '/proc/meshd-cni-nowhere.log' })),
    );
    assert.deepEqual(res, { code: 0, stdout: '', stderr: '' });
    const v = await runMain({ CNI_COMMAND: 'VERSION' }, '');
    assert.equal(v.code, 0);
    assert.equal(JSON.parse(v.stdout).cniVersion, '1.1.0');
  });
});

// ---------------------------------------------------------------- layout

test('the entry imports only node built-ins and cni/plugin*.ts files (fast start, DESIGN §2)', () => {
  const seen = new Set<string>();
  const external = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = readFileSync(join(root, file), 'utf8');
    for (const m of text.matchAll(/^\s*(?:import|export)\s[^'"]*?from\s*'([^']+)'/gm)) {
      const spec = m[1] ?? '';
      if (!spec.startsWith('.')) {
        external.add(spec);
        continue;
      }
      visit(relative(root, resolve(root, dirname(file), spec)).replace(/\.js$/, '.ts'));
    }
  };
  visit('cni/main.ts');
  assert.deepEqual(
    [...seen].filter((f) => !/^cni\/(main|plugin(-[a-z]+)?)\.ts$/.test(f)),
    [],
    'main.ts reaches beyond cni/plugin*.ts',
  );
  assert.deepEqual(
    [...external].filter((s) => !s.startsWith('node:')),
    [],
    'main.ts pulls in a package',
  );
});
