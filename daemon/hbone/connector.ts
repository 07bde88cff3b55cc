/**
 * Sets up one outbound HBONE connection: dial (the caller's TCP connect from the source
 * workload's netns), TLS 1.3 as the source identity with the peer's identity checked, then an
 * HTTP/2 session that is ready once the peer's SETTINGS arrived (the server sends them only
 * after accepting our certificate). Every phase is bounded; destroy() cuts set-ups in flight.
 */
import { type ClientHttp2Session, connect as http2Connect } from 'node:http2';
import type { Socket } from 'node:net';
import type { SecureContext, TLSSocket } from 'node:tls';
import { HboneError } from './errors.js';
import { connectTls } from './tls.js';
import { type Http2Tuning, http2Settings, openConnectionWindow } from './tuning.js';

export interface PoolKey {
  /** The SPIFFE ID the connection is made as (the source workload's certificate). */
  sourceIdentity: string;
  /** The netns the connection leaves from (so the peer sees the workload's IP). */
  sourceNetns: string;
  /** The SPIFFE ID the peer must present. */
  expectedIdentity: string;
  /** `ip:15008` (IPv6 in brackets) of the peer's HBONE listener. */
  destination: string;
}

export interface ConnectorOptions {
  /**
   * A connected TCP socket to key.destination, made from key.sourceNetns with the bypass mark.
   * Abandoned (signal aborted, socket destroyed if it comes late) after connectTimeoutMs.
   */
  dial: (key: PoolKey, signal: AbortSignal) => Promise<Socket>;
  secureContext: (sourceIdentity: string) => SecureContext | Promise<SecureContext>;
  trustDomain: string;
  connectTimeoutMs: number;
  /** TLS handshake, and again the wait for the peer's SETTINGS. */
  handshakeTimeoutMs: number;
  maxStreamsPerConnection: number;
  tuning: Http2Tuning;
}

export class Connector {
  dials = 0;
  /** Completed TLS handshakes (peer identity verified). */
  handshakes = 0;
  readonly #options: ConnectorOptions;
  readonly #dialAborts = new Set<AbortController>();
  readonly #sockets = new Set<Socket>();

  constructor(options: ConnectorOptions) {
    this.#options = options;
  }

  /**
   * A ready HTTP/2 session to key.destination, with the TLS socket under it; rejects with
   * HboneError naming the phase.
   */
  async open(
    key: PoolKey,
  ): Promise<{ session: ClientHttp2Session; socket: TLSSocket; raw: Socket }> {
    const destination = key.destination;
    const socket = await this.#dial(key);
    this.#sockets.add(socket);
    try {
      let context: SecureContext;
      try {
        context = await this.#options.secureContext(key.sourceIdentity);
      } catch (cause) {
        throw new HboneError('tls', `no certificate for ${key.sourceIdentity}`, {
          destination,
          cause,
        });
      }
      const tls = await connectTls(socket, {
        secureContext: context,
        trustDomain: this.#options.trustDomain,
        expectedIdentity: key.expectedIdentity,
        handshakeTimeoutMs: this.#options.handshakeTimeoutMs,
        destination,
      });
      this.handshakes++;
      return { session: await this.#session(tls, destination), socket: tls, raw: socket };
    } catch (err) {
      socket.destroy();
      throw err;
    } finally {
      this.#sockets.delete(socket);
    }
  }

  /** Cuts every set-up in flight (dials are aborted, sockets destroyed). */
  destroy(): void {
    for (const ac of this.#dialAborts) ac.abort();
    for (const socket of this.#sockets) socket.destroy();
  }

  async #dial(key: PoolKey): Promise<Socket> {
    this.dials++;
    const destination = key.destination;
    const ac = new AbortController();
    this.#dialAborts.add(ac);
    const timeoutMs = this.#options.connectTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const dialing = Promise.resolve().then(() => this.#options.dial(key, ac.signal));
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(
          new HboneError('timeout', `no TCP connection within ${timeoutMs} ms`, { destination }),
        );
        ac.abort(); // after the reject, so the race reports the timeout
      }, timeoutMs);
      timer.unref();
    });
    const aborted = new Promise<never>((_, reject) => {
      ac.signal.addEventListener('abort', () =>
        reject(new HboneError('closed', 'the HBONE pool was destroyed', { destination })),
      );
    });
    try {
      const socket = await Promise.race([
        dialing.catch((cause: unknown) => {
          throw new HboneError('dial', (cause as Error)?.message ?? String(cause), {
            destination,
            cause,
          });
        }),
        expired,
        aborted,
      ]);
      socket.setNoDelay(true);
      return socket;
    } catch (err) {
      void dialing.then(
        (late) => late.destroy(),
        () => {},
      );
      throw err;
    } finally {
      clearTimeout(timer);
      this.#dialAborts.delete(ac);
      expired.catch(() => {});
      aborted.catch(() => {});
    }
  }

  /** The HTTP/2 session over a verified TLS socket, once the peer's SETTINGS arrived. */
  #session(tls: Socket, destination: string): Promise<ClientHttp2Session> {
    const { tuning, handshakeTimeoutMs, maxStreamsPerConnection } = this.#options;
    return new Promise((resolve, reject) => {
      const session = http2Connect(`https://${destination}`, {
        createConnection: () => tls,
        settings: http2Settings(tuning, maxStreamsPerConnection),
        maxSessionMemory: tuning.maxSessionMemoryMb,
        peerMaxConcurrentStreams: maxStreamsPerConnection,
      });
      let last: Error | undefined;
      const onError = (err: Error) => {
        last = err;
      };
      const fail = (message: string) => {
        clearTimeout(timer);
        session.off('close', onClose);
        session.off('error', onError);
        session.on('error', () => {});
        session.destroy();
        tls.destroy();
        reject(new HboneError('http2', message, { destination, cause: last }));
      };
      const onClose = () =>
        fail(
          'the peer closed the connection before its HTTP/2 settings ' +
            '(it may have refused our certificate)',
        );
      const timer = setTimeout(
        () => fail(`no HTTP/2 settings within ${handshakeTimeoutMs} ms`),
        handshakeTimeoutMs,
      );
      timer.unref();
      session.on('error', onError);
      session.once('close', onClose);
      session.once('remoteSettings', () => {
        clearTimeout(timer);
        session.off('close', onClose);
        session.off('error', onError);
        openConnectionWindow(session, tuning);
        resolve(session);
      });
    });
  }
}
