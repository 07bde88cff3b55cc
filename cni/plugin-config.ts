/**
 * meshd-cni input parsing (pure): the network configuration on stdin, the CNI environment,
 * the workload identity (CNI_ARGS, `args.cni.labels`) and the addresses of `prevResult`.
 * Every problem is a CniError with the CNI code the spec assigns to it.
 */
import { isIP } from 'node:net';

/** The CNI spec versions meshd-cni speaks (ADD/DEL/CHECK since 0.4.0; STATUS and GC since 1.1.0). */
export const CNI_SUPPORTED_VERSIONS = ['0.4.0', '1.0.0', '1.1.0'] as const;
export type CniVersion = (typeof CNI_SUPPORTED_VERSIONS)[number];

/** The version errors and VERSION answers carry when the input names none we support. */
export const CNI_LATEST_VERSION: CniVersion = '1.1.0';

/** CNI well-known error codes (spec §"Error") and meshd-cni's own range (100+). */
export const CNI_ERROR = {
  /** 1: incompatible CNI version */
  incompatibleVersion: 1,
  /** 2: unsupported field in the network configuration */
  unsupportedField: 2,
  /** 3: container unknown or does not exist */
  unknownContainer: 3,
  /** 4: invalid necessary environment variables (CNI_COMMAND, CNI_CONTAINERID, …) */
  invalidEnv: 4,
  /** 5: I/O failure (reading stdin, talking to the agent) */
  ioFailure: 5,
  /** 6: failed to decode content (stdin is not JSON) */
  decodeFailure: 6,
  /** 7: invalid network config */
  invalidConfig: 7,
  /** 11: try again later (transient: the agent is down or slow) */
  tryAgainLater: 11,
  /** 50 (STATUS, 1.1): the plugin is not available (cannot service ADD) */
  notAvailable: 50,
  /** 51 (STATUS, 1.1): not available, existing containers may have limited connectivity */
  notAvailableLimited: 51,
  /** 100: a bug in meshd-cni (an unexpected exception) */
  internal: 100,
  /** 101: the agent answered something that is not the meshd-cni protocol */
  agentProtocol: 101,
} as const;

/** The defaults of the plugin's own network-config fields. */
export const CNI_DEFAULTS = {
  agentSocket: '/run/meshd/cni.sock',
  timeoutMs: 30_000,
  logFile: '/var/log/meshd-cni.log',
  /** STATUS asks the agent with min(timeoutMs, this): runtimes poll it. */
  statusTimeoutMs: 5_000,
} as const;

/** Bounds of `timeoutMs` (1 ms … 10 min). */
export const CNI_TIMEOUT_BOUNDS = { min: 1, max: 600_000 } as const;

/** A failure of the plugin, reported to the runtime as the CNI error `{code,msg,details}`. */
export class CniError extends Error {
  readonly code: number;
  readonly details: string | undefined;

  constructor(code: number, msg: string, details?: string, options?: { cause?: unknown }) {
    super(msg, options);
    this.name = 'CniError';
    this.code = code;
    this.details = details;
  }
}

export const CNI_VERBS = ['ADD', 'DEL', 'CHECK', 'VERSION', 'STATUS', 'GC'] as const;
export type CniVerb = (typeof CNI_VERBS)[number];

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The verb of CNI_COMMAND; code 4 when it is missing or not a CNI verb. */
export function parseVerb(value: string | undefined): CniVerb {
  if (value === undefined || value === '') {
    throw new CniError(
      CNI_ERROR.invalidEnv,
      'CNI_COMMAND is not set',
      `expected one of ${CNI_VERBS.join(', ')}`,
    );
  }
  if (!(CNI_VERBS as readonly string[]).includes(value)) {
    throw new CniError(
      CNI_ERROR.invalidEnv,
      `CNI_COMMAND "${value}" is not a CNI verb`,
      `expected one of ${CNI_VERBS.join(', ')}`,
    );
  }
  return value as CniVerb;
}

/** Decodes stdin into a JSON object; code 6 for anything else. */
export function decodeStdin(stdin: string): Json {
  if (stdin.trim() === '') {
    throw new CniError(
      CNI_ERROR.decodeFailure,
      'the network configuration on stdin is empty',
      'the container runtime passes the network configuration (JSON) on stdin',
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(stdin);
  } catch (err) {
    throw new CniError(
      CNI_ERROR.decodeFailure,
      'the network configuration on stdin is not valid JSON',
      err instanceof Error ? err.message : String(err),
    );
  }
  if (!isObject(value)) {
    throw new CniError(
      CNI_ERROR.decodeFailure,
      'the network configuration on stdin is not a JSON object',
      `got ${Array.isArray(value) ? 'an array' : value === null ? 'null' : typeof value}`,
    );
  }
  return value;
}

export function isSupportedVersion(v: unknown): v is CniVersion {
  return typeof v === 'string' && (CNI_SUPPORTED_VERSIONS as readonly string[]).includes(v);
}

function compareVersions(a: CniVersion, b: CniVersion): number {
  return CNI_SUPPORTED_VERSIONS.indexOf(a) - CNI_SUPPORTED_VERSIONS.indexOf(b);
}

/** Version negotiation: `cniVersion` must be one meshd-cni supports (else code 1). */
export function negotiateVersion(config: Json, verb: CniVerb): CniVersion {
  const v = config.cniVersion;
  const supported = CNI_SUPPORTED_VERSIONS.join(', ');
  if (!isSupportedVersion(v)) {
    throw new CniError(
      CNI_ERROR.incompatibleVersion,
      v === undefined
        ? `cniVersion is not set in the network configuration; meshd-cni supports ${supported}`
        : `cniVersion ${JSON.stringify(v)} is not supported; meshd-cni supports ${supported}`,
      `supportedVersions: ${JSON.stringify(CNI_SUPPORTED_VERSIONS)}`,
    );
  }
  if ((verb === 'STATUS' || verb === 'GC') && compareVersions(v, '1.1.0') < 0) {
    throw new CniError(
      CNI_ERROR.incompatibleVersion,
      `${verb} needs cniVersion 1.1.0 or later; the network configuration has ${v}`,
      `supportedVersions: ${JSON.stringify(CNI_SUPPORTED_VERSIONS)}`,
    );
  }
  return v;
}

/** The plugin's own fields of the network configuration, defaults applied. */
export interface PluginSettings {
  cniVersion: CniVersion;
  /** The network's name (for logs). */
  network: string;
  agentSocket: string;
  timeoutMs: number;
  /** '' disables the log file. */
  logFile: string;
}

/** The configured log file, or the default when the field is absent or not a string. */
export function logFileOf(config: Json): string {
  return typeof config.logFile === 'string' ? config.logFile : CNI_DEFAULTS.logFile;
}

export function parseSettings(config: Json, cniVersion: CniVersion): PluginSettings {
  const invalid = (field: string, why: string, value: unknown) =>
    new CniError(
      CNI_ERROR.invalidConfig,
      `${field} ${why}`,
      `got ${JSON.stringify(value)} in the meshd-cni entry of the network configuration`,
    );
  const agentSocket = config.agentSocket ?? CNI_DEFAULTS.agentSocket;
  if (typeof agentSocket !== 'string' || !agentSocket.startsWith('/')) {
    throw invalid('agentSocket', 'must be an absolute path to the agent unix socket', agentSocket);
  }
  const timeoutMs = config.timeoutMs ?? CNI_DEFAULTS.timeoutMs;
  if (
    typeof timeoutMs !== 'number' ||
    !Number.isInteger(timeoutMs) ||
    timeoutMs < CNI_TIMEOUT_BOUNDS.min ||
    timeoutMs > CNI_TIMEOUT_BOUNDS.max
  ) {
    throw invalid(
      'timeoutMs',
      `must be a whole number of milliseconds from ${CNI_TIMEOUT_BOUNDS.min} to ${CNI_TIMEOUT_BOUNDS.max}`,
      timeoutMs,
    );
  }
  const logFile = config.logFile ?? CNI_DEFAULTS.logFile;
  if (typeof logFile !== 'string' || (logFile !== '' && !logFile.startsWith('/'))) {
    throw invalid('logFile', 'must be an absolute path, or "" to disable the log file', logFile);
  }
  return {
    cniVersion,
    network: typeof config.name === 'string' ? config.name : '',
    agentSocket,
    timeoutMs,
    logFile,
  };
}

/** CNI_ARGS: `KEY=VALUE` pairs separated by `;` (code 4 when a pair is malformed). */
export function parseCniArgs(value: string | undefined): Map<string, string> {
  const args = new Map<string, string>();
  if (!value) return args;
  for (const pair of value.split(';')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    if (eq <= 0) {
      throw new CniError(
        CNI_ERROR.invalidEnv,
        `CNI_ARGS has a malformed pair ${JSON.stringify(pair)}`,
        'CNI_ARGS is KEY=VALUE pairs separated by ";", e.g. K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0',
      );
    }
    args.set(pair.slice(0, eq), pair.slice(eq + 1));
  }
  return args;
}

function labelsFrom(value: unknown, path: string): Record<string, string> {
  const labels: Record<string, string> = {};
  if (value === undefined || value === null) return labels;
  if (Array.isArray(value)) {
    value.forEach((item, i) => {
      if (!isObject(item) || typeof item.key !== 'string' || typeof item.value !== 'string') {
        throw new CniError(
          CNI_ERROR.invalidConfig,
          `${path}[${i}] must be {"key": string, "value": string}`,
          `got ${JSON.stringify(item)}`,
        );
      }
      labels[item.key] = item.value;
    });
    return labels;
  }
  if (isObject(value)) {
    for (const [k, v] of Object.entries(value)) {
      if (typeof v !== 'string') {
        throw new CniError(
          CNI_ERROR.invalidConfig,
          `${path}.${k} must be a string`,
          `got ${JSON.stringify(v)}`,
        );
      }
      labels[k] = v;
    }
    return labels;
  }
  throw new CniError(
    CNI_ERROR.invalidConfig,
    `${path} must be a list of {"key", "value"} (the CNI conventions) or an object of key → value`,
    `got ${JSON.stringify(value)}`,
  );
}

/**
 * The workload's labels: `runtimeConfig.labels` (a meshd extension a runtime may pass) and then
 * `args.cni.labels` (the CNI conventions' list of `{key, value}`), later ones winning.
 */
export function parseLabels(config: Json): Record<string, string> {
  const runtimeConfig = isObject(config.runtimeConfig) ? config.runtimeConfig : {};
  const args = isObject(config.args) ? config.args : {};
  const cni = isObject(args.cni) ? args.cni : {};
  return {
    ...labelsFrom(runtimeConfig.labels, 'runtimeConfig.labels'),
    ...labelsFrom(cni.labels, 'args.cni.labels'),
  };
}

/** Who the container is, as the agent registers it. */
export interface WorkloadIdentity {
  namespace: string;
  name: string;
  uid?: string;
  serviceAccount?: string;
  labels: Record<string, string>;
}

/**
 * Identity from CNI_ARGS (`K8S_POD_NAMESPACE`, `K8S_POD_NAME`, `K8S_POD_UID`,
 * `MESHD_SERVICE_ACCOUNT`) and the labels of the network configuration. Without a pod name the
 * workload is named after the container id's first 12 characters in namespace `default`.
 */
export function workloadIdentity(
  args: ReadonlyMap<string, string>,
  labels: Record<string, string>,
  containerId: string,
): WorkloadIdentity {
  const identity: WorkloadIdentity = {
    namespace: args.get('K8S_POD_NAMESPACE') || 'default',
    name: args.get('K8S_POD_NAME') || containerId.slice(0, 12),
    labels,
  };
  const uid = args.get('K8S_POD_UID');
  if (uid) identity.uid = uid;
  const sa = args.get('MESHD_SERVICE_ACCOUNT');
  if (sa) identity.serviceAccount = sa;
  return identity;
}

const CONTAINER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** The CNI environment of ADD, DEL and CHECK, checked per the spec (code 4 names the variable). */
export interface CniRuntimeEnv {
  containerId: string;
  netns: string;
  ifName: string;
}

export function parseRuntimeEnv(
  env: Readonly<Record<string, string | undefined>>,
  verb: 'ADD' | 'DEL' | 'CHECK',
): CniRuntimeEnv {
  const bad = (name: string, why: string, details: string) =>
    new CniError(CNI_ERROR.invalidEnv, `${name} ${why}`, details);
  const containerId = env.CNI_CONTAINERID ?? '';
  if (containerId === '') {
    throw bad(
      'CNI_CONTAINERID',
      `is not set (required for ${verb})`,
      'the container runtime sets it',
    );
  }
  if (!CONTAINER_ID.test(containerId)) {
    throw bad(
      'CNI_CONTAINERID',
      `${JSON.stringify(containerId)} is not a valid container id`,
      'it starts with a letter or digit, followed by letters, digits, "_", "." or "-"',
    );
  }
  const netns = env.CNI_NETNS ?? '';
  const ifName = env.CNI_IFNAME ?? '';
  if (verb !== 'DEL') {
    // DEL tolerates an empty CNI_NETNS (the namespace may be gone) and an odd CNI_IFNAME.
    if (netns === '') {
      throw bad(
        'CNI_NETNS',
        `is not set (required for ${verb})`,
        'the path of the network namespace',
      );
    }
    if (!netns.startsWith('/')) {
      throw bad(
        'CNI_NETNS',
        `${JSON.stringify(netns)} is not an absolute path`,
        'the path of the network namespace, e.g. /var/run/netns/cni-1234 or /proc/PID/ns/net',
      );
    }
    if (ifName === '') {
      throw bad(
        'CNI_IFNAME',
        `is not set (required for ${verb})`,
        'the interface name inside the container',
      );
    }
    if (ifName === '.' || ifName === '..' || ifName.length > 15 || /[/:\s]/.test(ifName)) {
      throw bad(
        'CNI_IFNAME',
        `${JSON.stringify(ifName)} is not a valid interface name`,
        'at most 15 characters, not "." or "..", without "/", ":" or whitespace',
      );
    }
  }
  return { containerId, netns, ifName };
}

/** `prevResult` as an object: required for ADD and CHECK (code 7). */
export function requirePrevResult(config: Json, verb: 'ADD' | 'CHECK'): Json {
  const prev = config.prevResult;
  if (prev === undefined || prev === null) {
    throw new CniError(
      CNI_ERROR.invalidConfig,
      `prevResult is required: meshd-cni is a chained plugin and ${verb} needs the result of the plugin before it`,
      'list meshd-cni after the interface plugin (ptp, bridge, …) in the "plugins" of a .conflist',
    );
  }
  if (!isObject(prev)) {
    throw new CniError(
      CNI_ERROR.invalidConfig,
      'prevResult must be a JSON object (the CNI result of the previous plugin in the chain)',
      `got ${JSON.stringify(prev)}`,
    );
  }
  return prev;
}

/**
 * The workload's addresses from a CNI result (0.4.0 and 1.x shapes): each `ips[].address`
 * without its prefix length, skipping those whose `interface` index names a host-side
 * interface (no `sandbox`), in order, without duplicates.
 */
export function resultAddresses(prev: Json): string[] {
  const invalid = (msg: string, value: unknown) =>
    new CniError(CNI_ERROR.invalidConfig, msg, `got ${JSON.stringify(value)}`);
  const interfaces = prev.interfaces ?? [];
  if (!Array.isArray(interfaces)) throw invalid('prevResult.interfaces must be a list', interfaces);
  const ips = prev.ips ?? [];
  if (!Array.isArray(ips)) throw invalid('prevResult.ips must be a list', ips);
  const out: string[] = [];
  ips.forEach((ip, i) => {
    if (!isObject(ip) || typeof ip.address !== 'string') {
      throw invalid(`prevResult.ips[${i}] must be an object with an "address"`, ip);
    }
    const slash = ip.address.indexOf('/');
    const address = slash < 0 ? ip.address : ip.address.slice(0, slash);
    if (isIP(address) === 0) {
      throw invalid(`prevResult.ips[${i}].address is not an IP address in CIDR form`, ip.address);
    }
    if (typeof ip.interface === 'number') {
      const iface: unknown = interfaces[ip.interface];
      if (isObject(iface) && (typeof iface.sandbox !== 'string' || iface.sandbox === '')) return;
    }
    if (!out.includes(address)) out.push(address);
  });
  return out;
}
