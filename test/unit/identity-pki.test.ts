// X.509-SVIDs made by meshd's CA code: accepted by openssl, conformant to the SPIFFE spec, usable
// for TLS 1.3 mutual authentication; malformed or foreign requests and certificates refused.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  checkSvidConformance,
  createCsr,
  fromPemAll,
  generateKeyPair,
  parseCsr,
  parseSpiffeId,
  spiffeIdOfPeer,
  verifySvid,
} from '../../daemon/identity/index.js';
import { issueTestSvid, makeTestCa, type TestCa } from '../support/pki.js';

let ca: TestCa;
let dir: string;

before(async () => {
  ca = await makeTestCa();
  dir = mkdtempSync(join(tmpdir(), 'meshd-pki-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

const write = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};
const openssl = (...args: string[]) =>
  execFileSync('openssl', args, { encoding: 'utf8', stdio: 'pipe' });

test('openssl verifies an issued leaf and shows the X.509-SVID fields', async () => {
  const svid = await issueTestSvid(ca, 'spiffe://cluster.local/ns/shop/sa/web');
  const root = write('root.pem', ca.rootPem);
  const intermediate = write('intermediate.pem', ca.intermediatePem);
  const leaf = write('leaf.pem', svid.certPem);
  assert.match(
    openssl('verify', '-CAfile', root, '-untrusted', intermediate, leaf),
    /leaf\.pem: OK/,
  );
  const text = openssl('x509', '-in', leaf, '-noout', '-text');
  assert.match(
    text,
    /X509v3 Subject Alternative Name: critical\s+URI:spiffe:\/\/cluster\.local\/ns\/shop\/sa\/web\n/,
  );
  assert.match(text, /X509v3 Basic Constraints: critical\s+CA:FALSE/);
  assert.match(text, /X509v3 Key Usage: critical\s+Digital Signature\n/);
  assert.match(
    text,
    /X509v3 Extended Key Usage:\s+TLS Web Server Authentication, TLS Web Client Authentication/,
  );
  assert.match(text, /Public Key Algorithm: id-ecPublicKey[\s\S]*NIST CURVE: P-256/);
  assert.match(text, /Signature Algorithm: ecdsa-with-SHA256/);
  const rootText = openssl('x509', '-in', root, '-noout', '-text');
  assert.match(rootText, /CA:TRUE/);
  assert.match(rootText, /Certificate Sign, CRL Sign/);
  assert.match(openssl('x509', '-in', intermediate, '-noout', '-text'), /CA:TRUE, pathlen:0/);
});

test('verifySvid accepts the chain and reports identity, serial and validity', async () => {
  const svid = await issueTestSvid(ca, 'spiffe://cluster.local/ns/shop/sa/web', 3600_000);
  const info = verifySvid(fromPemAll(svid.chainPem, 'CERTIFICATE'), [ca.rootX509], 'cluster.local');
  assert.equal(info.spiffeId, 'spiffe://cluster.local/ns/shop/sa/web');
  assert.equal(info.serial, new X509Certificate(svid.certPem).serialNumber.toLowerCase());
  const lifetime = info.notAfter.getTime() - info.notBefore.getTime();
  assert.ok(Math.abs(lifetime - 3600_000 - 60_000) < 2000, `lifetime ${lifetime}`);
  assert.throws(
    () => verifySvid(fromPemAll(svid.chainPem, 'CERTIFICATE'), [ca.rootX509], 'other.domain'),
    /MESHD_E_SVID|trust domain "cluster.local" is not the mesh's "other.domain"/,
  );
});

test('a leaf from another root, an expired leaf and a CA certificate are refused', async () => {
  const other = await makeTestCa();
  const foreign = await issueTestSvid(other, 'spiffe://cluster.local/ns/shop/sa/web');
  assert.throws(
    () => verifySvid(fromPemAll(foreign.chainPem, 'CERTIFICATE'), [ca.rootX509], 'cluster.local'),
    /does not lead to a root of the trust bundle|is not signed by/,
  );
  const svid = await issueTestSvid(ca, 'spiffe://cluster.local/ns/shop/sa/web', 1000);
  assert.throws(
    () =>
      verifySvid(
        fromPemAll(svid.chainPem, 'CERTIFICATE'),
        [ca.rootX509],
        'cluster.local',
        Date.now() + 5000,
      ),
    /leaf certificate is not valid now/,
  );
  const caDer = new Uint8Array(ca.intermediate.cert.toSchema().toBER(false));
  assert.throws(() => checkSvidConformance(caDer, 'cluster.local'), /exactly one SAN/);
});

test('CSRs: the agent shape is accepted; every other shape is refused with the reason', async () => {
  const keys = await generateKeyPair();
  const good = await createCsr(keys, parseSpiffeId('spiffe://cluster.local/ns/a/sa/b').id);
  assert.equal(
    (await parseCsr(good, 'cluster.local')).spiffeId,
    'spiffe://cluster.local/ns/a/sa/b',
  );
  await assert.rejects(
    parseCsr(good, 'other.local'),
    /MESHD_E_CSR|trust domain "cluster.local" is not the mesh's/,
  );
  await assert.rejects(
    parseCsr(new Uint8Array([0x30, 0x03, 1, 2, 3]), 'cluster.local'),
    /not a DER-encoded PKCS#10/,
  );
  const tampered = Uint8Array.from(good);
  tampered[tampered.length - 5] = (tampered[tampered.length - 5] ?? 0) ^ 0xff;
  await assert.rejects(parseCsr(tampered, 'cluster.local'), /signature does not verify|not a DER/);

  const cases: [string, string[], RegExp][] = [
    ['ec:P-256', ['-subj', '/CN=web'], /exactly one URI SAN \(found 0\)/],
    [
      'ec:P-256',
      [
        '-subj',
        '/',
        '-addext',
        'subjectAltName=URI:spiffe://cluster.local/ns/a/sa/b,URI:spiffe://cluster.local/ns/a/sa/c',
      ],
      /exactly one URI SAN \(found 2\)/,
    ],
    [
      'ec:P-256',
      [
        '-subj',
        '/',
        '-addext',
        'subjectAltName=URI:spiffe://cluster.local/ns/a/sa/b,DNS:web.local',
      ],
      /only a URI SAN is allowed \(found GeneralName type 2\)/,
    ],
    [
      'ec:P-256',
      ['-subj', '/', '-addext', 'subjectAltName=URI:spiffe://cluster.local'],
      /path must not be empty/,
    ],
    [
      'ec:P-384',
      ['-subj', '/', '-addext', 'subjectAltName=URI:spiffe://cluster.local/ns/a/sa/b'],
      /must be ECDSA P-256 .*curve 1\.3\.132\.0\.34/,
    ],
    [
      'rsa:2048',
      ['-subj', '/', '-addext', 'subjectAltName=URI:spiffe://cluster.local/ns/a/sa/b'],
      /must be ECDSA P-256 \(got algorithm 1\.2\.840\.113549\.1\.1\.1/,
    ],
  ];
  for (const [key, args, reason] of cases) {
    const keyFile = join(dir, 'k.pem');
    const [alg, param] = key.split(':');
    if (alg === 'ec')
      openssl(
        'genpkey',
        '-algorithm',
        'EC',
        '-pkeyopt',
        `ec_paramgen_curve:${param}`,
        '-out',
        keyFile,
      );
    else
      openssl(
        'genpkey',
        '-algorithm',
        'RSA',
        '-pkeyopt',
        `rsa_keygen_bits:${param}`,
        '-out',
        keyFile,
      );
    const der = execFileSync('openssl', [
      'req',
      '-new',
      '-key',
      keyFile,
      '-outform',
      'DER',
      ...args,
    ]);
    await assert.rejects(
      parseCsr(new Uint8Array(der), 'cluster.local'),
      reason,
      `${key} ${args.join(' ')}`,
    );
  }
});

test('TLS 1.3: two SVIDs authenticate each other and read the peer SPIFFE ID; another root is refused', async () => {
  const { connect, createServer } = await import('node:tls');
  const server = await issueTestSvid(ca, 'spiffe://cluster.local/ns/db/sa/postgres');
  const client = await issueTestSvid(ca, 'spiffe://cluster.local/ns/shop/sa/web');
  const tlsOptions = (svid: typeof server) => ({
    key: svid.keyPem,
    cert: svid.chainPem,
    ca: ca.rootPem,
    minVersion: 'TLSv1.3' as const,
  });
  let seenByServer = '';
  let accepted = 0;
  const srv = createServer(
    { ...tlsOptions(server), requestCert: true, rejectUnauthorized: true },
    (s) => {
      accepted++;
      seenByServer = spiffeIdOfPeer(s.getPeerX509Certificate(), 'cluster.local');
      s.end('ok');
    },
  );
  const serverErrors: string[] = [];
  srv.on('tlsClientError', (err) => serverErrors.push(err.message));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  // In TLS 1.3 the client finishes before the server has judged its certificate, so a dial
  // counts as accepted only once the server's answer arrives.
  const dial = (svid: typeof server) =>
    new Promise<string>((resolve, reject) => {
      const s = connect({
        ...tlsOptions(svid),
        host: '127.0.0.1',
        port,
        checkServerIdentity: () => undefined,
      });
      let peer = '';
      let data = '';
      s.on('secureConnect', () => {
        assert.equal(s.getProtocol(), 'TLSv1.3');
        peer = spiffeIdOfPeer(s.getPeerX509Certificate(), 'cluster.local');
      });
      s.on('data', (c: Buffer) => {
        data += c.toString();
      });
      s.on('end', () =>
        data === 'ok' ? resolve(peer) : reject(new Error(`closed after "${data}"`)),
      );
      s.on('error', reject);
    });
  try {
    assert.equal(await dial(client), 'spiffe://cluster.local/ns/db/sa/postgres');
    assert.equal(seenByServer, 'spiffe://cluster.local/ns/shop/sa/web');
    const foreign = await issueTestSvid(
      await makeTestCa(),
      'spiffe://cluster.local/ns/shop/sa/web',
    );
    // The foreign client trusts our root (so it gets as far as sending its certificate) but is refused.
    await assert.rejects(dial(foreign), /alert|certificate|closed after ""/i);
    assert.equal(accepted, 1, 'the server never accepted the foreign client');
    assert.equal(serverErrors.length, 1, 'the server reported one failed TLS client');
  } finally {
    srv.close();
  }
});
