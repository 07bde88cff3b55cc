import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  cpSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import {
  agentEnvText,
  serverEnvText,
  systemdInstallFiles,
  waypointEnvText,
  waypointInstanceEnvText,
  writeInstallFiles,
} from '../../ctl/install/index.js';
import {
  agentSpec,
  loadAgentConfig,
  loadServerConfig,
  loadWaypointConfig,
  serverSpec,
  waypointSpec,
} from '../../daemon/config.js';
import { packageRoot } from '../../daemon/paths.js';

const repo = packageRoot();
const meshctl = join(repo, 'dist/ctl/main.js');
const scratch = mkdtempSync(join(tmpdir(), 'meshd-install-systemd-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

let dirs = 0;
const freshDir = (name: string) => {
  const dir = join(scratch, `${name}-${++dirs}`);
  mkdirSync(dir);
  return dir;
};

function run(args: string[], input?: string) {
  const r = spawnSync(process.execPath, [meshctl, ...args], {
    encoding: 'utf8',
    timeout: 30_000,
    ...(input === undefined ? {} : { input }),
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function systemdTool(args: string[]) {
  const r = spawnSync(args[0] ?? '', args.slice(1), { encoding: 'utf8', timeout: 60_000 });
  if (r.error) {
    throw new Error(
      `${args[0]} could not run (${r.error.message}): it comes with Debian's systemd package (apt-get install systemd)`,
    );
  }
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** KEY=VALUE lines as systemd's EnvironmentFile= reads the ones this install writes. */
function parseEnvFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line);
    assert.ok(m, `not a KEY=VALUE line: ${line}`);
    const raw = m[2] ?? '';
    env[m[1] ?? ''] = raw.startsWith('"') ? raw.slice(1, -1).replace(/\\(.)/g, '$1') : raw;
  }
  return env;
}

test('the env files hold real MESHD_* settings: each role loads them as written', () => {
  const agent = parseEnvFile(
    agentEnvText({
      nodeName: 'edge-7',
      server: '10.0.0.1:15012,10.0.0.2:15012',
      trustDomain: 'prod.example',
      caBundle: '/etc/meshd/bundle.pem',
      joinToken: 'AbCdEfGhIjKl.secret-part_1',
    }),
  );
  const agentConfig = loadAgentConfig(agent);
  assert.equal(agentConfig.nodeName, 'edge-7');
  assert.equal(agentConfig.serverAddress, '10.0.0.1:15012,10.0.0.2:15012');
  assert.equal(agentConfig.trustDomain, 'prod.example');
  assert.equal(agentConfig.joinToken, 'AbCdEfGhIjKl.secret-part_1');
  assert.equal(agentConfig.caBundleFile, '/etc/meshd/bundle.pem');
  // The paths the unit makes writable (StateDirectory=, RuntimeDirectory=).
  assert.equal(agentConfig.stateDir, '/var/lib/meshd/agent');
  assert.equal(agentConfig.cniSocket, '/run/meshd/cni.sock');

  const serverConfig = loadServerConfig(parseEnvFile(serverEnvText('prod.example')));
  assert.equal(serverConfig.trustDomain, 'prod.example');
  assert.equal(serverConfig.dataDir, '/var/lib/meshd/server');
  assert.equal(serverConfig.caDir, '/etc/meshd/ca');
});

test('the env files list every variable the role reads; the examples in systemd/ are current', () => {
  const agentText = agentEnvText({
    nodeName: 'node-1',
    server: '10.0.0.1:15012',
    trustDomain: 'cluster.local',
    caBundle: '/etc/meshd/bundle.pem',
    joinToken: undefined,
  });
  const serverText = serverEnvText('cluster.local');
  assert.equal(agentText, readFileSync(join(repo, 'systemd/agent.env.example'), 'utf8'));
  assert.equal(serverText, readFileSync(join(repo, 'systemd/server.env.example'), 'utf8'));
  const variables = (spec: Record<string, { env: string }>) =>
    Object.values(spec)
      .map((f) => `MESHD_${f.env}`)
      .sort();
  const listed = (text: string) =>
    [...text.matchAll(/^(?:# )?(MESHD_[A-Z_]+)=/gm)].map((m) => m[1] ?? '').sort();
  assert.deepEqual(listed(serverText), variables(serverSpec));
  assert.deepEqual(listed(agentText), variables(agentSpec));
  assert.equal(waypointEnvText(), readFileSync(join(repo, 'systemd/waypoint.env.example'), 'utf8'));
  assert.deepEqual(listed(waypointEnvText()), variables(waypointSpec));
  // No token given: the variable is only a comment.
  assert.match(agentText, /^# MESHD_JOIN_TOKEN=$/m);
});

test('a waypoint instance: the shared file then its own, loaded as the unit reads them', () => {
  const env = {
    ...parseEnvFile(waypointEnvText()),
    ...parseEnvFile(waypointInstanceEnvText('shop/wp', '10.0.0.5')),
  };
  const config = loadWaypointConfig(env);
  assert.deepEqual(config.waypoint, { namespace: 'shop', name: 'wp' });
  assert.equal(config.address, '10.0.0.5');
  assert.equal(config.agentSocket, '/run/meshd/cni.sock');
  assert.equal(config.stateDir, '/var/lib/meshd/waypoint');
  // On the host's network beside the agent: never the agent's monitoring ports.
  const agent = loadAgentConfig({ MESHD_NODE_NAME: 'n1' });
  const ports = [config.adminPort, config.metricsPort, config.readinessPort];
  for (const p of [agent.adminPort, agent.metricsPort, agent.readinessPort])
    assert.ok(!ports.includes(p), `port ${p} is the agent's`);
  // Without an address: the default (the host's first IPv4), left as a comment.
  assert.equal(
    loadWaypointConfig({
      ...parseEnvFile(waypointEnvText()),
      ...parseEnvFile(waypointInstanceEnvText('shop/wp', undefined)),
    }).address,
    undefined,
  );
});

test('a value systemd would misread is quoted, a line break refused', () => {
  const text = agentEnvText({
    nodeName: 'n1',
    server: '127.0.0.1:15012',
    trustDomain: 'cluster.local',
    caBundle: '/etc/meshd/my "bundle".pem',
    joinToken: undefined,
  });
  assert.match(text, /^MESHD_CA_BUNDLE="\/etc\/meshd\/my \\"bundle\\".pem"$/m);
  assert.equal(parseEnvFile(text).MESHD_CA_BUNDLE, '/etc/meshd/my "bundle".pem');
  assert.throws(
    () =>
      agentEnvText({
        nodeName: 'n1',
        server: '127.0.0.1:15012',
        trustDomain: 'cluster.local',
        caBundle: '/etc/meshd/b.pem\nMESHD_LOG_LEVEL=trace',
        joinToken: undefined,
      }),
    /MESHD_CA_BUNDLE: the value contains a line break/,
  );
});

test('meshctl install systemd --root: writes every file with its mode, prints them, starts nothing', () => {
  const root = freshDir('root');
  const r = run(
    [
      'install',
      'systemd',
      '--root',
      root,
      '--node-name',
      'node-1',
      '--server',
      '10.0.0.1:15012',
      '--join-token',
      '-',
    ],
    'AbCdEfGhIjKl.from-stdin\n',
  );
  assert.equal(r.status, 0, r.stderr);
  const expected: [string, number][] = [
    ['/etc/meshd/agent.env', 0o600],
    ['/etc/meshd/server.env', 0o644],
    ['/etc/meshd/waypoint.env', 0o644],
    ['/etc/systemd/system/meshd-agent.service', 0o644],
    ['/etc/systemd/system/meshd-server.service', 0o644],
    ['/etc/systemd/system/meshd-waypoint@.service', 0o644],
    ['/etc/sysusers.d/meshd.conf', 0o644],
    ['/etc/tmpfiles.d/meshd.conf', 0o644],
  ];
  for (const [path, mode] of expected) {
    assert.equal(statSync(join(root, path)).mode & 0o777, mode, path);
    assert.match(
      r.stdout,
      new RegExp(`^${join(root, path)}\\s+0${mode.toString(8)}\\s+created$`, 'm'),
    );
  }
  assert.equal(
    readFileSync(join(root, 'etc/systemd/system/meshd-agent.service'), 'utf8'),
    readFileSync(join(repo, 'systemd/meshd-agent.service'), 'utf8'),
  );
  const agentEnv = parseEnvFile(readFileSync(join(root, 'etc/meshd/agent.env'), 'utf8'));
  assert.equal(agentEnv.MESHD_JOIN_TOKEN, 'AbCdEfGhIjKl.from-stdin');
  assert.equal(agentEnv.MESHD_SERVER, '10.0.0.1:15012');
  assert.match(r.stdout, /nothing was loaded or started/);
  assert.match(
    r.stdout,
    new RegExp(`systemctl --root=${root} enable meshd-server.service meshd-agent.service`),
  );
  // The secret is in the file, never on the terminal.
  assert.doesNotMatch(r.stdout + r.stderr, /from-stdin/);

  const again = run([
    'install',
    'systemd',
    '--root',
    root,
    '--node-name',
    'node-1',
    '--server',
    '10.0.0.1:15012',
    '--join-token',
    'AbCdEfGhIjKl.from-stdin',
  ]);
  assert.equal(again.status, 0, again.stderr);
  assert.equal(again.stdout.match(/ unchanged$/gm)?.length, 8, again.stdout);
  assert.equal(
    readFileSync(join(root, 'etc/systemd/system/meshd-waypoint@.service'), 'utf8'),
    readFileSync(join(repo, 'systemd/meshd-waypoint@.service'), 'utf8'),
  );
});

test('a changed file is not overwritten without --force, and then nothing else is written', () => {
  const root = freshDir('root');
  const base = ['install', 'systemd', '--root', root, '--node-name', 'node-1'];
  assert.equal(run(base).status, 0);
  const serverEnv = join(root, 'etc/meshd/server.env');
  writeFileSync(serverEnv, `${readFileSync(serverEnv, 'utf8')}MESHD_LOG_LEVEL=debug\n`);
  const agentEnv = join(root, 'etc/meshd/agent.env');
  const agentBefore = readFileSync(agentEnv, 'utf8');

  // Another trust domain changes both env files; one of them was edited by hand.
  const refused = run([...base, '--trust-domain', 'other.example']);
  assert.equal(refused.status, 1);
  assert.match(refused.stderr, /MESHD_E_INSTALL: refusing to overwrite files that differ/);
  assert.match(refused.stderr, new RegExp(serverEnv));
  assert.match(refused.stderr, /nothing was written.*--force/);
  assert.match(readFileSync(serverEnv, 'utf8'), /MESHD_LOG_LEVEL=debug/);
  assert.equal(readFileSync(agentEnv, 'utf8'), agentBefore);

  const forced = run([...base, '--trust-domain', 'other.example', '--force']);
  assert.equal(forced.status, 0, forced.stderr);
  assert.match(forced.stdout, new RegExp(`^${serverEnv}\\s+0644\\s+replaced$`, 'm'));
  assert.doesNotMatch(readFileSync(serverEnv, 'utf8'), /MESHD_LOG_LEVEL=debug/);
  assert.match(readFileSync(agentEnv, 'utf8'), /^MESHD_TRUST_DOMAIN=other.example$/m);
});

test('a secret file with a loose mode is tightened even when its text is unchanged', () => {
  const root = freshDir('root');
  const files = systemdInstallFiles({
    roles: ['agent'],
    prefix: '/opt/meshd',
    trustDomain: 'cluster.local',
    nodeName: 'n1',
    server: '127.0.0.1:15012',
    caBundle: '/etc/meshd/bundle.pem',
    joinToken: 'AbCdEfGhIjKl.x',
  });
  writeInstallFiles(root, files, false);
  chmodSync(join(root, 'etc/meshd/agent.env'), 0o644);
  const results = writeInstallFiles(root, files, false);
  const env = results.find((r) => r.written.endsWith('agent.env'));
  assert.equal(env?.action, 'mode fixed');
  assert.equal(statSync(join(root, 'etc/meshd/agent.env')).mode & 0o777, 0o600);
});

test('bad flags are refused with the flag named, before anything is written', () => {
  const root = freshDir('root');
  const cases: [string[], RegExp][] = [
    [
      ['--node-name', 'Node_1'],
      /--node-name "Node_1": must be a DNS label.*hint: pass --node-name/,
    ],
    [['--trust-domain', 'Bad Domain'], /--trust-domain "Bad Domain": not a trust domain/],
    [['--prefix', 'opt/meshd'], /--prefix "opt\/meshd": not an absolute path/],
    [['--role', 'proxy'], /--role.*use server, agent or all/],
    [['--waypoint', 'shop'], /--waypoint "shop": not <namespace>\/<name>/],
    [['--waypoint', 'shop/wp', '--waypoint-address', 'here'], /--waypoint-address "here"/],
    [['--role', 'server', '--waypoint', 'shop/wp'], /--waypoint needs the agent role/],
  ];
  for (const [flags, message] of cases) {
    const r = run(['install', 'systemd', '--root', root, '--node-name', 'n1', ...flags]);
    assert.equal(r.status, 1, flags.join(' '));
    assert.match(r.stderr, message);
  }
  assert.equal(spawnSync('find', [root, '-type', 'f'], { encoding: 'utf8' }).stdout, '');
});

/** An image root where systemd-analyze finds the standard units and the units' programs. */
function verifiableRoot(prefix: string): string {
  const root = freshDir('image');
  mkdirSync(join(root, 'usr/lib/systemd'), { recursive: true });
  cpSync('/usr/lib/systemd/system', join(root, 'usr/lib/systemd/system'), {
    recursive: true,
    verbatimSymlinks: true,
  });
  mkdirSync(join(root, 'usr/bin'), { recursive: true });
  symlinkSync('usr/bin', join(root, 'bin'));
  copyFileSync('/usr/bin/kill', join(root, 'usr/bin/kill'));
  chmodSync(join(root, 'usr/bin/kill'), 0o755);
  // ExecStart= must name an executable; a stand-in is enough for the unit checks.
  mkdirSync(join(root, prefix, 'bin'), { recursive: true });
  writeFileSync(join(root, prefix, 'bin/meshd'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
  return root;
}

/** systemd-analyze verify on units under root: it exits 0 even on bad lines, so stderr counts. */
function verify(root: string, units: string[]) {
  return systemdTool(['systemd-analyze', 'verify', `--root=${root}`, ...units]);
}

const UNITS = ['meshd-server.service', 'meshd-agent.service', 'meshd-waypoint@shop_wp.service'];

test('the written units pass systemd-analyze verify, also with another --prefix', () => {
  for (const prefix of ['/opt/meshd', '/usr/local/lib/meshd']) {
    const root = verifiableRoot(prefix);
    const r = run([
      'install',
      'systemd',
      '--root',
      root,
      '--prefix',
      prefix,
      '--node-name',
      'n1',
      '--waypoint',
      'shop/wp',
    ]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /systemctl --root=\S+ enable .*meshd-waypoint@shop_wp.service/);
    assert.match(
      readFileSync(join(root, 'etc/meshd/waypoint-shop_wp.env'), 'utf8'),
      /^MESHD_WAYPOINT=shop\/wp$/m,
    );
    assert.match(
      readFileSync(join(root, 'etc/systemd/system/meshd-waypoint@.service'), 'utf8'),
      new RegExp(`^ExecStart=${prefix}/bin/meshd waypoint$`, 'm'),
    );
    assert.match(
      readFileSync(join(root, 'etc/systemd/system/meshd-agent.service'), 'utf8'),
      new RegExp(`^ExecStart=${prefix}/bin/meshd agent$`, 'm'),
    );
    const checked = verify(root, UNITS);
    assert.equal(checked.status, 0, checked.stderr);
    assert.equal(checked.stderr, '', `systemd-analyze verify found problems:\n${checked.stderr}`);
  }
});

test('the verify check catches a bad unit (a wrong value, a missing program)', () => {
  const root = verifiableRoot('/opt/meshd');
  assert.equal(run(['install', 'systemd', '--root', root, '--node-name', 'n1']).status, 0);
  const unit = join(root, 'etc/systemd/system/meshd-agent.service');
  const good = readFileSync(unit, 'utf8');
  writeFileSync(unit, good.replace('NoNewPrivileges=yes', 'NoNewPrivileges=maybe'));
  assert.match(verify(root, UNITS).stderr, /meshd-agent.service:\d+: Failed to parse boolean/);
  writeFileSync(unit, good);
  rmSync(join(root, 'opt/meshd/bin/meshd'));
  assert.match(verify(root, UNITS).stderr, /is not executable/);
});

test('hardening: capabilities per role, and systemd rates both units well exposed', () => {
  const root = verifiableRoot('/opt/meshd');
  assert.equal(run(['install', 'systemd', '--root', root, '--node-name', 'n1']).status, 0);
  const unit = (role: string) =>
    readFileSync(join(root, `etc/systemd/system/meshd-${role}.service`), 'utf8');
  assert.match(unit('server'), /^CapabilityBoundingSet=$/m);
  assert.match(unit('server'), /^User=meshd$/m);
  assert.match(unit('agent'), /^CapabilityBoundingSet=CAP_NET_ADMIN CAP_SYS_ADMIN CAP_NET_RAW$/m);
  assert.match(unit('agent'), /^RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK$/m);
  for (const role of ['server', 'agent']) {
    for (const setting of ['NoNewPrivileges=yes', 'ProtectSystem=strict', 'Type=exec']) {
      assert.match(unit(role), new RegExp(`^${setting}$`, 'm'), `${role}: ${setting}`);
    }
  }
  const waypoint = readFileSync(join(root, 'etc/systemd/system/meshd-waypoint@.service'), 'utf8');
  assert.match(waypoint, /^CapabilityBoundingSet=$/m);
  assert.match(waypoint, /^Requires=meshd-agent.service$/m);
  assert.match(waypoint, /^After=.*meshd-agent.service/m);
  assert.match(waypoint, /^KillSignal=SIGTERM$/m);
  // Above MESHD_DRAIN_TIMEOUT (5 s): the drain finishes before SIGKILL.
  assert.ok(Number(/^TimeoutStopSec=(\d+)s$/m.exec(waypoint)?.[1]) > 5);
  // Exposure on systemd's 0..100 scale (shown as 0.0..10.0): server at most 2.0, agent 3.0.
  for (const [name, threshold] of [
    ['meshd-server.service', 20],
    ['meshd-agent.service', 30],
    ['meshd-waypoint@shop_wp.service', 30],
  ] as const) {
    const r = systemdTool([
      'systemd-analyze',
      'security',
      '--offline=yes',
      `--root=${root}`,
      `--threshold=${threshold}`,
      name,
    ]);
    assert.equal(r.status, 0, `${name} above ${threshold / 10}:\n${r.stdout.split('\n').at(-2)}`);
  }
});

test('the sysusers.d and tmpfiles.d entries are valid for systemd', () => {
  const root = freshDir('image');
  assert.equal(run(['install', 'systemd', '--root', root, '--node-name', 'n1']).status, 0);
  const users = systemdTool([
    'systemd-sysusers',
    '--dry-run',
    `--root=${root}`,
    join(root, 'etc/sysusers.d/meshd.conf'),
  ]);
  assert.equal(users.status, 0, users.stderr);
  assert.match(users.stderr, /Creating (user|group) '?meshd/);
  const tmp = systemdTool([
    'systemd-tmpfiles',
    `--root=${root}`,
    '--create',
    join(root, 'etc/tmpfiles.d/meshd.conf'),
  ]);
  assert.equal(tmp.status, 0, tmp.stderr);
  assert.equal(statSync(join(root, 'run/xtables.lock')).mode & 0o777, 0o600);
});
