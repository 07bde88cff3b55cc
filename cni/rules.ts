/**
 * The in-namespace capture rules (DESIGN §3 "Capture"), generated as `iptables-restore --noflush`
 * text by pure functions: no kernel, no files, no processes. cni/capture.ts applies the text.
 *
 * Two meshd-owned chains in the nat table, each entered by one jump from a built-in chain:
 *   OUTPUT     → MESHD_OUTPUT:     marked, to lo, to loopback, excluded ports → RETURN;
 *                                  other TCP → REDIRECT 15001 (outbound capture)
 *   PREROUTING → MESHD_PREROUTING: marked, to 15008 (HBONE), excluded ports → RETURN;
 *                                  other TCP → REDIRECT 15006 (inbound plaintext capture)
 * Every rule carries `-m comment --comment meshd`. Rules are written in the canonical form that
 * iptables-save prints back, so what is installed can be compared line by line with what was
 * generated. No mangle rules and no policy routing: meshd's agent never spoofs source addresses
 * (docs/capture.md says why that part of DESIGN §3 is left out).
 */

export type CaptureFamily = 4 | 6;

/** What the rules depend on besides the IP family. */
export interface CaptureRuleSettings {
  /** SO_MARK of the agent's sockets; the rules let marked packets pass. Default 0x539. */
  mark?: number;
  /** Bits of the packet mark that carry `mark`. Default 0xffffffff (the whole mark). */
  markMask?: number;
  /** Where captured outbound TCP goes. Default 15001. */
  outboundPort?: number;
  /** Where captured inbound TCP goes. Default 15006. */
  inboundPlaintextPort?: number;
  /** Inbound HBONE, never redirected. Default 15008. */
  hbonePort?: number;
  /** Destination ports of outbound TCP that bypass the mesh. */
  excludeOutboundPorts?: readonly number[];
  /** Destination ports of inbound TCP that bypass the mesh (e.g. an app's health port). */
  excludeInboundPorts?: readonly number[];
  /**
   * The workload is the host itself: inbound capture only for packets addressed to the host (not
   * forwarded ones), and the agent's and server's own ports bypass (HOST_EXCLUDED_*_PORTS).
   */
  hostNetwork?: boolean;
}

export interface CaptureRuleOptions extends CaptureRuleSettings {
  family: CaptureFamily;
}

export const CAPTURE_DEFAULTS = Object.freeze({
  mark: 0x539,
  markMask: 0xffff_ffff,
  outboundPort: 15001,
  inboundPlaintextPort: 15006,
  hbonePort: 15008,
});

/** Inbound ports of a host workload that bypass capture: agent admin, metrics, readiness; server gRPC and metrics. */
export const HOST_EXCLUDED_INBOUND_PORTS: readonly number[] = Object.freeze([
  15000, 15012, 15014, 15020, 15021,
]);
/** Outbound ports of a host workload that bypass capture: the control plane (the agent's own gRPC client). */
export const HOST_EXCLUDED_OUTBOUND_PORTS: readonly number[] = Object.freeze([15012]);

/** The chains meshd owns, by the built-in chain that jumps to them (all in the nat table). */
export const CAPTURE_CHAINS = Object.freeze({
  PREROUTING: 'MESHD_PREROUTING',
  OUTPUT: 'MESHD_OUTPUT',
} as const);
export type BuiltinChain = keyof typeof CAPTURE_CHAINS;
export type CaptureChain = (typeof CAPTURE_CHAINS)[BuiltinChain];
export const BUILTIN_CHAINS: readonly BuiltinChain[] = Object.freeze(['PREROUTING', 'OUTPUT']);

/** The comment on every rule meshd adds, shown by iptables-save. */
export const CAPTURE_COMMENT = 'meshd';

const TAG = `-m comment --comment ${CAPTURE_COMMENT}`;
const MAX_U32 = 0xffff_ffff;

/** The settings with defaults filled in and checked; ports sorted and unique. */
export interface ResolvedCaptureSettings {
  mark: number;
  markMask: number;
  outboundPort: number;
  inboundPlaintextPort: number;
  hbonePort: number;
  excludeOutboundPorts: readonly number[];
  excludeInboundPorts: readonly number[];
  hostNetwork: boolean;
}

function show(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

function checkInt(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(
      `captureRules: ${name} must be an integer ${min}..${max}, got ${show(value)}`,
    );
  }
  return value;
}

function checkPorts(name: string, value: unknown): number[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) {
    throw new TypeError(`captureRules: ${name} must be an array of ports, got ${show(value)}`);
  }
  const ports = value.map((p, i) => checkInt(`${name}[${i}]`, p, 1, 65_535));
  return [...new Set(ports)].sort((a, b) => a - b);
}

/**
 * Fills in defaults and checks every setting; throws TypeError/RangeError naming the setting.
 * A mark of 0 is refused: every unmarked packet would match it and bypass capture.
 */
export function resolveCaptureSettings(settings: CaptureRuleSettings): ResolvedCaptureSettings {
  if (settings === null || typeof settings !== 'object') {
    throw new TypeError(`captureRules: options must be an object, got ${show(settings)}`);
  }
  const mark = checkInt('mark', settings.mark ?? CAPTURE_DEFAULTS.mark, 1, MAX_U32);
  const markMask = checkInt('markMask', settings.markMask ?? CAPTURE_DEFAULTS.markMask, 1, MAX_U32);
  if ((mark & ~markMask) >>> 0 !== 0) {
    throw new RangeError(
      `captureRules: mark ${hex(mark)} has bits outside markMask ${hex(markMask)}; it would never match`,
    );
  }
  const outboundPort = checkInt(
    'outboundPort',
    settings.outboundPort ?? CAPTURE_DEFAULTS.outboundPort,
    1,
    65_535,
  );
  const inboundPlaintextPort = checkInt(
    'inboundPlaintextPort',
    settings.inboundPlaintextPort ?? CAPTURE_DEFAULTS.inboundPlaintextPort,
    1,
    65_535,
  );
  const hbonePort = checkInt(
    'hbonePort',
    settings.hbonePort ?? CAPTURE_DEFAULTS.hbonePort,
    1,
    65_535,
  );
  if (new Set([outboundPort, inboundPlaintextPort, hbonePort]).size !== 3) {
    throw new RangeError(
      `captureRules: outboundPort, inboundPlaintextPort and hbonePort must differ, got ` +
        `${outboundPort}, ${inboundPlaintextPort}, ${hbonePort}`,
    );
  }
  if (settings.hostNetwork !== undefined && typeof settings.hostNetwork !== 'boolean') {
    throw new TypeError(
      `captureRules: hostNetwork must be a boolean, got ${show(settings.hostNetwork)}`,
    );
  }
  const hostNetwork = settings.hostNetwork ?? false;
  const excludeOutboundPorts = checkPorts('excludeOutboundPorts', settings.excludeOutboundPorts);
  const excludeInboundPorts = checkPorts('excludeInboundPorts', settings.excludeInboundPorts);
  return {
    mark,
    markMask,
    outboundPort,
    inboundPlaintextPort,
    hbonePort,
    excludeOutboundPorts: hostNetwork
      ? checkPorts('excludeOutboundPorts', [
          ...excludeOutboundPorts,
          ...HOST_EXCLUDED_OUTBOUND_PORTS,
        ])
      : excludeOutboundPorts,
    excludeInboundPorts: hostNetwork
      ? checkPorts('excludeInboundPorts', [...excludeInboundPorts, ...HOST_EXCLUDED_INBOUND_PORTS])
      : excludeInboundPorts,
    hostNetwork,
  };
}

function checkFamily(family: unknown): CaptureFamily {
  if (family !== 4 && family !== 6) {
    throw new TypeError(`captureRules: family must be 4 or 6, got ${show(family)}`);
  }
  return family;
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

/** `-m mark --mark 0x539` as iptables-save prints it (the mask only when not all ones). */
function markMatch(mark: number, mask: number): string {
  return `-m mark --mark ${hex(mark)}${mask === MAX_U32 ? '' : `/${hex(mask)}`}`;
}

/** The rules of one meshd chain, in order, as `-A CHAIN …` lines (iptables-save form). */
export function chainRules(
  family: CaptureFamily,
  s: ResolvedCaptureSettings,
): Record<CaptureChain, string[]> {
  const out = CAPTURE_CHAINS.OUTPUT;
  const pre = CAPTURE_CHAINS.PREROUTING;
  const mark = markMatch(s.mark, s.markMask);
  const loopback = family === 4 ? '127.0.0.0/8' : '::1/128';
  const port = (chain: string, p: number) =>
    `-A ${chain} -p tcp -m tcp --dport ${p} ${TAG} -j RETURN`;
  const output = [
    `-A ${out} ${mark} ${TAG} -j RETURN`,
    `-A ${out} -o lo ${TAG} -j RETURN`,
    `-A ${out} -d ${loopback} ${TAG} -j RETURN`,
    ...s.excludeOutboundPorts.map((p) => port(out, p)),
    `-A ${out} -p tcp ${TAG} -j REDIRECT --to-ports ${s.outboundPort}`,
  ];
  const prerouting = [
    `-A ${pre} ${mark} ${TAG} -j RETURN`,
    ...(s.hostNetwork ? [`-A ${pre} -m addrtype ! --dst-type LOCAL ${TAG} -j RETURN`] : []),
    port(pre, s.hbonePort),
    ...s.excludeInboundPorts.filter((p) => p !== s.hbonePort).map((p) => port(pre, p)),
    `-A ${pre} -p tcp ${TAG} -j REDIRECT --to-ports ${s.inboundPlaintextPort}`,
  ];
  return { [pre]: prerouting, [out]: output } as Record<CaptureChain, string[]>;
}

/** The jump from a built-in chain into meshd's chain, as an `-A` line. */
export function jumpRule(builtin: BuiltinChain): string {
  return `-A ${builtin} ${TAG} -j ${CAPTURE_CHAINS[builtin]}`;
}

/** `iptables-restore` or `ip6tables-restore`, etc. */
export function iptablesTool(family: CaptureFamily, suffix: '' | '-save' | '-restore'): string {
  return `${family === 4 ? 'iptables' : 'ip6tables'}${suffix}`;
}

function header(family: CaptureFamily, s: ResolvedCaptureSettings): string[] {
  return [
    `# meshd capture rules, IPv${family}${s.hostNetwork ? ', host network' : ''}: ` +
      `${iptablesTool(family, '-restore')} --noflush (generated by cni/rules.ts; see docs/capture.md)`,
  ];
}

/**
 * The text that installs capture in a namespace without meshd rules, for `iptables-restore
 * --noflush` (family 4) or `ip6tables-restore --noflush` (family 6). Declaring a chain creates it
 * or, if it exists, flushes it, so the chains never hold duplicates; the jumps are the part that
 * must not be repeated — captureApplyText() leaves them out when they are already there.
 */
export function captureRules(options: CaptureRuleOptions): string {
  const family = checkFamily(options?.family);
  const s = resolveCaptureSettings(options);
  return render(family, s, { PREROUTING: 0, OUTPUT: 0 }, []);
}

function render(
  family: CaptureFamily,
  s: ResolvedCaptureSettings,
  jumpsPresent: Record<BuiltinChain, number>,
  deletions: string[],
): string {
  const chains = chainRules(family, s);
  const lines = [
    ...header(family, s),
    '*nat',
    ...BUILTIN_CHAINS.map((b) => `:${CAPTURE_CHAINS[b]} - [0:0]`),
    ...deletions,
    ...BUILTIN_CHAINS.flatMap((b) => chains[CAPTURE_CHAINS[b]]),
    ...BUILTIN_CHAINS.filter((b) => jumpsPresent[b] === 0).map(jumpRule),
    'COMMIT',
  ];
  return `${lines.join('\n')}\n`;
}

// ---------------------------------------------------------------------------------------------
// Reading iptables-save output, and the texts that depend on what is installed.

/** The nat table as iptables-save printed it. */
export interface NatTable {
  /** False when iptables-save printed no `*nat` section (the table was never created). */
  present: boolean;
  /** iptables-save's header named the nf_tables backend (`iptables-save v1.8.9 (nf_tables)`). */
  nfTables: boolean;
  /** Chain name → policy (`ACCEPT`, `DROP` for built-in chains; `-` for user chains). */
  chains: Map<string, string>;
  /** Every rule, in order: `{ chain, spec }` for a line `-A chain spec`. */
  rules: { chain: string; spec: string }[];
}

const BUILTIN_NAT = new Set(['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING']);
const OUR_CHAINS: ReadonlySet<string> = new Set(Object.values(CAPTURE_CHAINS));

/** Parses the `*nat` section of iptables-save (or ip6tables-save) output. */
export function parseNatTable(saved: string): NatTable {
  const table: NatTable = {
    present: false,
    nfTables: /^# Generated by ip6?tables-save v\S+ \(nf_tables\)/m.test(saved),
    chains: new Map(),
    rules: [],
  };
  let inNat = false;
  for (const raw of saved.split('\n')) {
    const line = raw.trimEnd();
    if (line.startsWith('*')) {
      inNat = line === '*nat';
      if (inNat) table.present = true;
      continue;
    }
    if (!inNat || line === '' || line.startsWith('#')) continue;
    if (line === 'COMMIT') {
      inNat = false;
    } else if (line.startsWith(':')) {
      const [name, policy] = line.slice(1).split(/\s+/);
      if (name) table.chains.set(name, policy ?? '-');
    } else if (line.startsWith('-A ')) {
      const m = /^-A (\S+) (.*)$/.exec(line);
      if (m?.[1] && m[2] !== undefined) table.rules.push({ chain: m[1], spec: m[2] });
    }
  }
  return table;
}

/** The meshd chain a rule jumps or goes to, if any. */
function targetOf(spec: string): string | undefined {
  const m = /(?:^|\s)-[jg] (\S+)(?:\s|$)/.exec(spec);
  return m?.[1] && OUR_CHAINS.has(m[1]) ? m[1] : undefined;
}

/** Rules outside meshd's chains that jump into them (normally exactly the two jumps). */
export function jumpsInto(table: NatTable): { chain: string; spec: string }[] {
  return table.rules.filter((r) => !OUR_CHAINS.has(r.chain) && targetOf(r.spec) !== undefined);
}

/** What of meshd's rule set the table holds. */
export interface CaptureInstalled {
  /** Both chains and one jump into each from its built-in chain. */
  complete: boolean;
  /** Anything of meshd at all (a chain or a jump into one). */
  any: boolean;
  /** meshd's lines as `-A CHAIN spec`: the jumps, then the chains' rules. */
  lines: string[];
}

export function installedCapture(table: NatTable): CaptureInstalled {
  const jumps = jumpsInto(table);
  const chainsPresent = [...OUR_CHAINS].filter((c) => table.chains.has(c));
  const complete =
    chainsPresent.length === OUR_CHAINS.size &&
    BUILTIN_CHAINS.every(
      (b) =>
        jumps.filter((j) => j.chain === b && targetOf(j.spec) === CAPTURE_CHAINS[b]).length === 1,
    );
  const lines = [
    ...jumps.map((r) => `-A ${r.chain} ${r.spec}`),
    ...BUILTIN_CHAINS.flatMap((b) =>
      table.rules
        .filter((r) => r.chain === CAPTURE_CHAINS[b])
        .map((r) => `-A ${r.chain} ${r.spec}`),
    ),
  ];
  return { complete, any: chainsPresent.length > 0 || jumps.length > 0, lines };
}

/**
 * The restore text that makes the table hold exactly one meshd rule set for these options,
 * given what it holds now (the nat section of iptables-save): our chains are declared (created,
 * or flushed if present) and refilled; a jump that is already there stays where it is, a missing
 * one is appended, extra copies are deleted. One transaction; without meshd rules present it
 * equals captureRules().
 */
export function captureApplyText(options: CaptureRuleOptions, current: NatTable): string {
  const family = checkFamily(options?.family);
  const s = resolveCaptureSettings(options);
  const present: Record<BuiltinChain, number> = { PREROUTING: 0, OUTPUT: 0 };
  const deletions: string[] = [];
  for (const b of BUILTIN_CHAINS) {
    const jumps = current.rules.filter(
      (r) => r.chain === b && targetOf(r.spec) === CAPTURE_CHAINS[b],
    );
    present[b] = jumps.length;
    // `-D chain spec` deletes the first matching rule; the last copy of each spec stays.
    for (const extra of jumps.slice(1)) deletions.push(`-D ${extra.chain} ${extra.spec}`);
  }
  return render(family, s, present, deletions);
}

/**
 * The restore text that removes meshd's rules and nothing else: every rule that jumps into a
 * meshd chain (deleted by its own spec as iptables-save printed it), then meshd's chains
 * (flushed, deleted). Empty when the table holds nothing of meshd.
 */
export function captureRemovalText(family: CaptureFamily, current: NatTable): string {
  checkFamily(family);
  const jumps = jumpsInto(current);
  const chains = BUILTIN_CHAINS.map((b) => CAPTURE_CHAINS[b]).filter((c) => current.chains.has(c));
  if (jumps.length === 0 && chains.length === 0) return '';
  const lines = [
    `# meshd capture removal, IPv${family}: ${iptablesTool(family, '-restore')} --noflush`,
    '*nat',
    ...jumps.map((r) => `-D ${r.chain} ${r.spec}`),
    ...chains.flatMap((c) => [`-F ${c}`, `-X ${c}`]),
    'COMMIT',
  ];
  return `${lines.join('\n')}\n`;
}

/**
 * True when the nat table holds nothing but empty built-in chains with policy ACCEPT — what
 * iptables-nft leaves behind when rules are added to a table that did not exist and removed again.
 */
export function natTableIsPristine(table: NatTable): boolean {
  return (
    table.present &&
    table.rules.length === 0 &&
    [...table.chains].every(([name, policy]) => BUILTIN_NAT.has(name) && policy === 'ACCEPT')
  );
}
