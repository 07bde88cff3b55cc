/**
 * The HBONE request headers (DESIGN §4): `:authority ip:port`, `forwarded: for="ip:port"`,
 * W3C `baggage` and `traceparent`. Pure functions: parse what a peer sent (never throwing on
 * bad input; `undefined` means malformed), format what we send.
 */
import { randomFillSync } from 'node:crypto';
import { isIP } from 'node:net';

export interface HostPort {
  /** An IP literal, without brackets. */
  ip: string;
  port: number;
  family: 4 | 6;
}

function portOf(text: string): number | undefined {
  if (!/^[0-9]{1,5}$/.test(text)) return undefined;
  const port = Number(text);
  return port >= 1 && port <= 65535 ? port : undefined;
}

/** `1.2.3.4:80` or `[2001:db8::1]:80`; hostnames, zones and port 0 are refused. */
export function parseHostPort(text: string | undefined): HostPort | undefined {
  if (typeof text !== 'string' || text.length > 64 || text.includes('%')) return undefined;
  let host: string;
  let portText: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0 || text[close + 1] !== ':') return undefined;
    host = text.slice(1, close);
    portText = text.slice(close + 2);
    if (isIP(host) !== 6) return undefined;
  } else {
    const colon = text.lastIndexOf(':');
    if (colon < 0) return undefined;
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (isIP(host) !== 4) return undefined;
  }
  const port = portOf(portText);
  if (port === undefined) return undefined;
  return { ip: host, port, family: host.includes(':') ? 6 : 4 };
}

/** `ip:port`, with brackets around an IPv6 address. */
export function formatHostPort(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** `for="ip:port"` (RFC 7239; the value is quoted because of the colon). */
export function formatForwarded(ip: string, port: number): string {
  return `for="${formatHostPort(ip, port)}"`;
}

export interface ForwardedFor {
  ip: string;
  /** Absent when the peer sent only an address (`for=192.0.2.1`). */
  port: number | undefined;
}

/**
 * The `for=` of the first (original client's) element of a `forwarded` header. Accepts quoted
 * and bare forms, with or without a port; obfuscated identifiers and `unknown` give undefined.
 */
export function parseForwarded(header: string | undefined): ForwardedFor | undefined {
  if (typeof header !== 'string' || header.length > 1024) return undefined;
  const first = header.split(',')[0] ?? '';
  for (const pair of first.split(';')) {
    const eq = pair.indexOf('=');
    if (eq < 0 || pair.slice(0, eq).trim().toLowerCase() !== 'for') continue;
    let value = pair.slice(eq + 1).trim();
    if (value.startsWith('"')) {
      if (!value.endsWith('"') || value.length < 2) return undefined;
      value = value.slice(1, -1);
    }
    if (isIP(value) === 4) return { ip: value, port: undefined };
    if (value.startsWith('[') && value.endsWith(']') && isIP(value.slice(1, -1)) === 6) {
      return { ip: value.slice(1, -1), port: undefined };
    }
    const hp = parseHostPort(value);
    return hp ? { ip: hp.ip, port: hp.port } : undefined;
  }
  return undefined;
}

const BAGGAGE_MAX_BYTES = 8192;
const BAGGAGE_MAX_ENTRIES = 64;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** W3C baggage `k=v,k2=v2` from a record; keys must be tokens, values are percent-encoded. */
export function formatBaggage(entries: Record<string, string | undefined>): string {
  const parts: string[] = [];
  for (const [key, value] of Object.entries(entries)) {
    if (value === undefined) continue;
    if (!TOKEN.test(key)) throw new TypeError(`baggage key "${key}" is not an HTTP token`);
    parts.push(`${key}=${encodeURIComponent(value)}`);
  }
  return parts.join(',');
}

/** The members of a W3C baggage header (properties after `;` dropped); bad members skipped. */
export function parseBaggage(header: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (typeof header !== 'string' || header.length > BAGGAGE_MAX_BYTES) return out;
  let count = 0;
  for (const member of header.split(',')) {
    if (++count > BAGGAGE_MAX_ENTRIES) break;
    const [kv = ''] = member.split(';');
    const eq = kv.indexOf('=');
    if (eq < 0) continue;
    const key = kv.slice(0, eq).trim();
    if (!TOKEN.test(key) || Object.hasOwn(out, key)) continue;
    try {
      out[key] = decodeURIComponent(kv.slice(eq + 1).trim());
    } catch {
      // not valid percent-encoding: skip the member
    }
  }
  return out;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/** Whether `value` is a W3C traceparent we can pass on (version 00, or a later one's prefix). */
export function isTraceparent(value: string | undefined): value is string {
  if (typeof value !== 'string' || value.length > 512) return false;
  const m = TRACEPARENT.exec(value);
  if (!m) return false;
  const [, version, traceId, spanId, , rest] = m;
  if (version === 'ff' || /^0+$/.test(traceId ?? '') || /^0+$/.test(spanId ?? '')) return false;
  return version !== '00' || rest === undefined;
}

/*
 * Trace ids come from a pool of random bytes refilled 170 ids at a time: randomBytes(24) on
 * every connection cost 2 % of the outbound agent's CPU under wrk -H 'Connection: close'.
 */
const TRACE_ID_BYTES = 24;
const randomPool = Buffer.alloc(TRACE_ID_BYTES * 170);
let randomOffset = randomPool.length;

/** A fresh sampled traceparent: `00-<32 hex trace id>-<16 hex span id>-01`. */
export function newTraceparent(): string {
  if (randomOffset + TRACE_ID_BYTES > randomPool.length) {
    randomFillSync(randomPool);
    randomOffset = 0;
  }
  const at = randomOffset;
  randomOffset += TRACE_ID_BYTES;
  return `00-${randomPool.toString('hex', at, at + 16)}-${randomPool.toString('hex', at + 16, at + TRACE_ID_BYTES)}-01`;
}
