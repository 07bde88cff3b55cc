/**
 * Chaining meshd-cni into a node's CNI configuration (docs/cni.md): the runtime uses the first
 * network config file by name in its conf dir, so meshd-cni is added as the last plugin of that
 * file's list (DEL then runs it first, while the interface still exists), and removed from it
 * again on request. A single-plugin `.conf` is turned into a `.conflist`.
 */
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { CNI_DEFAULTS } from '../../cni/index.js';
import { writeFileAtomic } from '../../daemon/files.js';
import { installError } from './files.js';

export const MESHD_CNI_TYPE = 'meshd-cni';

export interface MeshdCniEntryOptions {
  agentSocket: string;
  timeoutMs: number;
  logFile: string;
}

export const DEFAULT_CNI_ENTRY: MeshdCniEntryOptions = {
  agentSocket: CNI_DEFAULTS.agentSocket,
  timeoutMs: CNI_DEFAULTS.timeoutMs,
  logFile: CNI_DEFAULTS.logFile,
};

type Json = Record<string, unknown>;

export function meshdCniEntry(o: MeshdCniEntryOptions): Json {
  return {
    type: MESHD_CNI_TYPE,
    agentSocket: o.agentSocket,
    timeoutMs: o.timeoutMs,
    logFile: o.logFile,
  };
}

const isObject = (v: unknown): v is Json =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const isMeshd = (p: unknown) => isObject(p) && p.type === MESHD_CNI_TYPE;

/** A network config as a list: a conflist as it is, a single-plugin conf wrapped in one. */
function asList(config: unknown, where: string): Json {
  if (!isObject(config))
    throw installError(`${where}: not a JSON object`, 'fix or remove the file');
  if (Array.isArray(config.plugins)) return config;
  if (typeof config.type === 'string') {
    const { cniVersion, name, ...plugin } = config;
    return { cniVersion, name, plugins: [plugin] };
  }
  throw installError(
    `${where}: neither a network configuration list ("plugins") nor a single plugin ("type")`,
    'fix or remove the file',
  );
}

/** The config with meshd-cni as its last plugin, exactly once. */
export function chainMeshdCni(config: unknown, entry: Json, where = 'CNI config'): Json {
  const list = asList(config, where);
  const others = (list.plugins as unknown[]).filter((p) => !isMeshd(p));
  return { ...list, plugins: [...others, entry] };
}

/** The config without any meshd-cni plugin. */
export function unchainMeshdCni(config: unknown, where = 'CNI config'): Json {
  const list = asList(config, where);
  return { ...list, plugins: (list.plugins as unknown[]).filter((p) => !isMeshd(p)) };
}

const CONFIG_FILE = /\.(conf|conflist|json)$/;

/** The file the runtime uses: the first config file by name (as libcni sorts them). */
export function primaryConfigFile(confDir: string): string | undefined {
  if (!existsSync(confDir)) return undefined;
  return readdirSync(confDir)
    .filter((f) => CONFIG_FILE.test(f))
    .sort()[0];
}

export interface ChainResult {
  /** The file now holding the chain. */
  file: string;
  action: 'chained' | 'unchanged' | 'unchained' | 'converted to .conflist';
}

function readConfig(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw installError(`${path}: not valid JSON (${(err as Error).message})`, 'fix or remove it');
  }
}

const text = (config: Json) => `${JSON.stringify(config, null, 2)}\n`;

/** Adds (or with `remove`, takes out) meshd-cni in the primary config file of `confDir`. */
export function installCniChain(
  confDir: string,
  entry: MeshdCniEntryOptions,
  remove = false,
): ChainResult {
  const name = primaryConfigFile(confDir);
  if (name === undefined) {
    throw installError(
      `no CNI network configuration (*.conflist, *.conf, *.json) in ${confDir}`,
      "the node's primary CNI plugin (flannel, calico, cilium, ...) writes one when it starts; meshd-cni is chained into it afterwards, so run this again then (the agent's init container is retried until it succeeds)",
    );
  }
  const path = join(confDir, name);
  const before = readConfig(path);
  const after = remove
    ? unchainMeshdCni(before, path)
    : chainMeshdCni(before, meshdCniEntry(entry), path);
  if (name.endsWith('.conf') && !remove && isObject(before) && !Array.isArray(before.plugins)) {
    const listPath = path.replace(/\.conf$/, '.conflist');
    writeFileAtomic(listPath, text(after), 0o644);
    rmSync(path);
    return { file: listPath, action: 'converted to .conflist' };
  }
  if (JSON.stringify(after) === JSON.stringify(asList(before, path))) {
    return { file: path, action: 'unchanged' };
  }
  writeFileAtomic(path, text(after), 0o644);
  return { file: path, action: remove ? 'unchained' : 'chained' };
}
