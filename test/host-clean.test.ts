// Runs after every other tier (scripts/test.sh), pass or fail: the suite must leave no lab
// namespace behind and must not have changed the host's own network namespace.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { type HostSnapshot, takeHostSnapshot } from './support/host-snapshot.js';

const snapshotFile = process.env.MESHD_HOST_SNAPSHOT;

test('the suite left no lab namespace and the host network namespace unchanged', {
  skip: snapshotFile ? false : 'run through scripts/test.sh, which takes the "before" snapshot',
}, () => {
  const before = JSON.parse(readFileSync(snapshotFile ?? '', 'utf8')) as HostSnapshot;
  const after = takeHostSnapshot();
  const leftover = after.labNamespaces.filter((ns) => !before.labNamespaces.includes(ns));
  assert.deepEqual(leftover, [], 'lab namespaces left behind');
  assert.deepEqual(after.iptables, before.iptables, 'host iptables rules changed');
  assert.deepEqual(after.ip6tables, before.ip6tables, 'host ip6tables rules changed');
  assert.deepEqual(after.addresses, before.addresses, 'host addresses changed');
  assert.deepEqual(after.routes, before.routes, 'host routes changed');
  assert.deepEqual(after.rules, before.rules, 'host policy rules changed');
});
