/**
 * Sockets inside other network namespaces, handed to Node as fds: listeners (net.Server) and
 * outgoing connections (net.Socket). The addon enters the namespace only for the duration of
 * socket/setsockopt/bind/listen on the calling thread; the sockets stay in it for good.
 */
import { closeSync } from 'node:fs';
import { createServer, type Server, Socket } from 'node:net';
import { constants } from 'node:os';
import { isNativeSysError, loadNative, type NativeSocketOptions } from '../native/index.js';
import { fromNetnsSocketError, type SocketError, socketError } from './errors.js';
import type { IpFamily } from './types.js';
import {
  assertFamily,
  assertIpOfFamily,
  assertLinger,
  assertMark,
  assertNetnsFile,
  assertNetnsName,
  assertOptionalBoolean,
  assertPort,
  assertUint,
} from './validate.js';

export interface NetnsSocketOptions {
  /** Path of the namespace file: netnsPath(name), /proc/PID/ns/net, a CNI netns path. */
  netns: string;
  family: IpFamily;
  /** SO_MARK, so that the capture rules skip the agent's own traffic. */
  mark?: number;
  transparent?: boolean;
  freebind?: boolean;
  reusePort?: boolean;
  /** Family 6: accept IPv6 only; default false (a '::' listener also takes IPv4 clients). */
  ipv6Only?: boolean;
  /**
   * SO_LINGER on with these seconds (setLinger): 0 makes close() a reset. Set on a listener,
   * every connection it accepts inherits it (Linux copies socket options to accepted
   * sockets), at no cost per connection.
   */
  linger?: number;
}

export interface ListenInNetnsOptions extends NetnsSocketOptions {
  host: string;
  /** 0 lets the kernel choose; read it back with server.address(). */
  port: number;
  /** Default 511. */
  backlog?: number;
  /** As net.createServer: keep the write side open after the peer's FIN (proxies need it). */
  allowHalfOpen?: boolean;
  /** As net.createServer: accepted sockets start paused. */
  pauseOnConnect?: boolean;
}

export interface ConnectFromNetnsOptions extends NetnsSocketOptions {
  host: string;
  port: number;
  /** Source address; with transparent it may be an address that is not local (spoofing). */
  localAddress?: string;
  localPort?: number;
  /** Default 10 s; the socket is destroyed when it expires. */
  timeoutMs?: number;
  /** As net.Socket: keep the write side open after the peer's FIN. */
  allowHalfOpen?: boolean;
  /** Gives up the connect (the socket is destroyed, the promise rejects with ECANCELED). */
  signal?: AbortSignal;
}

const NETNS_DIR = '/var/run/netns/';
const DEFAULT_BACKLOG = 511;
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

/** The file `ip netns add NAME` creates. */
export function netnsPath(name: string): string {
  assertNetnsName(name);
  return NETNS_DIR + name;
}

function endpoint(family: IpFamily, host: string, port: number): string {
  return family === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

function validateCommon(where: string, opts: NetnsSocketOptions): void {
  assertNetnsFile(where, opts.netns);
  assertFamily(where, opts.family);
  if (opts.mark !== undefined) assertMark(where, opts.mark);
  for (const key of ['transparent', 'freebind', 'reusePort', 'ipv6Only'] as const) {
    assertOptionalBoolean(where, key, opts[key]);
  }
  if (opts.linger !== undefined) assertLinger(where, 'linger', opts.linger);
}

/** Makes the socket in the namespace; the caller owns the returned fd. */
function socketInNetns(opts: NetnsSocketOptions, extra: Partial<NativeSocketOptions>): number {
  const native: NativeSocketOptions = {
    netnsPath: opts.netns,
    family: opts.family,
    listen: false,
    mark: opts.mark,
    transparent: opts.transparent,
    freebind: opts.freebind,
    reusePort: opts.reusePort,
    ipv6Only: opts.ipv6Only,
    linger: opts.linger,
    ...extra,
  };
  const addon = loadNative();
  try {
    return addon.socketInNetns(native);
  } catch (err) {
    if (!isNativeSysError(err)) throw err;
    throw fromNetnsSocketError(err, opts.netns);
  }
}

/**
 * A net.Server listening on host:port inside opts.netns. Resolves once listening.
 * Rejects with NetnsError (namespace missing or not enterable) or SocketError (bind, listen,
 * options); bad arguments reject with TypeError/RangeError.
 */
export async function listenInNetns(
  opts: ListenInNetnsOptions,
  onConnection?: (socket: Socket) => void,
): Promise<Server> {
  const where = 'listenInNetns';
  validateCommon(where, opts);
  assertIpOfFamily(where, 'host', opts.host, opts.family);
  assertPort(where, 'port', opts.port);
  const backlog = opts.backlog ?? DEFAULT_BACKLOG;
  assertUint(where, 'backlog', backlog, 65_535);
  assertOptionalBoolean(where, 'allowHalfOpen', opts.allowHalfOpen);
  assertOptionalBoolean(where, 'pauseOnConnect', opts.pauseOnConnect);

  const fd = socketInNetns(opts, { listen: true, address: opts.host, port: opts.port, backlog });
  return serveFd(fd, backlog, opts, onConnection);
}

function serveFd(
  fd: number,
  backlog: number,
  opts: ListenInNetnsOptions,
  onConnection: ((socket: Socket) => void) | undefined,
): Promise<Server> {
  const server = createServer({
    allowHalfOpen: opts.allowHalfOpen ?? false,
    pauseOnConnect: opts.pauseOnConnect ?? false,
  });
  if (onConnection) server.on('connection', onConnection);
  return new Promise((resolve, reject) => {
    // Node owns the fd from here: a failed listen() closes its handle, and the fd is a fresh
    // TCP socket, so the earlier checks (handle type, uv_tcp_open) cannot fail in practice.
    const onError = (err: Error) => {
      server.close();
      reject(
        socketError(`listening on ${endpoint(opts.family, opts.host, opts.port)} failed`, err, {
          syscall: 'listen',
          address: endpoint(opts.family, opts.host, opts.port),
          netns: opts.netns,
        }),
      );
    };
    server.once('error', onError);
    // Node calls listen() again with this backlog; keep it the one the caller asked for.
    server.listen({ fd, backlog }, () => {
      server.off('error', onError);
      resolve(server);
    });
  });
}

/**
 * A net.Socket connected from inside opts.netns to host:port. Resolves on 'connect'; rejects
 * with SocketError on a connect error or timeout (destroying the socket), NetnsError when the
 * namespace cannot be entered.
 */
export async function connectFromNetns(opts: ConnectFromNetnsOptions): Promise<Socket> {
  const where = 'connectFromNetns';
  validateCommon(where, opts);
  assertIpOfFamily(where, 'host', opts.host, opts.family);
  assertPort(where, 'port', opts.port);
  if (opts.localAddress !== undefined) {
    assertIpOfFamily(where, 'localAddress', opts.localAddress, opts.family);
  }
  if (opts.localPort !== undefined) assertPort(where, 'localPort', opts.localPort);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  assertUint(where, 'timeoutMs', timeoutMs, 0x7fff_ffff);
  assertOptionalBoolean(where, 'allowHalfOpen', opts.allowHalfOpen);

  if (opts.signal?.aborted) throw cancelledError(where, opts);
  const fd = socketInNetns(opts, { address: opts.localAddress, port: opts.localPort });
  return connectFd(adoptFd(fd, opts.allowHalfOpen ?? false), opts, timeoutMs);
}

/** Wraps an unconnected fd in a net.Socket; closes the fd if Node does not take it. */
function adoptFd(fd: number, allowHalfOpen: boolean): Socket {
  try {
    return new Socket({ fd, readable: true, writable: true, allowHalfOpen });
  } catch (err) {
    closeSync(fd);
    throw socketError('handing the socket to Node failed', err, { syscall: 'open' });
  }
}

function connectFd(
  socket: Socket,
  opts: ConnectFromNetnsOptions,
  timeoutMs: number,
): Promise<Socket> {
  const target = endpoint(opts.family, opts.host, opts.port);
  return new Promise((resolve, reject) => {
    const fail = (err: SocketError) => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      socket.off('error', onError);
      socket.off('connect', onConnect);
      socket.destroy();
      reject(err);
    };
    const onError = (err: Error) =>
      fail(
        socketError(`connecting to ${target} from network namespace ${opts.netns} failed`, err, {
          syscall: 'connect',
          address: target,
          netns: opts.netns,
        }),
      );
    const onConnect = () => {
      clearTimeout(timer);
      socket.off('error', onError);
      opts.signal?.removeEventListener('abort', onAbort);
      resolve(socket);
    };
    const onAbort = () => {
      opts.signal?.removeEventListener('abort', onAbort);
      fail(cancelledError('connectFromNetns', opts));
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(() => {
      const cause = Object.assign(new Error(`no answer within ${timeoutMs} ms`), {
        code: 'ETIMEDOUT',
        errno: constants.errno.ETIMEDOUT,
        syscall: 'connect',
      });
      onError(cause);
    }, timeoutMs);
    socket.once('error', onError);
    socket.once('connect', onConnect);
    socket.connect({ port: opts.port, host: opts.host });
  });
}

function cancelledError(where: string, opts: ConnectFromNetnsOptions): SocketError {
  const target = endpoint(opts.family, opts.host, opts.port);
  const cause = Object.assign(new Error('the caller gave up'), {
    code: 'ECANCELED',
    errno: constants.errno.ECANCELED,
    syscall: 'connect',
  });
  return socketError(`${where}: connecting to ${target} was cancelled`, cause, {
    syscall: 'connect',
    address: target,
    netns: opts.netns,
  });
}
