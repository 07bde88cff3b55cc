/**
 * The connections the agent is proxying right now, for the admin endpoint's /connections and
 * `meshctl agent connections`. Tracking sits on the data path's hot edges, so it costs one Map
 * insert when a connection is up and one delete when it ends: entries keep references to what
 * the data path already built, and byte counts are read from the socket only when asked.
 */
import type { Socket } from 'node:net';
import { abortSide } from '../hbone/index.js';
import type { Peer } from '../telemetry/index.js';

export type ConnectionPath = 'hbone' | 'passthrough' | 'plaintext';

/** What the data path hands over when a connection is up. */
export interface TrackedConnection {
  direction: 'outbound' | 'inbound';
  path: ConnectionPath;
  source: Peer;
  /** The source's own port, when known (HBONE inbound: from `forwarded`). */
  sourcePort: number | undefined;
  destination: Peer & { port: number; service: string };
  /** What the workload dialed, when the agent sent it elsewhere (a service VIP:port). */
  dialed?: { ip: string; port: number } | undefined;
  /**
   * The socket whose counters give the bytes, and which end it faces: outbound it is the
   * source workload's captured socket, inbound the agent's socket to the application.
   */
  socket: Socket;
  socketFaces: 'source' | 'destination';
}

interface Entry extends TrackedConnection {
  openedAt: number;
}

export interface ConnectionEnd {
  /** `namespace/name`, or '' when the address is not a known workload. */
  workload: string;
  address: string;
  port: number | undefined;
  /** SPIFFE ID, or '' when there is none (plaintext sources, passthrough destinations). */
  identity: string;
}

/**
 * One row of /connections and config_dump.connections. `destination` is where the agent sent
 * the connection (for a service, the chosen endpoint); `originalDestination` is what the workload
 * dialed (the service's VIP:port).
 */
export interface ConnectionInfo {
  direction: 'outbound' | 'inbound';
  path: ConnectionPath;
  source: ConnectionEnd;
  destination: ConnectionEnd & { service: string };
  /** What the workload dialed: the original destination (SO_ORIGINAL_DST, HBONE authority). */
  originalDestination: { address: string; port: number };
  /** The identity of the workload on this node, and of the one at the other end. */
  localIdentity: string;
  peerIdentity: string;
  bytesSentBySource: number;
  bytesSentByDestination: number;
  openedAt: string;
  ageSeconds: number;
}

const spiffe = (principal: string) => (principal ? `spiffe://${principal}` : '');
const workloadName = (p: Peer) => (p.workload ? `${p.namespace}/${p.workload}` : '');

export class ConnectionTable {
  readonly #live = new Map<Socket, Entry>();
  readonly #emptyWaiters = new Set<() => void>();

  /** Records a connection whose upstream is up; `socket` is its key for remove(). */
  add(connection: TrackedConnection): void {
    this.#live.set(connection.socket, { ...connection, openedAt: Date.now() });
  }

  remove(socket: Socket): void {
    this.#live.delete(socket);
    if (this.#live.size > 0) return;
    for (const done of this.#emptyWaiters) done();
    this.#emptyWaiters.clear();
  }

  /**
   * Resets every connection still here (a TCP RST, so that nobody takes a cut stream for a
   * complete one); each then closes and gets its record.
   */
  abortAll(): void {
    for (const socket of [...this.#live.keys()]) abortSide(socket);
  }

  /**
   * Resolves once no connection is left (each removal comes right before the connection's
   * access record), or after `timeoutMs` with how many are still there. A stopping agent waits
   * here after tearing its connections down, so that their records are written before it exits.
   */
  settled(timeoutMs: number): Promise<number> {
    if (this.#live.size === 0) return Promise.resolve(0);
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#emptyWaiters.delete(done);
        resolve(this.#live.size);
      };
      const timer = setTimeout(done, timeoutMs);
      this.#emptyWaiters.add(done);
    });
  }

  get size(): number {
    return this.#live.size;
  }

  /** Every live connection, sorted by direction, source, destination and age. */
  list(now = Date.now()): ConnectionInfo[] {
    return [...this.#live.values()].map((e) => describe(e, now)).sort(compareConnections);
  }
}

function describe(e: Entry, now: number): ConnectionInfo {
  const fromSource = e.socketFaces === 'source' ? e.socket.bytesRead : e.socket.bytesWritten;
  const fromDestination = e.socketFaces === 'source' ? e.socket.bytesWritten : e.socket.bytesRead;
  const source: ConnectionEnd = {
    workload: workloadName(e.source),
    address: e.source.ip,
    port: e.sourcePort,
    identity: spiffe(e.source.principal),
  };
  const destination = {
    workload: workloadName(e.destination),
    address: e.destination.ip,
    port: e.destination.port,
    identity: spiffe(e.destination.principal),
    service: e.destination.service,
  };
  const outbound = e.direction === 'outbound';
  return {
    direction: e.direction,
    path: e.path,
    source,
    destination,
    originalDestination: e.dialed
      ? { address: e.dialed.ip, port: e.dialed.port }
      : { address: e.destination.ip, port: e.destination.port },
    localIdentity: outbound ? source.identity : destination.identity,
    peerIdentity: outbound ? destination.identity : source.identity,
    bytesSentBySource: fromSource,
    bytesSentByDestination: fromDestination,
    openedAt: new Date(e.openedAt).toISOString(),
    ageSeconds: Math.max(0, Math.floor((now - e.openedAt) / 1000)),
  };
}

const cmp = (a: string | number, b: string | number) => (a < b ? -1 : a > b ? 1 : 0);
const compareEnds = (a: ConnectionEnd, b: ConnectionEnd) =>
  cmp(a.workload, b.workload) || cmp(a.address, b.address) || cmp(a.port ?? -1, b.port ?? -1);

/** Stable order: the same connections always list the same way (meshctl sorts the same). */
export function compareConnections(a: ConnectionInfo, b: ConnectionInfo): number {
  return (
    cmp(a.direction, b.direction) ||
    compareEnds(a.source, b.source) ||
    compareEnds(a.destination, b.destination) ||
    cmp(a.openedAt, b.openedAt)
  );
}
