/**
 * Copies bytes both ways between two duplex streams (an HTTP/2 CONNECT stream and a TCP
 * socket, or two of either) with back-pressure and half-close: when one side ends its writing
 * half, the other side's writing half is ended and the opposite direction keeps flowing until
 * it ends too. A real error on one side aborts the other: an HTTP/2 stream gets RST_STREAM
 * CONNECT_ERROR, a TCP socket a TCP RST (RFC 9113 §8.5; one that has already sent its FIN, a
 * plain close). Normal ends never reset anything.
 */
import { type Http2Stream, constants as h2 } from 'node:http2';
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { endGracefully } from './linger.js';

export interface SpliceResult {
  /** Bytes read from `a` and written to `b`. */
  bytesAtoB: number;
  bytesBtoA: number;
  durationMs: number;
  /** The first real error on either side (a reset, a socket error), if any. */
  error: Error | undefined;
}

function isHttp2Stream(side: Duplex): side is Duplex & Http2Stream {
  return (
    'rstCode' in side && 'session' in side && typeof (side as Http2Stream).close === 'function'
  );
}

/** Tears a side down as an error: RST for HTTP/2 streams and TCP sockets, destroy otherwise. */
export function abortSide(side: Duplex, err?: Error): void {
  if (side.destroyed) return;
  if (isHttp2Stream(side)) {
    // close() submits the RST_STREAM right after emitting 'aborted'; destroying the stream in
    // between (a re-entrant call from an 'aborted' listener) would drop the RST, so a closed
    // stream is destroyed only on the next turn.
    if (!side.closed) side.close(h2.NGHTTP2_CONNECT_ERROR);
    else setImmediate(() => side.destroy());
  } else if (side instanceof Socket && side.writableEnded) {
    // No reset once the writing half has ended: libuv refuses it while the shutdown is in
    // flight (EINVAL), and Node then drops the handle without closing it: no 'close' ever,
    // and the fd, the access record and the connection's table entries leak. A peer that
    // already has our FIN gets a plain close.
    side.destroy();
  } else if (side instanceof Socket && !side.connecting && side.readyState !== 'closed') {
    try {
      side.resetAndDestroy();
    } catch {
      side.destroy();
    }
  } else {
    side.destroy(err);
  }
}

/**
 * Chunks at least this large are taken for a bulk transfer. Node hands an HTTP/2 stream's
 * data over one TLS record at a time (a DATA chunk of up to 16 KiB less the frame header),
 * one callback each; written one by one they cost a write(2) and a trip through the
 * workload's loopback and netfilter each.
 */
const BULK_CHUNK_BYTES = 4 * 1024;

/**
 * Copies `from` into `to` with back-pressure and ends `to` when `from` ends. One 'data'
 * listener does the counting and the writing: pipe() plus a counting listener cost two emits
 * and pipe's bookkeeping per chunk, measurable on small request/response traffic.
 *
 * Bulk chunks bound for a TCP socket are gathered until the event loop has run every ready
 * I/O callback (setImmediate), then written with one writev: the pieces one TLS read yields
 * arrive in the same loop turn. Small chunks (request/response traffic) are written at once,
 * so latency is untouched. While gathering, write()'s back-pressure signal is judged after
 * the flush: the gathered bytes are bounded by the HTTP/2 stream window.
 */
function forward(from: Duplex, to: Duplex, counted: (bytes: number) => void): void {
  const resume = () => from.resume();
  const coalesce = to instanceof Socket;
  let gathering = false;
  const full = () => to.writableLength >= to.writableHighWaterMark;
  const holdBack = () => {
    from.pause();
    to.once('drain', resume);
  };
  const flush = () => {
    gathering = false;
    to.uncork();
    if (full() && !from.isPaused()) holdBack();
  };
  from.on('data', (chunk: Buffer) => {
    counted(chunk.length);
    if (coalesce && !gathering && chunk.length >= BULK_CHUNK_BYTES && !to.writableEnded) {
      gathering = true;
      to.cork();
      setImmediate(flush);
    }
    to.write(chunk);
    if (!gathering && full()) holdBack();
  });
  const passEnd = () => {
    if (to.destroyed || to.writableEnded) return;
    // An application-facing socket resets on close while it lingers (linger.ts); a normal end
    // must reach the application as a FIN after every byte.
    if (to instanceof Socket) endGracefully(to);
    else to.end();
  };
  // An HTTP/2 stream reset by its peer can end its readable half a moment before it reports the
  // reset: Node's close(code) sends END_STREAM, then RST_STREAM, and both arrive in one read.
  // One event-loop turn later 'aborted' has come, and the other side gets a reset, not a FIN.
  const onEnd = isHttp2Stream(from)
    ? () =>
        setImmediate(() => {
          if (!from.aborted) passEnd();
        })
    : passEnd;
  // A stream emits 'end' even with nobody reading once its peer's FIN arrives with nothing
  // buffered: a client that half-closes while its tunnel is being set up (a probe, a client
  // that sends nothing) ended before this listener existed, and waiting for 'end' would hold
  // the tunnel, and the application's connection behind it, open for good.
  if (from.readableEnded) onEnd();
  else from.once('end', onEnd);
}

/** Both halves done: 'end' seen, and everything written flushed after end(). */
function endedCleanly(side: Duplex): boolean {
  return (
    side.readableEnded &&
    (side.writableFinished || (side.writableEnded && side.writableLength === 0))
  );
}

function prematureClose(): Error {
  return Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
}

/**
 * Splices `a` and `b`; resolves (never rejects) once both sides are closed. Both should keep
 * their writing half open after the peer's FIN (allowHalfOpen; HTTP/2 streams always do). A
 * TCP socket passed here is switched to allowHalfOpen and TCP_NODELAY: the mesh must not add
 * Nagle delays to what the application wrote (the HBONE sockets set it too).
 */
export function splice(a: Duplex, b: Duplex): Promise<SpliceResult> {
  const started = performance.now();
  let bytesAtoB = 0;
  let bytesBtoA = 0;
  let error: Error | undefined;
  for (const side of [a, b]) {
    if (side instanceof Socket) {
      side.allowHalfOpen = true;
      side.setNoDelay(true);
    }
  }
  return new Promise((resolve) => {
    let open = 2;
    const closed = () => {
      if (--open > 0) return;
      resolve({ bytesAtoB, bytesBtoA, durationMs: performance.now() - started, error });
    };
    // What stream.finished() decides, without its listeners and closures per connection: an
    // error, or a close before both halves ended, aborts both sides.
    const watch = (side: Duplex, other: Duplex) => {
      const fail = (err: Error) => {
        error ??= err;
        abortSide(side, err);
        abortSide(other, err);
      };
      const onClose = () => {
        if (!endedCleanly(side)) fail(error ?? prematureClose());
        closed();
      };
      side.on('error', fail);
      // A reset or a lost session while this side could still write: HTTP/2 streams say so
      // with 'aborted' and may end their readable half gracefully right after, which must
      // not reach the other side as a clean FIN.
      if (isHttp2Stream(side)) side.once('aborted', () => fail(error ?? prematureClose()));
      if (side.destroyed) queueMicrotask(onClose);
      else side.once('close', onClose);
      // Reset before the splice began (its 'aborted' passed unheard, and its readable half
      // ended as if cleanly): fail now, before forward() could pass that end on as a FIN.
      if (isHttp2Stream(side) && side.aborted && !side.destroyed) fail(error ?? prematureClose());
    };
    watch(a, b);
    watch(b, a);
    forward(a, b, (n) => {
      bytesAtoB += n;
    });
    forward(b, a, (n) => {
      bytesBtoA += n;
    });
  });
}
