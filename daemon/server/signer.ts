/**
 * Turning an accepted CSR into an X.509-SVID: sign with the snapshot's intermediate, then check
 * the result as any peer would (X.509-SVID conformance, chain to a bundle root) before it
 * leaves the server. A leaf that fails is a server bug and is never returned.
 */

import { MeshdError } from '../errors.js';
import {
  type AcceptedCsr,
  leafValidity,
  type SvidInfo,
  signSvid,
  toPem,
  verifySvid,
} from '../identity/index.js';
import type { CaSnapshot } from './ca-state.js';

export interface SignedLeaf {
  /** PEM: the leaf, then the intermediate. */
  chain: string[];
  info: SvidInfo;
}

export async function signLeaf(
  snapshot: CaSnapshot,
  csr: AcceptedCsr,
  ttlMs: number,
  now: number,
): Promise<SignedLeaf> {
  const { signer } = snapshot.ca;
  const cert = await signSvid(
    signer,
    csr.spiffeId,
    csr.publicKeyInfo,
    leafValidity(now, ttlMs, signer.cert),
  );
  const der = new Uint8Array(cert.toSchema().toBER(false));
  let info: SvidInfo;
  try {
    info = verifySvid([der, snapshot.signerDer], [...snapshot.roots], snapshot.trustDomain, now);
  } catch (cause) {
    throw new MeshdError(
      'MESHD_E_SVID',
      `the certificate signed for ${csr.spiffeId} failed its own check; not issued`,
      { cause },
    );
  }
  if (info.spiffeId !== csr.spiffeId) {
    throw new MeshdError(
      'MESHD_E_SVID',
      `the certificate signed for ${csr.spiffeId} names ${info.spiffeId}; not issued`,
    );
  }
  return { chain: [toPem('CERTIFICATE', der), snapshot.ca.intermediatePem], info };
}

/**
 * The lifetime to issue: requests above `maxMs` are clamped, not refused; zero, negative and
 * non-integer requests are refused (MESHD_E_BAD_REQUEST).
 */
export function clampTtl(ttlSeconds: number, maxMs: number): { ttlMs: number; clamped: boolean } {
  requirePositiveTtl(ttlSeconds);
  const ttlMs = ttlSeconds * 1000;
  return ttlMs > maxMs ? { ttlMs: maxMs, clamped: true } : { ttlMs, clamped: false };
}

export function requirePositiveTtl(ttlSeconds: number): void {
  if (!Number.isInteger(ttlSeconds) || ttlSeconds <= 0) {
    throw new MeshdError(
      'MESHD_E_BAD_REQUEST',
      `ttl_seconds=${ttlSeconds} is not allowed: the requested lifetime must be a positive number of seconds (above the server maximum it is clamped)`,
    );
  }
}
