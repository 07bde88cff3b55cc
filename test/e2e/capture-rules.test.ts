// The generated capture rules (cni/rules.ts) applied by cni/capture.ts in the netns lab: what
// they redirect and what they let pass, with listeners made by the addon inside the namespace,
// and that removing them gives the namespace back exactly.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import type { Server, Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { applyCapture, removeCapture } from '../../cni/index.js';
import { Lab } from '../../ctl/lab/index.js';
import { connectFromNetns, listenInNetns, netnsPath, originalDst } from '../../daemon/net/index.js';
import { startEchoServer, stop } from '../support/lab-helpers.js';

const APP_PORT = 8080;
const HBONE_PORT = 15008;
const AGENT_MARK = 0x539;

let lab: Lab;
const servers: Server[] = [];
const children: ChildProcess[] = [];

interface Answer {
  listener?: string;
  address?: string;
  port?: number;
  family?: number;
  remoteAddress?: string;
  localAddress?: string;
}

/** A stand-in for the agent's listener: answers with its name and the original destination. */
function captureListener(netns: string, port: number, listener: string): Promise<Server> {
  return listenInNetns({ netns, family: 6, host: '::', port }, (socket: Socket) => {
    socket.on('error', () => {});
    socket.once('data', () => {
      const od = originalDst(socket);
      const body = JSON.stringify({
        listener,
        address: od.address,
        port: od.port,
        family: od.family,
      });
      socket.end(
        `HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`,
      );
    });
  }).then((server) => {
    servers.push(server);
    return server;
  });
}

async function echo(workload: string, port: number): Promise<void> {
  children.push(await startEchoServer(lab, workload, port));
}

const url = (host: string, port: number) =>
  host.includes(':') ? `http://[${host}]:${port}/` : `http://${host}:${port}/`;

async function curl(from: string, host: string, port: number): Promise<Answer> {
  const { stdout } = await lab.exec(from, ['curl', '-sS', '-m', '5', url(host, port)]);
  return JSON.parse(stdout) as Answer;
}

function httpGet(socket: Socket): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('end', () => {
      const text = Buffer.concat(chunks).toString();
      resolve(JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as Answer);
    });
    socket.end('GET / HTTP/1.1\r\nhost: lab\r\nconnection: close\r\n\r\n');
  });
}

async function iptablesSave(member: string): Promise<string[]> {
  const out: string[] = [];
  for (const tool of ['iptables-save', 'ip6tables-save']) {
    const { stdout } = await lab.exec(member, [tool]);
    out.push(
      ...stdout
        .split('\n')
        .filter((l) => !l.startsWith('#'))
        .map((l) => l.replace(/\[\d+:\d+\]/g, '[]')),
    );
  }
  return out;
}

const ips = (name: string) => {
  const m = lab.member(name);
  return [
    [m.ipv4, 4],
    [m.ipv6!, 6],
  ] as const;
};

let clientNs: string;
let savedBefore: string[];

before(async () => {
  lab = await Lab.create({ nodes: 2, workloads: 1 });
  clientNs = netnsPath(lab.member('n1-w1').netns);
  savedBefore = await iptablesSave('n1-w1');
  await applyCapture(clientNs, { mark: AGENT_MARK });
  await captureListener(clientNs, 15001, 'outbound');
  await captureListener(clientNs, 15006, 'inbound');
  await echo('n2-w1', APP_PORT);
  await echo('n1-w1', APP_PORT);
  await echo('n1-w1', HBONE_PORT); // stands in for the HBONE listener
});

after(async () => {
  for (const s of servers) s.close();
  for (const c of children) stop(c);
  assert.deepEqual(lab.destroy(), []);
});

test('outbound TCP lands on 15001 with the original destination (IPv4 and IPv6)', async () => {
  for (const [ip, family] of ips('n2-w1')) {
    assert.deepEqual(await curl('n1-w1', ip, APP_PORT), {
      listener: 'outbound',
      address: ip,
      port: APP_PORT,
      family,
    });
  }
});

test('a socket with the agent mark bypasses capture; no or another mark is captured', async () => {
  const client = lab.member('n1-w1');
  for (const [ip, family] of ips('n2-w1')) {
    const marked = await connectFromNetns({
      netns: clientNs,
      family,
      mark: AGENT_MARK,
      host: ip,
      port: APP_PORT,
    });
    const seen = await httpGet(marked);
    assert.equal(seen.listener, undefined, 'reached the real server');
    assert.equal(seen.remoteAddress, family === 4 ? client.ipv4 : client.ipv6);
    for (const mark of [undefined, AGENT_MARK + 1]) {
      const other = await connectFromNetns({
        netns: clientNs,
        family,
        mark,
        host: ip,
        port: APP_PORT,
      });
      assert.equal((await httpGet(other)).listener, 'outbound', `mark ${mark} captured`);
    }
  }
});

test('loopback traffic inside the workload is not captured', async () => {
  const self = lab.member('n1-w1');
  for (const host of ['127.0.0.1', '::1', self.ipv4, self.ipv6!]) {
    const answer = await curl('n1-w1', host, APP_PORT);
    assert.equal(answer.listener, undefined, `${host} reached the app`);
    assert.equal(answer.localAddress, host);
  }
});

test('inbound TCP lands on 15006 with the original destination; 15008 is not redirected', async () => {
  const peer = lab.member('n2-w1');
  for (const [ip, family] of ips('n1-w1')) {
    assert.deepEqual(await curl('n2-w1', ip, APP_PORT), {
      listener: 'inbound',
      address: ip,
      port: APP_PORT,
      family,
    });
    const hbone = await curl('n2-w1', ip, HBONE_PORT);
    assert.equal(hbone.listener, undefined, 'HBONE port reached its own listener');
    assert.equal(hbone.remoteAddress, family === 4 ? peer.ipv4 : peer.ipv6);
  }
});

test('after removeCapture everything reaches the real servers and iptables-save is as before', async () => {
  assert.deepEqual(await removeCapture(clientNs), { v4: true, v6: true });
  const client = lab.member('n1-w1');
  const peer = lab.member('n2-w1');
  for (const [ip, family] of ips('n2-w1')) {
    const out = await curl('n1-w1', ip, APP_PORT);
    assert.equal(out.listener, undefined);
    assert.equal(out.remoteAddress, family === 4 ? client.ipv4 : client.ipv6);
  }
  for (const [ip, family] of ips('n1-w1')) {
    const inbound = await curl('n2-w1', ip, APP_PORT);
    assert.equal(inbound.listener, undefined);
    assert.equal(inbound.remoteAddress, family === 4 ? peer.ipv4 : peer.ipv6);
  }
  assert.deepEqual(await iptablesSave('n1-w1'), savedBefore);
});

test('host variant in a node namespace: forwarded traffic passes, the node’s own is captured', async () => {
  const node = lab.member('n1');
  const nodeNs = netnsPath(node.netns);
  await removeCapture(clientNs); // already done by the test before; this one stands alone
  const nodeBefore = await iptablesSave('n1');
  await applyCapture(nodeNs, { mark: AGENT_MARK, hostNetwork: true });
  try {
    await captureListener(nodeNs, 15001, 'node-outbound');
    await captureListener(nodeNs, 15006, 'node-inbound');
    await echo('n1', 15020); // stands in for the agent's metrics port
    // n1-w1 → n2-w1 is forwarded by n1: not addressed to the node, not captured there.
    const client = lab.member('n1-w1');
    for (const [ip, family] of ips('n2-w1')) {
      const out = await curl('n1-w1', ip, APP_PORT);
      assert.equal(out.listener, undefined, `IPv${family} forwarded traffic passes`);
      assert.equal(out.remoteAddress, family === 4 ? client.ipv4 : client.ipv6);
      // The node's own outbound traffic is captured.
      assert.deepEqual(await curl('n1', ip, APP_PORT), {
        listener: 'node-outbound',
        address: ip,
        port: APP_PORT,
        family,
      });
    }
    // Inbound to the node: captured, except the agent's own ports.
    for (const ip of [node.ipv4, node.ipv6!]) {
      assert.equal((await curl('n2', ip, APP_PORT)).listener, 'node-inbound');
      const metrics = await curl('n2', ip, 15020);
      assert.equal(metrics.listener, undefined, 'metrics port not redirected');
    }
  } finally {
    await removeCapture(nodeNs);
  }
  assert.deepEqual(await iptablesSave('n1'), nodeBefore);
});
