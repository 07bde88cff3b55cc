/**
 * The shared PKI plumbing: pkijs on Node's WebCrypto (loaded on first use), PEM, keys, OIDs.
 * Everything meshd signs uses ECDSA P-256 with SHA-256.
 */
import { createPrivateKey, createPublicKey, randomBytes, webcrypto } from 'node:crypto';
import { createRequire } from 'node:module';
import type * as Asn1js from 'asn1js';
import type * as Pkijs from 'pkijs';

export type { Asn1js, Pkijs };

interface PkiModules {
  pkijs: typeof Pkijs;
  asn1js: typeof Asn1js;
}

let modules: PkiModules | undefined;

/**
 * pkijs and asn1js, loaded on first use. The CA (signing, reading requests) needs them; the
 * agent never calls them (csr.ts writes its requests, svid.ts reads certificates with der.ts),
 * which keeps ~3 MiB off its resident memory. require() rather than import(): the callers are
 * synchronous, and Node keeps a second copy of the source of a CommonJS file loaded by import.
 */
export function pki(): PkiModules {
  if (!modules) {
    const require = createRequire(import.meta.url);
    const pkijs = require('pkijs') as typeof Pkijs;
    pkijs.setEngine('meshd', new pkijs.CryptoEngine({ name: 'meshd', crypto: webcrypto as never }));
    modules = { pkijs, asn1js: require('asn1js') as typeof Asn1js };
  }
  return modules;
}

export const OID = {
  ecPublicKey: '1.2.840.10045.2.1',
  p256: '1.2.840.10045.3.1.7',
  extensionRequest: '1.2.840.113549.1.9.14',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectKeyId: '2.5.29.14',
  authorityKeyId: '2.5.29.35',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  commonName: '2.5.4.3',
  organization: '2.5.4.10',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
} as const;

/** GeneralName tags (RFC 5280). */
export const GN = { dns: 2, uri: 6, ip: 7, email: 1 } as const;

const EC_P256: webcrypto.EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };
export const SIGN_HASH = 'SHA-256';

export type KeyPair = webcrypto.CryptoKeyPair;

export async function generateKeyPair(): Promise<KeyPair> {
  return (await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify'])) as KeyPair;
}

export function toPem(label: string, der: ArrayBuffer | Uint8Array): string {
  const b64 = Buffer.from(der instanceof Uint8Array ? der : new Uint8Array(der)).toString('base64');
  return `-----BEGIN ${label}-----\n${b64.replace(/.{1,64}/g, '$&\n')}-----END ${label}-----\n`;
}

/** Every PEM block of `label` in `text`, as DER. */
export function fromPemAll(text: string, label: string): Uint8Array[] {
  const re = new RegExp(`-----BEGIN ${label}-----([A-Za-z0-9+/=\\s]+)-----END ${label}-----`, 'g');
  return [...text.matchAll(re)].map((m) => new Uint8Array(Buffer.from(m[1] ?? '', 'base64')));
}

export async function exportPrivateKeyPem(key: webcrypto.CryptoKey): Promise<string> {
  return toPem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', key));
}

/** Imports a PKCS#8 (or SEC1 "EC PRIVATE KEY") P-256 key as a WebCrypto key pair. */
export async function importKeyPairPem(pem: string): Promise<KeyPair> {
  const keyObject = createPrivateKey(pem);
  const pkcs8 = keyObject.export({ type: 'pkcs8', format: 'der' });
  const spki = createPublicKey(keyObject).export({ type: 'spki', format: 'der' });
  const privateKey = await webcrypto.subtle.importKey('pkcs8', pkcs8, EC_P256, true, ['sign']);
  const publicKey = await webcrypto.subtle.importKey('spki', spki, EC_P256, true, ['verify']);
  return { privateKey, publicKey } as KeyPair;
}

/** A positive 128-bit serial (RFC 5280: at most 20 octets, unpredictable). */
export function randomSerial(): Asn1js.Integer {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x01;
  const { asn1js } = pki();
  return new asn1js.Integer({
    valueHex: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + 16),
  });
}

export const bufferOf = (view: ArrayBuffer | Uint8Array): ArrayBuffer =>
  view instanceof Uint8Array
    ? (view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength) as ArrayBuffer)
    : view;

export function hex(buf: ArrayBuffer): string {
  return Buffer.from(buf).toString('hex');
}
