/**
 * What the test suite must leave unchanged in the host's own network namespace: lab
 * namespaces, iptables rules (v4 and v6), addresses, routes and policy rules. Counters and
 * comments are dropped so that only configuration is compared.
 */
import { spawnSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';

export interface HostSnapshot {
  labNamespaces: string[];
  iptables: string[];
  ip6tables: string[];
  addresses: string[];
  routes: string[];
  rules: string[];
}

function lines(argv: string[]): string[] {
  const [cmd, ...args] = argv;
  const r = spawnSync(cmd ?? '', args, { encoding: 'utf8' });
  if (r.error || r.status !== 0) return [`(${argv.join(' ')} unavailable)`];
  return r.stdout.split('\n').filter((l) => l.trim() !== '');
}

const withoutCounters = (rules: string[]) =>
  rules.filter((l) => !l.startsWith('#')).map((l) => l.replace(/\[\d+:\d+\]/g, '[]'));

export function takeHostSnapshot(): HostSnapshot {
  return {
    labNamespaces: lines(['ip', 'netns', 'list'])
      .map((l) => l.split(' ')[0] ?? '')
      .filter((n) => n.startsWith('mdl-'))
      .sort(),
    iptables: withoutCounters(lines(['iptables-save'])),
    ip6tables: withoutCounters(lines(['ip6tables-save'])),
    addresses: lines(['ip', '-br', 'addr']),
    routes: [...lines(['ip', 'route']), ...lines(['ip', '-6', 'route'])],
    rules: [...lines(['ip', 'rule']), ...lines(['ip', '-6', 'rule'])],
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  process.stdout.write(`${JSON.stringify(takeHostSnapshot(), null, 2)}\n`);
}
