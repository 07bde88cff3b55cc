/**
 * The CA as the server uses it: the signing intermediate, the roots of the trust bundle and
 * every intermediate whose certificates are still accepted, parsed once per (re)load. Requests
 * take one snapshot and use it to the end, so a reload never mixes two CAs in one answer.
 */
import { X509Certificate } from 'node:crypto';
import { CaFilesError, type LoadedCa, loadCa } from '../identity/index.js';

export interface CaSnapshot {
  readonly ca: LoadedCa;
  readonly trustDomain: string;
  /** PEM of each root in the bundle (what GetTrustBundle returns). */
  readonly rootsPem: readonly string[];
  readonly roots: readonly X509Certificate[];
  /** The current intermediate first, then the previous one during a root rotation. */
  readonly intermediates: readonly X509Certificate[];
  readonly signerDer: Uint8Array;
  readonly loadedAt: Date;
}

/** Loads `dir`; refuses a CA of another trust domain than the server is configured for. */
export async function loadCaSnapshot(
  dir: string,
  trustDomain: string,
  now: number,
): Promise<CaSnapshot> {
  const ca = await loadCa(dir);
  if (ca.trustDomain !== trustDomain) {
    throw new CaFilesError(
      `the CA in ${dir} is for trust domain "${ca.trustDomain}", but MESHD_TRUST_DOMAIN is "${trustDomain}"`,
      `set MESHD_TRUST_DOMAIN=${ca.trustDomain} or point MESHD_CA_DIR at the right CA`,
    );
  }
  const intermediates = ca.intermediates.map((pem) => new X509Certificate(pem));
  const signer = intermediates[0];
  if (!signer) throw new CaFilesError(`the CA in ${dir} has no intermediate`);
  return {
    ca,
    trustDomain,
    rootsPem: ca.roots,
    roots: ca.roots.map((pem) => new X509Certificate(pem)),
    intermediates,
    signerDer: new Uint8Array(signer.raw),
    loadedAt: new Date(now),
  };
}
