/**
 * Checking X.509-SVIDs: the SPIFFE X.509-SVID rules for a leaf, and its chain to a current
 * root of the trust bundle. Used by the CA before it hands out a certificate and by anyone
 * verifying a peer.
 */
import { X509Certificate } from 'node:crypto';
import { MeshdError } from '../errors.js';
import { DerError, decodeOid, readAll, readOne, TAG, type Tlv } from './der.js';
import { GN, OID } from './pki.js';
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

interface Extension {
  oid: string;
  critical: boolean;
  /** extnValue's contents: the DER of the extension's own value. */
  value: Uint8Array;
}

const EXTENSIONS_TAG = 0xa3; // tbsCertificate's [3] EXPLICIT extensions (RFC 5280 §4.1)
const SAN_URI_TAG = 0x80 | GN.uri; // GeneralName [6] IMPLICIT IA5String

/** Checked by a few DER reads (not pkijs): the agent runs this on every HBONE handshake. */
function extensionsOf(der: Uint8Array): Extension[] {
  const [tbs] = readAll(readOne(der, TAG.sequence).value);
  if (tbs?.tag !== TAG.sequence) throw new DerError('no tbsCertificate');
  const wrapped = readAll(tbs.value).find((field) => field.tag === EXTENSIONS_TAG);
  if (!wrapped) return [];
  return readAll(readOne(wrapped.value, TAG.sequence).value).map((ext) => {
    if (ext.tag !== TAG.sequence) throw new DerError('an extension is not a SEQUENCE');
    const [id, second, third] = readAll(ext.value);
    const flagged = second?.tag === TAG.boolean;
    const value = flagged ? third : second;
    if (id?.tag !== TAG.oid || value?.tag !== TAG.octetString) {
      throw new DerError('an extension is not OID, [critical,] OCTET STRING');
    }
    return {
      oid: decodeOid(id.value),
      critical: flagged && second.value[0] !== 0,
      value: value.value,
    };
  });
}

function extension(extensions: Extension[], oid: string): Extension | undefined {
  const found = extensions.filter((e) => e.oid === oid);
  if (found.length > 1) throw new SvidError(`extension ${oid} appears ${found.length} times`);
  return found[0];
}

/** The elements inside an extension's value (itself one element with `tag`). */
function inside(ext: Extension, tag: number): Tlv[] {
  try {
    return readAll(readOne(ext.value, tag).value);
  } catch (cause) {
    throw new SvidError(`extension ${ext.oid} is not valid DER`, cause);
  }
}

function checkSan(extensions: Extension[], trustDomain: string): SpiffeId {
  const san = extension(extensions, OID.subjectAltName);
  const names = san ? inside(san, TAG.sequence) : [];
  const uris = names.filter((n) => n.tag === SAN_URI_TAG);
  if (uris.length !== 1 || names.length !== 1) {
    throw new SvidError(
      `it must have exactly one SAN, a URI (found ${uris.length} URI of ${names.length})`,
    );
  }
  try {
    return parseSpiffeId(Buffer.from(uris[0]?.value ?? []).toString('latin1'), trustDomain).id;
  } catch (cause) {
    throw new SvidError((cause as Error).message, cause);
  }
}

function checkLeafConstraints(extensions: Extension[]): void {
  const bc = extension(extensions, OID.basicConstraints);
  const [cA] = bc ? inside(bc, TAG.sequence) : [];
  // cA is DEFAULT FALSE: absent means a leaf; the extension itself must be there.
  if (!bc || (cA?.tag === TAG.boolean && cA.value[0] !== 0)) {
    throw new SvidError('a leaf must carry basicConstraints with cA=false');
  }
  const ku = extension(extensions, OID.keyUsage);
  if (!ku?.critical) throw new SvidError('keyUsage must be present and critical');
  let bits = 0;
  try {
    // Contents: the count of unused bits, then the bits (digitalSignature is the top one).
    bits = readOne(ku.value, TAG.bitString).value[1] ?? 0;
  } catch (cause) {
    throw new SvidError(`extension ${ku.oid} is not valid DER`, cause);
  }
  if (!(bits & 0x80)) throw new SvidError('keyUsage must include digitalSignature');
  if (bits & 0x06) throw new SvidError('a leaf must not have keyCertSign or cRLSign');
  const eku = extension(extensions, OID.extKeyUsage);
  const purposes = (eku ? inside(eku, TAG.sequence) : [])
    .filter((p) => p.tag === TAG.oid)
    .map((p) => decodeOid(p.value));
  if (!purposes.includes(OID.serverAuth) || !purposes.includes(OID.clientAuth)) {
    throw new SvidError('extKeyUsage must include serverAuth and clientAuth');
  }
}

/** The SPIFFE ID of a conformant leaf; throws SvidError naming the first rule it breaks. */
export function checkSvidConformance(der: Uint8Array, trustDomain: string): SpiffeId {
  let extensions: Extension[];
  try {
    extensions = extensionsOf(der);
  } catch (cause) {
    throw new SvidError('not a DER-encoded X.509 certificate', cause);
  }
  const id = checkSan(extensions, trustDomain);
  checkLeafConstraints(extensions);
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
