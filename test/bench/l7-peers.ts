/**
 * The L7 peers of the waypoint benchmark (test/bench/l7.ts): nginx, haproxy and caddy, each run
 * as the same three hops as meshd's path, in the same namespaces:
 *
 *   client → edge-in (node 1) → mTLS → middle (the waypoint's workload, node 1)
 *          → mTLS → edge-out (node 2) → server
 *
 * meshd: edge-in and edge-out are the node agents (L4, HBONE), the middle is `meshd waypoint`
 * (HTTP/1.1, mTLS on both sides). The middle of every peer is an HTTP reverse proxy with mTLS
 * on both sides; the edges are L4 mTLS tunnels where the peer has one (haproxy mode tcp, nginx
 * stream: the data-path bench's own configurations, test/bench/peers.ts) and HTTP reverse
 * proxies for caddy (Debian's caddy has no L4 proxy). TLS 1.3 only, ECDSA P-256, certificates
 * verified on both ends of both legs; every configuration is plain text kept for the JSON.
 */
import { join } from 'node:path';
import { type Certs, PEERS, type PeerDefinition, SERVER_NAME, SERVICES } from './peers.js';

export type HopRole = 'edge-in' | 'middle' | 'edge-out';

/** Where the hops run and listen. */
export interface L7Layout {
  certs: Certs;
  /** Node 1's underlay address: edge-in listens there (reached from the plain client). */
  clientNodeAddress: string;
  /** The waypoint's workload: the middle listens there. */
  middleAddress: string;
  /** Node 2's underlay address: edge-out listens there. */
  serverNodeAddress: string;
  /** The plain server workload (nginx on :8080). */
  originAddress: string;
  originPort: number;
  fileLimit: number;
  /** A directory of this peer's own (pid files, logs, caddy's storage). */
  dir: string;
}

export interface L7Hop {
  role: HopRole;
  /** The file the configuration is written to (its extension matters to caddy). */
  fileName: string;
  config: string;
  argv: (configFile: string) => string[];
  /** host:port it listens on, to wait for. */
  listen: string;
}

export interface L7Peer {
  name: 'nginx' | 'haproxy' | 'caddy';
  /** /proc/PID/comm of its processes. */
  comm: string;
  /** The command that must exist for this peer to run. */
  command: string;
  /** The port every hop of this peer listens on (on its own address). */
  port: number;
  summary: string;
  hops: (layout: L7Layout) => L7Hop[];
}

const HTTP = SERVICES.find((s) => s.name === 'http') ?? { name: 'http', port: 8080 };
const l4Peer = (name: 'nginx' | 'haproxy'): PeerDefinition => {
  const peer = PEERS.find((p) => p.name === name);
  if (!peer) throw new Error(`no data-path peer ${name}`);
  return peer;
};
const l4HttpPort = (peer: PeerDefinition) => peer.basePort + SERVICES.indexOf(HTTP) + 1;

/**
 * The edges of haproxy and nginx: the data-path bench's L4 tunnel configurations, edge-in
 * (its client side) pointed at the middle, edge-out (its server side) at the origin.
 */
function l4Edges(peer: PeerDefinition, layout: L7Layout, ext: string): L7Hop[] {
  const port = l4HttpPort(peer);
  const base = {
    certs: layout.certs,
    fileLimit: layout.fileLimit,
    dir: layout.dir,
  };
  const inLayout = {
    ...base,
    clientNodeAddress: layout.clientNodeAddress,
    serverNodeAddress: layout.middleAddress,
    originAddress: layout.originAddress,
  };
  const outLayout = {
    ...base,
    clientNodeAddress: layout.clientNodeAddress,
    serverNodeAddress: layout.serverNodeAddress,
    originAddress: layout.originAddress,
  };
  return [
    {
      role: 'edge-in',
      fileName: `${peer.name}-edge-in.${ext}`,
      config: peer.config('client', inLayout),
      argv: (file) => peer.argv(file, 'client', inLayout),
      listen: `${layout.clientNodeAddress}:${port}`,
    },
    {
      role: 'edge-out',
      fileName: `${peer.name}-edge-out.${ext}`,
      config: peer.config('server', outLayout),
      argv: (file) => peer.argv(file, 'server', outLayout),
      listen: `${layout.serverNodeAddress}:${port}`,
    },
  ];
}

/** haproxy's middle: mode http, keep-alive both sides, mTLS in and out. */
export function haproxyMiddle(layout: L7Layout, port: number): string {
  const { certs } = layout;
  const maxconn = Math.max(256, Math.min(8000, Math.floor((layout.fileLimit - 200) / 2)));
  return [
    'global',
    '  nbthread 2',
    `  maxconn ${maxconn}`,
    '  ssl-default-bind-options ssl-min-ver TLSv1.3',
    '  ssl-default-server-options ssl-min-ver TLSv1.3',
    '',
    'defaults',
    '  mode http',
    '  option http-keep-alive',
    '  timeout connect 5s',
    '  timeout client 60s',
    '  timeout server 60s',
    '  timeout http-keep-alive 60s',
    '',
    'frontend l7',
    `  bind ${layout.middleAddress}:${port} ssl crt ${certs.serverPem} ca-file ${certs.ca} verify required`,
    '  default_backend next',
    '',
    'backend next',
    '  http-reuse safe',
    `  server next ${layout.serverNodeAddress}:${port} ssl crt ${certs.clientPem} ca-file ${certs.ca} verify required verifyhost ${SERVER_NAME} sni str(${SERVER_NAME})`,
    '',
  ].join('\n');
}

/** nginx's middle: the http module, upstream keep-alive, mTLS in and out. */
export function nginxMiddle(layout: L7Layout, port: number): string {
  const { certs, dir } = layout;
  const connections = Math.max(512, Math.min(8192, Math.floor(layout.fileLimit / 2)));
  return [
    'user root;',
    'worker_processes 2;',
    'daemon off;',
    'master_process on;',
    `pid ${join(dir, 'nginx-middle.pid')};`,
    `error_log ${join(dir, 'nginx-middle.log')} warn;`,
    `events { worker_connections ${connections}; }`,
    'http {',
    '  access_log off;',
    '  tcp_nodelay on;',
    '  keepalive_requests 1000000;',
    '  keepalive_timeout 65s;',
    `  client_body_temp_path ${join(dir, 'body')};`,
    `  proxy_temp_path ${join(dir, 'proxy')};`,
    `  fastcgi_temp_path ${join(dir, 'fastcgi')};`,
    `  uwsgi_temp_path ${join(dir, 'uwsgi')};`,
    `  scgi_temp_path ${join(dir, 'scgi')};`,
    `  upstream next { server ${layout.serverNodeAddress}:${port}; keepalive 64; keepalive_requests 1000000; }`,
    '  server {',
    `    listen ${layout.middleAddress}:${port} ssl;`,
    `    ssl_certificate ${certs.serverCert};`,
    `    ssl_certificate_key ${certs.serverKey};`,
    `    ssl_client_certificate ${certs.ca};`,
    '    ssl_verify_client on;',
    '    ssl_protocols TLSv1.3;',
    '    ssl_session_cache shared:SSL:10m;',
    '    location / {',
    '      proxy_pass https://next;',
    '      proxy_http_version 1.1;',
    '      proxy_set_header Connection "";',
    '      proxy_set_header Host $host;',
    `      proxy_ssl_certificate ${certs.clientCert};`,
    `      proxy_ssl_certificate_key ${certs.clientKey};`,
    `      proxy_ssl_trusted_certificate ${certs.ca};`,
    '      proxy_ssl_verify on;',
    `      proxy_ssl_name ${SERVER_NAME};`,
    '      proxy_ssl_server_name on;',
    '      proxy_ssl_protocols TLSv1.3;',
    '      proxy_ssl_session_reuse on;',
    '    }',
    '  }',
    '}',
    '',
  ].join('\n');
}

/** One caddy hop (JSON config): HTTP reverse proxy, TLS with client certificates on either side. */
export function caddyHop(
  layout: L7Layout,
  hop: { listen: string; tlsIn: boolean; upstream: string; tlsOut: boolean; storage: string },
): string {
  const { certs } = layout;
  const transport: Record<string, unknown> = { protocol: 'http' };
  if (hop.tlsOut)
    transport.tls = {
      client_certificate_file: certs.clientCert,
      client_certificate_key_file: certs.clientKey,
      root_ca_pem_files: [certs.ca],
      server_name: SERVER_NAME,
    };
  const server: Record<string, unknown> = {
    listen: [hop.listen],
    protocols: ['h1', 'h2'],
    automatic_https: { disable: true },
    routes: [
      {
        handle: [{ handler: 'reverse_proxy', upstreams: [{ dial: hop.upstream }], transport }],
      },
    ],
  };
  const apps: Record<string, unknown> = { http: { servers: { hop: server } } };
  if (hop.tlsIn) {
    // With client authentication caddy turns on strict SNI-Host matching (421 otherwise); the
    // Host is the client's, the SNI the server name, as for the other peers.
    server.strict_sni_host = false;
    server.tls_connection_policies = [
      {
        certificate_selection: { any_tag: ['bench'] },
        client_authentication: {
          trusted_ca_certs_pem_files: [certs.ca],
          mode: 'require_and_verify',
        },
        protocol_min: 'tls1.3',
      },
    ];
    apps.tls = {
      certificates: {
        load_files: [{ certificate: certs.serverCert, key: certs.serverKey, tags: ['bench'] }],
      },
    };
  }
  const config = {
    admin: { disabled: true, config: { persist: false } },
    storage: { module: 'file_system', root: hop.storage },
    logging: { logs: { default: { level: 'WARN' } } },
    apps,
  };
  return `${JSON.stringify(config, null, 2)}\n`;
}

const haproxy: L7Peer = {
  name: 'haproxy',
  comm: 'haproxy',
  command: 'haproxy',
  port: l4HttpPort(l4Peer('haproxy')),
  summary:
    'haproxy 2.6; middle: mode http, nbthread 2, keep-alive both sides, http-reuse safe, TLSv1.3 only, verify required (+ verifyhost upstream); edges: the data-path mode tcp tunnels',
  hops(layout) {
    const peer = l4Peer('haproxy');
    const [edgeIn, edgeOut] = l4Edges(peer, layout, 'cfg');
    return [
      edgeIn as L7Hop,
      {
        role: 'middle',
        fileName: 'haproxy-middle.cfg',
        config: haproxyMiddle(layout, this.port),
        argv: (file) => ['haproxy', '-db', '-f', file],
        listen: `${layout.middleAddress}:${this.port}`,
      },
      edgeOut as L7Hop,
    ];
  },
};

const nginx: L7Peer = {
  name: 'nginx',
  comm: 'nginx',
  command: 'nginx',
  port: l4HttpPort(l4Peer('nginx')),
  summary:
    'nginx 1.22; middle: http proxy, 2 workers, upstream keepalive 64, TLSv1.3 only, ssl_verify_client + proxy_ssl_verify, session reuse; edges: the data-path stream tunnels',
  hops(layout) {
    const peer = l4Peer('nginx');
    const [edgeIn, edgeOut] = l4Edges(peer, layout, 'conf');
    const log = join(layout.dir, 'nginx-middle.log');
    return [
      edgeIn as L7Hop,
      {
        role: 'middle',
        fileName: 'nginx-middle.conf',
        config: nginxMiddle(layout, this.port),
        argv: (file) => ['nginx', '-p', layout.dir, '-e', log, '-c', file],
        listen: `${layout.middleAddress}:${this.port}`,
      },
      edgeOut as L7Hop,
    ];
  },
};

const caddy: L7Peer = {
  name: 'caddy',
  comm: 'caddy',
  command: 'caddy',
  port: 24003,
  summary:
    "caddy 2.6 (Debian); all three hops are reverse_proxy (Debian's caddy has no L4 proxy), TLS 1.3 only, client certificates required and verified; upstream HTTP/2 over TLS where offered (caddy's default)",
  hops(layout) {
    const port = this.port;
    const hop = (
      role: HopRole,
      listen: string,
      tlsIn: boolean,
      upstream: string,
      tlsOut: boolean,
    ): L7Hop => ({
      role,
      fileName: `caddy-${role}.json`,
      config: caddyHop(layout, {
        listen,
        tlsIn,
        upstream,
        tlsOut,
        storage: join(layout.dir, `caddy-${role}`),
      }),
      argv: (file) => ['caddy', 'run', '--config', file],
      listen,
    });
    return [
      hop(
        'edge-in',
        `${layout.clientNodeAddress}:${port}`,
        false,
        `${layout.middleAddress}:${port}`,
        true,
      ),
      hop(
        'middle',
        `${layout.middleAddress}:${port}`,
        true,
        `${layout.serverNodeAddress}:${port}`,
        true,
      ),
      hop(
        'edge-out',
        `${layout.serverNodeAddress}:${port}`,
        true,
        `${layout.originAddress}:${layout.originPort}`,
        false,
      ),
    ];
  },
};

export const L7_PEERS: L7Peer[] = [nginx, haproxy, caddy];
