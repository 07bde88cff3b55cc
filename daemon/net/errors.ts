/**
 * Errors of daemon/net. They keep the kernel's view (errno, its name, the syscall) so that
 * callers can react to e.g. EADDRINUSE, and carry a hint for the operator where one helps.
 */
import { constants } from 'node:os';
import { MeshdError, type MeshdErrorOptions } from '../errors.js';
import type { NativeSysError } from '../native/index.js';

export interface SysErrorFields {
  /** Positive errno. */
  readonly errno: number;
  /** Symbolic name of errno, e.g. 'ENOENT' (`code` is the MESHD_E_* code). */
  readonly errnoName: string;
  readonly syscall: string;
}

export class NetnsError extends MeshdError {
  readonly errno: number;
  readonly errnoName: string;
  readonly syscall: string;
  readonly netns: string;

  constructor(
    message: string,
    fields: SysErrorFields & { netns: string },
    options?: MeshdErrorOptions,
  ) {
    super('MESHD_E_NETNS', message, options);
    this.errno = fields.errno;
    this.errnoName = fields.errnoName;
    this.syscall = fields.syscall;
    this.netns = fields.netns;
  }
}

export class SocketError extends MeshdError {
  readonly errno: number;
  readonly errnoName: string;
  readonly syscall: string;
  /** "ip:port" (v6 in brackets) for bind, listen and connect failures. */
  readonly address: string | undefined;
  /** The namespace the socket was made in, when daemon/net made it. */
  readonly netns: string | undefined;

  constructor(
    message: string,
    fields: SysErrorFields & { address?: string; netns?: string },
    options?: MeshdErrorOptions,
  ) {
    super('MESHD_E_SOCKET', message, options);
    this.errno = fields.errno;
    this.errnoName = fields.errnoName;
    this.syscall = fields.syscall;
    this.address = fields.address;
    this.netns = fields.netns;
  }
}

export class OriginalDstError extends MeshdError {
  readonly errno: number;
  readonly errnoName: string;

  constructor(
    message: string,
    fields: { errno: number; errnoName: string },
    options?: MeshdErrorOptions,
  ) {
    super('MESHD_E_ORIGINAL_DST', message, options);
    this.errno = fields.errno;
    this.errnoName = fields.errnoName;
  }
}

const NETNS_HINTS: Record<string, string> = {
  ENOENT: 'the namespace does not exist (see `ip netns list`), or its process has exited',
  EINVAL: 'the path is not a network namespace file',
  EPERM: 'entering a namespace needs CAP_SYS_ADMIN (run the agent as root)',
  EACCES: 'entering a namespace needs CAP_SYS_ADMIN (run the agent as root)',
};

const SOCKET_HINTS: Record<string, string> = {
  EADDRINUSE:
    'another socket in that namespace holds the address; to share it, set reusePort on every listener',
  EADDRNOTAVAIL:
    'the address is not assigned in that namespace; set freebind or transparent to bind it anyway',
  EPERM: 'marks and transparent sockets need CAP_NET_ADMIN (run the agent as root)',
  EACCES: 'binding ports below 1024 or setting socket options needs root',
  ECONNREFUSED: 'nothing listens on that address in the namespace',
  ETIMEDOUT: 'the peer did not answer; check routes and firewall rules in the namespace',
};

/** Fields of a native error or a Node system error, with a positive errno. */
export function sysFields(err: unknown, fallbackSyscall: string): SysErrorFields {
  const e = (err ?? {}) as Partial<NativeSysError>;
  const name = typeof e.code === 'string' ? e.code : 'EIO';
  const errno =
    (constants.errno as Record<string, number | undefined>)[name] ??
    (typeof e.errno === 'number' ? Math.abs(e.errno) : constants.errno.EIO);
  return {
    errno,
    errnoName: name,
    syscall: typeof e.syscall === 'string' ? e.syscall : fallbackSyscall,
  };
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Namespace entry failures become NetnsError, everything after it SocketError. */
export function fromNetnsSocketError(err: unknown, netns: string): NetnsError | SocketError {
  const fields = sysFields(err, 'socket');
  const detail = (err as Partial<NativeSysError>).detail;
  if (fields.syscall === 'open' || fields.syscall === 'setns') {
    return new NetnsError(
      `cannot enter network namespace ${netns}: ${describe(err)}`,
      { ...fields, netns },
      { cause: err, hint: NETNS_HINTS[fields.errnoName] },
    );
  }
  const address = fields.syscall === 'bind' || fields.syscall === 'listen' ? detail : undefined;
  return new SocketError(
    `socket set-up in network namespace ${netns} failed: ${describe(err)}`,
    { ...fields, netns, address },
    { cause: err, hint: SOCKET_HINTS[fields.errnoName] },
  );
}

export function socketError(
  message: string,
  err: unknown,
  extra: { syscall: string; address?: string; netns?: string },
): SocketError {
  const fields = sysFields(err, extra.syscall);
  return new SocketError(
    `${message}: ${describe(err)}`,
    { ...fields, address: extra.address, netns: extra.netns },
    { cause: err, hint: SOCKET_HINTS[fields.errnoName] },
  );
}
