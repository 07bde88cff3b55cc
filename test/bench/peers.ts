/**
 * The peers an operator would pick for an mTLS tunnel between hosts: stunnel4, haproxy (TCP
 * mode) and nginx's stream module, each as a client side on node 1 and a server side on node 2,
 * with a throw-away CA (ECDSA P-256, like meshd's), TLS 1.3 only and certificates verified on
 * both ends. Every configuration is plain text kept for the bench's JSON.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../daemon/command.js';

/** What the bench sends through every case; each peer maps these to ports of its own. */
export interface BenchService {
  name: string;
  port: number;
}

export const SERVICES: BenchService[] = [
  { name: 'iperf3', port: 5201 },
  { name: 'pingpong', port: 7000 },
  { name: 'http', port: 8080 },
];

export const SERVER_NAME = 'bench-server';
export const CLIENT_NAME = 'bench-client';

export interface Certs {
  dir: string;
  ca: string;
  serverCert: string;
  serverKey: string;
  /** Certificate then key in one file (haproxy's `crt`). */
  serverPem: string;
  clientCert: string;
  clientKey: string;
  clientPem: string;
}

/** A CA and one server and one client certificate, each with a DNS SAN (nginx verifies names). */
export async function makeCerts(dir: string): Promise<Certs> {
  const openssl = (...args: string[]) => run(['openssl', ...args]);
  const ca = join(dir, 'ca.pem');
  const caKey = join(dir, 'ca.key');
  await openssl(
    ...['req', '-x509', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'],
    ...['-nodes', '-keyout', caKey, '-out', ca, '-days', '2', '-subj', '/CN=bench-ca'],
    ...['-addext', 'basicConstraints=critical,CA:TRUE'],
    ...['-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
  );
  const issue = async (name: string) => {
    const key = join(dir, `${name}.key`);
    const csr = join(dir, `${name}.csr`);
    const cert = join(dir, `${name}.crt`);
    const ext = join(dir, `${name}.ext`);
    writeFileSync(
      ext,
      `subjectAltName=DNS:${name}\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=critical,digitalSignature\nbasicConstraints=CA:FALSE\n`,
    );
    await openssl(
      ...['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'],
      ...['-keyout', key, '-out', csr, '-subj', `/CN=${name}`],
    );
    await openssl(
      ...['x509', '-req', '-in', csr, '-CA', ca, '-CAkey', caKey, '-CAcreateserial'],
      ...['-days', '2', '-sha256', '-extfile', ext, '-out', cert],
    );
    const pem = join(dir, `${name}.pem`);
    writeFileSync(pem, readFileSync(cert, 'utf8') + readFileSync(key, 'utf8'), { mode: 0o600 });
    return { key, cert, pem };
  };
  const server = await issue(SERVER_NAME);
  const client = await issue(CLIENT_NAME);
  return {
    dir,
    ca,
    serverCert: server.cert,
    serverKey: server.key,
    serverPem: server.pem,
    clientCert: client.cert,
    clientKey: client.key,
    clientPem: client.pem,
  };
}

/** Where one peer listens and where it sends, for each service. */
export interface PeerLayout {
  certs: Certs;
  /** Node 1's underlay address: the client side listens there, reached from node 1's workloads. */
  clientNodeAddress: string;
  /** Node 2's underlay address: the server side listens there for the mTLS connections. */
  serverNodeAddress: string;
  /** The server workload on node 2. */
  originAddress: string;
  /** Open files a process may have (haproxy's maxconn must stay under it). */
  fileLimit: number;
  dir: string;
}

export interface PeerDefinition {
  name: 'stunnel4' | 'haproxy' | 'nginx';
  /** /proc/PID/comm of its processes. */
  comm: string;
  /** Port of service i on both sides: basePort + i + 1. */
  basePort: number;
  /** Settings worth reading first, for the report. */
  summary: string;
  config: (side: 'client' | 'server', layout: PeerLayout) => string;
  /** The command line running that configuration in the foreground. */
  argv: (configFile: string, side: 'client' | 'server', layout: PeerLayout) => string[];
}

export const peerPort = (peer: PeerDefinition, service: BenchService) =>
  peer.basePort + SERVICES.indexOf(service) + 1;

const stunnel: PeerDefinition = {
  name: 'stunnel4',
  comm: 'stunnel4',
  basePort: 21000,
  summary:
    'stunnel 5 threads (one per connection), TLSv1.3 only, verifyChain + checkHost, session cache on (default), TCP_NODELAY (default)',
  config(side, layout) {
    const { certs } = layout;
    const global = [
      'foreground = quiet',
      'pid =',
      'syslog = no',
      'debug = warning',
      `output = ${join(layout.dir, `stunnel-${side}.log`)}`,
      '',
      'sslVersionMin = TLSv1.3',
      `CAfile = ${certs.ca}`,
      'verifyChain = yes',
      side === 'client'
        ? `cert = ${certs.clientCert}\nkey = ${certs.clientKey}\nclient = yes\ncheckHost = ${SERVER_NAME}\nsni = ${SERVER_NAME}`
        : `cert = ${certs.serverCert}\nkey = ${certs.serverKey}\ncheckHost = ${CLIENT_NAME}`,
    ];
    const sections = SERVICES.map((service) => {
      const port = peerPort(stunnel, service);
      return side === 'client'
        ? `[${service.name}]\naccept = ${layout.clientNodeAddress}:${port}\nconnect = ${layout.serverNodeAddress}:${port}`
        : `[${service.name}]\naccept = ${layout.serverNodeAddress}:${port}\nconnect = ${layout.originAddress}:${service.port}`;
    });
    return `${[...global, '', ...sections].join('\n')}\n`;
  },
  argv: (file) => ['stunnel4', file],
};

const haproxy: PeerDefinition = {
  name: 'haproxy',
  comm: 'haproxy',
  basePort: 22000,
  summary:
    'haproxy 2.6 mode tcp, nbthread 2, maxconn under the fd limit, TLSv1.3 only, verify required + verifyhost, TLS session reuse to the server (default)',
  config(side, layout) {
    const { certs } = layout;
    const maxconn = Math.max(256, Math.min(8000, Math.floor((layout.fileLimit - 200) / 2)));
    const lines = [
      'global',
      '  nbthread 2',
      `  maxconn ${maxconn}`,
      '  ssl-default-bind-options ssl-min-ver TLSv1.3',
      '  ssl-default-server-options ssl-min-ver TLSv1.3',
      '',
      'defaults',
      '  mode tcp',
      '  timeout connect 5s',
      '  timeout client 60s',
      '  timeout server 60s',
      '  timeout client-fin 5s',
      '  timeout server-fin 5s',
      '',
    ];
    for (const service of SERVICES) {
      const port = peerPort(haproxy, service);
      if (side === 'client') {
        lines.push(
          `listen ${service.name}`,
          `  bind ${layout.clientNodeAddress}:${port}`,
          `  server tunnel ${layout.serverNodeAddress}:${port} ssl crt ${certs.clientPem} ca-file ${certs.ca} verify required verifyhost ${SERVER_NAME} sni str(${SERVER_NAME})`,
          '',
        );
      } else {
        lines.push(
          `listen ${service.name}`,
          `  bind ${layout.serverNodeAddress}:${port} ssl crt ${certs.serverPem} ca-file ${certs.ca} verify required`,
          `  server origin ${layout.originAddress}:${service.port}`,
          '',
        );
      }
    }
    return `${lines.join('\n')}`;
  },
  argv: (file) => ['haproxy', '-db', '-f', file],
};

const nginx: PeerDefinition = {
  name: 'nginx',
  comm: 'nginx',
  basePort: 23000,
  summary:
    'nginx 1.22 stream module, 2 workers, TLSv1.3 only, proxy_ssl_verify + ssl_verify_client, proxy_ssl_session_reuse (default), shared session cache on the server side',
  config(side, layout) {
    const { certs } = layout;
    const connections = Math.max(512, Math.min(8192, Math.floor(layout.fileLimit / 2)));
    const servers = SERVICES.map((service) => {
      const port = peerPort(nginx, service);
      return side === 'client'
        ? [
            '  server {',
            `    listen ${layout.clientNodeAddress}:${port};`,
            `    proxy_pass ${layout.serverNodeAddress}:${port};`,
            '    proxy_ssl on;',
            `    proxy_ssl_certificate ${certs.clientCert};`,
            `    proxy_ssl_certificate_key ${certs.clientKey};`,
            `    proxy_ssl_trusted_certificate ${certs.ca};`,
            '    proxy_ssl_verify on;',
            `    proxy_ssl_name ${SERVER_NAME};`,
            '    proxy_ssl_server_name on;',
            '    proxy_ssl_protocols TLSv1.3;',
            '    proxy_ssl_session_reuse on;',
            '  }',
          ].join('\n')
        : [
            '  server {',
            `    listen ${layout.serverNodeAddress}:${port} ssl;`,
            `    ssl_certificate ${certs.serverCert};`,
            `    ssl_certificate_key ${certs.serverKey};`,
            `    ssl_client_certificate ${certs.ca};`,
            '    ssl_verify_client on;',
            '    ssl_protocols TLSv1.3;',
            '    ssl_session_cache shared:SSL:10m;',
            `    proxy_pass ${layout.originAddress}:${service.port};`,
            '  }',
          ].join('\n');
    });
    return [
      'load_module /usr/lib/nginx/modules/ngx_stream_module.so;',
      'user root;',
      'worker_processes 2;',
      'daemon off;',
      'master_process on;',
      `pid ${join(layout.dir, `nginx-${side}.pid`)};`,
      `error_log ${join(layout.dir, `nginx-${side}.log`)} warn;`,
      `events { worker_connections ${connections}; }`,
      'stream {',
      '  tcp_nodelay on;',
      ...servers,
      '}',
      '',
    ].join('\n');
  },
  argv: (file, side, layout) => [
    'nginx',
    '-p',
    layout.dir,
    '-e',
    join(layout.dir, `nginx-${side}.log`),
    '-c',
    file,
  ],
};

export const PEERS: PeerDefinition[] = [stunnel, haproxy, nginx];

/** The server workload's HTTP origin: nginx serving a small static file, one worker. */
export function originNginxConfig(dir: string, port: number, fileLimit: number): string {
  const connections = Math.max(512, Math.min(8192, Math.floor(fileLimit / 2)));
  return [
    'user root;',
    'worker_processes 1;',
    'daemon off;',
    'master_process on;',
    `pid ${join(dir, 'origin.pid')};`,
    `error_log ${join(dir, 'origin.log')} warn;`,
    `events { worker_connections ${connections}; }`,
    'http {',
    '  access_log off;',
    '  default_type text/plain;',
    '  sendfile on;',
    '  tcp_nopush on;',
    '  tcp_nodelay on;',
    '  keepalive_requests 1000000;',
    '  keepalive_timeout 65s;',
    `  client_body_temp_path ${join(dir, 'body')};`,
    `  proxy_temp_path ${join(dir, 'proxy')};`,
    `  fastcgi_temp_path ${join(dir, 'fastcgi')};`,
    `  uwsgi_temp_path ${join(dir, 'uwsgi')};`,
    `  scgi_temp_path ${join(dir, 'scgi')};`,
    '  server {',
    `    listen ${port} reuseport;`,
    `    root ${join(dir, 'www')};`,
    '    index index.html;',
    '  }',
    '}',
    '',
  ].join('\n');
}
