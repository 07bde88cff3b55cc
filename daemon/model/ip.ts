/**
 * IP addresses and CIDR blocks, without node:net (model/ stays pure): strict parsing, the
 * canonical text form (RFC 5952 for IPv6) that the state indexes on, and block membership.
 */

export interface IpAddress {
  family: 4 | 6;
  /** 4 or 16 bytes, network order. */
  bytes: Uint8Array;
}

export interface IpBlock extends IpAddress {
  /** Prefix length: 0..32 (IPv4) or 0..128 (IPv6); a plain address is a full-length block. */
  prefix: number;
}

const V4_PART = /^(0|[1-9][0-9]{0,2})$/;
const V6_GROUP = /^[0-9a-fA-F]{1,4}$/;

function parseV4(text: string): Uint8Array | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i] ?? '';
    if (!V4_PART.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    out[i] = n;
  }
  return out;
}

function parseV6(text: string): Uint8Array | undefined {
  if (text.length > 45 || text.length < 2) return undefined;
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const groups = (part: string): number[] | undefined => {
    if (part === '') return [];
    const out: number[] = [];
    const items = part.split(':');
    for (let i = 0; i < items.length; i++) {
      const item = items[i] ?? '';
      if (i === items.length - 1 && item.includes('.')) {
        const v4 = parseV4(item);
        if (!v4) return undefined;
        out.push(((v4[0] ?? 0) << 8) | (v4[1] ?? 0), ((v4[2] ?? 0) << 8) | (v4[3] ?? 0));
      } else {
        if (!V6_GROUP.test(item)) return undefined;
        out.push(Number.parseInt(item, 16));
      }
    }
    return out;
  };
  const head = groups(halves[0] ?? '');
  const tail = halves.length === 2 ? groups(halves[1] ?? '') : [];
  if (!head || !tail) return undefined;
  let all: number[];
  if (halves.length === 2) {
    const missing = 8 - head.length - tail.length;
    if (missing < 1) return undefined;
    all = [...head, ...new Array<number>(missing).fill(0), ...tail];
  } else {
    all = head;
  }
  if (all.length !== 8) return undefined;
  const bytes = new Uint8Array(16);
  all.forEach((g, i) => {
    bytes[2 * i] = g >> 8;
    bytes[2 * i + 1] = g & 0xff;
  });
  return bytes;
}

/** Parses a dotted-quad IPv4 or an IPv6 address (no zone, no brackets); undefined if invalid. */
export function parseIp(text: string): IpAddress | undefined {
  if (text.includes(':')) {
    const bytes = parseV6(text);
    return bytes ? { family: 6, bytes } : undefined;
  }
  const bytes = parseV4(text);
  return bytes ? { family: 4, bytes } : undefined;
}

function isV4Mapped(bytes: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false;
  return bytes[10] === 0xff && bytes[11] === 0xff;
}

/** Text form: dotted quad, or RFC 5952 IPv6 (lower case, longest zero run as "::"). */
export function formatIp(ip: IpAddress): string {
  const b = ip.bytes;
  if (ip.family === 4) return Array.from(b).join('.');
  if (isV4Mapped(b)) return `::ffff:${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push(((b[2 * i] ?? 0) << 8) | (b[2 * i + 1] ?? 0));
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = (gs: number[]) => gs.map((g) => g.toString(16)).join(':');
  if (bestStart === -1) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLength))}`;
}

/** The canonical text form of an address, or undefined if it is not one. */
export function canonicalIp(text: string): string | undefined {
  const ip = parseIp(text);
  return ip ? formatIp(ip) : undefined;
}

/**
 * The key the state indexes addresses by: the canonical form, with IPv4-mapped IPv6
 * (`::ffff:10.0.0.1`, as dual-stack sockets report IPv4 peers) folded to plain IPv4.
 */
export function ipKey(text: string): string | undefined {
  const ip = parseIp(text);
  if (!ip) return undefined;
  if (ip.family === 6 && isV4Mapped(ip.bytes)) return Array.from(ip.bytes.subarray(12)).join('.');
  return formatIp(ip);
}

/** `10.0.0.1:80` or `[2001:db8::1]:80`. */
export function hostPort(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** Why a text is not a usable unicast address for a workload or VIP, or undefined. */
export function checkIpAddress(text: string): string | undefined {
  const ip = parseIp(text);
  if (!ip) {
    return `"${text}" is not an IP address (IPv4 like 10.0.0.1 or IPv6 like fd00::1, no zone or prefix)`;
  }
  const b = ip.bytes;
  if (b.every((x) => x === 0)) return `"${text}" is the unspecified address`;
  if (ip.family === 4 ? b[0] === 127 : b.subarray(0, 15).every((x) => x === 0) && b[15] === 1) {
    return `"${text}" is a loopback address`;
  }
  if (ip.family === 4 ? (b[0] ?? 0) >= 224 : b[0] === 0xff) {
    return `"${text}" is a multicast or reserved address`;
  }
  return undefined;
}

/** Parses `10.0.0.0/8`, `fd00::/8` or a plain address (a full-length block). */
export function parseIpBlock(text: string): IpBlock | undefined {
  const slash = text.indexOf('/');
  const ip = parseIp(slash === -1 ? text : text.slice(0, slash));
  if (!ip) return undefined;
  const max = ip.family === 4 ? 32 : 128;
  if (slash === -1) return { ...ip, prefix: max };
  const p = text.slice(slash + 1);
  if (!/^(0|[1-9][0-9]{0,2})$/.test(p) || Number(p) > max) return undefined;
  return { ...ip, prefix: Number(p) };
}

/** Why a text is not an IP block (CIDR or address), or undefined. */
export function checkIpBlock(text: string): string | undefined {
  const slash = text.indexOf('/');
  const ip = parseIp(slash === -1 ? text : text.slice(0, slash));
  if (!ip) return `"${text}" is not an IP address or CIDR block (like 10.0.0.0/8 or fd00::/8)`;
  if (slash !== -1 && !parseIpBlock(text)) {
    return `"${text}": the prefix length must be 0..${ip.family === 4 ? 32 : 128}`;
  }
  return undefined;
}

/** Whether `ip` lies in `block` (IPv4-mapped IPv6 addresses count as IPv4). */
export function ipBlockContains(block: IpBlock, ip: IpAddress): boolean {
  let bytes = ip.bytes;
  let family = ip.family;
  if (family === 6 && block.family === 4 && isV4Mapped(bytes)) {
    bytes = bytes.subarray(12);
    family = 4;
  }
  if (family !== block.family) return false;
  const full = block.prefix >> 3;
  for (let i = 0; i < full; i++) if (bytes[i] !== block.bytes[i]) return false;
  const rest = block.prefix & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return ((bytes[full] ?? 0) & mask) === ((block.bytes[full] ?? 0) & mask);
}
