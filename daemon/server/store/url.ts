/**
 * The `--store` URL forms:
 *   file:///var/lib/meshd/server/store   or a bare path (absolute or relative)  → file store
 *   etcd://host:port[,host:port…][/prefix]                                     → etcd
 * The etcd prefix defaults to /meshd/; it always starts and ends with '/'.
 */
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { StoreError } from './errors.js';

export const DEFAULT_ETCD_PREFIX = '/meshd/';
export const DEFAULT_ETCD_PORT = 2379;

export interface EtcdEndpoint {
  host: string;
  port: number;
}

export type StoreLocation =
  | { kind: 'file'; dir: string }
  | { kind: 'etcd'; endpoints: EtcdEndpoint[]; prefix: string };

const FORMS = "use 'file:///path', a bare path, or 'etcd://host:port[,host:port…][/prefix]'";

function bad(url: string, reason: string): StoreError {
  return new StoreError(`invalid store URL ${JSON.stringify(url)}: ${reason}`, { hint: FORMS });
}

function parseEndpoint(url: string, text: string): EtcdEndpoint {
  let host: string;
  let portText: string | undefined;
  if (text.startsWith('[')) {
    const end = text.indexOf(']');
    if (end < 0) throw bad(url, `unterminated IPv6 address in ${JSON.stringify(text)}`);
    host = text.slice(1, end);
    const rest = text.slice(end + 1);
    if (rest !== '' && !rest.startsWith(':'))
      throw bad(url, `bad endpoint ${JSON.stringify(text)}`);
    portText = rest === '' ? undefined : rest.slice(1);
  } else {
    const parts = text.split(':');
    if (parts.length > 2) throw bad(url, `IPv6 addresses need brackets: ${JSON.stringify(text)}`);
    host = parts[0] ?? '';
    portText = parts[1];
  }
  if (!/^[A-Za-z0-9.:-]+$/.test(host)) throw bad(url, `bad host in ${JSON.stringify(text)}`);
  let port = DEFAULT_ETCD_PORT;
  if (portText !== undefined) {
    if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) {
      throw bad(url, `bad port in ${JSON.stringify(text)}`);
    }
    port = Number(portText);
  }
  return { host, port };
}

export function parseStoreUrl(url: string, cwd = process.cwd()): StoreLocation {
  if (url.trim() === '') throw bad(url, 'it is empty');
  if (url.startsWith('etcd://')) {
    const rest = url.slice('etcd://'.length);
    const slash = rest.indexOf('/');
    const hostPart = slash < 0 ? rest : rest.slice(0, slash);
    const prefixPart = slash < 0 ? '' : rest.slice(slash);
    if (hostPart === '') throw bad(url, 'no etcd endpoint');
    const endpoints = hostPart.split(',').map((e) => parseEndpoint(url, e));
    let prefix = DEFAULT_ETCD_PREFIX;
    if (prefixPart !== '' && prefixPart !== '/') {
      if (/[?#]/.test(prefixPart)) throw bad(url, 'query and fragment are not supported');
      prefix = prefixPart.endsWith('/') ? prefixPart : `${prefixPart}/`;
    }
    return { kind: 'etcd', endpoints, prefix };
  }
  if (url.startsWith('file:')) {
    let dir: string;
    try {
      dir = fileURLToPath(url);
    } catch (cause) {
      throw bad(url, (cause as Error).message);
    }
    return { kind: 'file', dir };
  }
  if (/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(url)) {
    throw bad(url, `unknown scheme ${JSON.stringify(url.split(':')[0])}`);
  }
  return { kind: 'file', dir: isAbsolute(url) ? resolve(url) : resolve(cwd, url) };
}
