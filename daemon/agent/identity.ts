/**
 * Everything the agent holds of identity: its node certificate (joined once, then renewed like
 * any other), the trust bundle (refreshed from the server, so a root rotation reaches every
 * node), and the workload certificates of the CertificateManager.
 */
import type { Registry } from 'prom-client';
import {
  type CertificateIssuer,
  CertificateManager,
  type CertificateStatus,
  type IssuedCertificate,
  type ManagerLogger,
  nodeId,
} from '../identity/index.js';
import { type ClientCredentials, GrpcCertificateIssuer, IdentityClient } from '../proto/index.js';
import {
  loadOrJoin,
  type NodeCredentials,
  type NodeIdentityOptions,
  saveNodeCredentials,
} from './node-identity.js';

/** How long a replaced client keeps serving the calls it already carries. */
const RETIRE_CLIENT_MS = 30_000;

export interface AgentIdentityOptions extends NodeIdentityOptions {
  workloadTtlSeconds: number;
  nodeTtlSeconds: number;
  bundleRefreshMs: number;
  metrics?: Registry;
  logger?: ManagerLogger;
}

export class AgentIdentity {
  readonly nodeId: string;
  readonly #options: AgentIdentityOptions;
  #creds: NodeCredentials;
  #client: IdentityClient;
  readonly #workloads: CertificateManager;
  readonly #node: CertificateManager;
  readonly #bundleTimer: NodeJS.Timeout;
  readonly #retired = new Set<IdentityClient>();

  private constructor(options: AgentIdentityOptions, creds: NodeCredentials) {
    this.#options = options;
    this.#creds = creds;
    this.nodeId = nodeId(options.trustDomain, options.nodeName);
    this.#client = this.#newClient();
    const issuer = (ttlSeconds: number): CertificateIssuer =>
      new GrpcCertificateIssuer({
        client: () => this.#client,
        trustDomain: options.trustDomain,
        roots: () => this.#creds.roots,
        ttlSeconds,
      });
    const common = { logger: options.logger, backoff: { initialMs: 1000, maxMs: 60_000 } };
    this.#workloads = new CertificateManager({
      ...common,
      issuer: issuer(options.workloadTtlSeconds),
      metrics: options.metrics,
    });
    this.#node = new CertificateManager({ ...common, issuer: issuer(options.nodeTtlSeconds) });
    this.#node.onRotate((_id, cert) => this.#useNodeCertificate(cert));
    this.#bundleTimer = setInterval(
      () => void this.refreshBundle(),
      options.bundleRefreshMs,
    ).unref();
  }

  static async start(options: AgentIdentityOptions): Promise<AgentIdentity> {
    const identity = new AgentIdentity(options, await loadOrJoin(options));
    identity.#node.adopt(identity.nodeId, identity.#creds.cert);
    return identity;
  }

  get roots(): string[] {
    return this.#creds.roots;
  }

  get nodeCertificate(): IssuedCertificate {
    return this.#creds.cert;
  }

  /** What a control-plane client needs to call as this node (current certificate and roots). */
  clientCredentials(): ClientCredentials {
    return {
      trustDomain: this.#options.trustDomain,
      bundlePem: this.#creds.roots.join(''),
      identity: { certChainPem: this.#creds.cert.certChainPem, keyPem: this.#creds.cert.keyPem },
    };
  }

  certificate(identity: string): Promise<IssuedCertificate> {
    return this.#workloads.get(identity);
  }

  /**
   * Signs a CSR made elsewhere on this node (a waypoint's: its key never leaves it) as this
   * node; the server checks the identity belongs to a workload registered here.
   */
  async signCsr(csrDer: Uint8Array, ttlSeconds?: number): Promise<string[]> {
    const { certChain } = await this.#client.createCertificate({
      csr: Buffer.from(csrDer),
      ttlSeconds: ttlSeconds ?? this.#options.workloadTtlSeconds,
    });
    return certChain;
  }

  forget(identity: string): void {
    this.#workloads.forget(identity);
  }

  /** The node certificate first, then every workload certificate. */
  list(): CertificateStatus[] {
    const node = this.#creds.cert;
    const nodeRow: CertificateStatus = {
      identity: this.nodeId,
      state: 'valid',
      serial: node.serial,
      notBefore: node.notBefore,
      notAfter: node.notAfter,
      issuer: node.issuer,
      failures: 0,
    } as CertificateStatus;
    return [nodeRow, ...this.#workloads.list()];
  }

  async refreshBundle(): Promise<void> {
    try {
      const bundle = await this.#client.getTrustBundle();
      if (bundle.roots.length > 0 && bundle.roots.join('') !== this.#creds.roots.join('')) {
        this.#creds = { ...this.#creds, roots: bundle.roots };
        saveNodeCredentials(this.#options.stateDir, this.#creds);
        this.#replaceClient();
        this.#options.logger?.info({ roots: bundle.roots.length }, 'trust bundle updated');
      }
    } catch (err) {
      this.#options.logger?.warn(
        { err: String(err) },
        'trust bundle refresh failed; keeping the current one',
      );
    }
  }

  close(): void {
    clearInterval(this.#bundleTimer);
    this.#workloads.close();
    this.#node.close();
    this.#client.close();
    for (const client of this.#retired) client.close();
    this.#retired.clear();
  }

  #useNodeCertificate(cert: IssuedCertificate): void {
    if (cert.serial === this.#creds.cert.serial) return;
    this.#creds = { ...this.#creds, cert };
    saveNodeCredentials(this.#options.stateDir, this.#creds);
    this.#replaceClient();
  }

  #newClient(): IdentityClient {
    return new IdentityClient({ ...this.clientCredentials(), server: this.#options.serverAddress });
  }

  /**
   * New calls use a client with the new credentials; the old one is closed only after calls it
   * carries have had time to finish (closing a channel fails calls still connecting).
   */
  #replaceClient(): void {
    const old = this.#client;
    this.#client = this.#newClient();
    this.#retired.add(old);
    setTimeout(() => {
      this.#retired.delete(old);
      old.close();
    }, RETIRE_CLIENT_MS).unref();
  }
}
