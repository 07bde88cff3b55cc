/**
 * Facts about the machine a bench ran on, for its JSON. systeminformation (DESIGN §12) is not
 * installed yet, so these come from node:os, /proc and dpkg-query.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem, version } from 'node:os';

export const PEER_PACKAGES = [
  'stunnel4',
  'haproxy',
  'nginx',
  'libnginx-mod-stream',
  'iperf3',
  'wrk',
  'tcpdump',
  'openssl',
];

const quiet = (file: string, args: string[]) => {
  try {
    return execFileSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return '';
  }
};

export function packageVersions(names: string[]): Record<string, string> {
  const versions: Record<string, string> = {};
  // dpkg-query's own placeholder syntax, not a template string.
  const format = `-f=\${Version}`;
  for (const name of names)
    versions[name] = quiet('dpkg-query', ['-W', format, name]).trim() || 'not installed';
  return versions;
}

function osRelease(): string {
  try {
    return /PRETTY_NAME="([^"]*)"/.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? '';
  } catch {
    return '';
  }
}

export interface MachineFacts {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  os: string;
  kernel: string;
  node: string;
  openssl: string;
  /** OpenSSL of the C peers (Debian's libssl). */
  systemOpenssl: string;
  meshdCommit: string;
  loadAverageAtStart: number[];
  packages: Record<string, string>;
}

export function machineFacts(): MachineFacts {
  const cpu = cpus();
  return {
    cpuModel: cpu[0]?.model ?? 'unknown',
    cores: cpu.length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    os: osRelease(),
    kernel: `${release()} ${version()}`,
    node: process.version,
    openssl: process.versions.openssl ?? '',
    systemOpenssl: quiet('openssl', ['version']).trim(),
    meshdCommit: quiet('git', ['rev-parse', '--short', 'HEAD']).trim(),
    loadAverageAtStart: loadavg().map((l) => Math.round(l * 100) / 100),
    packages: packageVersions(PEER_PACKAGES),
  };
}
