// meshd server's Identity API in-process (127.0.0.1, port 0): Join with one-time tokens, node
// authorization for CreateCertificate, TTL clamping, admin-only join tokens, the public trust
// bundle, root rotation with reload, and every refusal the issue lists — each with its gRPC
// status and message, and with nothing issued.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { loadAdminCredentials } from '../../ctl/client.js';
import type { ServerConfig } from '../../daemon/config.js';
import {
  createCsr,
  exportPrivateKeyPem,
  finishRotation,
  fromPemAll,
  generateKeyPair,
  initCa,
  nodeId,
  parseSpiffeId,
  rotateRoot,
  verifySvid,
} from '../../daemon/identity/index.js';
import {
  type ClientCredentials,
  type ControlPlaneCallError,
  grpc,
  IdentityClient,
} from '../../daemon/proto/index.js';
import { type ServerHandle, startServer } from '../../daemon/server/index.js';
import { createJsonLogger } from '../../daemon/telemetry/index.js';
import { issueTestSvid, makeTestCa } from '../support/pki.js';

const TD = 'cluster.local';
const WEB = 'spiffe://cluster.local/ns/shop/sa/web';
const DB = 'spiffe://cluster.local/ns/shop/sa/db';
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const S = grpc.status;
const run = promisify(execFile);
const NODE = process.execPath;
const CTL = new URL('../../ctl/main.js', import.meta.url).pathname;

let dir: string;
let caDir: string;
let server: ServerHandle;
const logLines: string[] = [];
const clock = { offsetMs: 0, now: () => Date.now() + clock.offsetMs };
const clients: IdentityClient[] = [];
let admin: ClientCredentials;
let anon: ClientCredentials;
let n1: ClientCredentials; // node n1, joined in the first Join test
let oldRootPem: string;

function config(overrides: Partial<ServerConfig> = {}): ServerConfig {
  return {
    listenAddress: '127.0.0.1',
    grpcPort: 0,
    monitoringPort: 0,
    dataDir: join(dir, 'data'),
    trustDomain: TD,
    logLevel: 'debug',
    caDir,
    maxCertTtlMs: DAY,
    nodeCertTtlMs: DAY,
    workloadsFile: join(dir, 'workloads.json'),
    store: undefined,
    ...overrides,
  };
}

const logger = createJsonLogger({ level: 'debug', write: (l) => void logLines.push(l) });

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'meshd-server-'));
  caDir = join(dir, 'ca');
  await initCa({ dir: caDir, trustDomain: TD });
  writeFileSync(join(dir, 'workloads.json'), JSON.stringify({ nodes: { n1: [WEB], n2: [DB] } }));
  server = await startServer(config(), { clock, logger });
  admin = loadAdminCredentials(caDir);
  anon = { trustDomain: TD, bundlePem: admin.bundlePem };
  oldRootPem = readFileSync(join(caDir, 'root.pem'), 'utf8');
});

after(async () => {
  for (const c of clients) c.close();
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

function client(creds: ClientCredentials, port = server.grpcPort): IdentityClient {
  const c = new IdentityClient({ ...creds, server: `127.0.0.1:${port}`, timeoutMs: 5_000 });
  clients.push(c);
  return c;
}

async function refused(
  call: Promise<unknown>,
  status: grpc.status,
  message: RegExp,
): Promise<ControlPlaneCallError> {
  let caught: ControlPlaneCallError | undefined;
  await assert.rejects(call, (err: ControlPlaneCallError) => {
    assert.equal(err.code, 'MESHD_E_CONTROL_PLANE');
    assert.equal(
      err.status,
      status,
      `expected ${S[status]}, got ${S[err.status ?? -1]}: ${err.message}`,
    );
    assert.match(err.details, message);
    caught = err;
    return true;
  });
  return caught!;
}

async function counter(name: string, labels: Record<string, string>): Promise<number> {
  const metric = await server.metrics.getSingleMetric(name)?.get();
  const value = metric?.values.find((v) =>
    Object.entries(labels).every(([k, l]) => v.labels[k] === l),
  );
  return value?.value ?? 0;
}
const issued = async () => ({
  node: await counter('meshd_server_certificates_issued_total', { kind: 'node' }),
  workload: await counter('meshd_server_certificates_issued_total', { kind: 'workload' }),
});

async function keyAndCsr(id: string): Promise<{ csr: Buffer; keyPem: string }> {
  const keys = await generateKeyPair();
  return {
    csr: Buffer.from(await createCsr(keys, parseSpiffeId(id).id)),
    keyPem: await exportPrivateKeyPem(keys.privateKey),
  };
}

async function newToken(node: string, ttlSeconds = 0): Promise<string> {
  return (await client(admin).createJoinToken({ node, ttlSeconds })).token;
}

const der = (chain: string[]) => fromPemAll(chain.join(''), 'CERTIFICATE');
const x509 = (pem: string) => new X509Certificate(pem);

function openssl(args: string[], input?: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = execFile('openssl', args, { encoding: 'buffer' }, (err, stdout) =>
      err ? reject(err) : resolve(stdout),
    );
    if (input !== undefined) child.stdin?.end(input);
  });
}

/** A CSR made by openssl, for the shapes meshd's own code never makes. */
async function opensslCsr(key: string, args: string[]): Promise<Buffer> {
  const keyFile = join(dir, `k-${key.replace(':', '-')}.pem`);
  const [alg, param] = key.split(':');
  await openssl(
    alg === 'ec'
      ? ['genpkey', '-algorithm', 'EC', '-pkeyopt', `ec_paramgen_curve:${param}`, '-out', keyFile]
      : ['genpkey', '-algorithm', 'RSA', '-pkeyopt', `rsa_keygen_bits:${param}`, '-out', keyFile],
  );
  return openssl(['req', '-new', '-key', keyFile, '-outform', 'DER', ...args]);
}

test('GetTrustBundle needs no client certificate; clients check the control-plane identity', async () => {
  const bundle = await client(anon).getTrustBundle();
  assert.equal(bundle.trustDomain, TD);
  assert.deepEqual(bundle.roots, [oldRootPem]);
  // A client expecting another trust domain's control plane refuses this server.
  await refused(
    client({ ...anon, trustDomain: 'other.local' }).getTrustBundle(),
    S.UNAVAILABLE,
    /trust domain "cluster.local" is not the mesh's "other.local"/,
  );
  // A client trusting another CA refuses it too.
  const foreign = await makeTestCa();
  await refused(
    client({ trustDomain: TD, bundlePem: foreign.rootPem }).getTrustBundle(),
    S.UNAVAILABLE,
    /certificate/i,
  );
});

test('a server for another trust domain than its CA does not start', async () => {
  await assert.rejects(
    startServer(config({ trustDomain: 'other.local', dataDir: join(dir, 'data-x') }), { logger }),
    /MESHD_TRUST_DOMAIN is "other.local".*hint: set MESHD_TRUST_DOMAIN=cluster.local/,
  );
});

test('join tokens: admin only, checked, stored hashed in a 0600 file', async () => {
  const created = await client(admin).createJoinToken({ node: 'n1', ttlSeconds: 0 });
  const m = /^([A-Za-z0-9_-]{12})\.([A-Za-z0-9_-]{43})$/.exec(created.token);
  assert.ok(m, `token format: ${created.token}`);
  const expiresIn = created.expiresAtUnix * 1000 - Date.now();
  assert.ok(expiresIn > HOUR - 5_000 && expiresIn <= HOUR, `default ttl 1h, got ${expiresIn}`);
  const file = join(dir, 'data', 'join-tokens.json');
  assert.equal(statSync(file).mode & 0o777, 0o600);
  const text = readFileSync(file, 'utf8');
  const [, id = '', secret = ''] = m;
  assert.ok(text.includes(id), 'the record is found by id');
  assert.ok(!text.includes(secret), 'the secret is not stored in clear');
  assert.ok(text.includes(createHash('sha256').update(secret).digest('hex')), 'its hash is');
  assert.ok(!logLines.some((l) => l.includes(secret)), 'the secret is never logged');

  await refused(
    client(anon).createJoinToken({ node: 'n1', ttlSeconds: 0 }),
    S.UNAUTHENTICATED,
    /^MESHD_E_CLIENT_CERT: CreateJoinToken needs a client certificate issued by this mesh's CA/,
  );
  await refused(
    client(admin).createJoinToken({ node: 'Bad_Name', ttlSeconds: 0 }),
    S.INVALID_ARGUMENT,
    /node "Bad_Name" is not a valid node name: must be a DNS label/,
  );
  for (const ttlSeconds of [-1, 10, 8 * 24 * 3600]) {
    await refused(
      client(admin).createJoinToken({ node: 'n1', ttlSeconds }),
      S.INVALID_ARGUMENT,
      new RegExp(`ttl_seconds=${ttlSeconds} is not allowed: a join token lives between 60`),
    );
  }
});

test('Join: the token buys one node certificate for its node, once', async () => {
  const token = await newToken('n1');
  const before = await issued();
  const { csr, keyPem } = await keyAndCsr(nodeId(TD, 'n1'));
  const res = await client(anon).join({ token, csr });
  assert.equal(res.node, 'n1');
  assert.equal(res.certChain.length, 2);
  const info = verifySvid(der(res.certChain), [x509(oldRootPem)], TD);
  assert.equal(info.spiffeId, 'spiffe://cluster.local/node/n1');
  const lifetime = info.notAfter.getTime() - Date.now();
  assert.ok(lifetime > DAY - 10_000 && lifetime <= DAY, `node cert ttl ${lifetime}`);
  assert.deepEqual(res.trustBundle, { trustDomain: TD, roots: [oldRootPem] });
  assert.deepEqual(await issued(), { ...before, node: before.node + 1 });
  n1 = { ...anon, identity: { certChainPem: res.certChain.join(''), keyPem } };

  const again = await keyAndCsr(nodeId(TD, 'n1'));
  const err = await refused(
    client(anon).join({ token, csr: again.csr }),
    S.UNAUTHENTICATED,
    /^MESHD_E_JOIN_TOKEN: join token refused: token [\w-]{12} for node n1 was already used at /,
  );
  assert.ok(!err.message.includes(token.split('.')[1] ?? '?'), 'the secret is not echoed');
  assert.deepEqual(await issued(), { ...before, node: before.node + 1 }, 'nothing issued');
});

test('Join refusals issue nothing and leave a good token usable', async () => {
  const token = await newToken('n3');
  const before = await issued();
  const good = await keyAndCsr(nodeId(TD, 'n3'));
  await refused(
    client(anon).join({ token: 'not-a-token', csr: good.csr }),
    S.UNAUTHENTICATED,
    /not a meshd join token \(expected <id>\.<secret>/,
  );
  await refused(
    client(anon).join({ token: `AAAAAAAAAAAA.${'B'.repeat(43)}`, csr: good.csr }),
    S.UNAUTHENTICATED,
    /token AAAAAAAAAAAA is unknown to this server/,
  );
  const [id] = token.split('.');
  await refused(
    client(anon).join({ token: `${id}.${'C'.repeat(43)}`, csr: good.csr }),
    S.UNAUTHENTICATED,
    new RegExp(`token ${id} is unknown to this server`),
  );
  await refused(
    client(anon).join({ token, csr: Buffer.from([0x30, 0x03, 1, 2, 3]) }),
    S.INVALID_ARGUMENT,
    /^MESHD_E_CSR: certificate signing request refused: not a DER-encoded PKCS#10 request/,
  );
  await refused(
    client(anon).join({ token, csr: (await keyAndCsr(nodeId(TD, 'n2'))).csr }),
    S.PERMISSION_DENIED,
    /join token [\w-]{12} is for node n3: the CSR must ask for spiffe:\/\/cluster\.local\/node\/n3, not spiffe:\/\/cluster\.local\/node\/n2/,
  );
  await refused(
    client(anon).join({ token, csr: (await keyAndCsr(WEB)).csr }),
    S.PERMISSION_DENIED,
    /is for node n3: the CSR must ask for .*, not spiffe:\/\/cluster\.local\/ns\/shop\/sa\/web/,
  );
  assert.deepEqual(await issued(), before, 'nothing issued');
  const res = await client(anon).join({ token, csr: good.csr });
  assert.equal(res.node, 'n3');
  assert.equal((await issued()).node, before.node + 1);
});

test('an expired join token is refused', async () => {
  const token = await newToken('n4', 60);
  clock.offsetMs = 61_000;
  try {
    const before = await issued();
    await refused(
      client(anon).join({ token, csr: (await keyAndCsr(nodeId(TD, 'n4'))).csr }),
      S.UNAUTHENTICATED,
      /token [\w-]{12} for node n4 expired at .*make a new one with "meshctl token create --node n4"/,
    );
    assert.deepEqual(await issued(), before);
  } finally {
    clock.offsetMs = 0;
  }
});

test('CreateCertificate: a workload registered on the caller node gets a conformant chain', async () => {
  const before = await issued();
  const { csr } = await keyAndCsr(WEB);
  const res = await client(n1).createCertificate({ csr, ttlSeconds: 3600 });
  assert.equal(res.certChain.length, 2);
  const info = verifySvid(der(res.certChain), [x509(oldRootPem)], TD);
  assert.equal(info.spiffeId, WEB);
  const lifetime = info.notAfter.getTime() - info.notBefore.getTime();
  assert.ok(Math.abs(lifetime - HOUR - 60_000) < 2_000, `lifetime ${lifetime}`);
  assert.deepEqual(await issued(), { ...before, workload: before.workload + 1 });

  // Above the maximum: clamped to it, not refused.
  const year = await client(n1).createCertificate({ csr, ttlSeconds: 365 * 24 * 3600 });
  const clamped = verifySvid(der(year.certChain), [x509(oldRootPem)], TD);
  const left = clamped.notAfter.getTime() - Date.now();
  assert.ok(left > DAY - 10_000 && left <= DAY, `clamped to 24h, got ${left}`);

  // Zero and negative: refused.
  for (const ttlSeconds of [0, -5]) {
    await refused(
      client(n1).createCertificate({ csr, ttlSeconds }),
      S.INVALID_ARGUMENT,
      new RegExp(
        `^MESHD_E_BAD_REQUEST: ttl_seconds=${ttlSeconds} is not allowed: the requested lifetime must be a positive number of seconds`,
      ),
    );
  }
  // A node renews its own node certificate, and only its own.
  const own = await client(n1).createCertificate({
    csr: (await keyAndCsr(nodeId(TD, 'n1'))).csr,
    ttlSeconds: 3600,
  });
  assert.equal(verifySvid(der(own.certChain), [x509(oldRootPem)], TD).spiffeId, nodeId(TD, 'n1'));
  await refused(
    client(n1).createCertificate({ csr: (await keyAndCsr(nodeId(TD, 'n2'))).csr, ttlSeconds: 60 }),
    S.PERMISSION_DENIED,
    /node n1 may not get spiffe:\/\/cluster\.local\/node\/n2: a node may renew only its own node certificate/,
  );
  assert.deepEqual(await issued(), { node: before.node + 1, workload: before.workload + 2 });
});

test('CreateCertificate refusals: foreign identity, bad CSR shapes, keys and DER; nothing issued', async () => {
  const web = (extra = '') => `subjectAltName=URI:${WEB}${extra}`;
  const cases: [string, () => Promise<Buffer>, grpc.status, RegExp][] = [
    [
      'identity not on the caller node',
      async () => (await keyAndCsr(DB)).csr,
      S.PERMISSION_DENIED,
      /^MESHD_E_FORBIDDEN: node n1 may not get spiffe:\/\/cluster\.local\/ns\/shop\/sa\/db: no such workload is registered on n1$/,
    ],
    [
      'a second SAN',
      () => opensslCsr('ec:P-256', ['-subj', '/', '-addext', web(`,URI:${DB}`)]),
      S.INVALID_ARGUMENT,
      /^MESHD_E_CSR: .*it must request exactly one URI SAN \(found 2\)/,
    ],
    [
      'a CN-only subject',
      () => opensslCsr('ec:P-256', ['-subj', '/CN=web']),
      S.INVALID_ARGUMENT,
      /exactly one URI SAN \(found 0\)/,
    ],
    [
      'a DNS SAN',
      () => opensslCsr('ec:P-256', ['-subj', '/', '-addext', web(',DNS:web.shop.svc')]),
      S.INVALID_ARGUMENT,
      /only a URI SAN is allowed \(found GeneralName type 2\)/,
    ],
    [
      'another trust domain',
      () =>
        opensslCsr('ec:P-256', [
          '-subj',
          '/',
          '-addext',
          'subjectAltName=URI:spiffe://other.local/ns/shop/sa/web',
        ]),
      S.INVALID_ARGUMENT,
      /trust domain "other\.local" is not the mesh's "cluster\.local"/,
    ],
    [
      'an RSA key',
      () => opensslCsr('rsa:2048', ['-subj', '/', '-addext', web()]),
      S.INVALID_ARGUMENT,
      /the key must be ECDSA P-256 \(got algorithm 1\.2\.840\.113549\.1\.1\.1/,
    ],
    [
      'a P-384 key',
      () => opensslCsr('ec:P-384', ['-subj', '/', '-addext', web()]),
      S.INVALID_ARGUMENT,
      /the key must be ECDSA P-256 .*curve 1\.3\.132\.0\.34/,
    ],
    [
      'malformed DER',
      async () => Buffer.from('this is not DER'),
      S.INVALID_ARGUMENT,
      /not a DER-encoded PKCS#10 request/,
    ],
    ['an empty CSR', async () => Buffer.alloc(0), S.INVALID_ARGUMENT, /not a DER-encoded/],
  ];
  const before = await issued();
  const refusalsBefore = await counter('meshd_server_certificate_refusals_total', {
    reason: 'MESHD_E_CSR',
  });
  for (const [what, makeCsr, status, message] of cases) {
    const csr = await makeCsr();
    const err = await refused(
      client(n1).createCertificate({ csr, ttlSeconds: 3600 }),
      status,
      message,
    );
    assert.ok(err, what);
  }
  assert.deepEqual(await issued(), before, 'nothing issued');
  assert.equal(
    await counter('meshd_server_certificate_refusals_total', { reason: 'MESHD_E_CSR' }),
    refusalsBefore + 8,
  );
  assert.ok(
    logLines.some((l) => /"msg":"request refused".*"code":"MESHD_E_FORBIDDEN"/.test(l)),
    'refusals are logged with their code',
  );
});

test('CreateCertificate callers: none, foreign, non-conformant, admin and workload certificates are refused', async () => {
  const { csr, keyPem } = await keyAndCsr(WEB);
  const before = await issued();
  await refused(
    client(anon).createCertificate({ csr, ttlSeconds: 3600 }),
    S.UNAUTHENTICATED,
    /^MESHD_E_CLIENT_CERT: CreateCertificate needs a client certificate issued by this mesh's CA; none was presented/,
  );
  const foreign = await issueTestSvid(await makeTestCa(), nodeId(TD, 'n1'));
  await refused(
    client({
      ...anon,
      identity: { certChainPem: foreign.chainPem, keyPem: foreign.keyPem },
    }).createCertificate({ csr, ttlSeconds: 3600 }),
    S.UNAUTHENTICATED,
    /does not verify against the trust bundle/,
  );
  // Signed by the mesh's own intermediate, so TLS accepts it, but not an X.509-SVID.
  const rogueKey = join(dir, 'rogue.key');
  await openssl([
    'genpkey',
    '-algorithm',
    'EC',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-out',
    rogueKey,
  ]);
  const rogueCsr = join(dir, 'rogue.csr');
  await openssl(['req', '-new', '-key', rogueKey, '-subj', '/CN=n1', '-out', rogueCsr]);
  const ext = join(dir, 'rogue.ext');
  writeFileSync(
    ext,
    'subjectAltName=DNS:n1.example\nextendedKeyUsage=serverAuth,clientAuth\n' +
      'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n',
  );
  const roguePem = (
    await openssl([
      'x509',
      '-req',
      '-in',
      rogueCsr,
      '-CA',
      join(caDir, 'intermediate.pem'),
      '-CAkey',
      join(caDir, 'intermediate.key'),
      '-set_serial',
      '4242',
      '-days',
      '1',
      '-extfile',
      ext,
    ])
  ).toString();
  await refused(
    client({
      ...anon,
      identity: {
        certChainPem: roguePem + readFileSync(join(caDir, 'intermediate.pem'), 'utf8'),
        keyPem: readFileSync(rogueKey, 'utf8'),
      },
    }).createCertificate({ csr, ttlSeconds: 3600 }),
    S.UNAUTHENTICATED,
    /the client certificate is refused: not a valid X\.509-SVID: it must have exactly one SAN, a URI/,
  );
  await refused(
    client(admin).createCertificate({ csr, ttlSeconds: 3600 }),
    S.PERMISSION_DENIED,
    /CreateCertificate is for nodes: the caller spiffe:\/\/cluster\.local\/admin\/meshctl is not a node identity/,
  );
  const webCert = await client(n1).createCertificate({ csr, ttlSeconds: 3600 });
  await refused(
    client({
      ...anon,
      identity: { certChainPem: webCert.certChain.join(''), keyPem },
    }).createCertificate({ csr, ttlSeconds: 3600 }),
    S.PERMISSION_DENIED,
    /the caller spiffe:\/\/cluster\.local\/ns\/shop\/sa\/web is not a node identity/,
  );
  assert.deepEqual(await issued(), { ...before, workload: before.workload + 1 });
});

test('CreateJoinToken is for admins: a node certificate is refused', async () => {
  await refused(
    client(n1).createJoinToken({ node: 'n5', ttlSeconds: 0 }),
    S.PERMISSION_DENIED,
    /^MESHD_E_FORBIDDEN: CreateJoinToken is for admins: the caller spiffe:\/\/cluster\.local\/node\/n1 is not an admin identity/,
  );
});

test('monitoring: readiness and Prometheus metrics', async () => {
  const base = `http://127.0.0.1:${server.monitoringPort}`;
  const ready = await fetch(`${base}/healthz/ready`);
  assert.equal(ready.status, 200);
  const metrics = await (await fetch(`${base}/metrics`)).text();
  assert.match(metrics, /meshd_server_certificates_issued_total\{kind="node"\} [1-9]/);
  assert.match(
    metrics,
    /meshd_server_certificate_refusals_total\{reason="MESHD_E_JOIN_TOKEN"\} [1-9]/,
  );
  assert.match(
    metrics,
    /meshd_certificate_expiry_timestamp_seconds\{identity="spiffe:\/\/cluster\.local\/control-plane\/meshd-server"\}/,
  );
  assert.equal((await fetch(`${base}/nope`)).status, 404);
});

test('meshctl token create prints only the token on stdout; errors are one line with the status', async () => {
  const { stdout, stderr } = await run(NODE, [
    CTL,
    'token',
    'create',
    '--node',
    'n6',
    '--ttl',
    '10m',
    '--server',
    `127.0.0.1:${server.grpcPort}`,
    '--ca-dir',
    caDir,
  ]);
  assert.match(stdout, /^[A-Za-z0-9_-]{12}\.[A-Za-z0-9_-]{43}\n$/);
  assert.match(stderr, /^join token for node n6, valid once until \S+Z \(10m\)\n$/);
  const res = await client(anon).join({
    token: stdout.trim(),
    csr: (await keyAndCsr(nodeId(TD, 'n6'))).csr,
  });
  assert.equal(res.node, 'n6');

  await assert.rejects(
    run(NODE, [
      CTL,
      'token',
      'create',
      '--node',
      'n6',
      '--server',
      '127.0.0.1:1',
      '--ca-dir',
      caDir,
      '--timeout',
      '3s',
    ]),
    (err: { code: number; stdout: string; stderr: string }) => {
      assert.equal(err.code, 1);
      assert.equal(err.stdout, '');
      assert.match(
        err.stderr,
        /^meshctl: MESHD_E_CONTROL_PLANE: CreateJoinToken to 127\.0\.0\.1:1 failed: UNAVAILABLE: /,
      );
      return true;
    },
  );
  await assert.rejects(
    run(NODE, [CTL, 'token', 'create', '--node', 'n6', '--ca-dir', join(dir, 'nope')]),
    /MESHD_E_CA: cannot read .*nope\/admin\.pem/,
  );
});

test('tokens survive a restart; a used token stays used', async () => {
  const dataDir = join(dir, 'data-restart');
  const first = await startServer(config({ dataDir }), { logger });
  let used: string;
  let unused: string;
  try {
    const c = client(admin, first.grpcPort);
    used = (await c.createJoinToken({ node: 'n7', ttlSeconds: 0 })).token;
    unused = (await c.createJoinToken({ node: 'n8', ttlSeconds: 0 })).token;
    await client(anon, first.grpcPort).join({
      token: used,
      csr: (await keyAndCsr(nodeId(TD, 'n7'))).csr,
    });
  } finally {
    await first.close();
  }
  const second = await startServer(config({ dataDir }), { logger });
  try {
    await refused(
      client(anon, second.grpcPort).join({
        token: used,
        csr: (await keyAndCsr(nodeId(TD, 'n7'))).csr,
      }),
      S.UNAUTHENTICATED,
      /already used/,
    );
    const res = await client(anon, second.grpcPort).join({
      token: unused,
      csr: (await keyAndCsr(nodeId(TD, 'n8'))).csr,
    });
    assert.equal(res.node, 'n8');
  } finally {
    await second.close();
  }
});

test('a failed reload keeps the CA and workloads the server had', async () => {
  const file = join(dir, 'workloads.json');
  const good = readFileSync(file, 'utf8');
  writeFileSync(file, JSON.stringify({ nodes: { n1: ['spiffe://cluster.local/node/n2'] } }));
  try {
    await assert.rejects(
      server.reload(),
      /MESHD_E_SERVER_STATE|workloads file .*nodes\["n1"\]\[0\]: "spiffe:\/\/cluster\.local\/node\/n2" is not a workload ID/,
    );
    const res = await client(n1).createCertificate({
      csr: (await keyAndCsr(WEB)).csr,
      ttlSeconds: 60,
    });
    assert.equal(res.certChain.length, 2);
  } finally {
    writeFileSync(file, good);
  }
  assert.equal(await counter('meshd_server_ca_reloads_total', { result: 'failure' }), 1);
});

test('root rotation: reload serves both roots, new leaves chain to the new root, old node certificates work during the overlap', async () => {
  await rotateRoot(caDir);
  await server.reload();
  const newRootPem = readFileSync(join(caDir, 'root.pem'), 'utf8');
  assert.notEqual(newRootPem, oldRootPem);
  const bundle = await client(anon).getTrustBundle();
  assert.deepEqual(new Set(bundle.roots), new Set([newRootPem, oldRootPem]));

  // n1 still holds its old certificate and the old bundle: it is accepted and reaches us.
  const res = await client(n1).createCertificate({
    csr: (await keyAndCsr(WEB)).csr,
    ttlSeconds: 3600,
  });
  assert.equal(verifySvid(der(res.certChain), [x509(newRootPem)], TD).spiffeId, WEB);
  assert.throws(
    () => verifySvid(der(res.certChain), [x509(oldRootPem)], TD),
    /MESHD_E_SVID|not signed|root/,
  );
  // The rotated admin certificate works too.
  const admin2 = loadAdminCredentials(caDir);
  assert.ok((await client(admin2).createJoinToken({ node: 'n9', ttlSeconds: 0 })).token);
  assert.equal(await counter('meshd_server_ca_reloads_total', { result: 'success' }), 1);

  // End of the overlap: the old chain is no longer accepted, the server now proves the new root.
  finishRotation(caDir);
  await server.reload();
  const newOnly = { trustDomain: TD, bundlePem: newRootPem };
  assert.deepEqual((await client(newOnly).getTrustBundle()).roots, [newRootPem]);
  await refused(
    client({ ...newOnly, identity: n1.identity }).createCertificate({
      csr: (await keyAndCsr(WEB)).csr,
      ttlSeconds: 60,
    }),
    S.UNAUTHENTICATED,
    /needs a client certificate/,
  );
  assert.ok(logLines.some((l) => /"servingCertificateReissued":true/.test(l)));
});
