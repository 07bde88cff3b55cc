/** `meshctl ca …`: make the mesh CA and rotate its root. */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import {
  CA_FILES,
  finishRotation,
  fromPemAll,
  initCa,
  isTrustDomain,
  rotateRoot,
} from '../daemon/identity/index.js';
import { defaultCaDir } from './client.js';
import { formatTable } from './output.js';

export function registerCaCommands(program: Command): void {
  const ca = program.command('ca').description("the mesh's certificate authority");

  ca.command('init')
    .description('make a root CA, the server intermediate CA and an admin certificate for meshctl')
    .requiredOption('--trust-domain <domain>', 'SPIFFE trust domain of the mesh', 'cluster.local')
    .requiredOption('--out <dir>', 'directory for the CA files (keys are written mode 0600)')
    .option('--force', 'replace existing CA keys (every issued certificate stops verifying)')
    .action(async (opts: { trustDomain: string; out: string; force?: boolean }) => {
      if (!isTrustDomain(opts.trustDomain)) {
        throw new Error(
          `--trust-domain "${opts.trustDomain}": use lowercase letters, digits, ".", "-", "_"`,
        );
      }
      await initCa({ dir: opts.out, trustDomain: opts.trustDomain, force: opts.force ?? false });
      console.log(`CA for trust domain ${opts.trustDomain} written to ${opts.out}`);
      console.log(describeCa(opts.out));
    });

  ca.command('rotate')
    .description('start a root rotation (bundle holds old and new root), or --finish it')
    .option('--dir <dir>', 'the CA directory', defaultCaDir())
    .option('--finish', 'end the overlap: drop the previous root from the bundle')
    .action(async (opts: { dir: string; finish?: boolean }) => {
      if (opts.finish) {
        finishRotation(opts.dir);
        console.log('rotation finished: the bundle holds only the new root');
      } else {
        await rotateRoot(opts.dir);
        console.log('rotation started: new root and intermediate; the bundle holds both roots');
        console.log('next: reload the server (systemctl reload meshd-server, or kill -HUP), let');
        console.log('every certificate renew (at most one TTL), then: meshctl ca rotate --finish');
      }
      console.log(describeCa(opts.dir));
    });

  ca.command('show')
    .description('list the certificates of a CA directory')
    .option('--dir <dir>', 'the CA directory', defaultCaDir())
    .action((opts: { dir: string }) => console.log(describeCa(opts.dir)));
}

const FILES_SHOWN: [string, string][] = [
  ['bundle', CA_FILES.bundle],
  ['intermediate', CA_FILES.intermediate],
  ['admin', CA_FILES.admin],
];

/** A table of every certificate in the bundle, the intermediate and the admin chain's leaf. */
export function describeCa(dir: string): string {
  const rows = FILES_SHOWN.flatMap(([role, file]) => {
    const ders = fromPemAll(readFileSync(join(dir, file), 'utf8'), 'CERTIFICATE');
    const shown = role === 'admin' ? ders.slice(0, 1) : ders;
    return shown.map((der, i) => {
      const cert = new X509Certificate(der);
      const name = cert.subjectAltName?.replace(/^URI:/, '') || cert.subject.replace(/\n/g, ', ');
      return [
        role === 'bundle' ? `root${i ? ' (previous)' : ''}` : role,
        name,
        cert.serialNumber.toLowerCase().slice(0, 16),
        cert.validTo,
      ];
    });
  });
  return formatTable(['role', 'subject', 'serial', 'not after'], rows);
}
