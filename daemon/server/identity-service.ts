/**
 * The Identity gRPC service (daemon/proto/identity.proto): Join, CreateCertificate,
 * GetTrustBundle, CreateJoinToken. Each handler authenticates and authorizes its caller, checks
 * the request, and either answers with what it asked for or refuses with a status and a message
 * saying what and why, having issued nothing.
 */
import { parse } from '../config.js';
import { errorReason, MeshdError } from '../errors.js';
import {
  type AcceptedCsr,
  type Clock,
  classify,
  nodeId,
  parseCsr,
  parseSpiffeId,
} from '../identity/index.js';
import type {
  CreateCertificateRequest,
  CreateCertificateResponse,
  CreateJoinTokenRequest,
  CreateJoinTokenResponse,
  GetTrustBundleRequest,
  grpc,
  JoinRequest,
  JoinResponse,
  TrustBundle,
} from '../proto/index.js';
import type { Logger } from '../telemetry/index.js';
import type { CaSnapshot } from './ca-state.js';
import { authenticate } from './caller.js';
import type { CertificateKind, ServerMetrics } from './metrics.js';
import { clampTtl, requirePositiveTtl, signLeaf } from './signer.js';
import { badRequest, forbidden, grpcStatusOf, isRefusal, toServiceError } from './status.js';
import type { JoinTokenStore } from './tokens.js';
import type { WorkloadDirectory } from './workloads.js';

export const JOIN_TOKEN_TTL = { defaultMs: 3600_000, minMs: 60_000, maxMs: 7 * 24 * 3600_000 };

export interface IdentityServiceDeps {
  trustDomain: string;
  maxCertTtlMs: number;
  nodeCertTtlMs: number;
  snapshot(): CaSnapshot;
  tokens: JoinTokenStore;
  workloads(): WorkloadDirectory;
  clock: Clock;
  metrics: ServerMetrics;
  logger: Logger;
}

type Call<Req, Res> = grpc.ServerUnaryCall<Req, Res>;

function bundleOf(snapshot: CaSnapshot): TrustBundle {
  return { trustDomain: snapshot.trustDomain, roots: [...snapshot.rootsPem] };
}

export function identityHandlers(deps: IdentityServiceDeps): grpc.UntypedServiceImplementation {
  const { trustDomain, clock, metrics, logger } = deps;

  /** Runs `fn`, answers with its result or its error mapped to a status; logs refusals. */
  function unary<Req, Res>(
    method: string,
    certificateCall: boolean,
    fn: (req: Req, call: Call<Req, Res>) => Promise<Res>,
  ): grpc.handleUnaryCall<Req, Res> {
    return (call, callback) => {
      fn(call.request, call).then(
        (res) => callback(null, res),
        (err: unknown) => {
          const status = grpcStatusOf(err);
          const fields = {
            method,
            peer: call.getPeer(),
            code: errorReason(err),
            err: err instanceof Error ? err.message : String(err),
          };
          if (isRefusal(status)) logger.warn(fields, 'request refused');
          else logger.error(fields, 'request failed');
          if (certificateCall) metrics.refusals.inc({ reason: errorReason(err) });
          callback(toServiceError(err));
        },
      );
    };
  }

  const issued = (kind: CertificateKind, fields: Record<string, unknown>) => {
    metrics.issued.inc({ kind });
    logger.info({ kind, ...fields }, 'certificate issued');
  };

  const join = unary<JoinRequest, JoinResponse>('Join', true, async (req) => {
    const snapshot = deps.snapshot();
    const { leaf, token } = await deps.tokens.redeem(req.token ?? '', async (token) => {
      const csr = await parseCsr(req.csr ?? new Uint8Array(), trustDomain);
      const expected = nodeId(trustDomain, token.node);
      if (csr.spiffeId !== expected) {
        throw forbidden(
          `join token ${token.id} is for node ${token.node}: the CSR must ask for ${expected}, not ${csr.spiffeId}`,
        );
      }
      const leaf = await signLeaf(snapshot, csr, deps.nodeCertTtlMs, clock.now());
      return { leaf, token };
    });
    issued('node', {
      method: 'Join',
      spiffeId: leaf.info.spiffeId,
      node: token.node,
      tokenId: token.id,
      serial: leaf.info.serial,
      notAfter: leaf.info.notAfter,
    });
    return { node: token.node, certChain: leaf.chain, trustBundle: bundleOf(snapshot) };
  });

  const createCertificate = unary<CreateCertificateRequest, CreateCertificateResponse>(
    'CreateCertificate',
    true,
    async (req, call) => {
      const snapshot = deps.snapshot();
      const caller = authenticate(call, 'CreateCertificate', snapshot, clock.now());
      if (caller.kind.kind !== 'node') {
        throw forbidden(
          `CreateCertificate is for nodes: the caller ${caller.svid.spiffeId} is not a node identity (spiffe://${trustDomain}/node/<name>)`,
        );
      }
      const node = caller.kind.node;
      const ttlSeconds = Number(req.ttlSeconds ?? 0);
      requirePositiveTtl(ttlSeconds);
      const csr = await parseCsr(req.csr ?? new Uint8Array(), trustDomain);
      const kind = await authorize(node, csr);
      const { ttlMs, clamped } = clampTtl(
        ttlSeconds,
        kind === 'node' ? deps.nodeCertTtlMs : deps.maxCertTtlMs,
      );
      const leaf = await signLeaf(snapshot, csr, ttlMs, clock.now());
      issued(kind, {
        method: 'CreateCertificate',
        spiffeId: leaf.info.spiffeId,
        node,
        serial: leaf.info.serial,
        notAfter: leaf.info.notAfter,
        ttlClamped: clamped || undefined,
      });
      return { certChain: leaf.chain };
    },
  );

  /** Node authorization: own workloads and own node identity only. */
  async function authorize(node: string, csr: AcceptedCsr): Promise<CertificateKind> {
    const id = csr.spiffeId;
    const kind = classify(parseSpiffeId(id, trustDomain));
    if (kind.kind === 'workload') {
      const here = await deps.workloads().identitiesOn(node);
      if (!here.has(id)) {
        throw forbidden(
          `node ${node} may not get ${id}: no such workload is registered on ${node}`,
        );
      }
      return 'workload';
    }
    if (kind.kind === 'node') {
      if (kind.node !== node) {
        throw forbidden(
          `node ${node} may not get ${id}: a node may renew only its own node certificate`,
        );
      }
      return 'node';
    }
    throw forbidden(
      `node ${node} may not get ${id}: nodes get certificates only for workloads registered on them (spiffe://${trustDomain}/ns/<ns>/sa/<sa>) and for their own node identity`,
    );
  }

  const getTrustBundle = unary<GetTrustBundleRequest, TrustBundle>(
    'GetTrustBundle',
    false,
    async () => bundleOf(deps.snapshot()),
  );

  const createJoinToken = unary<CreateJoinTokenRequest, CreateJoinTokenResponse>(
    'CreateJoinToken',
    false,
    async (req, call) => {
      const snapshot = deps.snapshot();
      const caller = authenticate(call, 'CreateJoinToken', snapshot, clock.now());
      if (caller.kind.kind !== 'admin') {
        throw forbidden(
          `CreateJoinToken is for admins: the caller ${caller.svid.spiffeId} is not an admin identity (spiffe://${trustDomain}/admin/<name>)`,
        );
      }
      const node = req.node ?? '';
      try {
        parse.dnsLabel(node);
      } catch (cause) {
        throw new MeshdError(
          'MESHD_E_BAD_REQUEST',
          `node "${node}" is not a valid node name: ${(cause as Error).message}`,
          { cause },
        );
      }
      const ttlMs = joinTokenTtlMs(Number(req.ttlSeconds ?? 0));
      const created = await deps.tokens.create(node, ttlMs);
      metrics.joinTokensCreated.inc();
      logger.info(
        {
          node,
          tokenId: created.id,
          expiresAt: created.expiresAt,
          admin: caller.svid.spiffeId,
        },
        'join token created',
      );
      return {
        token: created.token,
        expiresAtUnix: Math.floor(created.expiresAt.getTime() / 1000),
      };
    },
  );

  return {
    Join: join,
    CreateCertificate: createCertificate,
    GetTrustBundle: getTrustBundle,
    CreateJoinToken: createJoinToken,
  } as grpc.UntypedServiceImplementation;
}

/** 0 means the default (1 h); otherwise 1 minute to 7 days. */
export function joinTokenTtlMs(ttlSeconds: number): number {
  if (ttlSeconds === 0) return JOIN_TOKEN_TTL.defaultMs;
  const ms = ttlSeconds * 1000;
  if (!Number.isInteger(ttlSeconds) || ms < JOIN_TOKEN_TTL.minMs || ms > JOIN_TOKEN_TTL.maxMs) {
    throw badRequest(
      `ttl_seconds=${ttlSeconds} is not allowed: a join token lives between 60 seconds (1m) and 604800 seconds (7d); 0 means 1h`,
    );
  }
  return ms;
}
