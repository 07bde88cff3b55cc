/**
 * Loader and raw types of the N-API addon (src/*.cc). Only daemon/net imports this module: it
 * validates arguments and turns the addon's errors into MeshdErrors. The addon is loaded lazily, on first use, so that importing
 * daemon/net never fails on a host without it.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { MeshdError } from '../errors.js';
import { packageRoot } from '../paths.js';

/** Address family as the addon takes it. */
export type NativeFamily = 4 | 6;

export interface NativeSocketOptions {
  netnsPath: string;
  family: NativeFamily;
  /** listen(backlog) after bind; a listener binds to the wildcard address when none is given. */
  listen: boolean;
  /** Numeric IP literal of `family`; giving address or port makes the addon bind. */
  address?: string;
  port?: number;
  /** Default 511. */
  backlog?: number;
  mark?: number;
  transparent?: boolean;
  freebind?: boolean;
  /** Default: true for a listener, false otherwise. */
  reuseAddr?: boolean;
  reusePort?: boolean;
  /** IPV6_V6ONLY, family 6 only; set explicitly (default false = dual-stack). */
  ipv6Only?: boolean;
  /** SO_LINGER on with these seconds (0: close() resets); absent: off. */
  linger?: number;
}

/** SO_KEEPALIVE and its TCP timings, as read back from the kernel. */
export interface NativeKeepalive {
  enabled: boolean;
  idleSeconds: number;
  intervalSeconds: number;
  count: number;
}

/** SO_KEEPALIVE and its TCP timings, as read back from the kernel. */
export interface NativeKeepalive {
  enabled: boolean;
  idleSeconds: number;
  intervalSeconds: number;
  count: number;
}

/** What the addon throws for a failed syscall, shaped like Node's system errors. */
export interface NativeSysError extends Error {
  /** Positive errno. */
  errno: number;
  /** Symbolic errno name, e.g. 'ENOENT'. */
  code: string;
  syscall: string;
  /** The option name, path or "address:port" the call was about. */
  detail?: string;
  /** Set by socketInNetns. */
  netns?: string;
}

export interface NativeAddon {
  originalDst(fd: number, family: NativeFamily): { address: string; port: number };
  setMark(fd: number, mark: number): void;
  getMark(fd: number): number;
  setTransparent(fd: number, family: NativeFamily): void;
  setFreebind(fd: number, family: NativeFamily): void;
  setReusePort(fd: number): void;
  /** SO_LINGER {on, seconds}; seconds is ignored (0) when off. */
  setLinger(fd: number, on: boolean, seconds: number): void;
  getLinger(fd: number): { on: boolean; seconds: number };
  setSendBuffer(fd: number, bytes: number): void;
  getSendBuffer(fd: number): number;
  setTcpUserTimeout(fd: number, ms: number): void;
  getTcpUserTimeout(fd: number): number;
  /** TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT, then SO_KEEPALIVE=1. */
  setTcpKeepalive(fd: number, idleSeconds: number, intervalSeconds: number, count: number): void;
  getTcpKeepalive(fd: number): NativeKeepalive;
  /** The socket's own family (SO_DOMAIN). */
  socketFamily(fd: number): NativeFamily;
  /** A non-blocking, close-on-exec TCP socket made inside netnsPath; the caller owns the fd. */
  socketInNetns(options: NativeSocketOptions): number;
  /** malloc_trim(0): true when memory was given back to the kernel (false off glibc). */
  trimMemory(): boolean;
}

export const ADDON_RELATIVE_PATH = join(
  'daemon',
  'native',
  'build',
  'Release',
  'meshd_native.node',
);

let cached: NativeAddon | undefined;

/** The addon, loaded once per thread (N-API addons are per-context). */
export function loadNative(): NativeAddon {
  cached ??= loadFrom(rootOrThrow());
  return cached;
}

/** True when a thrown value came from the addon's syscall layer. */
export function isNativeSysError(err: unknown): err is NativeSysError {
  return (
    err instanceof Error &&
    typeof (err as Partial<NativeSysError>).errno === 'number' &&
    typeof (err as Partial<NativeSysError>).syscall === 'string'
  );
}

function rootOrThrow(): string {
  try {
    return packageRoot();
  } catch (cause) {
    throw new MeshdError('MESHD_E_NATIVE_LOAD', (cause as Error).message, {
      cause,
      hint: 'run meshd from its installed package directory',
    });
  }
}

function loadFrom(root: string): NativeAddon {
  if (process.platform !== 'linux') {
    throw new MeshdError(
      'MESHD_E_NATIVE_LOAD',
      `the native socket addon supports Linux only, not ${process.platform}`,
    );
  }
  const file = join(root, ADDON_RELATIVE_PATH);
  try {
    return createRequire(join(root, 'package.json'))(file) as NativeAddon;
  } catch (cause) {
    const reason = existsSync(file) ? 'could not be loaded' : 'is missing';
    throw new MeshdError('MESHD_E_NATIVE_LOAD', `native socket addon ${file} ${reason}`, {
      cause,
      hint: 'run npm run build',
    });
  }
}
