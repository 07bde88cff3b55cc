/**
 * The files `meshctl install systemd` writes: the hardened units of systemd/ (pointed at the
 * install prefix), each role's EnvironmentFile generated from its config spec, the sysusers.d
 * entry for the server's user and the tmpfiles.d entry for the iptables lock.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  type AgentConfig,
  agentSpec,
  parse,
  type ServerConfig,
  serverSpec,
} from '../../daemon/config.js';
import { isTrustDomain } from '../../daemon/identity/index.js';
import { packageRoot } from '../../daemon/paths.js';
import { envFileText } from './env.js';
import { type InstallFile, installError } from './files.js';

export type Role = 'server' | 'agent';
export const ROLES: readonly Role[] = ['server', 'agent'];

/** Where the units in systemd/ expect the meshd checkout (bin/meshd, dist/, node_modules/). */
export const DEFAULT_PREFIX = '/opt/meshd';

/** Paths the units and the env files must agree on (StateDirectory=, RuntimeDirectory=). */
export const SYSTEMD_PATHS = {
  unitDir: '/etc/systemd/system',
  configDir: '/etc/meshd',
  caDir: '/etc/meshd/ca',
  caBundle: '/etc/meshd/bundle.pem',
  serverDataDir: '/var/lib/meshd/server',
  agentStateDir: '/var/lib/meshd/agent',
  cniSocket: '/run/meshd/cni.sock',
  sysusers: '/etc/sysusers.d/meshd.conf',
  tmpfiles: '/etc/tmpfiles.d/meshd.conf',
} as const;

export interface SystemdInstallOptions {
  roles: readonly Role[];
  /** Where bin/meshd lives on the target system. */
  prefix: string;
  trustDomain: string;
  /** Agent only. */
  nodeName: string;
  server: string;
  caBundle: string;
  joinToken: string | undefined;
  /** The folder holding the unit files; default systemd/ of this checkout. */
  sourceDir?: string;
}

export const DEFAULT_AGENT_VALUES = {
  server: '127.0.0.1:15012',
  trustDomain: 'cluster.local',
  caBundle: SYSTEMD_PATHS.caBundle,
} as const;

function checkOptions(o: SystemdInstallOptions): void {
  if (!/^\/[A-Za-z0-9_.@+/-]*$/.test(o.prefix) || o.prefix.split('/').includes('..')) {
    throw installError(
      `--prefix ${JSON.stringify(o.prefix)}: not an absolute path of plain characters`,
      `the directory holding bin/meshd on the target system, e.g. ${DEFAULT_PREFIX}`,
    );
  }
  if (!isTrustDomain(o.trustDomain)) {
    throw installError(
      `--trust-domain ${JSON.stringify(o.trustDomain)}: not a trust domain`,
      'use lowercase letters, digits, ".", "-", "_" (the one `meshctl ca init` was given)',
    );
  }
  if (!o.roles.includes('agent')) return;
  try {
    parse.dnsLabel(o.nodeName);
  } catch (err) {
    throw installError(
      `--node-name ${JSON.stringify(o.nodeName)}: ${(err as Error).message}`,
      'pass --node-name with the name this node joins under (the one given to meshctl token create --node)',
    );
  }
  if (!/^\S+$/.test(o.server)) {
    throw installError(`--server ${JSON.stringify(o.server)}: empty or with spaces`, 'HOST:PORT');
  }
  if (!o.caBundle.startsWith('/')) {
    throw installError(`--ca-bundle ${o.caBundle}: not an absolute path`, 'give a full path');
  }
}

/** A unit of systemd/, with its ExecStart= (and Documentation=) under `prefix`. */
export function unitText(role: Role, prefix: string, sourceDir = defaultSourceDir()): string {
  const text = readFileSync(join(sourceDir, `meshd-${role}.service`), 'utf8');
  return text.replaceAll(`${DEFAULT_PREFIX}/`, `${prefix.replace(/\/+$/, '')}/`);
}

export function defaultSourceDir(): string {
  return join(packageRoot(), 'systemd');
}

export function serverEnvText(trustDomain: string): string {
  const values: Partial<Record<keyof ServerConfig, string>> = {
    trustDomain,
    caDir: SYSTEMD_PATHS.caDir,
    dataDir: SYSTEMD_PATHS.serverDataDir,
  };
  return envFileText(
    [
      'meshd server configuration: read by meshd-server.service (EnvironmentFile=).',
      'Written by `meshctl install systemd`; what each variable means: docs/server.md.',
      "MESHD_DATA_DIR is the unit's StateDirectory= (the only place the server may write):",
      'change both together, the unit in a drop-in (systemctl edit meshd-server).',
    ],
    serverSpec,
    values,
  );
}

export function agentEnvText(o: {
  nodeName: string;
  server: string;
  trustDomain: string;
  caBundle: string;
  joinToken: string | undefined;
}): string {
  const values: Partial<Record<keyof AgentConfig, string>> = {
    nodeName: o.nodeName,
    serverAddress: o.server,
    trustDomain: o.trustDomain,
    caBundleFile: o.caBundle,
    stateDir: SYSTEMD_PATHS.agentStateDir,
    cniSocket: SYSTEMD_PATHS.cniSocket,
  };
  if (o.joinToken !== undefined) values.joinToken = o.joinToken;
  return envFileText(
    [
      'meshd agent configuration: read by meshd-agent.service (EnvironmentFile=).',
      'Written by `meshctl install systemd`, mode 0600: MESHD_JOIN_TOKEN is a secret. The token',
      'is needed once; the node keeps its certificate in MESHD_STATE_DIR after joining.',
      'What each variable means: docs/identity.md and docs/dataplane.md.',
      "MESHD_STATE_DIR and MESHD_CNI_SOCKET are the unit's StateDirectory= and",
      'RuntimeDirectory= (the only places the agent may write): change both together.',
    ],
    agentSpec,
    values,
  );
}

function sourceFile(name: string, sourceDir: string): string {
  return readFileSync(join(sourceDir, name), 'utf8');
}

/** Every file for the chosen roles, in a stable order. */
export function systemdInstallFiles(o: SystemdInstallOptions): InstallFile[] {
  checkOptions(o);
  const dir = o.sourceDir ?? defaultSourceDir();
  const files: InstallFile[] = [];
  if (o.roles.includes('server')) {
    files.push(
      {
        path: `${SYSTEMD_PATHS.unitDir}/meshd-server.service`,
        text: unitText('server', o.prefix, dir),
        mode: 0o644,
      },
      {
        path: `${SYSTEMD_PATHS.configDir}/server.env`,
        text: serverEnvText(o.trustDomain),
        mode: 0o644,
      },
      { path: SYSTEMD_PATHS.sysusers, text: sourceFile('meshd.sysusers.conf', dir), mode: 0o644 },
    );
  }
  if (o.roles.includes('agent')) {
    files.push(
      {
        path: `${SYSTEMD_PATHS.unitDir}/meshd-agent.service`,
        text: unitText('agent', o.prefix, dir),
        mode: 0o644,
      },
      { path: `${SYSTEMD_PATHS.configDir}/agent.env`, text: agentEnvText(o), mode: 0o600 },
      { path: SYSTEMD_PATHS.tmpfiles, text: sourceFile('meshd.tmpfiles.conf', dir), mode: 0o644 },
    );
  }
  return files;
}
