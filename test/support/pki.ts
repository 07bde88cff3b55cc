/** Test CA material: a root, an intermediate and helpers to issue SVIDs through real CSRs. */
import { X509Certificate } from 'node:crypto';
import {
  type CaMaterial,
  createCsr,
  createIntermediateCa,
  createRootCa,
  exportPrivateKeyPem,
  generateKeyPair,
  leafValidity,
  parseCsr,
  parseSpiffeId,
  signSvid,
  toPem,
} from '../../daemon/identity/index.js';

export interface TestCa {
  trustDomain: string;
  root: CaMaterial;
  intermediate: CaMaterial;
  rootPem: string;
  intermediatePem: string;
  rootX509: X509Certificate;
}

const YEAR = 365 * 24 * 3600 * 1000;

export async function makeTestCa(trustDomain = 'cluster.local'): Promise<TestCa> {
  const now = Date.now();
  const rootKeys = await generateKeyPair();
  const rootCert = await createRootCa(rootKeys, trustDomain, {
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 10 * YEAR),
  });
  const root = { cert: rootCert, keys: rootKeys };
  const intKeys = await generateKeyPair();
  const intCert = await createIntermediateCa(
    intKeys,
    trustDomain,
    { notBefore: new Date(now - 60_000), notAfter: new Date(now + YEAR) },
    root,
  );
  const rootPem = toPem('CERTIFICATE', rootCert.toSchema().toBER(false));
  return {
    trustDomain,
    root,
    intermediate: { cert: intCert, keys: intKeys },
    rootPem,
    intermediatePem: toPem('CERTIFICATE', intCert.toSchema().toBER(false)),
    rootX509: new X509Certificate(rootPem),
  };
}

export interface TestSvid {
  certPem: string;
  chainPem: string;
  keyPem: string;
  der: Uint8Array;
}

export async function issueTestSvid(ca: TestCa, id: string, ttlMs = 3600_000): Promise<TestSvid> {
  const keys = await generateKeyPair();
  const csr = await parseCsr(await createCsr(keys, parseSpiffeId(id).id), ca.trustDomain);
  const cert = await signSvid(
    ca.intermediate,
    csr.spiffeId,
    csr.publicKeyInfo,
    leafValidity(Date.now(), ttlMs, ca.intermediate.cert),
  );
  const der = new Uint8Array(cert.toSchema().toBER(false));
  const certPem = toPem('CERTIFICATE', der);
  return {
    certPem,
    chainPem: certPem + ca.intermediatePem,
    keyPem: await exportPrivateKeyPem(keys.privateKey),
    der,
  };
}
