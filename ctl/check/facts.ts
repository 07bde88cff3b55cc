/** What `meshctl check` looks at, gathered once; the checks are pure functions of it. */
import type { Resource } from '../../daemon/model/index.js';
import type { NodeView } from '../nodes.js';

export type CheckStatus = 'ok' | 'warn' | 'fail';

export interface CheckResult {
  check: string;
  status: CheckStatus;
  /** What the line is about: a server, a node, a workload, a policy. */
  subject: string;
  message: string;
  /** What to do about a warning or a failure. */
  hint?: string;
}

export interface CertFact {
  identity: string;
  state: string;
  notBefore?: string;
  notAfter?: string;
}

/** The part of an agent's /config_dump the checks read. */
export interface AgentDump {
  node: string;
  captured: { workload: string; identity: string; addresses: string[] }[];
  certificates: CertFact[];
  registry: { revision: number; source: string; connectedTo: string | null };
}

export interface Facts {
  now: number;
  servers: { address: string; revision: number; clockOffsetMs: number }[];
  unreachable: { address: string; error: string }[];
  readiness: { address: string; url: string; ready: boolean; detail: string }[];
  nodes: NodeView[];
  resources: Resource[];
  trust: {
    caDir: string;
    localRoots: { fingerprint: string; subject: string; notAfter: number }[];
    serverRoots: string[] | { error: string };
    admin: { notAfter: number } | { error: string };
  };
  /** Each node's agent view, or why it could not be read from here. */
  agents: Record<string, { dump: AgentDump } | { error: string }>;
  host: {
    iptables: { ok: boolean; detail: string };
    ip6tables: { ok: boolean; detail: string };
    conntrack: boolean;
    addon: { ok: boolean; detail: string };
  };
  /** Where to look for an agent's log (the lab's file, or journalctl). */
  agentLogHint(node: string): string;
}
