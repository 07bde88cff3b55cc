/**
 * Header rewriting between the two hops, pure. HTTP/1.1 works on Node's flat raw header arrays
 * ([name, value, name, value, ...], case kept, duplicates kept) so nothing is merged or
 * re-cased; names are lower-cased only when their length matches one the proxy cares about.
 * Hop-by-hop fields (RFC 9110 §7.6.1) go: Connection and every field it names, Keep-Alive,
 * Proxy-Connection, TE (except "trailers"), Transfer-Encoding (Node frames bodies itself) and
 * Upgrade (kept on an upgrade).
 */
import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';

export interface RequestHeaderResult {
  headers: string[];
  /** The request's x-request-id: the client's, or the one added. */
  requestId: string;
  traceId: string | undefined;
}

/** Connection tokens that name no other field worth a second pass. */
function namesOtherFields(connection: string): boolean {
  // The common values, without splitting.
  if (connection.length === 10 || connection.length === 5) {
    const l = connection.toLowerCase();
    if (l === 'keep-alive' || l === 'close') return false;
  }
  for (const token of connection.split(',')) {
    const t = token.trim().toLowerCase();
    if (t !== '' && t !== 'close' && t !== 'keep-alive' && t !== 'upgrade') return true;
  }
  return false;
}

function withoutNamed(raw: string[], connectionValues: string[]): string[] {
  const named = new Set<string>();
  for (const v of connectionValues) {
    for (const token of v.split(',')) named.add(token.trim().toLowerCase());
  }
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    if (!named.has(name.toLowerCase())) out.push(name, raw[i + 1] as string);
  }
  return out;
}

/** 0 keep, 1 drop, 2 connection, 3 te, 4 upgrade, 5 x-request-id, 6 traceparent. */
function classify(name: string): number {
  switch (name.length) {
    case 2:
      return name.toLowerCase() === 'te' ? 3 : 0;
    case 7:
      return name.toLowerCase() === 'upgrade' ? 4 : 0;
    case 10: {
      const l = name.toLowerCase();
      return l === 'connection' ? 2 : l === 'keep-alive' ? 1 : 0;
    }
    case 11:
      return name.toLowerCase() === 'traceparent' ? 6 : 0;
    case 12:
      return name.toLowerCase() === 'x-request-id' ? 5 : 0;
    case 16:
      return name.toLowerCase() === 'proxy-connection' ? 1 : 0;
    case 17:
      return name.toLowerCase() === 'transfer-encoding' ? 1 : 0;
    default:
      return 0;
  }
}

function hasToken(value: string, token: string): boolean {
  for (const t of value.split(',')) if (t.trim().toLowerCase() === token) return true;
  return false;
}

/**
 * The headers to send upstream for an HTTP/1.1 request. `upgrade`: keep Connection: upgrade
 * and Upgrade (a WebSocket handshake). Adds x-request-id when absent (`newId` makes it).
 */
export function upstreamRequestHeaders(
  raw: readonly string[],
  upgrade: boolean,
  newId: () => string = randomUUID,
): RequestHeaderResult {
  const out: string[] = [];
  let requestId: string | undefined;
  let traceId: string | undefined;
  let connection: string[] | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    const value = raw[i + 1] as string;
    switch (classify(name)) {
      case 0:
        out.push(name, value);
        break;
      case 1:
        break;
      case 2:
        if (connection === undefined) connection = [value];
        else connection.push(value);
        if (upgrade) out.push(name, 'upgrade');
        break;
      case 3:
        if (hasToken(value, 'trailers')) out.push(name, 'trailers');
        break;
      case 4:
        if (upgrade) out.push(name, value);
        break;
      case 5:
        requestId ??= value;
        out.push(name, value);
        break;
      case 6:
        traceId ??= traceIdOf(value);
        out.push(name, value);
        break;
    }
  }
  if (requestId === undefined) {
    requestId = newId();
    out.push('x-request-id', requestId);
  }
  let headers = out;
  if (connection?.some(namesOtherFields)) headers = withoutNamed(out, connection);
  return { headers, requestId, traceId };
}

/**
 * The headers to send downstream for an HTTP/1.1 response. `upgrade` keeps Connection and
 * Upgrade (a 101); `close` adds Connection: close (the engine is draining).
 */
export function downstreamResponseHeaders(
  raw: readonly string[],
  upgrade: boolean,
  close: boolean,
): string[] {
  const out: string[] = [];
  let connection: string[] | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    const value = raw[i + 1] as string;
    switch (classify(name)) {
      case 1:
      case 3:
        break;
      case 2:
        if (connection === undefined) connection = [value];
        else connection.push(value);
        if (upgrade) out.push(name, value);
        break;
      case 4:
        if (upgrade) out.push(name, value);
        break;
      default:
        out.push(name, value);
    }
  }
  if (close && !upgrade) out.push('Connection', 'close');
  return connection !== undefined && !upgrade && connection.some(namesOtherFields)
    ? withoutNamed(out, connection)
    : out;
}

/** HTTP/2 connection-specific fields (RFC 9113 §8.2.2); TE passes only as "trailers". */
const H2_DROP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
  'host',
]);

/**
 * An HTTP/2 header object to pass on (request or response): connection-specific fields out,
 * pseudo-headers kept. For requests, `newId` adds x-request-id when absent.
 */
export function h2ForwardHeaders(
  h: IncomingHttpHeaders,
  newId: (() => string) | undefined,
): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const name in h) {
    if (H2_DROP.has(name)) continue;
    const v = h[name];
    if (name === 'te') {
      if (typeof v === 'string' && hasToken(v, 'trailers')) out.te = 'trailers';
      continue;
    }
    out[name] = v;
  }
  if (newId !== undefined && out['x-request-id'] === undefined) out['x-request-id'] = newId();
  return out;
}

function isLowerHex(s: string, from: number, to: number): boolean {
  let zero = true;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (!((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66))) return false;
    if (c !== 0x30) zero = false;
  }
  return !zero;
}

/** The trace id of a W3C traceparent (`00-<32 hex>-<16 hex>-<2 hex>`); undefined if invalid. */
export function traceIdOf(traceparent: string | undefined): string | undefined {
  if (traceparent === undefined || traceparent.length < 55) return undefined;
  if (traceparent[2] !== '-' || traceparent[35] !== '-' || traceparent[52] !== '-')
    return undefined;
  if (traceparent.startsWith('ff')) return undefined;
  if (!isLowerHex(traceparent, 3, 35) || !isLowerHex(traceparent, 36, 52)) return undefined;
  return traceparent.slice(3, 35);
}

/** gRPC by content type (application/grpc, application/grpc+proto, application/grpc-web...). */
export function isGrpc(contentType: unknown): boolean {
  return typeof contentType === 'string' && contentType.startsWith('application/grpc');
}

/** A grpc-status header value as a number; undefined when absent or not a number. */
export function grpcStatusOf(v: unknown): number | undefined {
  if (typeof v !== 'string' || v === '') return undefined;
  const n = Number(v);
  return Number.isInteger(n) && n >= 0 ? n : undefined;
}
