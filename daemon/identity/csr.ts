/**
 * Certificate signing requests: the agent makes one per identity (empty subject, exactly one
 * URI SAN, P-256 key); the CA accepts only requests of exactly that shape.
 */
import { KeyObject, sign } from 'node:crypto';
import { MeshdError } from '../errors.js';
import { oid, TAG, tlv } from './der.js';
import { type Asn1js, bufferOf, GN, type KeyPair, OID, type Pkijs, pki } from './pki.js';
import { parseSpiffeId, type SpiffeId } from './spiffe.js';

export class CsrError extends MeshdError {
  constructor(reason: string, cause?: unknown) {
    super('MESHD_E_CSR', `certificate signing request refused: ${reason}`, { cause });
  }
}

export function sanExtension(spiffeId: string, critical: boolean): Pkijs.Extension {
  const { pkijs } = pki();
  const names = new pkijs.GeneralNames({
    names: [new pkijs.GeneralName({ type: GN.uri, value: spiffeId })],
  });
  return new pkijs.Extension({
    extnID: OID.subjectAltName,
    critical,
    extnValue: names.toSchema().toBER(false),
  });
}

/**
 * The agent's request (RFC 2986), written by hand so the agent never loads pkijs: version 0,
 * an empty subject, the P-256 public key, and an extensionRequest attribute holding the one
 * critical URI SAN; signed ECDSA with SHA-256.
 */
export async function createCsr(keys: KeyPair, spiffeId: SpiffeId): Promise<Uint8Array> {
  const spki = KeyObject.from(keys.publicKey).export({ type: 'spki', format: 'der' });
  const uri = tlv(0x80 | GN.uri, Buffer.from(spiffeId, 'latin1'));
  const san = tlv(
    TAG.sequence,
    oid(OID.subjectAltName),
    tlv(TAG.boolean, Uint8Array.of(0xff)),
    tlv(TAG.octetString, tlv(TAG.sequence, uri)),
  );
  const extensionRequest = tlv(
    TAG.sequence,
    oid(OID.extensionRequest),
    tlv(TAG.set, tlv(TAG.sequence, san)),
  );
  const info = tlv(
    TAG.sequence,
    tlv(TAG.integer, Uint8Array.of(0)),
    tlv(TAG.sequence),
    spki,
    tlv(0xa0, extensionRequest), // attributes: [0] IMPLICIT SET OF Attribute
  );
  const signature = sign('sha256', info, {
    key: KeyObject.from(keys.privateKey),
    dsaEncoding: 'der',
  });
  return tlv(
    TAG.sequence,
    info,
    tlv(TAG.sequence, oid(OID.ecdsaWithSha256)),
    tlv(TAG.bitString, Uint8Array.of(0), signature),
  );
}

export interface AcceptedCsr {
  spiffeId: SpiffeId;
  publicKeyInfo: Pkijs.PublicKeyInfo;
}

/** Decodes and checks a CSR; throws CsrError naming the first problem. */
export async function parseCsr(der: Uint8Array, trustDomain: string): Promise<AcceptedCsr> {
  const { pkijs } = pki();
  let csr: Pkijs.CertificationRequest;
  try {
    csr = pkijs.CertificationRequest.fromBER(bufferOf(der));
  } catch (cause) {
    throw new CsrError('not a DER-encoded PKCS#10 request', cause);
  }
  checkKeyAlgorithm(csr.subjectPublicKeyInfo);
  if (!(await csr.verify().catch(() => false))) throw new CsrError('its signature does not verify');
  const uris = requestedUris(csr);
  if (uris.length !== 1 || !uris[0]) {
    throw new CsrError(`it must request exactly one URI SAN (found ${uris.length})`);
  }
  try {
    return {
      spiffeId: parseSpiffeId(uris[0], trustDomain).id,
      publicKeyInfo: csr.subjectPublicKeyInfo,
    };
  } catch (cause) {
    throw new CsrError((cause as Error).message, cause);
  }
}

function checkKeyAlgorithm(spki: Pkijs.PublicKeyInfo): void {
  const { asn1js } = pki();
  const alg = spki.algorithm.algorithmId;
  const params = spki.algorithm.algorithmParams as Asn1js.ObjectIdentifier | undefined;
  const curve =
    params instanceof asn1js.ObjectIdentifier ? params.valueBlock.toString() : undefined;
  if (alg !== OID.ecPublicKey || curve !== OID.p256) {
    throw new CsrError(
      `the key must be ECDSA P-256 (got algorithm ${alg}${curve ? `, curve ${curve}` : ''})`,
    );
  }
}

/** The URIs the CSR asks for; any other SAN type (DNS, IP, email) is refused outright. */
function requestedUris(csr: Pkijs.CertificationRequest): string[] {
  const { pkijs } = pki();
  const extensions = (csr.attributes ?? [])
    .filter((a) => a.type === OID.extensionRequest)
    .flatMap((a) => a.values.map((v) => new pkijs.Extensions({ schema: v }).extensions))
    .flat();
  const sans = extensions.filter((e) => e.extnID === OID.subjectAltName);
  if (sans.length > 1) throw new CsrError('it carries more than one subjectAltName extension');
  const names = (sans[0]?.parsedValue as Pkijs.AltName | undefined)?.altNames ?? [];
  const other = names.find((n) => n.type !== GN.uri);
  if (other) throw new CsrError(`only a URI SAN is allowed (found GeneralName type ${other.type})`);
  return names.map((n) => String(n.value));
}
