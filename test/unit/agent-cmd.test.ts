// `meshctl agent …`: one agent's view as tables (golden files, from a fixed config_dump), as
// JSON/YAML for scripts, through the real CLI entry; how --node/--lab/--admin find the agent;
// and what a user sees when the endpoint or the dump is not what it should be.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import YAML from 'yaml';
import { agentAdminGet, type LabNodes, resolveAgent } from '../../ctl/agent-admin.js';
import {
  connectionsTable,
  formatAge,
  parseDump,
  policiesTable,
  policyRows,
  serviceRows,
  servicesTable,
  stateOf,
  workloadRows,
  workloadsTable,
} from '../../ctl/agent-tables.js';
import { certsTable } from '../../ctl/certs-cmd.js';
import { MeshdError } from '../../daemon/errors.js';

const root = new URL('../../../', import.meta.url);
const fixture = new URL('test/fixtures/agent-config-dump.json', root).pathname;
const golden = (name: string) =>
  readFileSync(new URL(`test/golden/${name}`, root), 'utf8').trimEnd();
const node = new URL('node_modules/.bin/node', root).pathname;
const main = new URL('dist/ctl/main.js', root).pathname;
const run = promisify(execFile);
const meshctl = (...args: string[]) => run(node, [main, ...args], { timeout: 30_000 });

const dump = parseDump(JSON.parse(readFileSync(fixture, 'utf8')), fixture);
const state = stateOf(dump, fixture);

test('workloads: the node’s own workloads, captured or not, sorted by namespace and name (golden)', () => {
  const rows = workloadRows(dump, state);
  assert.equal(workloadsTable(rows), golden('agent-workloads.txt'));
  // n2-w1 lives on another node; a workload without netns still shows, uncaptured.
  assert.deepEqual(
    rows.map((r) => `${r.namespace}/${r.name}:${r.captured}`),
    ['demo/n1-w1:true', 'demo/n1-w2:true', 'legacy/old-db:false', 'legacy/vm-7:false'],
  );
});

test('services: addresses, port:targetPort and how many workloads each selects (golden)', () => {
  assert.equal(servicesTable(serviceRows(state)), golden('agent-services.txt'));
});

test('policies: authorization and peer authentication, action or mTLS mode, rules (golden)', () => {
  assert.equal(policiesTable(policyRows(state)), golden('agent-policies.txt'));
});

test('certs: the node certificate first, then workload identities (golden)', () => {
  assert.equal(certsTable(dump.certificates), golden('agent-certs.txt'));
});

test('connections: both ends with identities, bytes and age, sorted stably (golden)', () => {
  const rows = dump.connections ?? [];
  assert.equal(connectionsTable(rows), golden('agent-connections.txt'));
  // The order does not depend on the order the agent listed them in.
  assert.equal(connectionsTable([...rows].reverse()), golden('agent-connections.txt'));
});

test('ages read like kubectl’s', () => {
  assert.deepEqual([0, 59, 60, 3599, 3600, 86_399, 90_000].map(formatAge), [
    '0s',
    '59s',
    '1m0s',
    '59m59s',
    '1h0m',
    '23h59m',
    '1d1h',
  ]);
});

test('the CLI prints the same tables from a saved dump (-f), and -o json|yaml with node and revision', async () => {
  for (const view of ['workloads', 'services', 'policies', 'certs', 'connections']) {
    const { stdout } = await meshctl('agent', view, '-f', fixture);
    assert.equal(stdout.trimEnd(), golden(`agent-${view}.txt`), view);
  }
  const json = JSON.parse(
    (await meshctl('agent', 'workloads', '-f', fixture, '-o', 'json')).stdout,
  );
  assert.equal(json.node, 'n1');
  assert.equal(json.revision, 33);
  assert.deepEqual(json.workloads[0], {
    namespace: 'demo',
    name: 'n1-w1',
    addresses: ['10.40.1.2', 'fd00:40:1::2'],
    identity: 'spiffe://cluster.local/ns/demo/sa/web',
    netns: '/var/run/netns/mdl-ab12cd-n1-w1',
    captured: true,
  });
  const yaml = YAML.parse((await meshctl('agent', 'policies', '-f', fixture, '-o', 'yaml')).stdout);
  const asJson = JSON.parse(
    (await meshctl('agent', 'policies', '-f', fixture, '-o', 'json')).stdout,
  );
  assert.deepEqual(yaml, asJson);
  const conns = JSON.parse(
    (await meshctl('agent', 'connections', '-f', fixture, '-o', 'json')).stdout,
  );
  assert.equal(conns.node, 'n1');
  assert.equal(conns.connections.length, 5);
  assert.equal(conns.connections[0].peerIdentity, 'spiffe://cluster.local/ns/demo/sa/api');
});

test('a file that is not a dump is refused with a coded error naming it', async () => {
  await assert.rejects(meshctl('agent', 'services', '-f', new URL('package.json', root).pathname), {
    stderr: /MESHD_E_AGENT_ADMIN: .*package\.json is not an agent's \/config_dump: no "node"/,
  });
  await assert.rejects(meshctl('agent', 'workloads', '-f', '/nonexistent/dump.json'), {
    stderr: /MESHD_E_AGENT_ADMIN: cannot read \/nonexistent\/dump\.json/,
  });
  await assert.rejects(meshctl('agent', 'workloads', '-f', fixture, '-o', 'xml'), {
    stderr: /unknown output format "xml"/,
  });
  const broken = structuredClone(JSON.parse(readFileSync(fixture, 'utf8')));
  broken.registry.resources[2].spec.addresses = ['not-an-ip'];
  assert.throws(
    () => stateOf(parseDump(broken, 'broken.json'), 'broken.json'),
    (err: unknown) =>
      err instanceof MeshdError &&
      err.code === 'MESHD_E_AGENT_ADMIN' &&
      /broken\.json: the registry resources in it do not validate/.test(err.message),
  );
});

// ---- finding the agent ----------------------------------------------------------------------

const labs =
  (...known: LabNodes[]) =>
  (only: string | undefined) =>
    known.filter((l) => only === undefined || l.id === only);
const lab = (id: string, ...names: string[]): LabNodes => ({
  id,
  nodes: names.map((name) => ({ name, netns: `mdl-${id}-${name}` })),
});
const env = { MESHD_NODE_NAME: 'host-a' };
const code = (pattern: RegExp) => (err: unknown) =>
  err instanceof MeshdError && err.code === 'MESHD_E_AGENT_ADMIN' && pattern.test(err.message);

test('--admin wins; without a node, this host’s agent on 127.0.0.1:15000', () => {
  assert.deepEqual(resolveAgent({ admin: '[::1]:9000', node: 'n1' }, env, labs()), {
    via: 'tcp',
    host: '::1',
    port: 9000,
    describe: '[::1]:9000',
  });
  assert.deepEqual(resolveAgent({}, env, labs()), {
    via: 'tcp',
    host: '127.0.0.1',
    port: 15000,
    describe: '127.0.0.1:15000',
  });
  assert.throws(() => resolveAgent({ admin: 'localhost' }, env, labs()), code(/not host:port/));
  assert.throws(() => resolveAgent({ lab: 'ab12' }, env, labs()), code(/--lab ab12 names no node/));
});

test('--node finds a lab node (inside its netns), or this host’s node, or says where to run', () => {
  const one = resolveAgent({ node: 'n2' }, env, labs(lab('ab12', 'n1', 'n2')));
  assert.equal(one.via, 'netns');
  assert.equal(one.via === 'netns' && one.netns, '/var/run/netns/mdl-ab12-n2');
  assert.throws(
    () => resolveAgent({ node: 'n1' }, env, labs(lab('ab12', 'n1'), lab('cd34', 'n1'))),
    code(/node n1 exists in 2 labs \(ab12, cd34\).*--lab ID/),
  );
  const chosen = resolveAgent(
    { node: 'n1', lab: 'cd34' },
    env,
    labs(lab('ab12', 'n1'), lab('cd34', 'n1')),
  );
  assert.equal(chosen.via === 'netns' && chosen.lab, 'cd34');
  const viaEnv = resolveAgent(
    { node: 'n1' },
    { ...env, MESHCTL_LAB: 'ab12' },
    labs(lab('ab12', 'n1'), lab('cd34', 'n1')),
  );
  assert.equal(viaEnv.via === 'netns' && viaEnv.lab, 'ab12');
  assert.throws(
    () => resolveAgent({ node: 'n9', lab: 'ab12' }, env, labs(lab('ab12', 'n1'))),
    code(/lab ab12 has no node n9/),
  );
  assert.deepEqual(resolveAgent({ node: 'host-a' }, env, labs(lab('ab12', 'n1'))), {
    via: 'tcp',
    host: '127.0.0.1',
    port: 15000,
    describe: 'node host-a (127.0.0.1:15000)',
  });
  assert.throws(
    () => resolveAgent({ node: 'db-7' }, env, labs(lab('ab12', 'n1'))),
    code(/node db-7 is neither this host's node \(host-a\).*ssh db-7 meshctl agent.*-f db-7\.json/),
  );
});

// ---- talking to it ---------------------------------------------------------------------------

let server: Server;
let admin: string;
const seen: string[] = [];

before(async () => {
  server = createServer((req, res) => {
    seen.push(req.url ?? '');
    if (req.url === '/config_dump') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(readFileSync(fixture));
    } else if (req.url === '/certs') {
      res.end('not json');
    } else {
      res.writeHead(404);
      res.end('no such page\n');
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  admin = `127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(() => server.close());

test('agentAdminGet reads JSON from --admin; errors name the path, address and status', async () => {
  const value = (await agentAdminGet({ admin }, '/config_dump')) as { nodeName: string };
  assert.equal(value.nodeName, 'n1');
  await assert.rejects(
    agentAdminGet({ admin }, '/connections'),
    code(/\/connections at 127\.0\.0\.1:\d+ answered 404: no such page/),
  );
  await assert.rejects(agentAdminGet({ admin }, '/certs'), code(/did not answer JSON/));
  const closed = createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const dead = `127.0.0.1:${(closed.address() as AddressInfo).port}`;
  closed.close();
  await assert.rejects(
    agentAdminGet({ admin: dead }, '/config_dump', 2000),
    code(/cannot read \/config_dump from the agent's admin endpoint at 127\.0\.0\.1:\d+/),
  );
  // The CLI over the same endpoint prints the same table as from the saved file.
  const { stdout } = await meshctl('agent', 'services', '--admin', admin);
  assert.equal(stdout.trimEnd(), golden('agent-services.txt'));
  assert.ok(seen.includes('/config_dump'));
});
