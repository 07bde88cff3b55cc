/**
 * The CA's signing: self-signed roots, intermediates, and X.509-SVID leaves exactly as the
 * SPIFFE X.509-SVID spec wants them (one URI SAN, cA=false, keyUsage digitalSignature
 * critical, EKU serverAuth+clientAuth).
 */
import { createHash } from 'node:crypto';
import { sanExtension } from './csr.js';
import { type KeyPair, OID, type Pkijs, pki, randomSerial, SIGN_HASH } from './pki.js';
import type { SpiffeId } from './spiffe.js';

/** Leaves and intermediates start a little in the past so small clock skew does not reject them. */
export const BACKDATE_MS = 60_000;

export interface CaMaterial {
  cert: Pkijs.Certificate;
  keys: KeyPair;
}

// keyUsage bits, as the first octet of the BIT STRING (bit 0 is the most significant).
const KU_DIGITAL_SIGNATURE = 0x80;
const KU_KEY_CERT_SIGN = 0x04;
const KU_CRL_SIGN = 0x02;

function keyUsage(bits: number): Pkijs.Extension {
  const { pkijs, asn1js } = pki();
  const unused = Math.min(7, Math.log2(bits & -bits));
  const value = new asn1js.BitString({
    valueHex: new Uint8Array([bits]).buffer,
    unusedBits: unused,
  });
  return new pkijs.Extension({
    extnID: OID.keyUsage,
    critical: true,
    extnValue: value.toBER(false),
  });
}

function basicConstraints(cA: boolean, pathLen?: number): Pkijs.Extension {
  const { pkijs } = pki();
  const bc = new pkijs.BasicConstraints(
    pathLen === undefined ? { cA } : { cA, pathLenConstraint: pathLen },
  );
  return new pkijs.Extension({
    extnID: OID.basicConstraints,
    critical: true,
    extnValue: bc.toSchema().toBER(false),
  });
}

function extKeyUsage(): Pkijs.Extension {
  const { pkijs } = pki();
  const eku = new pkijs.ExtKeyUsage({ keyPurposes: [OID.serverAuth, OID.clientAuth] });
  return new pkijs.Extension({
    extnID: OID.extKeyUsage,
    critical: false,
    extnValue: eku.toSchema().toBER(false),
  });
}

function keyId(spki: Pkijs.PublicKeyInfo): ArrayBuffer {
  const raw = new Uint8Array(spki.subjectPublicKey.valueBlock.valueHexView);
  const digest = createHash('sha1').update(raw).digest();
  return digest.buffer.slice(
    digest.byteOffset,
    digest.byteOffset + digest.byteLength,
  ) as ArrayBuffer;
}

/** Distinguishes CA subjects across rotations, so chains never mix up two roots of one mesh. */
function shortKeyId(spki: Pkijs.PublicKeyInfo): string {
  return Buffer.from(keyId(spki)).toString('hex').slice(0, 12);
}

function subjectKeyId(spki: Pkijs.PublicKeyInfo): Pkijs.Extension {
  const { pkijs, asn1js } = pki();
  const value = new asn1js.OctetString({ valueHex: keyId(spki) });
  return new pkijs.Extension({
    extnID: OID.subjectKeyId,
    critical: false,
    extnValue: value.toBER(false),
  });
}

function authorityKeyId(issuer: Pkijs.Certificate): Pkijs.Extension {
  const { pkijs, asn1js } = pki();
  const aki = new pkijs.AuthorityKeyIdentifier({
    keyIdentifier: new asn1js.OctetString({ valueHex: keyId(issuer.subjectPublicKeyInfo) }),
  });
  return new pkijs.Extension({
    extnID: OID.authorityKeyId,
    critical: false,
    extnValue: aki.toSchema().toBER(false),
  });
}

function name(organization: string, commonName: string): Pkijs.RelativeDistinguishedNames {
  const { pkijs, asn1js } = pki();
  return new pkijs.RelativeDistinguishedNames({
    typesAndValues: [
      new pkijs.AttributeTypeAndValue({
        type: OID.organization,
        value: new asn1js.Utf8String({ value: organization }),
      }),
      new pkijs.AttributeTypeAndValue({
        type: OID.commonName,
        value: new asn1js.Utf8String({ value: commonName }),
      }),
    ],
  });
}

interface Validity {
  notBefore: Date;
  notAfter: Date;
}

async function build(
  subject: Pkijs.RelativeDistinguishedNames,
  spki: Pkijs.PublicKeyInfo,
  validity: Validity,
  extensions: Pkijs.Extension[],
  issuer: { cert?: Pkijs.Certificate; keys: KeyPair },
): Promise<Pkijs.Certificate> {
  const { pkijs } = pki();
  const cert = new pkijs.Certificate();
  cert.version = 2;
  cert.serialNumber = randomSerial();
  cert.subject = subject;
  cert.issuer = issuer.cert ? issuer.cert.subject : subject;
  cert.notBefore.value = validity.notBefore;
  cert.notAfter.value = validity.notAfter;
  cert.subjectPublicKeyInfo = spki;
  cert.extensions = extensions;
  await cert.sign(issuer.keys.privateKey, SIGN_HASH);
  return cert;
}

async function spkiOf(keys: KeyPair): Promise<Pkijs.PublicKeyInfo> {
  const { pkijs } = pki();
  const spki = new pkijs.PublicKeyInfo();
  await spki.importKey(keys.publicKey);
  return spki;
}

export async function createRootCa(
  keys: KeyPair,
  trustDomain: string,
  validity: Validity,
): Promise<Pkijs.Certificate> {
  const spki = await spkiOf(keys);
  return build(
    name(trustDomain, `meshd root CA ${shortKeyId(spki)}`),
    spki,
    validity,
    [basicConstraints(true), keyUsage(KU_KEY_CERT_SIGN | KU_CRL_SIGN), subjectKeyId(spki)],
    { keys },
  );
}

export async function createIntermediateCa(
  keys: KeyPair,
  trustDomain: string,
  validity: Validity,
  root: CaMaterial,
): Promise<Pkijs.Certificate> {
  const spki = await spkiOf(keys);
  return build(
    name(trustDomain, `meshd intermediate CA ${shortKeyId(spki)}`),
    spki,
    validity,
    [
      basicConstraints(true, 0),
      keyUsage(KU_KEY_CERT_SIGN | KU_CRL_SIGN),
      subjectKeyId(spki),
      authorityKeyId(root.cert),
    ],
    root,
  );
}

/** An X.509-SVID for `spiffeId` with the given public key (from a CSR the caller checked). */
export async function signSvid(
  ca: CaMaterial,
  spiffeId: SpiffeId,
  spki: Pkijs.PublicKeyInfo,
  validity: Validity,
): Promise<Pkijs.Certificate> {
  const { pkijs } = pki();
  return build(
    new pkijs.RelativeDistinguishedNames(),
    spki,
    validity,
    [
      basicConstraints(false),
      keyUsage(KU_DIGITAL_SIGNATURE),
      extKeyUsage(),
      // The subject is empty, so RFC 5280 requires the SAN to be critical.
      sanExtension(spiffeId, true),
      subjectKeyId(spki),
      authorityKeyId(ca.cert),
    ],
    ca,
  );
}

/**
 * Leaf lifetime: start a little in the past (BACKDATE_MS, or a tenth of a short TTL so renewal
 * at half-life stays meaningful), end at now + ttl, never after the issuer's own end.
 */
export function leafValidity(now: number, ttlMs: number, issuer: Pkijs.Certificate): Validity {
  const issuerEnd = issuer.notAfter.value.getTime();
  return {
    notBefore: new Date(now - Math.min(BACKDATE_MS, Math.floor(ttlMs / 10))),
    notAfter: new Date(Math.min(now + ttlMs, issuerEnd)),
  };
}
