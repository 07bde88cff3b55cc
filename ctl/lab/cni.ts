/**
 * Runs a CNI plugin the way a container runtime does: inside the node's network namespace,
 * with the CNI_* environment and the network configuration on stdin (CNI spec 1.0).
 */
import { CommandError, run, runSync } from '../../daemon/command.js';
import { MeshdError } from '../../daemon/errors.js';
import type { WorkloadAddresses } from './state.js';

export const CNI_BIN_DIR = process.env.MESHD_LAB_CNI_PATH || '/usr/lib/cni';

export interface CniInvocation {
  command: 'ADD' | 'DEL' | 'CHECK';
  nodeNetns: string;
  containerId: string;
  workloadNetns: string;
  ifName: string;
  args: Record<string, string>;
  config: Record<string, unknown>;
}

export interface CniIpConfig {
  address: string; // CIDR form
  gateway?: string;
  interface?: number;
}

export interface CniResult {
  cniVersion: string;
  interfaces?: { name: string; mac?: string; sandbox?: string }[];
  ips?: CniIpConfig[];
  routes?: { dst: string; gw?: string }[];
}

export class CniPluginError extends MeshdError {
  constructor(inv: CniInvocation, detail: string, cause?: unknown) {
    super(
      'MESHD_E_CNI_PLUGIN',
      `CNI ${inv.command} of ${inv.containerId} (plugin ${String(inv.config.type)}, node netns ${inv.nodeNetns}) failed: ${detail}`,
      {
        cause,
        hint: `check ${CNI_BIN_DIR} holds the plugin (Debian: containernetworking-plugins)`,
      },
    );
  }
}

function argv(inv: CniInvocation): string[] {
  return ['ip', 'netns', 'exec', inv.nodeNetns, `${CNI_BIN_DIR}/${String(inv.config.type)}`];
}

function env(inv: CniInvocation): NodeJS.ProcessEnv {
  const args = Object.entries({ IgnoreUnknown: '1', ...inv.args })
    .map(([k, v]) => `${k}=${v}`)
    .join(';');
  return {
    PATH: process.env.PATH,
    CNI_COMMAND: inv.command,
    CNI_CONTAINERID: inv.containerId,
    CNI_NETNS: `/var/run/netns/${inv.workloadNetns}`,
    CNI_IFNAME: inv.ifName,
    CNI_ARGS: args,
    CNI_PATH: CNI_BIN_DIR,
  };
}

/** A plugin reports failure as {code,msg,details} on stdout with a non-zero exit. */
function pluginMessage(err: unknown): string {
  if (!(err instanceof CommandError)) return String(err);
  try {
    const parsed = JSON.parse(err.stdout) as { code?: number; msg?: string; details?: string };
    return `code ${parsed.code}: ${parsed.msg}${parsed.details ? ` (${parsed.details})` : ''}`;
  } catch {
    return err.message;
  }
}

export async function cniAdd(inv: CniInvocation): Promise<CniResult> {
  let stdout: string;
  try {
    ({ stdout } = await run(argv(inv), { env: env(inv), input: JSON.stringify(inv.config) }));
  } catch (err) {
    throw new CniPluginError(inv, pluginMessage(err), err);
  }
  try {
    return JSON.parse(stdout) as CniResult;
  } catch (err) {
    throw new CniPluginError(inv, `result is not JSON: ${stdout.slice(0, 200)}`, err);
  }
}

/** DEL is idempotent per the spec; sync so that teardown also works from exit handlers. */
export function cniDelSync(inv: CniInvocation): void {
  try {
    runSync(argv(inv), { env: env(inv), input: JSON.stringify(inv.config) });
  } catch (err) {
    throw new CniPluginError(inv, pluginMessage(err), err);
  }
}

/** The workload's own addresses (without prefix length) from an ADD result. */
export function addressesOf(result: CniResult): WorkloadAddresses {
  const sandboxIfs = new Set(
    (result.interfaces ?? []).flatMap((itf, i) => (itf.sandbox ? [i] : [])),
  );
  const ips = (result.ips ?? []).filter(
    (ip) => ip.interface === undefined || sandboxIfs.size === 0 || sandboxIfs.has(ip.interface),
  );
  const bare = (cidr: string) => cidr.split('/')[0] ?? cidr;
  const ipv4 = ips.find((ip) => !ip.address.includes(':'));
  const ipv6 = ips.find((ip) => ip.address.includes(':'));
  if (!ipv4) throw new Error(`CNI result has no IPv4 address: ${JSON.stringify(result.ips)}`);
  return ipv6
    ? { ipv4: bare(ipv4.address), ipv6: bare(ipv6.address) }
    : { ipv4: bare(ipv4.address) };
}
