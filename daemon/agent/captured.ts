/**
 * One captured workload: its in-namespace rules and its three listeners (15001 outbound,
 * 15006 inbound plaintext, 15008 HBONE), all inside the workload's network namespace.
 * stop() closes the listeners; release() also removes the rules (the workload left the mesh).
 * A stopping agent only stops, so enrolled workloads stay captured (fail closed).
 */
import type { Server } from 'node:net';
import { applyCapture, removeCapture } from '../../cni/index.js';
import { describeError } from '../errors.js';
import { listenInNetns } from '../net/index.js';
import type { Logger } from '../telemetry/index.js';
import type { SecureContexts } from './contexts.js';
import { HboneServer } from './hbone/index.js';
import {
  handlePlaintextInbound,
  hboneConnectHandler,
  type InboundDeps,
  LiveConnections,
  recheckLive,
} from './inbound.js';
import { ConnectionLimiter, type WorkloadLimits } from './limits.js';
import { handleOutbound, type OutboundDeps } from './outbound.js';
import { AGENT_PORTS, type LocalWorkload } from './workload-view.js';

export interface CapturedDeps {
  limits: WorkloadLimits;
  outbound: OutboundDeps;
  inbound: InboundDeps;
  contexts: SecureContexts;
  trustDomain: string;
  mark: number;
  logger: Logger;
  handshakeTimeoutMs: number;
}

export class CapturedWorkload {
  workload: LocalWorkload;
  readonly live = new LiveConnections();
  readonly #limiter: ConnectionLimiter;
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
    await applyCapture(workload.netns, { mark: deps.mark });
    // The workload's certificate first, so the HBONE listener never answers without one.
    const context = await deps.contexts.forIdentity(workload.identity);
    let current = context;
    this.#hbone = new HboneServer({
      trustDomain: deps.trustDomain,
      secureContext: () => {
        void deps.contexts.forIdentity(this.workload.identity).then(
          (c) => {
            current = c;
          },
          () => {},
        );
        return current;
      },
      onConnect: hboneConnectHandler(deps.inbound, workload, this.live),
      onRejected: (info) => {
        deps.inbound.metrics.rejected.inc({ listener: 'hbone', reason: info.reason });
        deps.logger.warn(
          { workload: workload.ref, remote: info.remote, reason: info.reason },
          'HBONE connection refused',
        );
      },
      limits: { handshakeTimeoutMs: deps.handshakeTimeoutMs },
      logger: deps.logger,
    });
    try {
      this.#servers.push(
        await this.#listen(AGENT_PORTS.outbound, (s) =>
          handleOutbound(deps.outbound, this.workload, s, this.#limiter),
        ),
      );
      this.#servers.push(
        await this.#listen(AGENT_PORTS.inboundPlaintext, (s) =>
          handlePlaintextInbound(deps.inbound, this.workload, this.live, s),
        ),
      );
      const hbone = this.#hbone;
      this.#servers.push(await this.#listen(AGENT_PORTS.hbone, (s) => hbone.handle(s)));
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
   * Stops accepting; lets HBONE streams finish for up to `drainMs` (GOAWAY tells peers to use
   * new connections), then closes what is left. The capture rules stay.
   */
  async stop(drainMs = 0): Promise<void> {
    for (const server of this.#servers.splice(0)) server.close();
    if (drainMs > 0 && this.#hbone) {
      await Promise.race([this.#hbone.close(), new Promise((r) => setTimeout(r, drainMs).unref())]);
    }
    this.live.closeAll();
    this.#hbone?.destroy();
  }

  /** Stops and removes the capture rules (the workload leaves the mesh or the node). */
  async release(): Promise<void> {
    await this.stop();
    try {
      await removeCapture(this.workload.netns, { mark: this.#deps.mark });
    } catch (err) {
      this.#deps.logger.warn(
        { workload: this.workload.ref, err: describeError(err) },
        'removing capture rules failed (namespace gone?)',
      );
    }
  }

  async #listen(
    port: number,
    onConnection: (s: import('node:net').Socket) => void,
  ): Promise<Server> {
    const netns = this.workload.netns;
    try {
      return await listenInNetns(
        { netns, family: 6, host: '::', port, allowHalfOpen: true },
        onConnection,
      );
    } catch {
      // A namespace without IPv6 still gets IPv4 capture.
      return listenInNetns(
        { netns, family: 4, host: '0.0.0.0', port, allowHalfOpen: true },
        onConnection,
      );
    }
  }
}
