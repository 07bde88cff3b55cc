/**
 * The CA directory made by `meshctl ca init` and read by `meshd server`:
 *
 *   root.pem  root.key                the current root (key 0600; may be moved offline)
 *   intermediate.pem  intermediate.key the server's signing CA, issued by the root
 *   bundle.pem                         the trust bundle: current root, plus the previous
 *                                      root while a rotation overlaps
 *   root-previous.pem                  the previous root during an overlap
 *   intermediate-previous.pem          the previous intermediate, so certificates it issued
 *                                      can still be verified during the overlap
 *   admin.pem  admin.key               meshctl's client certificate (chain) and key
 *   ca.json                            trust domain and rotation state
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { MeshdError } from '../errors.js';
import { writeFileAtomic } from '../files.js';
import { createCsr, parseCsr } from './csr.js';
import {
  type CaMaterial,
  createIntermediateCa,
  createRootCa,
  leafValidity,
  signSvid,
} from './issue.js';
import {
  exportPrivateKeyPem,
  fromPemAll,
  generateKeyPair,
  importKeyPairPem,
  type KeyPair,
  type Pkijs,
  pki,
  toPem,
} from './pki.js';
import { adminId, isTrustDomain } from './spiffe.js';

export const CA_FILES = {
  root: 'root.pem',
  rootKey: 'root.key',
  intermediate: 'intermediate.pem',
  intermediateKey: 'intermediate.key',
  bundle: 'bundle.pem',
  previousRoot: 'root-previous.pem',
  previousIntermediate: 'intermediate-previous.pem',
  admin: 'admin.pem',
  adminKey: 'admin.key',
  meta: 'ca.json',
} as const;

const DAY = 24 * 3600 * 1000;
export const CA_DEFAULTS = {
  rootTtlMs: 3650 * DAY,
  intermediateTtlMs: 365 * DAY,
  adminTtlMs: 365 * DAY,
};

interface CaMeta {
  trustDomain: string;
  createdAt: string;
  rotatedAt?: string;
}

export class CaFilesError extends MeshdError {
  constructor(message: string, hint?: string, cause?: unknown) {
    super('MESHD_E_CA', message, { hint, cause });
  }
}

const certPem = (cert: Pkijs.Certificate) => toPem('CERTIFICATE', cert.toSchema().toBER(false));

async function writeKeyAndCert(
  dir: string,
  certFile: string,
  keyFile: string,
  pem: string,
  keys: KeyPair,
) {
  writeFileAtomic(join(dir, keyFile), await exportPrivateKeyPem(keys.privateKey), 0o600);
  writeFileAtomic(join(dir, certFile), pem, 0o644);
}

export interface InitOptions {
  dir: string;
  trustDomain: string;
  force?: boolean;
  now?: number;
}

/** Makes a root, an intermediate and the admin certificate; refuses to replace keys unless forced. */
export async function initCa(options: InitOptions): Promise<void> {
  const { dir, trustDomain, now = Date.now() } = options;
  if (!isTrustDomain(trustDomain)) {
    throw new CaFilesError(
      `--trust-domain "${trustDomain}" is not a valid trust domain`,
      'use lowercase letters, digits, ".", "-", "_" (e.g. cluster.local)',
    );
  }
  const existing = [CA_FILES.rootKey, CA_FILES.intermediateKey, CA_FILES.adminKey].filter((f) =>
    existsSync(join(dir, f)),
  );
  if (existing.length > 0 && !options.force) {
    throw new CaFilesError(
      `${join(dir, existing[0] ?? '')} already exists; not overwriting CA keys`,
      'pass --force to replace the CA (every issued certificate stops verifying)',
    );
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  rmSync(join(dir, CA_FILES.previousRoot), { force: true });
  rmSync(join(dir, CA_FILES.previousIntermediate), { force: true });
  const root = await makeRoot(dir, trustDomain, now);
  writeFileAtomic(join(dir, CA_FILES.bundle), certPem(root.cert), 0o644);
  const intermediate = await makeIntermediate(dir, trustDomain, now, root);
  await makeAdmin(dir, trustDomain, now, intermediate);
  writeMeta(dir, { trustDomain, createdAt: new Date(now).toISOString() });
}

async function makeRoot(dir: string, trustDomain: string, now: number): Promise<CaMaterial> {
  const keys = await generateKeyPair();
  const cert = await createRootCa(keys, trustDomain, {
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + CA_DEFAULTS.rootTtlMs),
  });
  await writeKeyAndCert(dir, CA_FILES.root, CA_FILES.rootKey, certPem(cert), keys);
  return { cert, keys };
}

async function makeIntermediate(
  dir: string,
  trustDomain: string,
  now: number,
  root: CaMaterial,
): Promise<CaMaterial> {
  const keys = await generateKeyPair();
  const notAfter = Math.min(
    now + CA_DEFAULTS.intermediateTtlMs,
    root.cert.notAfter.value.getTime(),
  );
  const cert = await createIntermediateCa(
    keys,
    trustDomain,
    { notBefore: new Date(now - 60_000), notAfter: new Date(notAfter) },
    root,
  );
  await writeKeyAndCert(dir, CA_FILES.intermediate, CA_FILES.intermediateKey, certPem(cert), keys);
  return { cert, keys };
}

async function makeAdmin(
  dir: string,
  trustDomain: string,
  now: number,
  ca: CaMaterial,
): Promise<void> {
  const keys = await generateKeyPair();
  const csr = await parseCsr(await createCsr(keys, adminId(trustDomain, 'meshctl')), trustDomain);
  const cert = await signSvid(
    ca,
    csr.spiffeId,
    csr.publicKeyInfo,
    leafValidity(now, CA_DEFAULTS.adminTtlMs, ca.cert),
  );
  await writeKeyAndCert(
    dir,
    CA_FILES.admin,
    CA_FILES.adminKey,
    certPem(cert) + certPem(ca.cert),
    keys,
  );
}

function writeMeta(dir: string, meta: CaMeta): void {
  writeFileAtomic(join(dir, CA_FILES.meta), `${JSON.stringify(meta, null, 2)}\n`, 0o644);
}

function readText(dir: string, file: string): string {
  try {
    return readFileSync(join(dir, file), 'utf8');
  } catch (cause) {
    throw new CaFilesError(
      `cannot read ${join(dir, file)}`,
      'make the CA with "meshctl ca init --out DIR"',
      cause,
    );
  }
}

function readMeta(dir: string): CaMeta {
  try {
    return JSON.parse(readText(dir, CA_FILES.meta)) as CaMeta;
  } catch (cause) {
    if (cause instanceof CaFilesError) throw cause;
    throw new CaFilesError(`${join(dir, CA_FILES.meta)} is not valid JSON`, undefined, cause);
  }
}

/**
 * Starts a root rotation: a new root and intermediate replace the current ones, the bundle
 * holds both roots, so certificates from either verify until `finishRotation`.
 */
export async function rotateRoot(dir: string, now = Date.now()): Promise<void> {
  const meta = readMeta(dir);
  if (existsSync(join(dir, CA_FILES.previousRoot))) {
    throw new CaFilesError(
      'a root rotation is already in progress',
      'finish it first with "meshctl ca rotate --finish" once every certificate was renewed',
    );
  }
  const oldRoot = readText(dir, CA_FILES.root);
  writeFileAtomic(join(dir, CA_FILES.previousRoot), oldRoot, 0o644);
  writeFileAtomic(
    join(dir, CA_FILES.previousIntermediate),
    readText(dir, CA_FILES.intermediate),
    0o644,
  );
  const root = await makeRoot(dir, meta.trustDomain, now);
  writeFileAtomic(join(dir, CA_FILES.bundle), certPem(root.cert) + oldRoot, 0o644);
  const intermediate = await makeIntermediate(dir, meta.trustDomain, now, root);
  await makeAdmin(dir, meta.trustDomain, now, intermediate);
  writeMeta(dir, { ...meta, rotatedAt: new Date(now).toISOString() });
}

/** Ends the overlap: the bundle keeps only the current root. */
export function finishRotation(dir: string): void {
  readMeta(dir);
  if (!existsSync(join(dir, CA_FILES.previousRoot))) {
    throw new CaFilesError('no root rotation is in progress', 'start one with "meshctl ca rotate"');
  }
  writeFileAtomic(join(dir, CA_FILES.bundle), readText(dir, CA_FILES.root), 0o644);
  rmSync(join(dir, CA_FILES.previousRoot));
  rmSync(join(dir, CA_FILES.previousIntermediate), { force: true });
}

function optionalText(dir: string, file: string): string[] {
  return existsSync(join(dir, file)) ? [readText(dir, file)] : [];
}

export interface LoadedCa {
  trustDomain: string;
  /** The signing CA: the intermediate and its key. */
  signer: CaMaterial;
  /** PEM of the intermediate, appended to every issued leaf. */
  intermediatePem: string;
  /** PEM of every root in the bundle. */
  roots: string[];
  /** PEM of every intermediate whose certificates may still be in use (current first). */
  intermediates: string[];
  rotating: boolean;
}

/** Reads what the server needs to sign; checks the intermediate chains to the bundle. */
export async function loadCa(dir: string): Promise<LoadedCa> {
  const meta = readMeta(dir);
  const intermediatePem = readText(dir, CA_FILES.intermediate);
  const [der] = fromPemAll(intermediatePem, 'CERTIFICATE');
  if (!der) throw new CaFilesError(`${join(dir, CA_FILES.intermediate)} holds no certificate`);
  let keys: KeyPair;
  try {
    keys = await importKeyPairPem(readText(dir, CA_FILES.intermediateKey));
  } catch (cause) {
    if (cause instanceof CaFilesError) throw cause;
    throw new CaFilesError(
      `${join(dir, CA_FILES.intermediateKey)} is not a P-256 private key`,
      undefined,
      cause,
    );
  }
  const roots = fromPemAll(readText(dir, CA_FILES.bundle), 'CERTIFICATE').map((d) =>
    toPem('CERTIFICATE', d),
  );
  const inter = new X509Certificate(der);
  if (
    !roots.some(
      (r) =>
        inter.checkIssued(new X509Certificate(r)) && inter.verify(new X509Certificate(r).publicKey),
    )
  ) {
    throw new CaFilesError(
      `${join(dir, CA_FILES.intermediate)} is not issued by a root of ${join(dir, CA_FILES.bundle)}`,
    );
  }
  return {
    trustDomain: meta.trustDomain,
    signer: {
      cert: pki().pkijs.Certificate.fromBER(
        der.buffer.slice(der.byteOffset, der.byteOffset + der.byteLength) as ArrayBuffer,
      ),
      keys,
    },
    intermediatePem,
    roots,
    intermediates: [intermediatePem, ...optionalText(dir, CA_FILES.previousIntermediate)],
    rotating: existsSync(join(dir, CA_FILES.previousRoot)),
  };
}
