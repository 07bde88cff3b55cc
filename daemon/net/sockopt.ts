/**
 * Socket options on sockets Node already owns (by net.Socket or by raw fd), and the original
 * destination of captured connections.
 */

import type { Socket } from 'node:net';
import { isIPv4 } from 'node:net';
import { constants } from 'node:os';
import { isNativeSysError, loadNative } from '../native/index.js';
import { OriginalDstError, SocketError, socketError, sysFields } from './errors.js';
import type { IpFamily, OrigDst } from './types.js';
import {
  assertFamily,
  assertFd,
  assertIntIn,
  assertLinger,
  assertMark,
  assertUint,
} from './validate.js';

/** A connected or listening Node socket, or a raw socket fd. */
export type SocketTarget = Socket | number;

/** The fd behind a Node socket; undefined before it has a handle and after it is destroyed. */
function handleFd(socket: Socket): number | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: unknown } | null })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

function fdOf(where: string, target: SocketTarget): number {
  if (typeof target === 'number') {
    assertFd(where, target);
    return target;
  }
  const fd = handleFd(target);
  if (fd === undefined) {
    throw new SocketError(
      `${where}: the socket has no file descriptor (not open yet, or destroyed)`,
      {
        errno: constants.errno.EBADF,
        errnoName: 'EBADF',
        syscall: 'fileno',
      },
    );
  }
  return fd;
}

/** Runs an addon call on an existing socket, turning its errors into SocketError. */
function sockopt<T>(where: string, call: () => T): T {
  try {
    return call();
  } catch (err) {
    if (!isNativeSysError(err)) throw err;
    throw socketError(where, err, { syscall: err.syscall });
  }
}

export function setMark(target: SocketTarget, mark: number): void {
  assertMark('setMark', mark);
  const fd = fdOf('setMark', target);
  sockopt('setMark', () => loadNative().setMark(fd, mark));
}

export function getMark(target: SocketTarget): number {
  const fd = fdOf('getMark', target);
  return sockopt('getMark', () => loadNative().getMark(fd));
}

/** The socket's own address family, asked from the kernel when the caller does not say. */
function familyOf(where: string, fd: number, family: IpFamily | undefined): IpFamily {
  if (family !== undefined) {
    assertFamily(where, family);
    return family;
  }
  return sockopt(where, () => loadNative().socketFamily(fd));
}

/** IP_TRANSPARENT / IPV6_TRANSPARENT: bind to and answer for non-local addresses (TPROXY). */
export function setTransparent(target: SocketTarget, family?: IpFamily): void {
  const fd = fdOf('setTransparent', target);
  const fam = familyOf('setTransparent', fd, family);
  sockopt('setTransparent', () => loadNative().setTransparent(fd, fam));
}

/** IP_FREEBIND / IPV6_FREEBIND: bind to an address that is not (yet) assigned. */
export function setFreebind(target: SocketTarget, family?: IpFamily): void {
  const fd = fdOf('setFreebind', target);
  const fam = familyOf('setFreebind', fd, family);
  sockopt('setFreebind', () => loadNative().setFreebind(fd, fam));
}

/** SO_REUSEPORT; only useful before bind, so mostly for fds the caller made itself. */
export function setReusePort(target: SocketTarget): void {
  const fd = fdOf('setReusePort', target);
  sockopt('setReusePort', () => loadNative().setReusePort(fd));
}

/**
 * SO_LINGER. A number turns it on: close() then waits up to that many seconds for unsent data
 * to go out, and with 0 it resets the connection (RST) at once, dropping whatever is unsent.
 * undefined turns it off: close() sends a FIN after what is queued (the default).
 */
export function setLinger(target: SocketTarget, seconds: number | undefined): void {
  if (seconds !== undefined) assertLinger('setLinger', 'seconds', seconds);
  const fd = fdOf('setLinger', target);
  sockopt('setLinger', () => loadNative().setLinger(fd, seconds !== undefined, seconds ?? 0));
}

/** SO_LINGER as set: the seconds when on, undefined when off. */
export function getLinger(target: SocketTarget): number | undefined {
  const fd = fdOf('getLinger', target);
  const { on, seconds } = sockopt('getLinger', () => loadNative().getLinger(fd));
  return on ? seconds : undefined;
}

/**
 * TCP_USER_TIMEOUT: how long sent data may stay unacknowledged (and, with keepalive, how long
 * probes may go unanswered) before the kernel drops the connection with ETIMEDOUT. 0 = the
 * kernel's default (retransmissions give up after ~15 min).
 */
/**
 * SO_SNDBUF(FORCE): the kernel's send buffer for this socket, past net.core.wmem_max when the
 * process has CAP_NET_ADMIN. The kernel doubles the value for its bookkeeping; reading it
 * back gives the doubled figure. Setting it turns send-buffer autotuning off.
 */
export function setSendBuffer(target: SocketTarget, bytes: number): void {
  assertUint('setSendBuffer', 'bytes', bytes, 0x3fff_ffff);
  const fd = fdOf('setSendBuffer', target);
  sockopt('setSendBuffer', () => loadNative().setSendBuffer(fd, bytes));
}

export function getSendBuffer(target: SocketTarget): number {
  const fd = fdOf('getSendBuffer', target);
  return sockopt('getSendBuffer', () => loadNative().getSendBuffer(fd));
}

export function setTcpUserTimeout(target: SocketTarget, ms: number): void {
  assertUint('setTcpUserTimeout', 'ms', ms, 0x7fff_ffff);
  const fd = fdOf('setTcpUserTimeout', target);
  sockopt('setTcpUserTimeout', () => loadNative().setTcpUserTimeout(fd, ms));
}

export function getTcpUserTimeout(target: SocketTarget): number {
  const fd = fdOf('getTcpUserTimeout', target);
  return sockopt('getTcpUserTimeout', () => loadNative().getTcpUserTimeout(fd));
}

export interface TcpKeepalive {
  /** Idle time before the first probe (TCP_KEEPIDLE). */
  readonly idleSeconds: number;
  /** Between probes (TCP_KEEPINTVL). */
  readonly intervalSeconds: number;
  /** Unanswered probes before the connection is dropped (TCP_KEEPCNT). */
  readonly count: number;
}

// The kernel's own bounds (MAX_TCP_KEEPIDLE, MAX_TCP_KEEPINTVL, MAX_TCP_KEEPCNT): checked here
// so a bad value is a RangeError naming the field, not an EINVAL naming the option.
const MAX_KEEPALIVE_SECONDS = 32_767;
const MAX_KEEPALIVE_COUNT = 127;

/** SO_KEEPALIVE on, with its timings (Node's setKeepAlive sets only the idle time). */
export function setTcpKeepalive(target: SocketTarget, keepalive: TcpKeepalive): void {
  const where = 'setTcpKeepalive';
  const { idleSeconds, intervalSeconds, count } = keepalive;
  assertIntIn(where, 'idleSeconds', idleSeconds, 1, MAX_KEEPALIVE_SECONDS);
  assertIntIn(where, 'intervalSeconds', intervalSeconds, 1, MAX_KEEPALIVE_SECONDS);
  assertIntIn(where, 'count', count, 1, MAX_KEEPALIVE_COUNT);
  const fd = fdOf(where, target);
  sockopt(where, () => loadNative().setTcpKeepalive(fd, idleSeconds, intervalSeconds, count));
}

/** SO_KEEPALIVE and its timings as the kernel has them (the timings also when it is off). */
export function getTcpKeepalive(
  target: SocketTarget,
): TcpKeepalive & { readonly enabled: boolean } {
  const fd = fdOf('getTcpKeepalive', target);
  return sockopt('getTcpKeepalive', () => loadNative().getTcpKeepalive(fd));
}

const V4_MAPPED = '::ffff:';

/**
 * The family of the client's connection, which selects the conntrack lookup: a dual-stack
 * listener sees IPv4 clients as ::ffff:a.b.c.d, and their original destination is IPv4.
 */
function clientFamily(remote: string): IpFamily {
  if (isIPv4(remote)) return 4;
  const lower = remote.toLowerCase();
  return lower.startsWith(V4_MAPPED) && isIPv4(lower.slice(V4_MAPPED.length)) ? 4 : 6;
}

const ORIGINAL_DST_HINTS: Record<string, string> = {
  ENOENT:
    'the connection was not redirected by iptables (conntrack has no entry for it); only ' +
    'captured connections have an original destination',
  ENOPROTOOPT: 'connection tracking (nf_conntrack) is not active; are the capture rules applied?',
  ENOTCONN: 'the connection is already closed',
};

function originalDstError(message: string, errnoName: string, cause?: unknown): OriginalDstError {
  const errno = (constants.errno as Record<string, number | undefined>)[errnoName] ?? 0;
  return new OriginalDstError(
    message,
    { errno, errnoName },
    { cause, hint: ORIGINAL_DST_HINTS[errnoName] },
  );
}

/** Where a captured (REDIRECTed) connection was going; MESHD_E_ORIGINAL_DST if unknown. */
export function originalDst(socket: Socket): OrigDst {
  const remote = socket.remoteAddress;
  const fd = handleFd(socket);
  if (remote === undefined || fd === undefined) {
    throw originalDstError('original destination unknown: the socket is not connected', 'ENOTCONN');
  }
  const family = clientFamily(remote);
  try {
    const { address, port } = loadNative().originalDst(fd, family);
    return { address, port, family } as OrigDst;
  } catch (err) {
    if (!isNativeSysError(err)) throw err;
    const { errnoName } = sysFields(err, 'getsockopt');
    throw originalDstError(
      `original destination of the connection from ${remote}:${socket.remotePort} unknown: ${err.message}`,
      errnoName,
      err,
    );
  }
}
