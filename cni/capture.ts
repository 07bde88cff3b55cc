/**
 * Installing, removing and inspecting the capture rules of cni/rules.ts inside a network
 * namespace. Every iptables program runs inside the namespace through
 * `nsenter --net=PATH …` (any namespace file works: /var/run/netns/NAME, /proc/PID/ns/net, a CNI
 * netns path). Each family is one `iptables-restore --noflush` transaction, so a failure leaves
 * that family as it was; when a later family fails, the families this call newly captured are
 * removed again. Callers serialise calls per namespace (the agent does: one owner per workload).
 */
import { CommandError, run } from '../daemon/command.js';
import { MeshdError } from '../daemon/errors.js';
import {
  type CaptureFamily,
  type CaptureRuleSettings,
  captureApplyText,
  captureRemovalText,
  installedCapture,
  iptablesTool,
  type NatTable,
  natTableIsPristine,
  parseNatTable,
  resolveCaptureSettings,
} from './rules.js';

export interface CaptureOptions extends CaptureRuleSettings {
  /** Which families to capture; default both. */
  families?: readonly CaptureFamily[];
  /** Per iptables program; default 15 s. */
  timeoutMs?: number;
}

export interface CaptureStatus {
  /** meshd's IPv4 rule set is complete: both chains, one jump into each. */
  v4: boolean;
  v6: boolean;
  /** meshd's rules as commands, e.g. `iptables -t nat -A MESHD_OUTPUT -o lo … -j RETURN`. */
  rules: string[];
}

export interface CaptureRemoval {
  /** Something of meshd's IPv4 rules was there and is gone now. */
  v4: boolean;
  v6: boolean;
}

const DEFAULT_TIMEOUT_MS = 15_000;
const ALL_FAMILIES: readonly CaptureFamily[] = [4, 6];
const HINT =
  'check that the namespace file exists and that meshd runs as root (CAP_NET_ADMIN, CAP_SYS_ADMIN); ' +
  'iptables-restore is atomic per family, so a failed family was left as it was';

function assertNetns(where: string, netns: unknown): asserts netns is string {
  if (typeof netns !== 'string' || !netns.startsWith('/') || netns.includes('\0')) {
    throw new TypeError(
      `${where}: the namespace must be an absolute path such as /var/run/netns/NAME or /proc/PID/ns/net, got ${JSON.stringify(netns)}`,
    );
  }
}

function familiesOf(where: string, families: unknown): readonly CaptureFamily[] {
  if (families === undefined) return ALL_FAMILIES;
  if (
    !Array.isArray(families) ||
    families.length === 0 ||
    families.some((f) => f !== 4 && f !== 6) ||
    new Set(families).size !== families.length
  ) {
    throw new TypeError(
      `${where}: families must be a non-empty list of distinct 4 and 6, got ${JSON.stringify(families)}`,
    );
  }
  return families as CaptureFamily[];
}

function captureError(
  verb: string,
  netns: string,
  family: CaptureFamily,
  cause: unknown,
): MeshdError {
  const detail =
    cause instanceof CommandError
      ? (cause.stderr || cause.stdout || cause.message).trim()
      : cause instanceof Error
        ? cause.message
        : String(cause);
  return new MeshdError(
    'MESHD_E_CAPTURE',
    `${verb} IPv${family} capture rules in ${netns} failed: ${detail || 'no output'}`,
    { cause, hint: HINT },
  );
}

/** Runs argv inside the namespace. */
function inNetns(
  netns: string,
  argv: string[],
  timeoutMs: number,
  input?: string,
): ReturnType<typeof run> {
  return run(['nsenter', `--net=${netns}`, ...argv], { input, timeoutMs });
}

/** The namespace's nat table as iptables-save (all tables: `-t nat` invents an absent table) shows it. */
async function readNat(
  netns: string,
  family: CaptureFamily,
  timeoutMs: number,
  verb: string,
): Promise<NatTable> {
  try {
    const { stdout } = await inNetns(netns, [iptablesTool(family, '-save')], timeoutMs);
    return parseNatTable(stdout);
  } catch (err) {
    throw captureError(verb, netns, family, err);
  }
}

async function restore(
  netns: string,
  family: CaptureFamily,
  text: string,
  timeoutMs: number,
  verb: string,
): Promise<void> {
  try {
    // --wait only matters for the legacy backend, whose lock is shared by all namespaces.
    await inNetns(
      netns,
      [iptablesTool(family, '-restore'), '--noflush', '--wait=10'],
      timeoutMs,
      text,
    );
  } catch (err) {
    throw captureError(verb, netns, family, err);
  }
}

/**
 * Captures the namespace's TCP: installs (or refreshes) meshd's rule set for each family.
 * Idempotent: applying again leaves exactly one rule set, with the jumps where they were.
 * Throws TypeError/RangeError for bad options (before touching anything) and MeshdError
 * MESHD_E_CAPTURE (namespace path, family, iptables' stderr) when iptables fails.
 */
export async function applyCapture(netns: string, options: CaptureOptions = {}): Promise<void> {
  assertNetns('applyCapture', netns);
  const families = familiesOf('applyCapture', options.families);
  resolveCaptureSettings(options);
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const added: CaptureFamily[] = [];
  try {
    for (const family of families) {
      const current = await readNat(netns, family, timeoutMs, 'applying');
      const fresh = !installedCapture(current).any;
      await restore(
        netns,
        family,
        captureApplyText({ ...options, family }, current),
        timeoutMs,
        'applying',
      );
      if (fresh) added.push(family);
    }
  } catch (err) {
    // Do not leave a namespace half captured (IPv4 but not IPv6) by this call.
    for (const family of added) {
      await removeFamily(netns, family, timeoutMs).catch(() => {});
    }
    throw err;
  }
}

async function removeFamily(
  netns: string,
  family: CaptureFamily,
  timeoutMs: number,
): Promise<boolean> {
  const current = await readNat(netns, family, timeoutMs, 'removing');
  const text = captureRemovalText(family, current);
  if (text === '') return false;
  await restore(netns, family, text, timeoutMs, 'removing');
  // iptables-nft created the nat table when meshd's rules were the first in it; an empty table
  // still shows in iptables-save, so drop it to leave the namespace as it was.
  const after = await readNat(netns, family, timeoutMs, 'removing');
  if (after.nfTables && natTableIsPristine(after)) {
    await dropEmptyNatTable(netns, family, timeoutMs);
  }
  return true;
}

async function dropEmptyNatTable(
  netns: string,
  family: CaptureFamily,
  timeoutMs: number,
): Promise<void> {
  try {
    await inNetns(netns, ['nft', 'delete', 'table', family === 4 ? 'ip' : 'ip6', 'nat'], timeoutMs);
  } catch (err) {
    // Without the nft program (Debian package nftables) the empty table stays: harmless.
    if (err instanceof CommandError && (err.status === 126 || err.status === 127)) return;
    throw captureError('removing', netns, family, err);
  }
}

/**
 * Removes exactly what applyCapture added — the jumps into meshd's chains, then the chains —
 * and nothing else; a no-op when nothing of meshd is there. Only `families` and `timeoutMs` of
 * the options matter (removal reads what is installed). Returns per family whether anything was
 * removed.
 */
export async function removeCapture(
  netns: string,
  options: CaptureOptions = {},
): Promise<CaptureRemoval> {
  assertNetns('removeCapture', netns);
  const families = familiesOf('removeCapture', options.families);
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const result: CaptureRemoval = { v4: false, v6: false };
  for (const family of families) {
    result[family === 4 ? 'v4' : 'v6'] = await removeFamily(netns, family, timeoutMs);
  }
  return result;
}

/** What of meshd's capture the namespace holds, for both families. */
export async function captureStatus(
  netns: string,
  options: Pick<CaptureOptions, 'timeoutMs'> = {},
): Promise<CaptureStatus> {
  assertNetns('captureStatus', netns);
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const status: CaptureStatus = { v4: false, v6: false, rules: [] };
  for (const family of ALL_FAMILIES) {
    const installed = installedCapture(await readNat(netns, family, timeoutMs, 'reading'));
    status[family === 4 ? 'v4' : 'v6'] = installed.complete;
    status.rules.push(...installed.lines.map((l) => `${iptablesTool(family, '')} -t nat ${l}`));
  }
  return status;
}
