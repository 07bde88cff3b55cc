/**
 * Who is calling. TLS asks every client for a certificate but does not insist (Join comes
 * without one), so the transport accepts anonymous callers; each method that needs an identity
 * asks here. grpc-js exposes the peer's leaf only when OpenSSL verified the presented chain
 * against the TLS context's CAs (bundle roots + accepted intermediates); we then verify it again
 * ourselves with the X.509-SVID rules against the current snapshot: issued by the current or
 * previous intermediate, chaining to a root of the bundle, conformant, in our trust domain.
 */
import { X509Certificate } from 'node:crypto';
import { MeshdError } from '../errors.js';
import {
  classify,
  type IdentityKind,
  parseSpiffeId,
  type SvidInfo,
  verifySvid,
} from '../identity/index.js';
import type { CaSnapshot } from './ca-state.js';

export interface Caller {
  svid: SvidInfo;
  kind: IdentityKind;
}

/** The part of a grpc-js server call we use (its AuthContext type is not exported). */
interface HasAuthContext {
  getAuthContext(): { sslPeerCertificate?: { raw?: Buffer } };
}

const clientCertError = (message: string, cause?: unknown) =>
  new MeshdError('MESHD_E_CLIENT_CERT', message, { cause });

/** The verified caller; throws MESHD_E_CLIENT_CERT saying why there is none. */
export function authenticate(
  call: HasAuthContext,
  method: string,
  snapshot: CaSnapshot,
  now: number,
): Caller {
  const raw = call.getAuthContext().sslPeerCertificate?.raw;
  if (!raw) {
    throw clientCertError(
      `${method} needs a client certificate issued by this mesh's CA; none was presented, or the ` +
        'one presented does not verify against the trust bundle (unknown CA, expired, wrong usage)',
    );
  }
  const leaf = new X509Certificate(raw);
  const issuer = snapshot.intermediates.find(
    (ca) => leaf.checkIssued(ca) && leaf.verify(ca.publicKey),
  );
  if (!issuer) {
    throw clientCertError(
      `the client certificate (issuer "${leaf.issuer.replace(/\n/g, ', ')}") was not issued by ` +
        "this mesh's current or previous intermediate CA",
    );
  }
  let svid: SvidInfo;
  try {
    svid = verifySvid(
      [new Uint8Array(raw), new Uint8Array(issuer.raw)],
      [...snapshot.roots],
      snapshot.trustDomain,
      now,
    );
  } catch (cause) {
    throw clientCertError(`the client certificate is refused: ${(cause as Error).message}`, cause);
  }
  return { svid, kind: classify(parseSpiffeId(svid.spiffeId, snapshot.trustDomain)) };
}
