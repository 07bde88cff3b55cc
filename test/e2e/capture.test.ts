// The kernel mechanisms meshd's capture rests on, exercised through the native addon in real
// lab namespaces: REDIRECT + original destination (IPv4 and IPv6), SO_MARK bypass, and sockets
// created inside a workload namespace from the node namespace.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import type { Server, Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { Lab } from '../../ctl/lab/index.js';
import { connectFromNetns, listenInNetns, netnsPath, originalDst } from '../../daemon/net/index.js';
import { startEchoServer, stop, supportScript } from '../support/lab-helpers.js';

const APP_PORT = 8080; // redirected in the client workload unless marked
const DIRECT_PORT = 9090; // never redirected
const CAPTURE_PORT = 15001;
const BYPASS_MARK = 0x539;

let lab: Lab;
let echo: ChildProcess | undefined;
let capture: Server | undefined;

/** Answers every captured connection with the original destination the addon read. */
function answerWithOriginalDst(socket: Socket): void {
  socket.once('data', () => {
    const od = originalDst(socket);
    const body = JSON.stringify({ address: od.address, port: od.port, family: od.family });
    socket.end(
      `HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`,
    );
  });
  socket.on('error', () => {});
}

async function redirectRuleHits(family: 4 | 6): Promise<number> {
  const tool = family === 4 ? 'iptables' : 'ip6tables';
  const { stdout } = await lab.exec('n1-w1', [tool, '-t', 'nat', '-L', 'OUTPUT', '-v', '-x', '-n']);
  const line = stdout.split('\n').find((l) => l.includes('REDIRECT'));
  assert.ok(line, `${tool} REDIRECT rule present`);
  return Number(line.trim().split(/\s+/)[0]);
}

before(async () => {
  lab = await Lab.create({ nodes: 2, workloads: 1 });
  for (const tool of ['iptables', 'ip6tables']) {
    await lab.exec('n1-w1', [
      tool,
      '-t',
      'nat',
      '-A',
      'OUTPUT',
      '-p',
      'tcp',
      '--dport',
      String(APP_PORT),
      '-m',
      'mark',
      '!',
      '--mark',
      String(BYPASS_MARK),
      '-j',
      'REDIRECT',
      '--to-ports',
      String(CAPTURE_PORT),
    ]);
  }
  // One dual-stack listener inside the client workload, made by the addon (not by the netns of this process).
  capture = await listenInNetns(
    { netns: netnsPath(lab.member('n1-w1').netns), family: 6, host: '::', port: CAPTURE_PORT },
    answerWithOriginalDst,
  );
  echo = await startEchoServer(lab, 'n2-w1', APP_PORT);
});

after(async () => {
  capture?.close();
  stop(echo);
  assert.deepEqual(lab.destroy(), []);
});

test('REDIRECT to a listener made inside the workload netns reports the original IPv4 destination', async () => {
  const target = lab.member('n2-w1').ipv4;
  const before = await redirectRuleHits(4);
  const { stdout } = await lab.exec('n1-w1', [
    'curl',
    '-sS',
    '-m',
    '5',
    `http://${target}:${APP_PORT}/`,
  ]);
  assert.deepEqual(JSON.parse(stdout), { address: target, port: APP_PORT, family: 4 });
  assert.equal(await redirectRuleHits(4), before + 1);
});

test('REDIRECT reports the original IPv6 destination', async () => {
  const target = lab.member('n2-w1').ipv6!;
  const { stdout } = await lab.exec('n1-w1', [
    'curl',
    '-sS',
    '-m',
    '5',
    `http://[${target}]:${APP_PORT}/`,
  ]);
  assert.deepEqual(JSON.parse(stdout), { address: target, port: APP_PORT, family: 6 });
});

test('a socket marked through the addon bypasses the rule that captures unmarked traffic', async () => {
  const client = lab.member('n1-w1');
  const target = lab.member('n2-w1');
  for (const family of [4, 6] as const) {
    const before = await redirectRuleHits(family);
    const socket = await connectFromNetns({
      netns: netnsPath(client.netns),
      family,
      mark: BYPASS_MARK,
      host: family === 4 ? target.ipv4 : target.ipv6!,
      port: APP_PORT,
    });
    const body = await httpGet(socket);
    // It reached the real server on node 2 (which reports the caller), not the capture listener.
    assert.deepEqual(JSON.parse(body).remoteAddress, family === 4 ? client.ipv4 : client.ipv6);
    assert.equal(
      await redirectRuleHits(family),
      before,
      `IPv${family} rule not hit by the marked socket`,
    );
  }
});

test('a socket created in the workload netns by a process in the node netns leaves with the workload IP', async () => {
  const client = lab.member('n1-w1');
  const target = lab.member('n2-w1');
  const direct = await startEchoServer(lab, 'n2-w1', DIRECT_PORT);
  try {
    const { stdout } = await lab.exec('n1', [
      process.execPath,
      supportScript('connect-from-netns'),
      netnsPath(client.netns),
      target.ipv4,
      String(DIRECT_PORT),
    ]);
    const seen = JSON.parse(stdout) as { remoteAddress: string };
    assert.equal(seen.remoteAddress, client.ipv4);
    assert.notEqual(seen.remoteAddress, lab.member('n1').ipv4);
  } finally {
    stop(direct);
  }
});

function httpGet(socket: Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('end', () => {
      const text = Buffer.concat(chunks).toString();
      resolve(text.slice(text.indexOf('\r\n\r\n') + 4));
    });
    socket.end('GET / HTTP/1.1\r\nhost: lab\r\nconnection: close\r\n\r\n');
  });
}
