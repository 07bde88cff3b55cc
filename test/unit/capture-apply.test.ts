// applyCapture / removeCapture / captureStatus against the real kernel, in throwaway network
// namespaces this file creates (mdl-t<random>) and always deletes; the host namespace is never
// touched and no packet is sent. Behaviour (what gets redirected) is tested in the netns lab:
// test/e2e/capture-rules.test.ts.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import {
  applyCapture,
  captureRules,
  captureStatus,
  installedCapture,
  parseNatTable,
  removeCapture,
} from '../../cni/index.js';
import { MeshdError } from '../../daemon/errors.js';

const made: string[] = [];

function sh(argv: string[], input?: string): string {
  const [cmd, ...args] = argv;
  const r = spawnSync(cmd ?? '', args, { encoding: 'utf8', input, timeout: 15_000 });
  if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.status} ${r.stderr}`);
  return r.stdout;
}

function newNamespace(): string {
  const name = `mdl-t${randomBytes(4).toString('hex')}`;
  sh(['ip', 'netns', 'add', name]);
  made.push(name);
  return `/var/run/netns/${name}`;
}

function inNs(path: string, argv: string[], input?: string): string {
  return sh(['nsenter', `--net=${path}`, ...argv], input);
}

/** Everything iptables-save shows in the namespace (all tables), without timestamps and counters. */
function saved(path: string, family: 4 | 6): string {
  return inNs(path, [family === 4 ? 'iptables-save' : 'ip6tables-save'])
    .split('\n')
    .filter((l) => !l.startsWith('#'))
    .map((l) => l.replace(/\[\d+:\d+\]/g, '[]'))
    .join('\n');
}

const snapshot = (path: string) => ({ v4: saved(path, 4), v6: saved(path, 6) });

const generatedLines = (family: 4 | 6, options = {}) =>
  captureRules({ family, ...options })
    .split('\n')
    .filter((l) => l.startsWith('-A '));

let users: string; // a namespace with rules of its own that must survive
let pristine: string; // a namespace without any rule
let userBefore: { v4: string; v6: string };

before(() => {
  users = newNamespace();
  pristine = newNamespace();
  for (const tool of ['iptables', 'ip6tables']) {
    const restore = `${tool}-restore`;
    const dst = tool === 'iptables' ? '10.9.9.9' : 'fd00:9::9';
    inNs(
      users,
      [restore, '--noflush'],
      [
        '*filter',
        ':USER_IN - [0:0]',
        '-A INPUT -p tcp -m tcp --dport 9 -m comment --comment "user rule" -j DROP',
        '-A INPUT -j USER_IN',
        '-A USER_IN -p udp -j ACCEPT',
        'COMMIT',
        '*nat',
        `-A OUTPUT -p tcp -m tcp --dport 25 -j DNAT --to-destination ${tool === 'iptables' ? dst : `[${dst}]`}:2525`,
        '-A POSTROUTING -o lo -j RETURN',
        'COMMIT',
        '',
      ].join('\n'),
    );
  }
  userBefore = snapshot(users);
  assert.match(userBefore.v4, /--dport 25 -j DNAT/);
});

after(() => {
  for (const name of made) spawnSync('ip', ['netns', 'del', name]);
  const left = sh(['ip', 'netns', 'list'])
    .split('\n')
    .filter((l) => made.some((n) => l.startsWith(`${n} `) || l === n));
  assert.deepEqual(left, [], 'test namespaces removed');
});

test('apply installs both chains and one jump each, exactly the generated lines, user rules kept', async () => {
  await applyCapture(users);
  for (const family of [4, 6] as const) {
    const text = saved(users, family);
    const installed = installedCapture(parseNatTable(text));
    assert.equal(installed.complete, true, `IPv${family} complete`);
    assert.deepEqual([...installed.lines].sort(), [...generatedLines(family)].sort());
    assert.match(text, /--dport 25 -j DNAT/, 'user nat rule kept');
    assert.match(text, /-A USER_IN -p udp -j ACCEPT/, 'user filter chain kept');
    assert.doesNotMatch(text, /\*mangle/, 'no mangle rules');
  }
  const status = await captureStatus(users);
  assert.equal(status.v4, true);
  assert.equal(status.v6, true);
  assert.ok(
    status.rules.includes(
      'iptables -t nat -A MESHD_OUTPUT -p tcp -m comment --comment meshd -j REDIRECT --to-ports 15001',
    ),
  );
  assert.ok(
    status.rules.includes(
      'ip6tables -t nat -A MESHD_OUTPUT -d ::1/128 -m comment --comment meshd -j RETURN',
    ),
  );
  assert.equal(status.rules.length, 2 * generatedLines(4).length);
});

test('applying again (also with other options) leaves exactly one rule set and one jump each', async () => {
  const first = snapshot(users);
  await applyCapture(users);
  assert.deepEqual(snapshot(users), first, 'a second identical apply changes nothing');

  await applyCapture(users, { excludeOutboundPorts: [5432], excludeInboundPorts: [9090] });
  for (const family of [4, 6] as const) {
    const text = saved(users, family);
    assert.equal(text.match(/-j MESHD_OUTPUT/g)?.length, 1, 'one OUTPUT jump');
    assert.equal(text.match(/-j MESHD_PREROUTING/g)?.length, 1, 'one PREROUTING jump');
    const installed = installedCapture(parseNatTable(text));
    assert.deepEqual(
      [...installed.lines].sort(),
      [
        ...generatedLines(family, { excludeOutboundPorts: [5432], excludeInboundPorts: [9090] }),
      ].sort(),
    );
  }
  await applyCapture(users);
  assert.deepEqual(snapshot(users), first, 'back to the default set, jumps where they were');
});

test('remove restores iptables-save exactly; removing again is a no-op', async () => {
  assert.deepEqual(await removeCapture(users), { v4: true, v6: true });
  assert.deepEqual(snapshot(users), userBefore);
  assert.deepEqual(await removeCapture(users), { v4: false, v6: false });
  assert.deepEqual(snapshot(users), userBefore);
  const status = await captureStatus(users);
  assert.deepEqual(status, { v4: false, v6: false, rules: [] });
});

test('in a namespace without any rules, apply + remove leaves no table behind', async () => {
  const before = snapshot(pristine);
  assert.deepEqual(before, { v4: '', v6: '' });
  await applyCapture(pristine, { hostNetwork: true });
  assert.equal((await captureStatus(pristine)).v4, true);
  await removeCapture(pristine);
  assert.deepEqual(snapshot(pristine), before);
  assert.equal(inNs(pristine, ['nft', 'list', 'ruleset']), '');
});

test('only the families asked for are touched', async () => {
  await applyCapture(pristine, { families: [6] });
  assert.deepEqual(
    { v4: saved(pristine, 4), hasV6: saved(pristine, 6).includes('MESHD_OUTPUT') },
    { v4: '', hasV6: true },
  );
  assert.deepEqual(await removeCapture(pristine, { families: [4] }), { v4: false, v6: false });
  assert.deepEqual(await removeCapture(pristine, { families: [6] }), { v4: false, v6: true });
  assert.deepEqual(snapshot(pristine), { v4: '', v6: '' });
});

test('when IPv6 fails, the IPv4 rules this call added are removed again', async () => {
  const ns = newNamespace();
  // A built-in chain iptables-nft cannot use (made with nft, at another priority) makes
  // ip6tables-restore fail: "CHAIN_ADD failed (Operation not supported): chain OUTPUT".
  inNs(ns, [
    'nft',
    'add table ip6 nat; add chain ip6 nat OUTPUT { type nat hook output priority 7; }',
  ]);
  const before = saved(ns, 4);
  await assert.rejects(applyCapture(ns), (err: unknown) => {
    assert.ok(err instanceof MeshdError);
    assert.equal(err.code, 'MESHD_E_CAPTURE');
    assert.ok(err.message.includes(`applying IPv6 capture rules in ${ns} failed: `), err.message);
    assert.match(err.message, /Operation not supported/);
    return true;
  });
  assert.equal(saved(ns, 4), before, 'IPv4 left as before');
});

test('errors name the namespace and carry what iptables printed', async () => {
  const missing = `/var/run/netns/mdl-tmissing${randomBytes(3).toString('hex')}`;
  await assert.rejects(applyCapture(missing), (err: unknown) => {
    assert.ok(err instanceof MeshdError);
    assert.equal(err.code, 'MESHD_E_CAPTURE');
    assert.ok(
      err.message.includes(`applying IPv4 capture rules in ${missing} failed`),
      err.message,
    );
    assert.match(err.message, /No such file or directory/);
    return true;
  });
  await assert.rejects(captureStatus(missing), /MESHD_E_CAPTURE|reading IPv4 capture rules/);
  await assert.rejects(applyCapture('netns-name'), TypeError);
  await assert.rejects(applyCapture(pristine, { families: [] }), TypeError);
  // Bad options are refused before anything is touched.
  await assert.rejects(applyCapture(pristine, { mark: 0 }), RangeError);
  assert.deepEqual(snapshot(pristine), { v4: '', v6: '' });
});
