/**
 * Responses the engine makes itself, pure: the shapes of a policy denial (exactly Istio's), of
 * upstream failures (Envoy's texts) and of bad input. gRPC callers get a trailers-only answer
 * (HTTP 200 with grpc-status), as Envoy does.
 */
import type { ResponseFlag } from './types.js';

export interface LocalReply {
  status: number;
  /** Lower-case names; content-length included when there is a body. */
  headers: Record<string, string>;
  body: string;
  grpcStatus: number | undefined;
}

export const DENIED_TEXT = 'RBAC: access denied';
/** gRPC status codes used here. */
export const GRPC_PERMISSION_DENIED = 7;
export const GRPC_UNAVAILABLE = 14;
export const GRPC_DEADLINE_EXCEEDED = 4;

function plain(status: number, body: string): LocalReply {
  return {
    status,
    headers: { 'content-type': 'text/plain', 'content-length': String(Buffer.byteLength(body)) },
    body,
    grpcStatus: undefined,
  };
}

/** gRPC's percent-encoding of grpc-message: '%' and bytes outside 0x20–0x7E only. */
export function grpcMessage(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    out +=
      byte < 0x20 || byte > 0x7e || byte === 0x25
        ? `%${byte.toString(16).toUpperCase().padStart(2, '0')}`
        : String.fromCharCode(byte);
  }
  return out;
}

function grpcTrailersOnly(grpcStatus: number, message: string): LocalReply {
  return {
    status: 200,
    headers: {
      'content-type': 'application/grpc',
      'grpc-status': String(grpcStatus),
      'grpc-message': grpcMessage(message),
    },
    body: '',
    grpcStatus,
  };
}

/** The answer to a request policy denied: 403 `RBAC: access denied`, or gRPC 7. */
export function deniedReply(grpc: boolean): LocalReply {
  return grpc ? grpcTrailersOnly(GRPC_PERMISSION_DENIED, DENIED_TEXT) : plain(403, DENIED_TEXT);
}

const FAILURE_TEXT: Partial<Record<ResponseFlag, [number, string]>> = {
  UH: [503, 'no healthy upstream'],
  UF: [
    503,
    'upstream connect error or disconnect/reset before headers. reset reason: connection failure',
  ],
  UC: [
    503,
    'upstream connect error or disconnect/reset before headers. reset reason: connection termination',
  ],
  URX: [
    503,
    'upstream connect error or disconnect/reset before headers. retried and the latest reset reason: connection termination',
  ],
  UT: [504, 'upstream request timeout'],
};

/** The answer when the upstream could not be reached or failed before its response headers. */
export function upstreamFailureReply(flag: ResponseFlag, grpc: boolean): LocalReply {
  const [status, text] = FAILURE_TEXT[flag] ?? [503, 'upstream failure'];
  if (!grpc) return plain(status, text);
  return grpcTrailersOnly(status === 504 ? GRPC_DEADLINE_EXCEEDED : GRPC_UNAVAILABLE, text);
}

/** The status for an HTTP/1 parse error code of Node (llhttp `HPE_*`, `ERR_HTTP_*`). */
export function clientErrorStatus(code: string | undefined): number {
  switch (code) {
    case 'HPE_HEADER_OVERFLOW':
      return 431;
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return 408;
    default:
      return 400;
  }
}

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  408: 'Request Timeout',
  431: 'Request Header Fields Too Large',
};

/** The raw HTTP/1.1 answer to bad input; the connection closes after it. */
export function clientErrorResponse(status: number): string {
  const reason = REASONS[status] ?? 'Bad Request';
  return `HTTP/1.1 ${status} ${reason}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`;
}
