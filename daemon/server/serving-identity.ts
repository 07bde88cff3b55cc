/**
 * The server's own X.509-SVID (spiffe://<td>/control-plane/meshd-server), minted in-process from
 * the intermediate at start and renewed at half-life by the identity CertificateManager, and the
 * gRPC server credentials built from it.
 *
 * TLS: grpc-js's certificate-provider credentials with requireClientCertificate=false, which
 * means requestCert=true and rejectUnauthorized=false: every client is asked for a certificate,
 * none is required (Join has none). The TLS context's CA list is the bundle's roots plus the
 * accepted intermediates, so a client sending only its leaf still verifies; whether a verified
 * certificate is good enough is decided per call (caller.ts). New certificates and CA lists are
 * pushed to grpc-js, which swaps the secure context of the listening server without a restart.
 */

import type { Registry } from 'prom-client';
import {
  type CertificateIssuer,
  CertificateManager,
  type Clock,
  controlPlaneId,
  createCsr,
  exportPrivateKeyPem,
  fromPemAll,
  generateKeyPair,
  type IssuedCertificate,
  parseCsr,
  type SpiffeId,
  verifySvid,
} from '../identity/index.js';
import { grpc } from '../proto/index.js';
import type { Logger } from '../telemetry/index.js';
import type { CaSnapshot } from './ca-state.js';
import { signLeaf } from './signer.js';

type CaListener = (update: { caCertificate: Buffer } | null) => void;
type IdentityListener = (update: { certificate: Buffer; privateKey: Buffer } | null) => void;

/** One grpc-js CertificateProvider for both the identity and the client-CA list. */
class ServingProvider {
  #ca: { caCertificate: Buffer } | null = null;
  #identity: { certificate: Buffer; privateKey: Buffer } | null = null;
  readonly #caListeners = new Set<CaListener>();
  readonly #identityListeners = new Set<IdentityListener>();

  setCa(pem: string): void {
    this.#ca = { caCertificate: Buffer.from(pem) };
    for (const l of this.#caListeners) l(this.#ca);
  }

  setIdentity(cert: IssuedCertificate): void {
    this.#identity = {
      certificate: Buffer.from(cert.certChainPem),
      privateKey: Buffer.from(cert.keyPem),
    };
    for (const l of this.#identityListeners) l(this.#identity);
  }

  // grpc-js registers its server's watcher only after adding these listeners, so the current
  // values go out asynchronously (as FileWatcherCertificateProvider does), never inline.
  addCaCertificateListener(listener: CaListener): void {
    this.#caListeners.add(listener);
    queueMicrotask(() => {
      if (this.#ca && this.#caListeners.has(listener)) listener(this.#ca);
    });
  }
  removeCaCertificateListener(listener: CaListener): void {
    this.#caListeners.delete(listener);
  }
  addIdentityCertificateListener(listener: IdentityListener): void {
    this.#identityListeners.add(listener);
    queueMicrotask(() => {
      if (this.#identity && this.#identityListeners.has(listener)) listener(this.#identity);
    });
  }
  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.#identityListeners.delete(listener);
  }
}

export interface ServingIdentityOptions {
  trustDomain: string;
  ttlMs: number;
  clock: Clock;
  snapshot: () => CaSnapshot;
  metrics?: Registry;
  logger: Logger;
}

const clientCaPem = (s: CaSnapshot) =>
  [...s.rootsPem, ...s.intermediates.map((c) => c.toString())].join('');

export class ServingIdentity {
  readonly id: SpiffeId;
  readonly credentials: grpc.ServerCredentials;
  readonly #provider = new ServingProvider();
  readonly #manager: CertificateManager;
  readonly #options: ServingIdentityOptions;
  #current: IssuedCertificate | undefined;

  constructor(options: ServingIdentityOptions) {
    this.#options = options;
    this.id = controlPlaneId(options.trustDomain);
    const issuer: CertificateIssuer = {
      issue: async (identity) => {
        const { trustDomain, ttlMs, clock, snapshot } = options;
        const keys = await generateKeyPair();
        const csr = await parseCsr(await createCsr(keys, identity as SpiffeId), trustDomain);
        const leaf = await signLeaf(snapshot(), csr, ttlMs, clock.now());
        return {
          certChainPem: leaf.chain.join(''),
          keyPem: await exportPrivateKeyPem(keys.privateKey),
          notBefore: leaf.info.notBefore,
          notAfter: leaf.info.notAfter,
          serial: leaf.info.serial,
          issuer: leaf.info.issuer,
        };
      },
    };
    this.#manager = new CertificateManager({
      issuer,
      clock: options.clock,
      metrics: options.metrics,
      logger: options.logger,
    });
    this.#manager.onRotate((_id, cert) => {
      this.#current = cert;
      this.#provider.setIdentity(cert);
    });
    this.credentials = grpc.experimental.createCertificateProviderServerCredentials(
      this.#provider,
      this.#provider,
      false,
    );
  }

  /** Mints the first certificate; the server can serve once this resolved. */
  async start(): Promise<void> {
    this.#provider.setCa(clientCaPem(this.#options.snapshot()));
    await this.#manager.get(this.id);
  }

  /**
   * After a CA reload: trust the new CA list, and keep the current certificate while it still
   * chains to the new bundle (clients that have only the old root can still reach us during a
   * rotation's overlap; the next renewal comes from the new intermediate). Re-mint at once if
   * it no longer verifies (the rotation was finished, or the CA was replaced).
   */
  async refresh(snapshot: CaSnapshot): Promise<{ reissued: boolean }> {
    this.#provider.setCa(clientCaPem(snapshot));
    const current = this.#current;
    if (current) {
      try {
        verifySvid(
          fromPemAll(current.certChainPem, 'CERTIFICATE'),
          [...snapshot.roots],
          snapshot.trustDomain,
          this.#options.clock.now(),
        );
        return { reissued: false };
      } catch {
        // fall through: mint a new one
      }
    }
    this.#manager.forget(this.id);
    this.#current = undefined;
    await this.#manager.get(this.id);
    return { reissued: true };
  }

  get certificate(): IssuedCertificate | undefined {
    return this.#current;
  }

  close(): void {
    this.#manager.close();
  }
}
