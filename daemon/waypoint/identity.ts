/**
 * The replica's SPIFFE identity (`spiffe://<td>/ns/<waypoint ns>/sa/<waypoint name>`): a key
 * made here, a CSR the agent has the server sign as its node, renewed at half its lifetime
 * (sooner after a failure), and the TLS context HBONE serves and dials with.
 */
import type { SecureContext } from 'node:tls';
import { hboneSecureContext } from '../hbone/index.js';
import {
  createCsr,
  exportPrivateKeyPem,
  generateKeyPair,
  type IssuedCertificate,
  parseSpiffeId,
} from '../identity/index.js';
import { toIssued } from '../proto/index.js';
import type { Logger } from '../telemetry/index.js';
import type { AgentLink } from './agent-link.js';

export interface WaypointIdentityOptions {
  link: AgentLink;
  namespace: string;
  replica: string;
  identity: string;
  trustDomain: string;
  logger: Logger;
  retryMs?: number;
}

export class WaypointIdentity {
  readonly #options: WaypointIdentityOptions;
  #cert: IssuedCertificate | undefined;
  #roots: string[] = [];
  #context: SecureContext | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  private constructor(options: WaypointIdentityOptions) {
    this.#options = options;
  }

  static async start(options: WaypointIdentityOptions): Promise<WaypointIdentity> {
    const id = new WaypointIdentity(options);
    await id.#renew();
    return id;
  }

  get identity(): string {
    return this.#options.identity;
  }

  get certificate(): IssuedCertificate {
    return this.#cert as IssuedCertificate;
  }

  get roots(): string[] {
    return this.#roots;
  }

  secureContext(): SecureContext {
    return this.#context as SecureContext;
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
  }

  async #renew(): Promise<void> {
    const { link, namespace, replica, identity, trustDomain } = this.#options;
    const keys = await generateKeyPair();
    const csr = await createCsr(keys, parseSpiffeId(identity, trustDomain).id);
    const { certChain, roots } = await link.certificate(namespace, replica, csr);
    const cert = toIssued(
      identity,
      certChain.join(''),
      await exportPrivateKeyPem(keys.privateKey),
      roots,
      trustDomain,
    );
    this.#cert = cert;
    this.#roots = roots;
    this.#context = hboneSecureContext({
      certChainPem: cert.certChainPem,
      keyPem: cert.keyPem,
      rootsPem: roots.join(''),
    });
    const life = cert.notAfter.getTime() - cert.notBefore.getTime();
    this.#schedule(Math.max(1_000, cert.notBefore.getTime() + life / 2 - Date.now()));
  }

  #schedule(ms: number): void {
    if (this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#renew().catch((err: unknown) => {
        this.#options.logger.warn(
          { err: String(err) },
          'waypoint certificate renewal failed; retrying',
        );
        this.#schedule(this.#options.retryMs ?? 5_000);
      });
    }, ms);
    this.#timer.unref();
  }
}
