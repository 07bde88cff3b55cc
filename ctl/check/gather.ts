/** Gathers the facts `meshctl check` judges: servers, registry, CA files, agents, this host. */
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../daemon/command.js';
import { CA_FILES } from '../../daemon/identity/index.js';
import type { Resource } from '../../daemon/model/index.js';
import { getMark, SocketError } from '../../daemon/net/index.js';
import { IdentityClient } from '../../daemon/proto/index.js';
import { agentAdminGet } from '../agent-admin.js';
import { loadAdminCredentials } from '../client.js';
import type { ConnectionFlags } from '../config.js';
import { withRegistry } from '../connect.js';
import { connectionOrLab, labContext } from '../lab-context.js';
import { fetchNodes } from '../nodes.js';
import type { AgentDump, Facts } from './facts.js';

const SERVER_MONITORING_PORT = 15014;

export interface GatherOptions extends ConnectionFlags {
  /** The servers' monitoring port, for readiness. */
  monitoringPort?: number;
}

export async function gatherFacts(flags: GatherOptions): Promise<Facts> {
  const { caDir } = connectionOrLab(flags);
  const lab = labContext();
  const nodes = await fetchNodes(flags);
  const [resources, readiness, trust, agents, host] = await Promise.all([
    withRegistry(flags, async (c) =>
      (await c.list({ kind: '', namespace: '' })).resources.map((r) => JSON.parse(r) as Resource),
    ),
    Promise.all(
      nodes.servers.map((s) =>
        readinessOf(s.address, flags.monitoringPort ?? SERVER_MONITORING_PORT),
      ),
    ),
    trustFacts(caDir, nodes.servers[0]?.address ?? ''),
    agentFacts(nodes.nodes.map((n) => n.name)),
    hostFacts(),
  ]);
  return {
    now: Date.now(),
    servers: nodes.servers,
    unreachable: nodes.unreachable,
    readiness,
    nodes: nodes.nodes,
    resources,
    trust,
    agents,
    host,
    agentLogHint: (node) =>
      lab
        ? `its log: /run/meshd/lab/${lab.id}/agent-${node}.log`
        : `its log: journalctl -u meshd-agent on ${node}`,
  };
}

async function readinessOf(address: string, port: number): Promise<Facts['readiness'][number]> {
  const host = address.slice(0, address.lastIndexOf(':')).replace(/^\[|\]$/g, '');
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}/healthz/ready`;
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(3000) });
    const body = (await res.text()).trim();
    return {
      address,
      url,
      ready: res.ok,
      detail: `HTTP ${res.status}${body ? `: ${body.slice(0, 120)}` : ''}`,
    };
  } catch (err) {
    return { address, url, ready: false, detail: (err as Error).message };
  }
}

function pemBlocks(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

async function trustFacts(caDir: string, server: string): Promise<Facts['trust']> {
  const bundlePath = join(caDir, CA_FILES.bundle);
  const localRoots = existsSync(bundlePath)
    ? pemBlocks(readFileSync(bundlePath, 'utf8')).map((pem) => {
        const cert = new X509Certificate(pem);
        return {
          fingerprint: cert.fingerprint256,
          subject: cert.subject.replace(/\n/g, ', ') || cert.serialNumber,
          notAfter: Date.parse(cert.validTo),
        };
      })
    : [];
  let admin: Facts['trust']['admin'];
  let serverRoots: Facts['trust']['serverRoots'];
  try {
    const creds = loadAdminCredentials(caDir);
    admin = {
      notAfter: Date.parse(new X509Certificate(creds.identity?.certChainPem ?? '').validTo),
    };
    const client = new IdentityClient({ ...creds, server, timeoutMs: 5000 });
    try {
      const bundle = await client.getTrustBundle();
      serverRoots = bundle.roots
        .flatMap(pemBlocks)
        .map((pem) => new X509Certificate(pem).fingerprint256);
    } catch (err) {
      serverRoots = { error: (err as Error).message };
    } finally {
      client.close();
    }
  } catch (err) {
    admin = { error: (err as Error).message };
    serverRoots = { error: 'no admin credentials' };
  }
  return { caDir, localRoots, serverRoots, admin };
}

async function agentFacts(nodes: string[]): Promise<Facts['agents']> {
  const entries = await Promise.all(
    nodes.map(async (node) => {
      try {
        const dump = (await agentAdminGet({ node }, '/config_dump', 5000)) as AgentDump;
        return [node, { dump }] as const;
      } catch (err) {
        return [node, { error: (err as Error).message }] as const;
      }
    }),
  );
  return Object.fromEntries(entries);
}

async function probe(argv: string[]): Promise<{ ok: boolean; detail: string }> {
  try {
    const { stdout } = await run(argv, { timeoutMs: 5000 });
    return { ok: true, detail: stdout.trim() };
  } catch (err) {
    return { ok: false, detail: (err as Error).message.split('\n')[0] ?? 'failed' };
  }
}

async function hostFacts(): Promise<Facts['host']> {
  const [iptables, ip6tables] = await Promise.all([
    probe(['iptables', '-V']),
    probe(['ip6tables', '-V']),
  ]);
  let addon: { ok: boolean; detail: string };
  try {
    // Asking fd 0 (not a socket here) answers ENOTSOCK once the addon is loaded.
    getMark(0);
    addon = { ok: true, detail: 'loaded (SO_ORIGINAL_DST, SO_MARK, setns)' };
  } catch (err) {
    addon =
      err instanceof SocketError
        ? { ok: true, detail: 'loaded (SO_ORIGINAL_DST, SO_MARK, setns)' }
        : { ok: false, detail: `does not load: ${(err as Error).message}` };
  }
  return {
    iptables,
    ip6tables,
    conntrack:
      existsSync('/proc/sys/net/netfilter/nf_conntrack_max') ||
      existsSync('/proc/net/nf_conntrack'),
    addon,
  };
}
