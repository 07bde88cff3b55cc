// Builds the N-API addon in daemon/native with node-gyp against the headers of the pinned
// Node 24 runtime (node_modules/node), so nothing is downloaded at install time.
// Skips the build when the addon is newer than every source file. Plain JS: it may run on any Node.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const addonDir = join(root, 'daemon', 'native');
const output = join(addonDir, 'build', 'Release', 'meshd_native.node');
const headersDir = join(root, 'node_modules', 'node', 'node_modules', `node-linux-${process.arch}`);

function newestSource() {
  const files = ['binding.gyp', ...readdirSync(join(addonDir, 'src')).map((f) => join('src', f))];
  return Math.max(...files.map((f) => statSync(join(addonDir, f)).mtimeMs));
}

if (!existsSync(join(headersDir, 'include', 'node', 'node_api.h'))) {
  console.error(
    `meshd: Node headers not found in ${headersDir}; run "npm ci" so the pinned node package installs`,
  );
  process.exit(1);
}
if (
  existsSync(output) &&
  statSync(output).mtimeMs >= newestSource() &&
  !process.argv.includes('--force')
) {
  process.exit(0);
}
const gyp = join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
const result = spawnSync(
  process.execPath,
  [gyp, 'rebuild', `--nodedir=${headersDir}`, '--jobs=2'],
  {
    cwd: addonDir,
    stdio: ['ignore', 'inherit', 'inherit'],
  },
);
if (result.status !== 0) {
  console.error('meshd: building the native addon failed (see the compiler output above)');
  process.exit(result.status ?? 1);
}
