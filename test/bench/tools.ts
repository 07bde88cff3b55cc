/**
 * The load generators, run in the client workload's namespace, and their output read into
 * figures: iperf3 (throughput), wrk (HTTP/1.1 requests/s and latency), pingpong (round trips).
 * Each raw result is kept for the JSON so every figure can be traced back.
 */
import { fileURLToPath } from 'node:url';
import type { Lab } from '../../ctl/lab/index.js';
import type { LatencySummary } from './stats.js';

export const pingpongScript = fileURLToPath(new URL('./pingpong.js', import.meta.url));

export interface Target {
  /** The client workload. */
  client: string;
  host: string;
  port: number;
}

export interface ThroughputResult {
  gbps: number;
  retransmits: number;
  /** Receiver-side Gb/s of each 1 s interval. */
  intervalsGbps: number[];
  seconds: number;
  /** Bytes of every interval, the omitted first second included: the work the proxies did. */
  totalBytes: number;
}

interface Iperf3Json {
  error?: string;
  intervals?: { sum: { bits_per_second: number; bytes: number; omitted?: boolean } }[];
  end?: {
    sum_sent?: { retransmits?: number };
    sum_received?: { bits_per_second: number; seconds: number };
  };
}

const gbps = (bitsPerSecond: number) => Math.round(bitsPerSecond / 1e7) / 100;

export async function iperf3(
  lab: Lab,
  target: Target,
  streams: number,
  seconds: number,
): Promise<ThroughputResult> {
  const { stdout } = await lab.exec(
    target.client,
    [
      'iperf3',
      ...['-c', target.host, '-p', String(target.port), '-P', String(streams)],
      ...['-t', String(seconds), '-O', '1', '-J', '--connect-timeout', '3000'],
    ],
    { timeoutMs: (seconds + 20) * 1000, okStatuses: [1] },
  );
  const report = JSON.parse(stdout) as Iperf3Json;
  const received = report.end?.sum_received;
  if (report.error || !received) throw new Error(`iperf3: ${report.error ?? 'no summary'}`);
  return {
    gbps: gbps(received.bits_per_second),
    retransmits: report.end?.sum_sent?.retransmits ?? 0,
    intervalsGbps: (report.intervals ?? [])
      .filter((i) => !i.sum.omitted)
      .map((i) => gbps(i.sum.bits_per_second)),
    seconds: Math.round(received.seconds * 100) / 100,
    totalBytes: (report.intervals ?? []).reduce((n, i) => n + i.sum.bytes, 0),
  };
}

export interface HttpResult {
  requestsPerSecond: number;
  requests: number;
  seconds: number;
  p50Ms: number;
  p99Ms: number;
  socketErrors: Record<string, number>;
  non2xx: number;
  raw: string;
}

const toMs = (value: string, unit: string) =>
  Number(value) * (unit === 'us' ? 1e-3 : unit === 's' ? 1e3 : unit === 'm' ? 6e4 : 1);

/** Reads wrk's text report (`--latency`). */
export function parseWrk(raw: string): HttpResult {
  const done = /(\d+) requests in ([\d.]+)(us|ms|s|m),/.exec(raw);
  const rate = /Requests\/sec:\s+([\d.]+)/.exec(raw);
  if (!done || !rate) throw new Error(`wrk printed no result:\n${raw.slice(0, 800)}`);
  const percentile = (p: string) => {
    const m = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(raw);
    return m ? Math.round(toMs(m[1] ?? '', m[2] ?? '') * 1000) / 1000 : Number.NaN;
  };
  const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(raw);
  return {
    requestsPerSecond: Number(rate[1]),
    requests: Number(done[1]),
    seconds: toMs(done[2] ?? '', done[3] ?? '') / 1000,
    p50Ms: percentile('50'),
    p99Ms: percentile('99'),
    socketErrors: {
      connect: Number(errors?.[1] ?? 0),
      read: Number(errors?.[2] ?? 0),
      write: Number(errors?.[3] ?? 0),
      timeout: Number(errors?.[4] ?? 0),
    },
    non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(raw)?.[1] ?? 0),
    raw,
  };
}

export const WRK_THREADS = 2;
export const WRK_CONNECTIONS = 50;

export async function wrk(
  lab: Lab,
  target: Target,
  seconds: number,
  closeEachConnection: boolean,
  load: { threads: number; connections: number } = {
    threads: WRK_THREADS,
    connections: WRK_CONNECTIONS,
  },
): Promise<HttpResult> {
  const { stdout } = await lab.exec(
    target.client,
    [
      'wrk',
      ...['-t', String(load.threads), '-c', String(load.connections), '-d', `${seconds}s`],
      ...['--timeout', '5s', '--latency'],
      ...(closeEachConnection ? ['-H', 'Connection: close'] : []),
      `http://${target.host}:${target.port}/`,
    ],
    { timeoutMs: (seconds + 20) * 1000 },
  );
  const result = parseWrk(stdout);
  if (result.requests === 0) throw new Error(`wrk completed no request:\n${stdout}`);
  return result;
}

export type RoundTripResult = LatencySummary & { size: number; warmup: number };

export async function pingpong(
  lab: Lab,
  target: Target,
  size: number,
  seconds: number,
  maxRoundTrips: number,
): Promise<RoundTripResult> {
  const { stdout } = await lab.exec(
    target.client,
    [
      process.execPath,
      pingpongScript,
      'client',
      target.host,
      String(target.port),
      String(size),
      String(seconds),
      String(maxRoundTrips),
    ],
    { timeoutMs: (seconds + 20) * 1000 },
  );
  return JSON.parse(stdout) as RoundTripResult;
}

/** One small HTTP GET through a case's path; the body. */
export async function fetchOnce(lab: Lab, target: Target, path: string): Promise<string> {
  const { stdout } = await lab.exec(
    target.client,
    ['curl', '-sS', '-f', '-m', '5', `http://${target.host}:${target.port}${path}`],
    { timeoutMs: 10_000 },
  );
  return stdout;
}
