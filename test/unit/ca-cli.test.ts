// `meshctl ca init|rotate|show` through the real CLI: files and modes, refusal to overwrite,
// and a root rotation during which certificates from the old and the new root both verify and
// authenticate each other over TLS 1.3.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { connect, createServer } from 'node:tls';
import { promisify } from 'node:util';
import {
  fromPemAll,
  loadCa,
  spiffeIdOfPeer,
  toPem,
  verifySvid,
} from '../../daemon/identity/index.js';
import { issueTestSvid, type TestCa } from '../support/pki.js';

const exec = promisify(execFile);
const CTL = new URL('../../ctl/main.js', import.meta.url).pathname;
const meshctl = (...args: string[]) => exec(process.execPath, [CTL, ...args]);
let dir: string;
let caDir: string;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'meshd-ca-cli-'));
  caDir = join(dir, 'ca');
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** The CA directory's current signer as test CA material, to issue leaves from it. */
async function signerOf(): Promise<TestCa> {
  const ca = await loadCa(caDir);
  const rootPem = readFileSync(join(caDir, 'root.pem'), 'utf8');
  return {
    trustDomain: ca.trustDomain,
    root: ca.signer, // issueTestSvid signs with the intermediate only
    intermediate: ca.signer,
    rootPem,
    intermediatePem: ca.intermediatePem,
    rootX509: new X509Certificate(rootPem),
  };
}

const bundleRoots = () =>
  fromPemAll(readFileSync(join(caDir, 'bundle.pem'), 'utf8'), 'CERTIFICATE').map(
    (d) => new X509Certificate(d),
  );

test('ca init writes root, intermediate, bundle and admin certificate; keys are 0600', async () => {
  const { stdout } = await meshctl('ca', 'init', '--trust-domain', 'example.org', '--out', caDir);
  assert.match(stdout, /CA for trust domain example\.org written to/);
  assert.match(stdout, /^admin\s+spiffe:\/\/example\.org\/admin\/meshctl\s/m);
  for (const key of ['root.key', 'intermediate.key', 'admin.key']) {
    assert.equal(statSync(join(caDir, key)).mode & 0o777, 0o600, key);
  }
  const admin = fromPemAll(readFileSync(join(caDir, 'admin.pem'), 'utf8'), 'CERTIFICATE');
  const info = verifySvid(admin, bundleRoots(), 'example.org');
  assert.equal(info.spiffeId, 'spiffe://example.org/admin/meshctl');
});

test('ca init refuses to overwrite existing keys without --force', async () => {
  const before = readFileSync(join(caDir, 'root.key'), 'utf8');
  await assert.rejects(
    meshctl('ca', 'init', '--trust-domain', 'example.org', '--out', caDir),
    (err: { stderr: string; code: number }) => {
      assert.equal(err.code, 1);
      assert.match(
        err.stderr,
        /MESHD_E_CA: .*root\.key already exists; not overwriting CA keys.*--force/,
      );
      return true;
    },
  );
  assert.equal(readFileSync(join(caDir, 'root.key'), 'utf8'), before);
  await assert.rejects(
    meshctl('ca', 'init', '--trust-domain', 'Bad Domain', '--out', join(dir, 'x')),
    /--trust-domain "Bad Domain"/,
  );
});

test('ca rotate: during the overlap old- and new-root certificates verify and talk; --finish drops the old root', async () => {
  const oldCa = await signerOf();
  const oldLeaf = await issueTestSvid(oldCa, 'spiffe://example.org/ns/a/sa/old');
  const { stdout } = await meshctl('ca', 'rotate', '--dir', caDir);
  assert.match(stdout, /rotation started/);
  assert.match(stdout, /^root \(previous\)\s/m);
  assert.equal(bundleRoots().length, 2);
  await assert.rejects(meshctl('ca', 'rotate', '--dir', caDir), /already in progress/);

  const newCa = await signerOf();
  assert.notEqual(newCa.intermediatePem, oldCa.intermediatePem);
  const newLeaf = await issueTestSvid(newCa, 'spiffe://example.org/ns/b/sa/new');
  for (const leaf of [oldLeaf, newLeaf]) {
    verifySvid(fromPemAll(leaf.chainPem, 'CERTIFICATE'), bundleRoots(), 'example.org');
  }
  const bundlePem = bundleRoots()
    .map((r) => toPem('CERTIFICATE', r.raw))
    .join('');
  assert.equal(await handshake(oldLeaf, newLeaf, bundlePem), 'spiffe://example.org/ns/a/sa/old');

  await meshctl('ca', 'rotate', '--dir', caDir, '--finish');
  assert.equal(bundleRoots().length, 1);
  assert.throws(
    () => verifySvid(fromPemAll(oldLeaf.chainPem, 'CERTIFICATE'), bundleRoots(), 'example.org'),
    /does not lead to a root of the trust bundle|is not signed by/,
  );
  verifySvid(fromPemAll(newLeaf.chainPem, 'CERTIFICATE'), bundleRoots(), 'example.org');
  await assert.rejects(
    meshctl('ca', 'rotate', '--dir', caDir, '--finish'),
    /no root rotation is in progress/,
  );
});

/** Server holds `serverSvid`, client `clientSvid`; both trust `bundlePem`. Returns the server's ID as the client saw it. */
async function handshake(
  serverSvid: { keyPem: string; chainPem: string },
  clientSvid: { keyPem: string; chainPem: string },
  bundlePem: string,
): Promise<string> {
  const server = createServer(
    {
      key: serverSvid.keyPem,
      cert: serverSvid.chainPem,
      ca: bundlePem,
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.3',
    },
    (s) => s.end(spiffeIdOfPeer(s.getPeerX509Certificate(), 'example.org')),
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    return await new Promise<string>((resolve, reject) => {
      const port = (server.address() as { port: number }).port;
      const s = connect({
        host: '127.0.0.1',
        port,
        key: clientSvid.keyPem,
        cert: clientSvid.chainPem,
        ca: bundlePem,
        checkServerIdentity: () => undefined,
      });
      let seenByServer = '';
      let serverId = '';
      s.on('secureConnect', () => {
        serverId = spiffeIdOfPeer(s.getPeerX509Certificate(), 'example.org');
      });
      s.on('data', (c: Buffer) => {
        seenByServer += c.toString();
      });
      s.on('end', () =>
        seenByServer === 'spiffe://example.org/ns/b/sa/new'
          ? resolve(serverId)
          : reject(new Error(`server saw ${seenByServer}`)),
      );
      s.on('error', reject);
    });
  } finally {
    server.close();
  }
}
