import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The directory holding meshd's package.json. The same code runs from sources and from dist/,
 * while non-TypeScript assets (the addon build, .proto files) stay beside the sources.
 */
export function packageRoot(start = dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = start; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json above ${start}`);
  }
}

let version: string | undefined;

/** meshd's version, from its package.json (read once). */
export function meshdVersion(): string {
  version ??= String(
    (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version?: unknown })
      .version ?? 'unknown',
  );
  return version;
}
