// meshctl's tables (`get KIND`, `get nodes`): UPPERCASE headers, rows sorted by namespace and
// name whatever order the server sends, checked against golden files.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { demoManifests } from '../../ctl/lab/index.js';
import { type NodeView, nodesTable } from '../../ctl/nodes.js';
import { render } from '../../ctl/resource-cmd.js';
import { type Kind, parseManifests, type Resource } from '../../daemon/model/index.js';

const golden = (name: string) =>
  readFileSync(new URL(`../../../test/golden/${name}`, import.meta.url), 'utf8').trimEnd();

const workloads = `
apiVersion: meshd.io/v1alpha1
kind: Workload
metadata: { name: redis, namespace: demo, labels: { app: redis } }
spec: { node: n2, addresses: [10.40.2.3, fd00:40:2::3], serviceAccount: redis }
---
apiVersion: meshd.io/v1alpha1
kind: Workload
metadata: { name: backend-v1, namespace: demo, labels: { app: backend, version: v1 } }
spec: { node: n2, addresses: [10.40.2.2], serviceAccount: backend }
---
apiVersion: meshd.io/v1alpha1
kind: Workload
metadata: { name: api, namespace: aaa }
spec: { node: n1, addresses: [10.40.1.9] }
`;

function resources(): Resource[] {
  const parsed = parseManifests(`${demoManifests()}---\n${workloads}`, 'demo.yaml');
  assert.ok(parsed.ok, JSON.stringify(parsed));
  // The server's order is not the table's: reverse it.
  return [...parsed.resources].reverse();
}

const table = (kind: Kind) =>
  render(
    kind,
    resources().filter((r) => r.kind === kind),
    'table',
    false,
  );

for (const kind of ['Workload', 'Service', 'AuthorizationPolicy'] as const) {
  test(`get ${kind}: sorted rows, UPPERCASE headers (golden)`, () => {
    assert.equal(table(kind), golden(`get-${kind.toLowerCase()}.txt`));
  });
}

test('get nodes: state, revision, skew and age (golden)', () => {
  const now = Date.parse('2026-06-01T12:00:00Z');
  const node = (name: string, o: Partial<NodeView>): NodeView => ({
    name,
    connected: true,
    peer: 'ipv4:172.30.0.12:41000',
    connectedSince: '2026-06-01T11:58:00Z',
    disconnectedAt: '',
    revisionSent: 12,
    clockSkewMs: 4,
    workloads: 2,
    version: '0.1.0',
    server: '172.30.0.11:15012',
    serverRevision: 12,
    ...o,
  });
  const nodes = [
    node('n1', {}),
    node('n2', { revisionSent: 10, clockSkewMs: -1200 }),
    node('n3', { connected: false, disconnectedAt: '2026-06-01T09:00:00Z' }),
    node('n4', {
      connected: false,
      connectedSince: '',
      revisionSent: 0,
      workloads: 1,
      version: '',
    }),
  ];
  assert.equal(nodesTable(nodes, now), golden('get-nodes.txt'));
});
