/**
 * One captured workload: its in-namespace rules and its three listeners (15001 outbound,
 * 15006 inbound plaintext, 15008 HBONE), all inside the workload's network namespace.
 * stop() closes the listeners; release() also removes the rules (the workload left the mesh).
 * A stopping agent only stops, so enrolled workloads stay captured (fail closed).
 */
import type { Server, Socket } from 'node:net';
import { applyCapture, removeCapture } from '../../cni/index.js';
import { AGENT_PORTS, type LocalWorkload } from '../discovery/index.js';
import { describeError } from '../errors.js';
import type { SecureContexts } from '../hbone/index.js';
import {
  abortSide,
  HboneServer,
  type HboneServerLimits,
  RESET_ON_CLOSE,
  type SourceGuard,
  splice,
} from '../hbone/index.js';
import { connectFromNetns, listenInNetns, originalDst } from '../net/index.js';
import { ConnectionLimiter, type WorkloadLimits } from '../proxy/index.js';
import type { Logger } from '../telemetry/index.js';
import {
  handlePlaintextInbound,
  hboneConnectHandler,
  type InboundDeps,
  LiveConnections,
  recheckLive,
} from './inbound.js';
import { handleOutbound, type OutboundDeps } from './outbound.js';

export interface CapturedDeps {
  limits: WorkloadLimits;
  outbound: OutboundDeps;
  inbound: InboundDeps;
  contexts: SecureContexts;
  trustDomain: string;
  mark: number;
  logger: Logger;
  handshakeTimeoutMs: number;
  /** The data-path thread's per-source defences, shared by every workload's HBONE listener. */
  guard: SourceGuard;
  serverLimits: Partial<HboneServerLimits>;
  /** Keepalive and user timeout on an accepted HBONE socket. */
  tuneTunnel: (socket: Socket) => void;
  /**
   * False on a data-path thread (threads.ts): the main thread owns the workload's capture
   * rules and this thread only serves its own listeners.
   */
  ownsRules: boolean;
  /** SO_REUSEPORT on the listeners, so that every data-path thread has its own. */
  reusePort: boolean;
}

export class CapturedWorkload {
  workload: LocalWorkload;
  readonly live = new LiveConnections();
  readonly #limiter: ConnectionLimiter;
  /** Sockets accepted on this workload's listeners that are still open. */
  readonly #accepted = new Set<Socket>();
  /** Called once the last accepted socket has closed (see #allClosed). */
  readonly #allClosedWaiters = new Set<() => void>();
  #released = false;
  #lastActivityAt = 0;
  #stopped = false;
  #markClosed: () => void = () => {};
  #refreshTimer: NodeJS.Timeout | undefined;
  readonly #closed = new Promise<void>((resolve) => {
    this.#markClosed = resolve;
  });
  readonly #deps: CapturedDeps;
  readonly #servers: Server[] = [];
  #hbone: HboneServer | undefined;

  constructor(deps: CapturedDeps, workload: LocalWorkload) {
    this.#deps = deps;
    this.workload = workload;
    this.#limiter = new ConnectionLimiter(deps.limits);
  }

  async start(): Promise<void> {
    const { workload } = this;
    const deps = this.#deps;
    // A host workload (systemd host, VM; in the lab a node namespace) gets the host variant:
    // forwarded traffic and the agent's and control plane's own ports are left alone.
    if (deps.ownsRules) {
      await applyCapture(workload.netns, {
        mark: deps.mark,
        hostNetwork: workload.resource.spec.hostNetwork ?? false,
      });
    }
    // The workload's certificate first, so the HBONE listener never answers without one.
    let current = await deps.contexts.forIdentity(workload.identity);
    const refresh = () =>
      void deps.contexts.forIdentity(this.workload.identity).then(
        (c) => {
          current = c;
        },
        () => {},
      );
    // Handshakes use the context at hand and refresh it for the next one; the timer keeps a
    // workload that had no handshake for a long time from answering with an old certificate.
    this.#refreshTimer = setInterval(refresh, CONTEXT_REFRESH_MS).unref();
    this.#hbone = new HboneServer({
      trustDomain: deps.trustDomain,
      secureContext: () => {
        refresh();
        return current;
      },
      onConnect: hboneConnectHandler(deps.inbound, workload, this.live),
      onRejected: (info) => {
        deps.inbound.metrics.rejected.inc({ listener: 'hbone', reason: info.reason });
        deps.logger.warn(
          {
            workload: workload.ref,
            remote: info.remote,
            reason: info.reason,
            detail: info.detail,
            ...(info.peer ? { peer: info.peer } : {}),
          },
          'HBONE connection refused',
        );
      },
      limits: { ...deps.serverLimits, handshakeTimeoutMs: deps.handshakeTimeoutMs },
      guard: deps.guard,
      logger: deps.logger,
    });
    try {
      this.#servers.push(
        await this.#listen(
          AGENT_PORTS.outbound,
          (s) => handleOutbound(deps.outbound, this.workload, s, this.#limiter),
          RESET_ON_CLOSE,
        ),
      );
      this.#servers.push(
        await this.#listen(
          AGENT_PORTS.inboundPlaintext,
          (s) => handlePlaintextInbound(deps.inbound, this.workload, this.live, s),
          RESET_ON_CLOSE,
        ),
      );
      const hbone = this.#hbone;
      this.#servers.push(
        await this.#listen(AGENT_PORTS.hbone, (s) => {
          deps.tuneTunnel(s);
          hbone.handle(s);
        }),
      );
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  /** Policy or state changed: close live connections that are now denied. */
  recheck(): number {
    return recheckLive(this.#deps.inbound, this.workload, this.live);
  }

  /**
   * Stops accepting; lets every connection accepted on the listeners (outbound, inbound
   * plaintext, HBONE) finish for up to `drainMs` (GOAWAY tells HBONE peers to use new
   * connections), then resets what is left, connections still being set up included. The
   * capture rules stay.
   */
  async stop(drainMs = 0): Promise<void> {
    this.#stopped = true;
    for (const server of this.#servers.splice(0)) server.close();
    clearInterval(this.#refreshTimer);
    this.#markClosed();
    void this.#hbone?.close().catch(() => {});
    if (drainMs > 0) await this.#allClosed(drainMs);
    this.live.closeAll('the agent is stopping: the drain time is over');
    this.#hbone?.destroy();
    for (const socket of [...this.#accepted]) abortSide(socket);
  }

  /**
   * Takes the workload out of the mesh while connections captured before keep working until
   * they end: their NAT translations live in the namespace's capture, so the rules and the
   * 15001/15006 listeners stay until the last such connection closes (or `maxWaitMs`), and
   * meanwhile new connections are only forwarded to where they were going, outside the mesh.
   * HBONE sessions drain after a GOAWAY. Then the rules are removed exactly, once `others`
   * (the other data-path threads' connections of this workload) have also ended. Waiting for
   * connections happens in the background; `closed()` resolves when the listeners are closed.
   */
  async release(maxWaitMs = 3_600_000, others?: Promise<void>): Promise<void> {
    this.#released = true;
    void this.#hbone?.close();
    const { mark, logger, ownsRules } = this.#deps;
    // Rules first, listeners after: no new connection may meet a closed listener.
    const finish = async () => {
      // A release still waiting when the agent stops leaves the rules, like every capture of
      // a stopping agent: the next agent decides (fail closed).
      if (ownsRules && !this.#stopped) {
        try {
          await removeCapture(this.workload.netns, { mark });
        } catch (err) {
          logger.warn(
            { workload: this.workload.ref, err: describeError(err) },
            'removing capture rules failed (namespace gone?)',
          );
        }
      }
      for (const server of this.#servers.splice(0)) server.close();
      clearInterval(this.#refreshTimer);
      this.#markClosed();
    };
    if (this.#accepted.size === 0 && !others) {
      await finish();
      return;
    }
    const othersEnded = withTimeout(others ?? Promise.resolve(), maxWaitMs);
    const deadline = Date.now() + maxWaitMs;
    // Removing the rules cuts every connection that came in through them (its NAT goes with
    // them), also one forwarded unmeshed a moment ago: they go only once no connection is
    // open and none came or went for a while (a client often connects again at once).
    const allEnded = async () => {
      await Promise.all([this.#allClosed(maxWaitMs), othersEnded]);
      for (;;) {
        const quietFor = Date.now() - this.#lastActivityAt;
        if (Date.now() >= deadline) return;
        if (this.#accepted.size > 0) await this.#allClosed(deadline - Date.now());
        else if (quietFor < RELEASE_QUIET_MS) await delay(RELEASE_QUIET_MS - quietFor);
        else return;
      }
    };
    void allEnded().then(finish);
  }

  /**
   * Stops accepting at once and sends HBONE peers a GOAWAY, leaving the rules and the open
   * connections: a capture of the same namespace (the workload under a new identity) takes
   * over the ports right away. stop() still drains what is left.
   */
  handOver(): void {
    for (const server of this.#servers.splice(0)) server.close();
    clearInterval(this.#refreshTimer);
    void this.#hbone?.close().catch(() => {});
    this.#markClosed();
  }

  /** Resolves once every connection accepted on the listeners has closed. */
  drained(): Promise<void> {
    return this.#allClosed(3_600_000);
  }

  /** Resolves once release() has closed the listeners (or stop() has). */
  closed(): Promise<void> {
    return this.#closed;
  }

  /** Resolves once every accepted socket has closed, or after `timeoutMs`. */
  #allClosed(timeoutMs: number): Promise<void> {
    if (this.#accepted.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#allClosedWaiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs).unref();
      this.#allClosedWaiters.add(done);
    });
  }

  /** After release: a new connection goes where it was going, unmeshed. */
  #forwardUnmeshed(client: Socket): void {
    client.on('error', () => {});
    let dst: { address: string; port: number };
    try {
      dst = originalDst(client);
    } catch {
      client.destroy();
      return;
    }
    const host = dst.address.replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/, '$1');
    connectFromNetns({
      netns: this.workload.netns,
      family: host.includes(':') ? 6 : 4,
      mark: this.#deps.mark,
      host,
      port: dst.port,
      timeoutMs: 5_000,
      allowHalfOpen: true,
      linger: RESET_ON_CLOSE,
    }).then(
      (upstream) => void splice(client, upstream),
      () => abortSide(client),
    );
  }

  /**
   * `linger` on a listener is inherited by every socket it accepts: the application-facing
   * ones (15001, 15006) reset when closed, also by the kernel when the agent dies (linger.ts).
   */
  async #listen(port: number, handle: (s: Socket) => void, linger?: number): Promise<Server> {
    const netns = this.workload.netns;
    const { reusePort } = this.#deps;
    const onConnection = (socket: Socket) => {
      // Counted also once released: a forwarded connection lives on the capture's NAT too,
      // and removing the rules under it cuts it.
      this.#accepted.add(socket);
      this.#lastActivityAt = Date.now();
      socket.once('close', () => {
        this.#lastActivityAt = Date.now();
        this.#accepted.delete(socket);
        if (this.#accepted.size > 0) return;
        for (const done of [...this.#allClosedWaiters]) done();
      });
      if (this.#released) this.#forwardUnmeshed(socket);
      else handle(socket);
    };
    try {
      return await listenInNetns(
        { netns, family: 6, host: '::', port, allowHalfOpen: true, reusePort, linger },
        onConnection,
      );
    } catch {
      // A namespace without IPv6 still gets IPv4 capture.
      return listenInNetns(
        { netns, family: 4, host: '0.0.0.0', port, allowHalfOpen: true, reusePort, linger },
        onConnection,
      );
    }
  }
}

/** A released workload's rules go only after this long without a connection opening or closing. */
const RELEASE_QUIET_MS = 1_000;

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());

/** How often a captured workload's TLS context is checked against its current certificate. */
const CONTEXT_REFRESH_MS = 10_000;

const withTimeout = (promise: Promise<void>, ms: number): Promise<void> =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms).unref();
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    promise.then(done, done);
  });
