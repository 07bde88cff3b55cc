/**
 * Shows what each case puts on the underlay: a tcpdump on the underlay bridge during one small
 * HTTP GET whose answer holds a marker. `direct` must show the marker in clear; every other
 * case only whole TLS records (TLS 1.3 negotiated) and no marker. For the peers, also shows
 * that the server side refuses a client without a certificate (the "m" of mTLS).
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Lab } from '../../ctl/lab/index.js';
import { waitForOutput } from '../support/lab-helpers.js';
import { MARKER } from './bench-lab.js';
import { type BenchCase, CLIENT_NODE, SERVER_NODE } from './cases.js';
import { analysePcap, type FlowVerdict } from './pcap.js';
import { type Certs, peerPort, SERVER_NAME, SERVICES } from './peers.js';
import { fetchOnce } from './tools.js';

export interface TlsProof {
  case: string;
  expected: 'plaintext' | 'tls';
  seen: 'plaintext' | 'tls' | 'mixed' | 'nothing';
  ok: boolean;
  markerInClear: boolean;
  tls13: boolean;
  flows: FlowVerdict[];
  flowsJoinedMidStream: number;
  packets: number;
  /** Peers only: what the server side did with a TLS client that has no certificate. */
  withoutClientCertificate?: string;
  withClientCertificate?: string;
}

const http = SERVICES.find((s) => s.name === 'http') ?? { name: 'http', port: 8080 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function capture(lab: Lab, file: string, during: () => Promise<void>): Promise<Buffer> {
  const dump = spawn(
    'ip',
    [
      ...['netns', 'exec', lab.plan.underlayNetns, 'tcpdump', '-Z', 'root', '-i', 'br0'],
      ...['--immediate-mode', '-U', '-w', file],
      // The agents' control-plane connections (gRPC over mTLS) are not part of any case.
      ...['tcp', 'and', 'not', 'port', '15012'],
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  try {
    await waitForOutput(dump, /listening on/, 10_000);
    await during();
    await sleep(300);
  } finally {
    dump.kill('SIGINT');
    await new Promise((r) => (dump.exitCode !== null ? r(null) : dump.once('exit', r)));
  }
  return readFileSync(file);
}

/** GET through the peer's server side with openssl s_client, with or without our client cert. */
async function serverSideAnswer(
  lab: Lab,
  host: string,
  port: number,
  certs: Certs,
  withCertificate: boolean,
): Promise<string> {
  const result = await lab.exec(
    CLIENT_NODE,
    [
      'sh',
      '-c',
      // Send after the handshake; s_client exits when the server closes or after 3 s.
      `(sleep 1; printf 'GET /marker.txt HTTP/1.0\\r\\n\\r\\n'; sleep 2) | timeout 5 openssl s_client -quiet -tls1_3 -connect ${host}:${port} -servername ${SERVER_NAME} -CAfile ${certs.ca} -verify_return_error ${withCertificate ? `-cert ${certs.clientCert} -key ${certs.clientKey}` : ''} 2>&1`,
    ],
    { timeoutMs: 10_000, okStatuses: [1, 124] },
  );
  const out = result.stdout;
  if (out.includes('HTTP/1.1 200')) return 'answered (HTTP 200)';
  const alert = /alert ([a-z ]+)/i.exec(out)?.[1];
  return alert ? `refused (TLS alert: ${alert.trim()})` : 'refused (closed without an answer)';
}

export async function proveTls(
  lab: Lab,
  benchCase: BenchCase,
  dir: string,
  certs: Certs,
): Promise<TlsProof> {
  const file = join(dir, `tls-${benchCase.name}.pcap`);
  let body = '';
  const bytes = await capture(lab, file, async () => {
    body = await fetchOnce(lab, benchCase.target(http), '/marker.txt');
  });
  if (!body.includes(MARKER))
    throw new Error(`${benchCase.name}: the GET did not return the marker`);
  const analysis = analysePcap(bytes);
  const markerInClear = bytes.includes(Buffer.from(MARKER));
  const tlsFlows = analysis.flows.filter((f) => f.tls).length;
  const seen =
    analysis.flows.length === 0
      ? 'nothing'
      : tlsFlows === analysis.flows.length && !markerInClear
        ? 'tls'
        : tlsFlows === 0
          ? 'plaintext'
          : 'mixed';
  const expected = benchCase.name === 'direct' ? 'plaintext' : 'tls';
  const appData = analysis.flows.reduce((n, f) => n + (f.records.application_data ?? 0), 0);
  const ok =
    expected === 'plaintext'
      ? seen === 'plaintext' && markerInClear
      : seen === 'tls' && analysis.tls13 && appData > 0;
  const proof: TlsProof = {
    case: benchCase.name,
    expected,
    seen,
    ok,
    markerInClear,
    tls13: analysis.tls13,
    flows: analysis.flows,
    flowsJoinedMidStream: analysis.flowsJoinedMidStream,
    packets: analysis.packets,
  };
  if (benchCase.peer) {
    const host = lab.member(SERVER_NODE).ipv4;
    const port = peerPort(benchCase.peer, http);
    proof.withoutClientCertificate = await serverSideAnswer(lab, host, port, certs, false);
    proof.withClientCertificate = await serverSideAnswer(lab, host, port, certs, true);
    proof.ok &&=
      proof.withoutClientCertificate.startsWith('refused') &&
      proof.withClientCertificate.startsWith('answered');
  }
  return proof;
}
