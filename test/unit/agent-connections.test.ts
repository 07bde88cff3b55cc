// The agent's table of live connections (/connections): what each row says about both ends,
// which way the bytes went, and that a closed connection leaves the table.
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { test } from 'node:test';
import { ConnectionTable } from '../../daemon/proxy/index.js';

/** The table reads only the socket's byte counters. */
const socket = (bytesRead: number, bytesWritten: number) =>
  ({ bytesRead, bytesWritten }) as unknown as Socket;

const web = { workload: 'n1-w1', namespace: 'demo', principal: 'cluster.local/ns/demo/sa/web' };
const api = { workload: 'n2-w1', namespace: 'demo', principal: 'cluster.local/ns/demo/sa/api' };

test('rows carry both ends, what was dialed, SPIFFE identities, bytes per direction and age; removal drops them', () => {
  const table = new ConnectionTable();
  // Outbound: the socket is the source's own captured connection.
  const out = socket(100, 2000);
  table.add({
    direction: 'outbound',
    path: 'hbone',
    source: { ...web, ip: '10.40.1.2' },
    sourcePort: 41000,
    destination: { ...api, ip: '10.40.2.2', port: 8080, service: 'api.demo' },
    dialed: { ip: '10.96.0.10', port: 80 },
    socket: out,
    socketFaces: 'source',
  });
  // Inbound: the socket is the agent's connection to the application (the destination).
  const inb = socket(700, 30);
  table.add({
    direction: 'inbound',
    path: 'plaintext',
    source: { workload: '', namespace: '', principal: '', ip: '10.40.9.9' },
    sourcePort: 50000,
    destination: { ...web, ip: '10.40.1.2', port: 8080, service: '' },
    socket: inb,
    socketFaces: 'destination',
  });
  const rows = table.list(Date.now() + 61_000);
  assert.equal(table.size, 2);
  assert.deepEqual(
    rows.map((r) => r.direction),
    ['inbound', 'outbound'],
  );
  const [inbound, outbound] = rows;
  assert.deepEqual(outbound?.source, {
    workload: 'demo/n1-w1',
    address: '10.40.1.2',
    port: 41000,
    identity: 'spiffe://cluster.local/ns/demo/sa/web',
  });
  assert.equal(outbound?.destination.identity, 'spiffe://cluster.local/ns/demo/sa/api');
  assert.equal(outbound?.destination.service, 'api.demo');
  // The workload dialed the service's VIP; the agent sent it to the endpoint.
  assert.deepEqual(outbound?.originalDestination, { address: '10.96.0.10', port: 80 });
  assert.deepEqual(inbound?.originalDestination, { address: '10.40.1.2', port: 8080 });
  assert.equal(outbound?.localIdentity, 'spiffe://cluster.local/ns/demo/sa/web');
  assert.equal(outbound?.peerIdentity, 'spiffe://cluster.local/ns/demo/sa/api');
  assert.equal(outbound?.bytesSentBySource, 100);
  assert.equal(outbound?.bytesSentByDestination, 2000);
  assert.equal(outbound?.ageSeconds, 61);
  assert.equal(inbound?.source.workload, '');
  assert.equal(inbound?.source.identity, '');
  assert.equal(inbound?.localIdentity, 'spiffe://cluster.local/ns/demo/sa/web');
  assert.equal(inbound?.peerIdentity, '');
  // The agent wrote 30 bytes to the application (from the source) and read 700 back.
  assert.equal(inbound?.bytesSentBySource, 30);
  assert.equal(inbound?.bytesSentByDestination, 700);

  table.remove(out);
  assert.deepEqual(
    table.list().map((r) => r.direction),
    ['inbound'],
  );
  table.remove(inb);
  assert.equal(table.size, 0);
});

test('counters are read when listed, not when added', () => {
  const table = new ConnectionTable();
  const s = { bytesRead: 0, bytesWritten: 0 };
  table.add({
    direction: 'outbound',
    path: 'passthrough',
    source: { ...web, ip: '10.40.1.2' },
    sourcePort: 40000,
    destination: {
      workload: '',
      namespace: '',
      principal: '',
      ip: '192.0.2.1',
      port: 443,
      service: '',
    },
    socket: s as unknown as Socket,
    socketFaces: 'source',
  });
  s.bytesRead = 5;
  s.bytesWritten = 9;
  const [row] = table.list();
  assert.equal(row?.bytesSentBySource, 5);
  assert.equal(row?.bytesSentByDestination, 9);
  assert.equal(row?.destination.workload, '');
  assert.equal(row?.peerIdentity, '');
});

test('abortAll resets every connection; settled waits for the last removal, or gives up with the count', async () => {
  const table = new ConnectionTable();
  const destroyed: string[] = [];
  // abortSide() destroys what is not a connected TCP socket (a net.Socket gets a reset).
  const fake = (name: string) =>
    ({ bytesRead: 0, bytesWritten: 0, destroy: () => destroyed.push(name) }) as unknown as Socket;
  const a = fake('a');
  const b = fake('b');
  for (const s of [a, b]) {
    table.add({
      direction: 'outbound',
      path: 'passthrough',
      source: { ...web, ip: '10.40.1.2' },
      sourcePort: 41000,
      destination: { ...api, ip: '10.40.2.2', port: 8080, service: '' },
      socket: s,
      socketFaces: 'source',
    });
  }
  assert.equal(await table.settled(20), 2, 'nothing removed: gives up after the timeout');
  table.abortAll();
  assert.deepEqual(destroyed, ['a', 'b']);
  const settled = table.settled(5_000);
  table.remove(a);
  setTimeout(() => table.remove(b), 10);
  assert.equal(await settled, 0, 'resolves at the last removal, long before the timeout');
  assert.equal(await table.settled(5_000), 0, 'an empty table is settled at once');
});
