/**
 * Checking X.509-SVIDs: the SPIFFE X.509-SVID rules for a leaf, and its chain to a current
 * root of the trust bundle. Used by the CA before it hands out a certificate and by anyone
 * verifying a peer.
 */
import { X509Certificate } from 'node:crypto';
import { MeshdError } from '../errors.js';
import { type asn1js, bufferOf, GN, OID, pkijs } from './pki.js';
import { parseSpiffeId, type SpiffeId } from './spiffe.js';

export class SvidError extends MeshdError {
  constructor(reason: string, cause?: unknown) {
    super('MESHD_E_SVID', `not a valid X.509-SVID: ${reason}`, { cause });
  }
}

export interface SvidInfo {
  spiffeId: SpiffeId;
  serial: string;
  notBefore: Date;
  notAfter: Date;
  issuer: string;
}

function extension(cert: pkijs.Certificate, oid: string): pkijs.Extension | undefined {
  const found = (cert.extensions ?? []).filter((e) => e.extnID === oid);
  if (found.length > 1) throw new SvidError(`extension ${oid} appears ${found.length} times`);
  return found[0];
}

function checkSan(cert: pkijs.Certificate, trustDomain: string): SpiffeId {
  const san = extension(cert, OID.subjectAltName)?.parsedValue as pkijs.AltName | undefined;
  const names = san?.altNames ?? [];
  const uris = names.filter((n) => n.type === GN.uri);
  if (uris.length !== 1 || names.length !== 1) {
    throw new SvidError(
      `it must have exactly one SAN, a URI (found ${uris.length} URI of ${names.length})`,
    );
  }
  try {
    return parseSpiffeId(String(uris[0]?.value), trustDomain).id;
  } catch (cause) {
    throw new SvidError((cause as Error).message, cause);
  }
}

function checkLeafConstraints(cert: pkijs.Certificate): void {
  const bc = extension(cert, OID.basicConstraints)?.parsedValue as
    | pkijs.BasicConstraints
    | undefined;
  if (bc?.cA !== false) throw new SvidError('a leaf must carry basicConstraints with cA=false');
  const ku = extension(cert, OID.keyUsage);
  if (!ku?.critical) throw new SvidError('keyUsage must be present and critical');
  const bits = new Uint8Array((ku.parsedValue as asn1js.BitString).valueBlock.valueHexView)[0] ?? 0;
  if (!(bits & 0x80)) throw new SvidError('keyUsage must include digitalSignature');
  if (bits & 0x06) throw new SvidError('a leaf must not have keyCertSign or cRLSign');
  const eku = extension(cert, OID.extKeyUsage)?.parsedValue as pkijs.ExtKeyUsage | undefined;
  const purposes = eku?.keyPurposes ?? [];
  if (!purposes.includes(OID.serverAuth) || !purposes.includes(OID.clientAuth)) {
    throw new SvidError('extKeyUsage must include serverAuth and clientAuth');
  }
}

/** The SPIFFE ID of a conformant leaf; throws SvidError naming the first rule it breaks. */
export function checkSvidConformance(der: Uint8Array, trustDomain: string): SpiffeId {
  let cert: pkijs.Certificate;
  try {
    cert = pkijs.Certificate.fromBER(bufferOf(der));
  } catch (cause) {
    throw new SvidError('not a DER-encoded X.509 certificate', cause);
  }
  const id = checkSan(cert, trustDomain);
  checkLeafConstraints(cert);
  return id;
}

function checkTime(cert: X509Certificate, now: number, role: string): void {
  if (now < Date.parse(cert.validFrom) || now > Date.parse(cert.validTo)) {
    throw new SvidError(
      `the ${role} certificate is not valid now (valid ${cert.validFrom} to ${cert.validTo})`,
    );
  }
}

function issuedBy(child: X509Certificate, parent: X509Certificate): boolean {
  return parent.ca && child.checkIssued(parent) && child.verify(parent.publicKey);
}

/**
 * Verifies chain[0] (the leaf) through chain[1..] to one of `roots`, checks the leaf is a
 * conformant SVID of `trustDomain`, and returns what it says.
 */
export function verifySvid(
  chain: Uint8Array[],
  roots: X509Certificate[],
  trustDomain: string,
  now = Date.now(),
): SvidInfo {
  const [leafDer, ...rest] = chain;
  if (!leafDer) throw new SvidError('the chain is empty');
  const spiffeId = checkSvidConformance(leafDer, trustDomain);
  const leaf = new X509Certificate(leafDer);
  checkTime(leaf, now, 'leaf');
  let current = leaf;
  for (const der of rest) {
    const next = new X509Certificate(der);
    if (roots.some((r) => r.raw.equals(next.raw))) break; // a peer may send its root too
    if (!issuedBy(current, next))
      throw new SvidError(`${current.subject || 'leaf'} is not signed by ${next.subject}`);
    checkTime(next, now, 'intermediate');
    current = next;
  }
  const root = roots.find((r) => issuedBy(current, r));
  if (!root) throw new SvidError('the chain does not lead to a root of the trust bundle');
  checkTime(root, now, 'root');
  return svidInfo(leaf, spiffeId);
}

export function svidInfo(leaf: X509Certificate, spiffeId: SpiffeId): SvidInfo {
  return {
    spiffeId,
    serial: leaf.serialNumber.toLowerCase(),
    notBefore: new Date(leaf.validFrom),
    notAfter: new Date(leaf.validTo),
    issuer: leaf.issuer.replace(/\n/g, ', '),
  };
}

/** The SPIFFE ID in a peer certificate Node's tls already verified against the bundle. */
export function spiffeIdOfPeer(peer: X509Certificate | undefined, trustDomain: string): SpiffeId {
  if (!peer) throw new SvidError('the peer presented no certificate');
  return checkSvidConformance(new Uint8Array(peer.raw), trustDomain);
}
