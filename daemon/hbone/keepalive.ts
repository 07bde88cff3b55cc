/**
 * Liveness of an HTTP/2 session's peer. An idle session sends a PING every intervalMs and
 * gives the peer timeoutMs to answer. A busy session (streams open: data may be waiting on a
 * dead peer) sends one every busyIntervalMs and gives it busyTimeoutMs, so a peer that died
 * without a word is found within busyIntervalMs + busyTimeoutMs. A late answer alone does not
 * condemn a peer that is still sending: the session is dead only if no byte at all came from
 * it since the PING went out (a PING can wait behind a full send buffer on a slow link).
 * One timer per session, at the busy interval's granularity.
 */
import type { Http2Session } from 'node:http2';

export interface KeepaliveOptions {
  intervalMs: number;
  timeoutMs: number;
  /** While `busy()` holds: PING this often, and this long for an answer. */
  busyIntervalMs?: number;
  busyTimeoutMs?: number;
  busy?: () => boolean;
  /** Bytes received from the peer so far (the TCP or TLS socket's bytesRead). */
  bytesRead?: () => number;
  /** Called once when the peer failed to answer; the session is destroyed right after. */
  onDead?: (reason: string) => void;
  now?: () => number;
}

interface Outstanding {
  sentAt: number;
  deadlineMs: number;
  bytesAtSend: number;
}

/** Starts the keepalive; stops by itself when the session closes. Returns a stop function. */
export function startKeepalive(session: Http2Session, options: KeepaliveOptions): () => void {
  if (!(options.intervalMs > 0)) return () => {};
  const now = options.now ?? Date.now;
  const busyInterval = options.busyIntervalMs ?? options.intervalMs;
  const tickMs = Math.min(busyInterval, options.intervalMs);
  const bytesRead = options.bytesRead ?? (() => 0);
  let outstanding: Outstanding | undefined;
  let lastPing = now();

  const dead = (reason: string) => {
    stop();
    options.onDead?.(reason);
    if (!session.destroyed) session.destroy(new Error(reason));
  };
  const ping = (deadlineMs: number) => {
    const sent: Outstanding = { sentAt: now(), deadlineMs, bytesAtSend: bytesRead() };
    lastPing = sent.sentAt;
    let accepted = false;
    try {
      accepted = session.ping((err) => {
        if (outstanding === sent) outstanding = undefined;
        // A session closing gracefully (GOAWAY, a drain) cancels its PINGs: not a dead peer.
        if (err && !session.destroyed && !session.closed) dead(`PING failed: ${err.message}`);
      });
    } catch {
      accepted = false; // the session is closing: its close handler cleans up
    }
    if (accepted) outstanding = sent;
  };
  const tick = () => {
    // A draining session's streams finish on their own; its socket's close still ends them.
    if (session.destroyed || session.closed || session.connecting) return;
    const t = now();
    if (outstanding) {
      if (t - outstanding.sentAt < outstanding.deadlineMs) return;
      if (bytesRead() === outstanding.bytesAtSend) {
        dead(`no PING answer and no data from the peer within ${outstanding.deadlineMs} ms`);
        return;
      }
      outstanding = undefined; // the peer is talking: alive, if slow to answer
    }
    const busy = options.busy?.() ?? false;
    if (busy && t - lastPing >= busyInterval) ping(options.busyTimeoutMs ?? options.timeoutMs);
    else if (t - lastPing >= options.intervalMs) ping(options.timeoutMs);
  };
  const timer = setInterval(tick, tickMs);
  timer.unref();
  const stop = () => clearInterval(timer);
  session.once('close', stop);
  return stop;
}

/**
 * The PINGs of a busy session that find a dead peer within `deadPeerTimeoutMs`, whatever the
 * timer's phase: one a second (at most a fifth of it), each allowed what is left after two
 * intervals (one for the PING to go out, one for the check that finds it late), so a peer
 * slow to answer under load gets as long as possible before it is condemned.
 */
export function deadPeerPings(deadPeerTimeoutMs: number): {
  busyIntervalMs: number;
  busyTimeoutMs: number;
} {
  const busyIntervalMs = Math.max(1, Math.min(1_000, Math.floor(deadPeerTimeoutMs / 5)));
  return { busyIntervalMs, busyTimeoutMs: deadPeerTimeoutMs - 2 * busyIntervalMs };
}
