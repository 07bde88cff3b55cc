/**
 * Certificate signing requests: the agent makes one per identity (empty subject, exactly one
 * URI SAN, P-256 key); the CA accepts only requests of exactly that shape.
 */
import { MeshdError } from '../errors.js';
import { asn1js, bufferOf, GN, type KeyPair, OID, pkijs, SIGN_HASH } from './pki.js';
import { parseSpiffeId, type SpiffeId } from './spiffe.js';

export class CsrError extends MeshdError {
  constructor(reason: string, cause?: unknown) {
    super('MESHD_E_CSR', `certificate signing request refused: ${reason}`, { cause });
  }
}

export function sanExtension(spiffeId: string, critical: boolean): pkijs.Extension {
  const names = new pkijs.GeneralNames({
    names: [new pkijs.GeneralName({ type: GN.uri, value: spiffeId })],
  });
  return new pkijs.Extension({
    extnID: OID.subjectAltName,
    critical,
    extnValue: names.toSchema().toBER(false),
  });
}

export async function createCsr(keys: KeyPair, spiffeId: SpiffeId): Promise<Uint8Array> {
  const csr = new pkijs.CertificationRequest();
  csr.version = 0;
  await csr.subjectPublicKeyInfo.importKey(keys.publicKey);
  csr.attributes = [
    new pkijs.Attribute({
      type: OID.extensionRequest,
      values: [new pkijs.Extensions({ extensions: [sanExtension(spiffeId, true)] }).toSchema()],
    }),
  ];
  await csr.sign(keys.privateKey, SIGN_HASH);
  return new Uint8Array(csr.toSchema().toBER(false));
}

export interface AcceptedCsr {
  spiffeId: SpiffeId;
  publicKeyInfo: pkijs.PublicKeyInfo;
}

/** Decodes and checks a CSR; throws CsrError naming the first problem. */
export async function parseCsr(der: Uint8Array, trustDomain: string): Promise<AcceptedCsr> {
  let csr: pkijs.CertificationRequest;
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

function checkKeyAlgorithm(spki: pkijs.PublicKeyInfo): void {
  const alg = spki.algorithm.algorithmId;
  const params = spki.algorithm.algorithmParams as asn1js.ObjectIdentifier | undefined;
  const curve =
    params instanceof asn1js.ObjectIdentifier ? params.valueBlock.toString() : undefined;
  if (alg !== OID.ecPublicKey || curve !== OID.p256) {
    throw new CsrError(
      `the key must be ECDSA P-256 (got algorithm ${alg}${curve ? `, curve ${curve}` : ''})`,
    );
  }
}

/** The URIs the CSR asks for; any other SAN type (DNS, IP, email) is refused outright. */
function requestedUris(csr: pkijs.CertificationRequest): string[] {
  const extensions = (csr.attributes ?? [])
    .filter((a) => a.type === OID.extensionRequest)
    .flatMap((a) => a.values.map((v) => new pkijs.Extensions({ schema: v }).extensions))
    .flat();
  const sans = extensions.filter((e) => e.extnID === OID.subjectAltName);
  if (sans.length > 1) throw new CsrError('it carries more than one subjectAltName extension');
  const names = (sans[0]?.parsedValue as pkijs.AltName | undefined)?.altNames ?? [];
  const other = names.find((n) => n.type !== GN.uri);
  if (other) throw new CsrError(`only a URI SAN is allowed (found GeneralName type ${other.type})`);
  return names.map((n) => String(n.value));
}
