/** The server's Prometheus series (meshd_server_*), registered on the app's own Registry. */
import { Counter, type Registry } from 'prom-client';

export type CertificateKind = 'node' | 'workload';

export class ServerMetrics {
  readonly issued: Counter<'kind'>;
  readonly refusals: Counter<'reason'>;
  readonly joinTokensCreated: Counter;
  readonly caReloads: Counter<'result'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.issued = new Counter({
      name: 'meshd_server_certificates_issued_total',
      help: 'Certificates issued by the CA (node: Join and node renewals; workload: CreateCertificate)',
      labelNames: ['kind'],
      registers,
    });
    this.refusals = new Counter({
      name: 'meshd_server_certificate_refusals_total',
      help: 'Join and CreateCertificate calls answered without a certificate, by error code',
      labelNames: ['reason'],
      registers,
    });
    this.joinTokensCreated = new Counter({
      name: 'meshd_server_join_tokens_created_total',
      help: 'One-time join tokens made with meshctl token create',
      registers,
    });
    this.caReloads = new Counter({
      name: 'meshd_server_ca_reloads_total',
      help: 'Re-reads of the CA directory (SIGHUP) by result',
      labelNames: ['result'],
      registers,
    });
    // Series that exist from the start, so rate() and alerts see zeros rather than absences.
    for (const kind of ['node', 'workload'] as const) this.issued.inc({ kind }, 0);
    for (const result of ['success', 'failure'] as const) this.caReloads.inc({ result }, 0);
  }
}
