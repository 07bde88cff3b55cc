/**
 * HTTP/2 settings shared by both ends of HBONE. Node's defaults (64 KiB windows) cap a pooled
 * tunnel at ~1.3 Gb/s for all its streams together (MEASUREMENTS.md), so both ends announce
 * large stream windows, open the connection window once the session is up and allow the
 * session more memory than the 10 MB default.
 */
import type { ClientHttp2Session, ServerHttp2Session, Settings } from 'node:http2';

const MiB = 1024 * 1024;

export interface Http2Tuning {
  /** SETTINGS_INITIAL_WINDOW_SIZE: per-stream receive window (bytes). */
  streamWindow: number;
  /** The session's receive window, set with setLocalWindowSize once the session is up. */
  connectionWindow: number;
  /** SETTINGS_MAX_FRAME_SIZE (16 KiB … 16 MiB - 1). */
  maxFrameSize: number;
  /** Node's maxSessionMemory, in MB: buffered, unacknowledged data per session. */
  maxSessionMemoryMb: number;
}

export const DEFAULT_HTTP2_TUNING: Readonly<Http2Tuning> = Object.freeze({
  streamWindow: 4 * MiB,
  connectionWindow: 16 * MiB,
  maxFrameSize: 1 * MiB,
  maxSessionMemoryMb: 64,
});

export function resolveTuning(partial: Partial<Http2Tuning> | undefined): Http2Tuning {
  const t = { ...DEFAULT_HTTP2_TUNING, ...partial };
  const inRange = (v: number, min: number, max: number) =>
    Number.isInteger(v) && v >= min && v <= max;
  if (!inRange(t.streamWindow, 65_535, 2 ** 31 - 1)) throw new RangeError('bad streamWindow');
  if (!inRange(t.connectionWindow, 65_535, 2 ** 31 - 1))
    throw new RangeError('bad connectionWindow');
  if (!inRange(t.maxFrameSize, 16_384, 2 ** 24 - 1)) throw new RangeError('bad maxFrameSize');
  if (!(t.maxSessionMemoryMb >= 1)) throw new RangeError('bad maxSessionMemoryMb');
  return t;
}

/** The SETTINGS frame both ends send. */
export function http2Settings(t: Http2Tuning, maxConcurrentStreams: number): Settings {
  return {
    initialWindowSize: t.streamWindow,
    maxFrameSize: t.maxFrameSize,
    enablePush: false,
    maxConcurrentStreams,
  };
}

/** Opens the session's receive window; call once the session is set up (never throws). */
export function openConnectionWindow(
  session: ClientHttp2Session | ServerHttp2Session,
  t: Http2Tuning,
): void {
  if (session.destroyed || session.closed) return;
  try {
    session.setLocalWindowSize(t.connectionWindow);
  } catch {
    // the session went away in between; its close handler cleans up
  }
}
