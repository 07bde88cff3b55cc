/**
 * The one mapping from meshd errors to gRPC statuses. Messages go to the caller unchanged:
 * they say what was refused and why, and never carry secrets (tokens, keys).
 */
import { type ErrorCode, errorReason, MeshdError } from '../errors.js';
import { grpc } from '../proto/index.js';

const STATUS_OF: Partial<Record<ErrorCode, grpc.status>> = {
  MESHD_E_JOIN_TOKEN: grpc.status.UNAUTHENTICATED,
  MESHD_E_CLIENT_CERT: grpc.status.UNAUTHENTICATED,
  MESHD_E_FORBIDDEN: grpc.status.PERMISSION_DENIED,
  MESHD_E_CSR: grpc.status.INVALID_ARGUMENT,
  MESHD_E_SPIFFE_ID: grpc.status.INVALID_ARGUMENT,
  MESHD_E_BAD_REQUEST: grpc.status.INVALID_ARGUMENT,
  MESHD_E_CA: grpc.status.FAILED_PRECONDITION,
  MESHD_E_SERVER_STATE: grpc.status.UNAVAILABLE,
  MESHD_E_INVALID_RESOURCE: grpc.status.INVALID_ARGUMENT,
  MESHD_E_CONFLICT: grpc.status.ABORTED,
  MESHD_E_NOT_FOUND: grpc.status.NOT_FOUND,
  MESHD_E_STORE: grpc.status.UNAVAILABLE,
};

export function grpcStatusOf(err: unknown): grpc.status {
  return err instanceof MeshdError
    ? (STATUS_OF[err.code] ?? grpc.status.INTERNAL)
    : grpc.status.INTERNAL;
}

/** True for refusals caused by the request or the caller, false for the server's own faults. */
export function isRefusal(status: grpc.status): boolean {
  return (
    status === grpc.status.UNAUTHENTICATED ||
    status === grpc.status.PERMISSION_DENIED ||
    status === grpc.status.INVALID_ARGUMENT
  );
}

export function toServiceError(err: unknown): Partial<grpc.ServiceError> {
  const code = grpcStatusOf(err);
  const message = err instanceof Error ? err.message : String(err);
  const details =
    code === grpc.status.INTERNAL && !(err instanceof MeshdError)
      ? `internal error (${errorReason(err)}); see the meshd server log`
      : `${errorReason(err)}: ${message}`;
  return { code, details };
}

export const badRequest = (message: string) => new MeshdError('MESHD_E_BAD_REQUEST', message);
export const forbidden = (message: string) => new MeshdError('MESHD_E_FORBIDDEN', message);
