/**
 * One TLS SecureContext per workload certificate (made once, reused for every handshake: a
 * context per connection costs about a third more CPU), trusting the current bundle roots.
 */
import type { SecureContext } from 'node:tls';
import { hboneSecureContext } from './tls.js';

/** Where certificates come from: AgentIdentity, or the main thread for a data-path thread. */
export interface CertificateSource {
  certificate(spiffeId: string): Promise<{ serial: string; certChainPem: string; keyPem: string }>;
  /** The trust bundle's roots, PEM each. */
  readonly roots: string[];
  forget(spiffeId: string): void;
}

export class SecureContexts {
  readonly #identity: CertificateSource;
  readonly #cache = new Map<string, { key: string; context: SecureContext }>();

  constructor(identity: CertificateSource) {
    this.#identity = identity;
  }

  /** The context for `spiffeId`'s current certificate (issued on first use). */
  async forIdentity(spiffeId: string): Promise<SecureContext> {
    const cert = await this.#identity.certificate(spiffeId);
    const roots = this.#identity.roots;
    const key = `${cert.serial}/${roots.length}/${roots.join('').length}`;
    const cached = this.#cache.get(spiffeId);
    if (cached?.key === key) return cached.context;
    const context = hboneSecureContext({
      certChainPem: cert.certChainPem,
      keyPem: cert.keyPem,
      rootsPem: roots.join(''),
    });
    this.#cache.set(spiffeId, { key, context });
    return context;
  }

  /** The last context made for `spiffeId` (call forIdentity first); for synchronous callers. */
  cached(spiffeId: string): SecureContext {
    const cached = this.#cache.get(spiffeId);
    if (!cached) throw new Error(`no TLS context for ${spiffeId} yet`);
    return cached.context;
  }

  forget(spiffeId: string): void {
    this.#cache.delete(spiffeId);
    this.#identity.forget(spiffeId);
  }
}
