/**
 * The Identity API client shared by the agent and meshctl: mTLS (TLS 1.3) with the bundle as
 * the only trust anchors, the server's SPIFFE ID (spiffe://<td>/control-plane/meshd-server)
 * checked in place of a host name, a deadline on every call, and gRPC errors turned into one
 * line with the status name (MESHD_E_CONTROL_PLANE).
 */
import { createSecureContext } from 'node:tls';
import { MeshdError } from '../errors.js';
import { checkSvidConformance, controlPlaneId } from '../identity/index.js';
import type {
  CreateCertificateRequest,
  CreateCertificateResponse,
  CreateJoinTokenRequest,
  CreateJoinTokenResponse,
  JoinRequest,
  JoinResponse,
  TrustBundle,
} from './messages.js';
import { grpc, identityService } from './service.js';

export const DEFAULT_TIMEOUT_MS = 10_000;

export interface ClientCredentials {
  trustDomain: string;
  /** PEM roots the server's certificate must chain to. */
  bundlePem: string;
  /** Client certificate (chain, leaf first) and key; absent for anonymous calls. */
  identity?: { certChainPem: string; keyPem: string };
}

export interface ConnectOptions extends ClientCredentials {
  /** host:port of meshd server. */
  server: string;
  /** Deadline of each call (default 10 s). */
  timeoutMs?: number;
}

/**
 * TLS 1.3, the bundle as the only trust anchors, and the server's SPIFFE ID checked in place of
 * a host name. SNI is a fixed name: the target is usually an IP, which SNI may not carry.
 */
export function channelCredentials(creds: ClientCredentials): grpc.ChannelCredentials {
  const expected = controlPlaneId(creds.trustDomain);
  const context = createSecureContext({
    ca: creds.bundlePem,
    cert: creds.identity?.certChainPem,
    key: creds.identity?.keyPem,
    minVersion: 'TLSv1.3',
  });
  return grpc.credentials.createFromSecureContext(context, {
    checkServerIdentity: (_host, cert) => {
      try {
        const id = checkSvidConformance(new Uint8Array(cert.raw), creds.trustDomain);
        if (id === expected) return undefined;
        return new Error(`the server presented ${id}, not the control plane's ${expected}`);
      } catch (err) {
        return err as Error;
      }
    },
  });
}

export const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.ssl_target_name_override': 'meshd-server',
  // A registry snapshot of a large mesh (10,000 workloads) is several MiB.
  'grpc.max_receive_message_length': 256 * 1024 * 1024,
};

type Unary<Req, Res> = (
  request: Req,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: (err: grpc.ServiceError | null, response?: Res) => void,
) => grpc.ClientUnaryCall;

/** Promise-returning Identity API client; every error is a MESHD_E_CONTROL_PLANE. */
/** What every meshd gRPC client shares: one channel, a deadline per call, coded errors. */
export class ControlPlaneClient {
  readonly server: string;
  protected readonly client: grpc.Client;
  readonly #timeoutMs: number;

  constructor(service: grpc.ServiceClientConstructor, options: ConnectOptions) {
    this.server = options.server;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.client = new service(options.server, channelCredentials(options), CHANNEL_OPTIONS);
  }

  close(): void {
    this.client.close();
  }

  protected unary<Res>(method: string, request: unknown, signal?: AbortSignal): Promise<Res> {
    const fn = (this.client as unknown as Record<string, Unary<unknown, Res>>)[method];
    if (!fn) throw new Error(`no method ${method} on this client`);
    return new Promise((resolve, reject) => {
      const call = fn.call(
        this.client,
        request,
        new grpc.Metadata(),
        { deadline: Date.now() + this.#timeoutMs },
        (err, response) => {
          if (err || !response) reject(controlPlaneError(method, this.server, err));
          else resolve(response);
        },
      );
      signal?.addEventListener('abort', () => call.cancel(), { once: true });
    });
  }
}

export class IdentityClient extends ControlPlaneClient {
  constructor(options: ConnectOptions) {
    super(identityService(), options);
  }

  join(request: JoinRequest): Promise<JoinResponse> {
    return this.unary('Join', request);
  }
  createCertificate(
    request: CreateCertificateRequest,
    signal?: AbortSignal,
  ): Promise<CreateCertificateResponse> {
    return this.unary('CreateCertificate', request, signal);
  }
  getTrustBundle(): Promise<TrustBundle> {
    return this.unary('GetTrustBundle', {});
  }
  createJoinToken(request: CreateJoinTokenRequest): Promise<CreateJoinTokenResponse> {
    return this.unary('CreateJoinToken', request);
  }
}

/** The gRPC status of a MESHD_E_CONTROL_PLANE error (undefined for other errors). */
export class ControlPlaneCallError extends MeshdError {
  readonly status: grpc.status | undefined;
  readonly details: string;

  constructor(
    message: string,
    status: grpc.status | undefined,
    details: string,
    options: { cause?: unknown; hint?: string },
  ) {
    super('MESHD_E_CONTROL_PLANE', message, options);
    this.status = status;
    this.details = details;
  }
}

/** "<Method> to <server> failed: <STATUS_NAME>: <server's message>" with a hint where one helps. */
export function controlPlaneError(
  method: string,
  server: string,
  err: Partial<grpc.ServiceError> | null | undefined,
): ControlPlaneCallError {
  const code = err?.code;
  const name = code === undefined ? 'ERROR' : (grpc.status[code] ?? String(code));
  const details = err?.details || err?.message || 'no response';
  const hint =
    code === grpc.status.UNAVAILABLE
      ? `is meshd server running at ${server}, and does its certificate chain to the trust bundle?`
      : code === grpc.status.DEADLINE_EXCEEDED
        ? 'the server did not answer in time; check it is running and reachable'
        : undefined;
  return new ControlPlaneCallError(
    `${method} to ${server} failed: ${name}: ${details}`,
    code,
    details,
    { cause: err ?? undefined, hint },
  );
}
