/**
 * Issues workload certificates for the CertificateManager: a fresh P-256 key that stays in this
 * process, a CSR with the identity as its single URI SAN, and the CA's answer checked against
 * the trust bundle before it is used.
 */
import { X509Certificate } from 'node:crypto';
import {
  type CertificateIssuer,
  createCsr,
  exportPrivateKeyPem,
  fromPemAll,
  generateKeyPair,
  type IssuedCertificate,
  parseSpiffeId,
  SvidError,
  verifySvid,
} from '../identity/index.js';
import type { IdentityClient } from './index.js';

export interface IssuerOptions {
  /** The client to use now (it changes when the node certificate rotates). */
  client: () => IdentityClient;
  trustDomain: string;
  /** Current roots, PEM. */
  roots: () => string[];
  ttlSeconds: number;
}

export class GrpcCertificateIssuer implements CertificateIssuer {
  readonly #options: IssuerOptions;

  constructor(options: IssuerOptions) {
    this.#options = options;
  }

  async issue(identity: string, signal: AbortSignal): Promise<IssuedCertificate> {
    const { trustDomain } = this.#options;
    const keys = await generateKeyPair();
    const csr = await createCsr(keys, parseSpiffeId(identity, trustDomain).id);
    const { certChain } = await this.#options
      .client()
      .createCertificate({ csr: Buffer.from(csr), ttlSeconds: this.#options.ttlSeconds }, signal);
    return toIssued(
      identity,
      certChain.join(''),
      await exportPrivateKeyPem(keys.privateKey),
      this.#options.roots(),
      trustDomain,
    );
  }
}

/** Checks a chain from the CA names `identity` and verifies; returns it in the manager's shape. */
export function toIssued(
  identity: string,
  certChainPem: string,
  keyPem: string,
  roots: string[],
  trustDomain: string,
): IssuedCertificate {
  const chain = fromPemAll(certChainPem, 'CERTIFICATE');
  const info = verifySvid(
    chain,
    roots.map((r) => new X509Certificate(r)),
    trustDomain,
  );
  if (info.spiffeId !== identity) {
    throw new SvidError(`the CA returned a certificate for ${info.spiffeId}, not ${identity}`);
  }
  return {
    certChainPem,
    keyPem,
    notBefore: info.notBefore,
    notAfter: info.notAfter,
    serial: info.serial,
    issuer: info.issuer,
  };
}
