/**
 * HBONE failures as coded errors: `HboneError` (MESHD_E_HBONE) when the tunnel could not be
 * set up or broke, with the phase that failed; `HboneRefusedError` (MESHD_E_HBONE_REFUSED)
 * when the peer answered CONNECT with an error status.
 */
import { MeshdError } from '../errors.js';

/** The phase of an outbound tunnel that failed; low cardinality, fit for a metric label. */
export type HbonePhase =
  | 'dial' // the TCP connection to the peer's :15008 (timeout, refused, unreachable)
  | 'tls' // the TLS handshake failed (alert, untrusted certificate, protocol, ALPN)
  | 'identity' // the peer's SPIFFE ID is not the expected one
  | 'http2' // the HTTP/2 session could not start or broke (bad frames, closed by the peer)
  | 'timeout' // a phase took longer than its limit
  | 'goaway' // the session went away before the stream started, and retries ran out
  | 'stream' // the CONNECT stream was reset or closed before the peer's answer
  | 'closed' // the pool or server was closed
  | 'aborted' // the caller's AbortSignal fired
  | 'request'; // the caller's request is invalid (authority, headers)

export class HboneError extends MeshdError {
  readonly phase: HbonePhase;
  /** The peer (`ip:port` of its HBONE port), when known. */
  readonly destination: string | undefined;
  /** Whether the request never reached the peer's application side, so retrying is safe. */
  readonly retryable: boolean;

  constructor(
    phase: HbonePhase,
    message: string,
    options: { destination?: string; cause?: unknown; hint?: string; retryable?: boolean } = {},
  ) {
    const where = options.destination ? ` (peer ${options.destination})` : '';
    super('MESHD_E_HBONE', `HBONE ${phase}: ${message}${where}`, {
      cause: options.cause,
      hint: options.hint,
    });
    this.phase = phase;
    this.destination = options.destination;
    this.retryable = options.retryable ?? false;
  }
}

const STATUS_MEANING: Record<number, string> = {
  400: 'bad target: the authority is not an address of the peer workload',
  401: 'denied by the peer’s authorization policy',
  405: 'the peer accepts only CONNECT',
  503: 'the peer could not reach the application',
};

export class HboneRefusedError extends MeshdError {
  /** The HTTP status of the peer's answer (400, 401, 503, …). */
  readonly status: number;
  readonly destination: string | undefined;
  readonly authority: string;

  constructor(status: number, authority: string, destination?: string) {
    const meaning = STATUS_MEANING[status] ?? 'unexpected status';
    const where = destination ? ` via ${destination}` : '';
    super('MESHD_E_HBONE_REFUSED', `CONNECT ${authority}${where} answered ${status}: ${meaning}`);
    this.status = status;
    this.authority = authority;
    this.destination = destination;
  }
}
