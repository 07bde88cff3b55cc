// The agent reads certificates and writes CSRs with a few DER routines instead of pkijs: every
// X.509-SVID rule still refuses a certificate that breaks it (certificates made by openssl),
// openssl accepts the requests, and the agent's side of identity never loads pkijs.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { decodeOid, oid, readAll, readOne, TAG, tlv } from '../../daemon/identity/der.js';
import {
  checkSvidConformance,
  createCsr,
  generateKeyPair,
  parseCsr,
  parseSpiffeId,
} from '../../daemon/identity/index.js';
import { issueTestSvid, makeTestCa } from '../support/pki.js';

const ID = 'spiffe://cluster.local/ns/shop/sa/web';
// openssl leaves CA:FALSE out of basicConstraints (DEFAULT FALSE), as the CA does.
const LEAF = [
  'basicConstraints=critical,CA:FALSE',
  'keyUsage=critical,digitalSignature',
  'extendedKeyUsage=serverAuth,clientAuth',
  `subjectAltName=critical,URI:${ID}`,
];

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'meshd-der-'));
  execFileSync('openssl', [
    'genpkey',
    '-algorithm',
    'EC',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-out',
    join(dir, 'key.pem'),
  ]);
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** A self-signed certificate with exactly these extensions (no signature check is involved). */
function certificate(extensions: string[]): Uint8Array {
  const config = join(dir, 'ext.cnf');
  writeFileSync(
    config,
    `[req]\ndistinguished_name=dn\nx509_extensions=leaf\n[dn]\n[leaf]\n${extensions.join('\n')}\n`,
  );
  const der = execFileSync('openssl', [
    'req',
    '-x509',
    '-new',
    '-key',
    join(dir, 'key.pem'),
    '-subj',
    '/',
    '-days',
    '1',
    '-config',
    config,
    '-outform',
    'DER',
  ]);
  return new Uint8Array(der);
}

const replace = (list: string[], prefix: string, by?: string) =>
  list.flatMap((e) => (e.startsWith(prefix) ? (by ? [by] : []) : [e]));

test('a conformant leaf made by openssl or by the CA gives its SPIFFE ID', async () => {
  assert.equal(checkSvidConformance(certificate(LEAF), 'cluster.local'), ID);
  const svid = await issueTestSvid(await makeTestCa(), ID);
  assert.equal(checkSvidConformance(svid.der, 'cluster.local'), ID);
});

test('every X.509-SVID rule refuses a certificate that breaks it, naming the rule', () => {
  const cases: [string, string[], RegExp][] = [
    ['no SAN', replace(LEAF, 'subjectAltName'), /exactly one SAN, a URI \(found 0 URI of 0\)/],
    [
      'two URIs',
      replace(LEAF, 'subjectAltName', `subjectAltName=critical,URI:${ID},URI:${ID}2`),
      /found 2 URI of 2/,
    ],
    [
      'URI and DNS',
      replace(LEAF, 'subjectAltName', `subjectAltName=critical,URI:${ID},DNS:web.local`),
      /found 1 URI of 2/,
    ],
    [
      'DNS only',
      replace(LEAF, 'subjectAltName', 'subjectAltName=DNS:web.local'),
      /found 0 URI of 1/,
    ],
    ['no basicConstraints', replace(LEAF, 'basicConstraints'), /basicConstraints with cA=false/],
    [
      'a CA',
      replace(LEAF, 'basicConstraints', 'basicConstraints=critical,CA:TRUE'),
      /basicConstraints with cA=false/,
    ],
    ['no keyUsage', replace(LEAF, 'keyUsage'), /keyUsage must be present and critical/],
    [
      'keyUsage not critical',
      replace(LEAF, 'keyUsage', 'keyUsage=digitalSignature'),
      /keyUsage must be present and critical/,
    ],
    [
      'no digitalSignature',
      replace(LEAF, 'keyUsage', 'keyUsage=critical,keyEncipherment'),
      /keyUsage must include digitalSignature/,
    ],
    [
      'keyCertSign',
      replace(LEAF, 'keyUsage', 'keyUsage=critical,digitalSignature,keyCertSign'),
      /must not have keyCertSign or cRLSign/,
    ],
    [
      'cRLSign',
      replace(LEAF, 'keyUsage', 'keyUsage=critical,digitalSignature,cRLSign'),
      /must not have keyCertSign or cRLSign/,
    ],
    [
      'serverAuth only',
      replace(LEAF, 'extendedKeyUsage', 'extendedKeyUsage=serverAuth'),
      /extKeyUsage must include serverAuth and clientAuth/,
    ],
    ['no extKeyUsage', replace(LEAF, 'extendedKeyUsage'), /extKeyUsage must include/],
  ];
  for (const [name, extensions, reason] of cases) {
    assert.throws(
      () => checkSvidConformance(certificate(extensions), 'cluster.local'),
      reason,
      name,
    );
  }
  assert.throws(
    () => checkSvidConformance(certificate(LEAF), 'other.local'),
    /trust domain "cluster.local" is not the mesh's "other.local"/,
  );
});

test('a repeated extension, malformed DER and non-certificates are refused', () => {
  const good = certificate(LEAF);
  // Rebuild the certificate with its SAN extension twice (openssl refuses to write that).
  const [tbs, sigAlg, sig] = readAll(readOne(good, TAG.sequence).value);
  assert.ok(tbs && sigAlg && sig);
  const fields = readAll(tbs.value).map((field) => {
    if (field.tag !== 0xa3) return tlv(field.tag, field.value);
    const exts = readAll(readOne(field.value, TAG.sequence).value);
    const san = exts.find(
      (e) => decodeOid(readAll(e.value)[0]?.value ?? new Uint8Array()) === '2.5.29.17',
    );
    assert.ok(san);
    const encoded = [...exts, san].map((e) => tlv(e.tag, e.value));
    return tlv(0xa3, tlv(TAG.sequence, ...encoded));
  });
  const twice = tlv(
    TAG.sequence,
    tlv(TAG.sequence, ...fields),
    tlv(sigAlg.tag, sigAlg.value),
    tlv(sig.tag, sig.value),
  );
  assert.throws(
    () => checkSvidConformance(twice, 'cluster.local'),
    /extension 2\.5\.29\.17 appears 2 times/,
  );
  for (const bad of [
    good.subarray(0, good.length - 10), // truncated
    Uint8Array.of(0x30, 0x80, 0, 0), // indefinite length (BER, not DER)
    Uint8Array.of(0x04, 0x01, 0x00), // an OCTET STRING
    new Uint8Array(), // nothing
    Uint8Array.of(...good, 0x00), // trailing byte
  ]) {
    assert.throws(
      () => checkSvidConformance(bad, 'cluster.local'),
      /not a DER-encoded X\.509 certificate/,
    );
  }
});

test('OIDs and lengths encode as openssl and pkijs expect', () => {
  assert.deepEqual([...oid('1.2.840.10045.4.3.2')], [6, 8, 0x2a, 0x86, 0x48, 0xce, 0x3d, 4, 3, 2]);
  for (const dotted of ['2.5.29.17', '1.3.6.1.5.5.7.3.1', '1.2.840.113549.1.9.14', '2.999.3']) {
    assert.equal(decodeOid(readOne(oid(dotted), TAG.oid).value), dotted);
  }
  for (const size of [0, 1, 127, 128, 255, 256, 70_000]) {
    const element = tlv(TAG.octetString, new Uint8Array(size));
    assert.equal(readOne(element, TAG.octetString).value.length, size);
  }
  assert.deepEqual([...tlv(TAG.octetString, new Uint8Array(200)).subarray(0, 3)], [4, 0x81, 200]);
});

test('the request the agent writes is verified by openssl and accepted by the CA', async () => {
  const keys = await generateKeyPair();
  const csr = await createCsr(keys, parseSpiffeId(ID).id);
  const file = join(dir, 'req.der');
  writeFileSync(file, csr);
  const text = execFileSync(
    'openssl',
    ['req', '-inform', 'DER', '-in', file, '-verify', '-noout', '-text'],
    { encoding: 'utf8', stdio: 'pipe' },
  );
  assert.match(text, /Version: 1 \(0x0\)/);
  assert.match(text, /Subject: *\n/);
  assert.match(text, /NIST CURVE: P-256/);
  assert.match(
    text,
    /X509v3 Subject Alternative Name: critical\s+URI:spiffe:\/\/cluster\.local\/ns\/shop\/sa\/web\n/,
  );
  assert.match(text, /Signature Algorithm: ecdsa-with-SHA256/);
  assert.equal((await parseCsr(csr, 'cluster.local')).spiffeId, ID);
});

test('checking certificates and writing requests does not load pkijs', () => {
  const script = `
    import { createRequire } from 'node:module';
    const id = await import(${JSON.stringify(new URL('../../daemon/identity/index.js', import.meta.url).href)});
    const keys = await id.generateKeyPair();
    await id.createCsr(keys, ${JSON.stringify(ID)});
    try { id.checkSvidConformance(new Uint8Array([0x30, 0]), 'cluster.local'); } catch {}
    const loaded = Object.keys(createRequire(import.meta.url).cache).filter((f) => /pkijs|asn1js/.test(f));
    console.log(JSON.stringify(loaded));
  `;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
  });
  assert.deepEqual(JSON.parse(out), []);
});
