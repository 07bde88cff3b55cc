/**
 * Raw byte plumbing: a splice of two duplex streams (opaque TCP and upgraded connections) with
 * back-pressure, half-close and byte counts, and the socket methods Node's HTTP machinery
 * calls on a connection, added to a Duplex that lacks them (an HTTP/2 stream, a test pair).
 */
import { constants as h2 } from 'node:http2';
import { Socket } from 'node:net';
import type { Duplex, Readable, Writable } from 'node:stream';

export interface SpliceResult {
  aToB: number;
  bToA: number;
  /** The first real error (a reset, a close before both halves ended), if any. */
  error: Error | undefined;
  /** Which side it came from. */
  errorSide: 'a' | 'b' | undefined;
}

/**
 * Copies `from` into `to` with back-pressure and ends `to` when `from` ends; `count` is told
 * each chunk's size.
 */
export function forward(from: Readable, to: Writable, count: (n: number) => void): void {
  const resume = () => from.resume();
  from.on('data', (chunk: Buffer) => {
    count(chunk.length);
    if (!to.write(chunk)) {
      from.pause();
      to.once('drain', resume);
    }
  });
  const passEnd = () => {
    if (!to.destroyed && !to.writableEnded) to.end();
  };
  // An HTTP/2 stream reset by its peer can end its readable half a moment before it reports
  // the reset (Node's close(code) sends END_STREAM, then RST_STREAM, and both arrive in one
  // read): one turn later the reset is known, and it must not pass on as a clean end.
  const onEnd =
    'rstCode' in from
      ? () =>
          setImmediate(() => {
            const code = (from as unknown as { rstCode: number | undefined }).rstCode;
            if (code === undefined || code === 0) passEnd();
          })
      : passEnd;
  if (from.readableEnded) onEnd();
  else from.once('end', onEnd);
}

function endedCleanly(side: Duplex): boolean {
  return side.readableEnded && side.writableEnded && side.writableLength === 0;
}

/** Splices `a` and `b`; resolves (never rejects) once both have closed. */
export function splice(a: Duplex, b: Duplex): Promise<SpliceResult> {
  const result: SpliceResult = { aToB: 0, bToA: 0, error: undefined, errorSide: undefined };
  for (const side of [a, b]) {
    if ('allowHalfOpen' in side) (side as { allowHalfOpen: boolean }).allowHalfOpen = true;
    if (typeof (side as { setNoDelay?: unknown }).setNoDelay === 'function') {
      (side as unknown as { setNoDelay(v: boolean): void }).setNoDelay(true);
    }
  }
  return new Promise((resolve) => {
    let open = 2;
    const watch = (side: Duplex, other: Duplex, name: 'a' | 'b') => {
      const fail = (err: Error) => {
        if (result.error === undefined) {
          result.error = err;
          result.errorSide = name;
        }
        abortStream(side);
        abortStream(other);
      };
      side.on('error', fail);
      const onClose = () => {
        if (!endedCleanly(side)) fail(result.error ?? new Error('premature close'));
        if (--open === 0) resolve(result);
      };
      if (side.destroyed) queueMicrotask(onClose);
      else side.once('close', onClose);
    };
    watch(a, b, 'a');
    watch(b, a, 'b');
    forward(a, b, (n) => {
      result.aToB += n;
    });
    forward(b, a, (n) => {
      result.bToA += n;
    });
  });
}

/**
 * Tears a downstream or upstream stream down as a failure the peer can see: a TCP socket gets
 * RST, an HTTP/2 stream (an HBONE tunnel) RST_STREAM CONNECT_ERROR, anything else is destroyed.
 */
export function abortStream(s: Duplex): void {
  if (s.destroyed) return;
  if (s instanceof Socket) {
    if (!s.connecting && !s.writableEnded) {
      try {
        s.resetAndDestroy();
        return;
      } catch {
        // fall through to a plain destroy
      }
    }
    s.destroy();
    return;
  }
  const stream = s as Duplex & { close?: (code: number) => void; rstCode?: number };
  if ('rstCode' in stream && typeof stream.close === 'function') {
    stream.close(h2.NGHTTP2_CONNECT_ERROR);
    return;
  }
  s.destroy();
}

const kTimer = Symbol('meshd.l7.timer');

interface Shimmed {
  [kStringsAsBuffers]?: boolean;
  setTimeout?: unknown;
  setKeepAlive?: unknown;
  setNoDelay?: unknown;
  ref?: unknown;
  unref?: unknown;
  timeout?: number;
  [kTimer]?: NodeJS.Timeout | null | undefined;
}

function shimSetTimeout(this: Duplex & Shimmed, ms: number, cb?: () => void): Duplex {
  const previous = this[kTimer];
  if (previous) clearTimeout(previous);
  else if (previous === undefined) this.once('close', clearShimTimer);
  this[kTimer] = null;
  this.timeout = ms;
  if (cb) this.once('timeout', cb);
  if (ms > 0 && !this.destroyed) {
    const timer = setTimeout(() => this.emit('timeout'), ms);
    timer.unref();
    this[kTimer] = timer;
  }
  return this;
}

function clearShimTimer(this: Duplex & Shimmed): void {
  const timer = this[kTimer];
  if (timer) clearTimeout(timer);
}

const kStringsAsBuffers = Symbol('meshd.l7.strings-as-buffers');

/**
 * Node's HTTP machinery writes its header blocks as latin1 strings, corked, so several writes
 * reach the stream as one writev. An HTTP/2 stream given a writev with string chunks sends
 * garbage in their place (Node 24: the copy of the strings is freed before nghttp2 reads it;
 * seen as a corrupt status line). Strings are made Buffers before they get that far.
 */
function writeStringsAsBuffers(
  this: Duplex,
  chunk: unknown,
  encoding?: BufferEncoding | ((err?: Error | null) => void),
  cb?: (err?: Error | null) => void,
): boolean {
  const write = Object.getPrototypeOf(this).write as (this: Duplex, ...args: unknown[]) => boolean;
  if (typeof chunk === 'string') {
    const buf = Buffer.from(chunk, typeof encoding === 'string' ? encoding : 'utf8');
    return typeof encoding === 'function'
      ? write.call(this, buf, encoding)
      : write.call(this, buf, cb);
  }
  return typeof encoding === 'function'
    ? write.call(this, chunk, encoding)
    : write.call(this, chunk, encoding as BufferEncoding, cb);
}

function self(this: unknown): unknown {
  return this;
}

/**
 * Gives `d` what Node's http.Server and http.Agent call on a socket (setTimeout, setKeepAlive,
 * setNoDelay, ref, unref) when it lacks them. The added setTimeout is a plain deadline, not an
 * inactivity timer: enough for the keep-alive idle close the server sets between requests.
 */
export function socketLike<T extends Duplex>(d: T): T {
  const s = d as T & Shimmed;
  if (!(d instanceof Socket) && s[kStringsAsBuffers] !== true) {
    s[kStringsAsBuffers] = true;
    s.write = writeStringsAsBuffers;
  }
  if (typeof s.setTimeout !== 'function') s.setTimeout = shimSetTimeout;
  if (typeof s.setKeepAlive !== 'function') s.setKeepAlive = self;
  if (typeof s.setNoDelay !== 'function') s.setNoDelay = self;
  if (typeof s.ref !== 'function') s.ref = self;
  if (typeof s.unref !== 'function') s.unref = self;
  return d;
}
