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
  type WaypointConfig,
  waypointSpec,
} from '../../daemon/config.js';
import { isTrustDomain } from '../../daemon/identity/index.js';
import { packageRoot } from '../../daemon/paths.js';
import { envFileText, envValue } from './env.js';
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
  waypointStateDir: '/var/lib/meshd/waypoint',
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
  /** Agent only: a waypoint replica to configure, `<namespace>/<name>` (its instance file). */
  waypoint?: string | undefined;
  /** With waypoint: the address it serves and registers (default: the host's first IPv4). */
  waypointAddress?: string | undefined;
  /** The folder holding the unit files; default systemd/ of this checkout. */
  sourceDir?: string;
}

/** The waypoint template unit: instance `<namespace>_<name>` (a DNS label has no "_"). */
export const WAYPOINT_UNIT = 'meshd-waypoint@.service';

/**
 * Waypoint replicas on a host share its network with the agent, so they take other monitoring
 * ports than the agent's 15000/15020/15021 (a second replica on one host needs its own address
 * or ports, in its instance file).
 */
export const WAYPOINT_HOST_PORTS = { admin: 15100, metrics: 15120, readiness: 15121 } as const;

/** `shop/wp` → `shop_wp`, the instance of meshd-waypoint@.service; undefined if not NS/NAME. */
export function waypointInstance(waypoint: string): string | undefined {
  const m = /^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)\/([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)$/.exec(
    waypoint,
  );
  return m ? `${m[1]}_${m[3]}` : undefined;
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
  if (!o.roles.includes('agent')) {
    if (o.waypoint !== undefined)
      throw installError(
        '--waypoint needs the agent role: a replica registers through the agent of its host',
        'drop --role server, or install the agent too',
      );
    return;
  }
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
  if (o.waypoint !== undefined && !waypointInstance(o.waypoint)) {
    throw installError(
      `--waypoint ${JSON.stringify(o.waypoint)}: not <namespace>/<name>`,
      'the Waypoint this host runs a replica of, e.g. shop/wp (both DNS labels)',
    );
  }
  if (o.waypointAddress !== undefined && !/^[0-9a-fA-F.:]+$/.test(o.waypointAddress)) {
    throw installError(
      `--waypoint-address ${JSON.stringify(o.waypointAddress)}: not an IP address`,
      'an address of this host that other nodes reach',
    );
  }
}

/** A unit of systemd/, with its ExecStart= (and Documentation=) under `prefix`. */
export function unitText(role: Role, prefix: string, sourceDir = defaultSourceDir()): string {
  const text = readFileSync(join(sourceDir, `meshd-${role}.service`), 'utf8');
  return text.replaceAll(`${DEFAULT_PREFIX}/`, `${prefix.replace(/\/+$/, '')}/`);
}

/** The waypoint template unit of systemd/, with its ExecStart= (and Documentation=) under `prefix`. */
export function waypointUnitText(prefix: string, sourceDir = defaultSourceDir()): string {
  const text = readFileSync(join(sourceDir, WAYPOINT_UNIT), 'utf8');
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

/** What every waypoint replica of this host shares (the unit's first EnvironmentFile=). */
export function waypointEnvText(): string {
  const values: Partial<Record<keyof WaypointConfig, string>> = {
    agentSocket: SYSTEMD_PATHS.cniSocket,
    stateDir: SYSTEMD_PATHS.waypointStateDir,
    adminPort: String(WAYPOINT_HOST_PORTS.admin),
    metricsPort: String(WAYPOINT_HOST_PORTS.metrics),
    readinessPort: String(WAYPOINT_HOST_PORTS.readiness),
  };
  return envFileText(
    [
      'meshd waypoint configuration shared by every meshd-waypoint@<namespace>_<name>.service',
      'of this host (EnvironmentFile=); each instance reads /etc/meshd/waypoint-<instance>.env',
      'after it, which sets MESHD_WAYPOINT and may override anything here.',
      'Written by `meshctl install systemd`; what each variable means: docs/waypoint.md.',
      "The ports are not the agent's (15000, 15020, 15021): both are on the host's network.",
      "MESHD_STATE_DIR is the unit's StateDirectory=: change both together.",
    ],
    waypointSpec,
    values,
  );
}

/** One replica's instance file: which Waypoint, and where it serves. */
export function waypointInstanceEnvText(waypoint: string, address: string | undefined): string {
  const instance = waypointInstance(waypoint) ?? '';
  return [
    `# meshd-waypoint@${instance}.service: a replica of waypoint ${waypoint} (EnvironmentFile=,`,
    '# read after /etc/meshd/waypoint.env). Written by `meshctl install systemd --waypoint`.',
    `# Start it: systemctl enable --now meshd-waypoint@${instance}`,
    '',
    `MESHD_WAYPOINT=${envValue('MESHD_WAYPOINT', waypoint)}`,
    address === undefined
      ? "# MESHD_WAYPOINT_ADDRESS=    (default: this host's first non-loopback IPv4)"
      : `MESHD_WAYPOINT_ADDRESS=${envValue('MESHD_WAYPOINT_ADDRESS', address)}`,
    '',
  ].join('\n');
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
      {
        path: `${SYSTEMD_PATHS.unitDir}/${WAYPOINT_UNIT}`,
        text: waypointUnitText(o.prefix, dir),
        mode: 0o644,
      },
      { path: `${SYSTEMD_PATHS.configDir}/waypoint.env`, text: waypointEnvText(), mode: 0o644 },
    );
    if (o.waypoint !== undefined) {
      files.push({
        path: `${SYSTEMD_PATHS.configDir}/waypoint-${waypointInstance(o.waypoint)}.env`,
        text: waypointInstanceEnvText(o.waypoint, o.waypointAddress),
        mode: 0o644,
      });
    }
  }
  return files;
}
