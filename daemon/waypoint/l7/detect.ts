/**
 * Which protocol a tunnel carries: the Service port's appProtocol when set, else what the
 * client's first bytes look like. Pure; the engine feeds it what it has read so far and whether
 * the detection time is up, and reads more while the answer is 'more'.
 */
import type { AppProtocol } from './types.js';

export type TunnelProtocol = 'http1' | 'h2c' | 'opaque';
export type Detection = TunnelProtocol | 'more';

/** The HTTP/2 connection preface (RFC 9113 §3.4). */
export const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
/** Longest method token taken for HTTP/1 (longer ones are not HTTP worth parsing). */
export const MAX_METHOD_BYTES = 24;
/** A request line this long without its version yet is handed to the HTTP parser to judge. */
export const MAX_DETECT_LINE_BYTES = 8 * 1024;

const SP = 0x20;
const VERSION_PREFIX = Buffer.from('HTTP/1.', 'latin1');

/** RFC 9110 tchar: ALPHA / DIGIT / "!#$%&'*+-.^_`|~". */
const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") {
  TCHAR[c.charCodeAt(0)] = 1;
}

export function configuredProtocol(p: AppProtocol): TunnelProtocol | undefined {
  switch (p) {
    case 'http':
      return 'http1';
    case 'http2':
    case 'grpc':
      return 'h2c';
    case 'tcp':
      return 'opaque';
    default:
      return undefined;
  }
}

/**
 * The decision for `head` (all bytes read so far). `timedOut`: no more bytes are coming in time
 * (or the client half-closed), so 'more' is not an answer.
 */
export function detectProtocol(
  configured: AppProtocol,
  head: Uint8Array,
  timedOut: boolean,
): Detection {
  const fixed = configuredProtocol(configured);
  if (fixed) return fixed;
  const n = head.length;
  if (n === 0) return timedOut ? 'opaque' : 'more';
  // HTTP/2 prior knowledge.
  if (head[0] === H2_PREFACE[0]) {
    const m = Math.min(n, H2_PREFACE.length);
    let i = 0;
    while (i < m && head[i] === H2_PREFACE[i]) i++;
    if (i === H2_PREFACE.length) return 'h2c';
    if (i === n) return timedOut ? 'opaque' : 'more';
    // Not the preface: maybe a request line of a method starting with P (POST, PUT, PATCH).
  }
  // HTTP/1: method SP request-target SP HTTP/1.x
  let i = 0;
  while (i < n && i < MAX_METHOD_BYTES && TCHAR[head[i] as number] === 1) i++;
  if (i === 0) return 'opaque';
  if (i === n) return i < MAX_METHOD_BYTES && !timedOut ? 'more' : 'opaque';
  if (head[i] !== SP) return 'opaque';
  let j = i + 1;
  while (j < n && (head[j] as number) > SP && head[j] !== 0x7f) j++;
  if (j === i + 1) return j === n ? (timedOut ? 'opaque' : 'more') : 'opaque';
  if (j === n) return timedOut || n >= MAX_DETECT_LINE_BYTES ? 'http1' : 'more';
  if (head[j] !== SP) return 'opaque';
  // The version: "HTTP/1." and a digit.
  let k = 0;
  const v = j + 1;
  while (k < VERSION_PREFIX.length && v + k < n && head[v + k] === VERSION_PREFIX[k]) k++;
  if (k < VERSION_PREFIX.length) {
    if (v + k < n) return 'opaque';
    return timedOut ? 'http1' : 'more';
  }
  const d = v + k;
  if (d === n) return timedOut ? 'http1' : 'more';
  const digit = head[d] as number;
  return digit >= 0x30 && digit <= 0x39 ? 'http1' : 'opaque';
}
