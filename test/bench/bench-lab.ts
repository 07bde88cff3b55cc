/**
 * Prepares a meshed lab for the bench: takes the second workload pair out of the mesh (direct
 * and the peers use it), tunes the namespaces for many short connections, starts the servers in
 * both server workloads and both sides of every peer, and waits until everything listens.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEMO_NAMESPACE, type Lab } from '../../ctl/lab/index.js';
import { MeshdError } from '../../daemon/errors.js';
import { packageRoot } from '../../daemon/paths.js';
import {
  CLIENT_NODE,
  MESH_CLIENT,
  MESH_SERVER,
  PLAIN_CLIENT,
  PLAIN_SERVER,
  SERVER_NODE,
} from './cases.js';
import {
  type Certs,
  originNginxConfig,
  PEERS,
  type PeerLayout,
  peerPort,
  SERVICES,
} from './peers.js';
import { pingpongScript } from './tools.js';

export const MARKER = 'MESHD-BENCH-PLAINTEXT-MARKER-5c1e';
/** The static file wrk fetches: 128 bytes. */
export const INDEX_BODY = `${'meshd bench '.repeat(10).slice(0, 127)}\n`;

/** Per-namespace settings for many short connections (same for every case; recorded). */
export const SYSCTLS = {
  'net.ipv4.tcp_tw_reuse': 1,
  'net.ipv4.ip_local_port_range': '16000 64999',
};

export interface RunningLab {
  children: ChildProcess[];
  peerConfigs: Record<string, { client: string; server: string }>;
  originConfig: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function until<T>(
  what: string,
  fn: () => Promise<T>,
  ok: (v: T) => boolean,
  ms: number,
) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await fn().catch(() => undefined);
    if (value !== undefined && ok(value)) return value;
    if (Date.now() > deadline)
      throw new MeshdError('MESHD_E_LAB', `${what} did not happen within ${ms} ms`);
    await sleep(200);
  }
}

export async function capturedWorkloads(lab: Lab, node: string): Promise<string[]> {
  const { stdout } = await lab.exec(node, [
    'curl',
    '-sS',
    '-m',
    '3',
    'http://127.0.0.1:15000/config_dump',
  ]);
  return (JSON.parse(stdout) as { captured: { workload: string }[] }).captured.map(
    (c) => c.workload,
  );
}

export function meshctl(lab: Lab, ...args: string[]) {
  const caDir = lab.mesh?.caDir;
  if (!caDir) throw new MeshdError('MESHD_E_LAB', 'the bench needs a lab with a mesh');
  const main = join(packageRoot(), 'dist', 'ctl', 'main.js');
  return lab.exec(CLIENT_NODE, [process.execPath, main, ...args, '--ca-dir', caDir]);
}

/** Takes the plain pair out of the mesh and checks their namespaces hold no capture rule. */
async function releasePlainPair(lab: Lab): Promise<void> {
  for (const [workload, node] of [
    [PLAIN_CLIENT, CLIENT_NODE],
    [PLAIN_SERVER, SERVER_NODE],
  ] as const) {
    await meshctl(lab, 'release', workload, '-n', DEMO_NAMESPACE);
    await until(
      `release of ${workload}`,
      () => capturedWorkloads(lab, node),
      (c) => !c.includes(`${DEMO_NAMESPACE}/${workload}`),
      10_000,
    );
    await until(
      `removal of ${workload}'s capture rules`,
      async () => (await lab.exec(workload, ['iptables-save', '-t', 'nat'])).stdout,
      (rules) => !rules.includes('MESHD'),
      10_000,
    );
  }
  for (const [workload, node] of [
    [MESH_CLIENT, CLIENT_NODE],
    [MESH_SERVER, SERVER_NODE],
  ] as const) {
    const captured = await capturedWorkloads(lab, node);
    if (!captured.includes(`${DEMO_NAMESPACE}/${workload}`))
      throw new MeshdError('MESHD_E_LAB', `${workload} is not captured (${captured.join(', ')})`);
  }
}

/** Children the bench stopped itself: their exit is no news. */
const stopped = new WeakSet<ChildProcess>();

/** Keeps a child's output drained, and its last lines for errors. */
export function watch(child: ChildProcess, name: string, children: ChildProcess[]): ChildProcess {
  let tail = '';
  const keep = (chunk: Buffer) => {
    tail = (tail + chunk.toString()).slice(-2000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  child.once('exit', (code, signal) => {
    if (!stopped.has(child) && (code !== 0 || signal))
      console.error(`bench: ${name} exited (${code ?? signal}): ${tail.trim()}`);
  });
  children.push(child);
  return child;
}

export async function waitListening(lab: Lab, member: string, addresses: string[]): Promise<void> {
  await until(
    `listeners ${addresses.join(', ')} in ${member}`,
    async () => (await lab.exec(member, ['ss', '-Htln'])).stdout,
    (out) => addresses.every((a) => out.includes(a)),
    15_000,
  );
}

export function fileLimit(): number {
  const line = /Max open files\s+(\d+)/.exec(readFileSync('/proc/self/limits', 'utf8'));
  return Number(line?.[1] ?? 1024);
}

export async function prepareLab(lab: Lab, dir: string, certs: Certs): Promise<RunningLab> {
  await releasePlainPair(lab);
  for (const member of lab.members())
    await lab.exec(member.name, [
      'sysctl',
      '-q',
      '-w',
      ...Object.entries(SYSCTLS).map(([k, v]) => `${k}=${v}`),
    ]);

  const children: ChildProcess[] = [];
  let originConfig = '';
  for (const server of [MESH_SERVER, PLAIN_SERVER]) {
    const originDir = join(dir, `origin-${server}`);
    mkdirSync(join(originDir, 'www'), { recursive: true });
    writeFileSync(join(originDir, 'www', 'index.html'), INDEX_BODY);
    writeFileSync(join(originDir, 'www', 'marker.txt'), `${MARKER}\n`);
    originConfig = originNginxConfig(originDir, 8080, fileLimit());
    writeFileSync(join(originDir, 'nginx.conf'), originConfig);
    const origin = ['nginx', '-p', originDir, '-e', join(originDir, 'origin.log')];
    watch(
      lab.spawn(server, [...origin, '-c', join(originDir, 'nginx.conf')]),
      `origin ${server}`,
      children,
    );
    watch(lab.spawn(server, ['iperf3', '-s', '-p', '5201']), `iperf3 ${server}`, children);
    watch(
      lab.spawn(server, [process.execPath, pingpongScript, 'server', '7000']),
      `pingpong ${server}`,
      children,
    );
    await waitListening(lab, server, [':5201', ':7000', ':8080']);
  }

  const layout: PeerLayout = {
    certs,
    clientNodeAddress: lab.member(CLIENT_NODE).ipv4,
    serverNodeAddress: lab.member(SERVER_NODE).ipv4,
    originAddress: lab.member(PLAIN_SERVER).ipv4,
    fileLimit: fileLimit(),
    dir,
  };
  const peerConfigs: RunningLab['peerConfigs'] = {};
  for (const peer of PEERS) {
    const configs = { client: '', server: '' };
    for (const [side, node] of [
      ['server', SERVER_NODE],
      ['client', CLIENT_NODE],
    ] as const) {
      const text = peer.config(side, layout);
      const file = join(dir, `${peer.name}-${side}.conf`);
      writeFileSync(file, text);
      configs[side] = text;
      watch(lab.spawn(node, peer.argv(file, side, layout)), `${peer.name} ${side}`, children);
      const address = side === 'client' ? layout.clientNodeAddress : layout.serverNodeAddress;
      await waitListening(
        lab,
        node,
        SERVICES.map((s) => `${address}:${peerPort(peer, s)}`),
      );
    }
    peerConfigs[peer.name] = configs;
  }
  return { children, peerConfigs, originConfig };
}

export function stopAll(running: RunningLab): void {
  for (const child of running.children) {
    stopped.add(child);
    if (child.exitCode === null) child.kill('SIGTERM');
  }
}
