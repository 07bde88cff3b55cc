/**
 * PING keepalive for an HTTP/2 session: every intervalMs a PING; no ACK within timeoutMs →
 * the session is destroyed (its streams fail, the pool opens a new session). Finds dead peers
 * and half-open TCP connections that would otherwise hold streams until the kernel gives up.
 */
import type { Http2Session } from 'node:http2';

export interface KeepaliveOptions {
  intervalMs: number;
  timeoutMs: number;
  /** Called once when the peer failed to answer; the session is destroyed right after. */
  onDead?: () => void;
}

/** Starts the keepalive; stops by itself when the session closes. Returns a stop function. */
export function startKeepalive(session: Http2Session, options: KeepaliveOptions): () => void {
  if (!(options.intervalMs > 0)) return () => {};
  let deadline: NodeJS.Timeout | undefined;
  const interval = setInterval(() => {
    if (deadline || session.destroyed || session.connecting) return;
    deadline = setTimeout(() => {
      options.onDead?.();
      session.destroy(new Error(`no PING answer within ${options.timeoutMs} ms`));
    }, options.timeoutMs);
    deadline.unref();
    const sent = session.ping((err) => {
      clearTimeout(deadline);
      deadline = undefined;
      if (err) session.destroy();
    });
    if (!sent) {
      clearTimeout(deadline);
      deadline = undefined;
    }
  }, options.intervalMs);
  interval.unref();
  const stop = () => {
    clearInterval(interval);
    clearTimeout(deadline);
    deadline = undefined;
  };
  session.once('close', stop);
  return stop;
}
