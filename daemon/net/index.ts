/**
 * daemon/net: the socket seams meshd needs beyond node:net — original destinations of
 * captured connections, packet marks, transparent/freebind/reuseport options, linger, TCP user
 * timeout and keepalive timings, and sockets opened inside other network namespaces (and
 * malloc_trim for the agent's memory trimmer). The only module that uses daemon/native.
 */
export { NetnsError, OriginalDstError, SocketError, type SysErrorFields } from './errors.js';
export { trimMallocArenas } from './memory.js';
export {
  type ConnectFromNetnsOptions,
  connectFromNetns,
  type ListenInNetnsOptions,
  listenInNetns,
  type NetnsSocketOptions,
  netnsPath,
} from './netns.js';
export {
  getLinger,
  getMark,
  getTcpKeepalive,
  getTcpUserTimeout,
  originalDst,
  type SocketTarget,
  setFreebind,
  setLinger,
  setMark,
  setReusePort,
  setTcpKeepalive,
  setTcpUserTimeout,
  setTransparent,
  type TcpKeepalive,
} from './sockopt.js';
export type { IpFamily, OrigDst } from './types.js';
