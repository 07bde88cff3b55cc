/**
 * meshctl's connection settings, like a kubeconfig: which server(s) to call and with which
 * admin credentials. Read from --config, $MESHCTL_CONFIG or ~/.meshd/config.yaml; flags win
 * over the file, the file over the defaults.
 *
 *   servers: [10.0.0.1:15012, 10.0.0.2:15012]   # tried in order
 *   caDir: /etc/meshd/ca                        # admin.pem, admin.key, bundle.pem
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import YAML from 'yaml';
import { MeshdError } from '../daemon/errors.js';
import { writeFileAtomic } from '../daemon/files.js';
import { DEFAULT_CA_DIR, DEFAULT_SERVER } from './client.js';

export interface CtlConfig {
  servers: string[];
  caDir: string;
}

export function configPath(flag?: string, env = process.env): string {
  return flag || env.MESHCTL_CONFIG || join(homedir(), '.meshd', 'config.yaml');
}

function fail(path: string, reason: string): never {
  throw new MeshdError('MESHD_E_CONFIG', `${path}: ${reason}`, {
    hint: 'write it with "meshctl config set --server HOST:PORT --ca-dir DIR"',
  });
}

export function readCtlConfig(path: string): Partial<CtlConfig> {
  if (!existsSync(path)) return {};
  let doc: unknown;
  try {
    doc = YAML.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    fail(path, `not valid YAML: ${(err as Error).message}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) fail(path, 'expected a mapping');
  const { servers, server, caDir, ...rest } = doc as Record<string, unknown>;
  const unknown = Object.keys(rest);
  if (unknown.length) fail(path, `unknown field "${unknown[0]}" (known: servers, server, caDir)`);
  const list = servers ?? (server === undefined ? undefined : [server]);
  if (
    list !== undefined &&
    (!Array.isArray(list) || list.some((s) => typeof s !== 'string' || !s))
  ) {
    fail(path, 'servers: expected a list of host:port strings');
  }
  if (caDir !== undefined && typeof caDir !== 'string') fail(path, 'caDir: expected a path');
  return { ...(list ? { servers: list as string[] } : {}), ...(caDir ? { caDir } : {}) };
}

export interface ConnectionFlags {
  config?: string;
  server?: string;
  caDir?: string;
}

/** Flags, then the config file, then $MESHCTL_SERVER/$MESHCTL_CA_DIR, then the defaults. */
export function resolveConnection(flags: ConnectionFlags, env = process.env): CtlConfig {
  const file = readCtlConfig(configPath(flags.config, env));
  const servers = flags.server
    ? flags.server.split(',')
    : (file.servers ?? (env.MESHCTL_SERVER ? env.MESHCTL_SERVER.split(',') : [DEFAULT_SERVER]));
  return { servers, caDir: flags.caDir ?? file.caDir ?? env.MESHCTL_CA_DIR ?? DEFAULT_CA_DIR };
}

export function writeCtlConfig(path: string, config: CtlConfig): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  writeFileAtomic(path, YAML.stringify({ servers: config.servers, caDir: config.caDir }), 0o600);
}
