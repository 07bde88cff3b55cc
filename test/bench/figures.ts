/**
 * What the bench measures: the figures (one load-generator run each) and the metrics read from
 * them (a figure can give several, like p50/p99/p99.9), with which direction is better.
 */
import type { Usage } from './proc-stats.js';

export type FigureId =
  | 'throughput-1'
  | 'throughput-4'
  | 'rtt-1B'
  | 'rtt-1KiB'
  | 'http-keepalive'
  | 'http-close';

export const FIGURES: { id: FigureId; label: string }[] = [
  { id: 'throughput-1', label: 'iperf3, 1 stream' },
  { id: 'throughput-4', label: 'iperf3, 4 streams' },
  { id: 'rtt-1B', label: 'round trips, 1 B' },
  { id: 'rtt-1KiB', label: 'round trips, 1 KiB' },
  { id: 'http-keepalive', label: 'wrk keep-alive' },
  { id: 'http-close', label: 'wrk Connection: close' },
];

export interface Metric {
  id: string;
  label: string;
  figure: FigureId;
  /** The key in a run's `values`. */
  key: string;
  better: 'higher' | 'lower';
  digits: number;
}

export const METRICS: Metric[] = [
  {
    id: 'gbps-1',
    label: '1-stream throughput, Gb/s',
    figure: 'throughput-1',
    key: 'gbps',
    better: 'higher',
    digits: 2,
  },
  {
    id: 'gbps-4',
    label: '4-stream throughput, Gb/s',
    figure: 'throughput-4',
    key: 'gbps',
    better: 'higher',
    digits: 2,
  },
  {
    id: 'rtt1-p50',
    label: 'round trip 1 B, p50 µs',
    figure: 'rtt-1B',
    key: 'p50',
    better: 'lower',
    digits: 0,
  },
  {
    id: 'rtt1-p99',
    label: 'round trip 1 B, p99 µs',
    figure: 'rtt-1B',
    key: 'p99',
    better: 'lower',
    digits: 0,
  },
  {
    id: 'rtt1-p999',
    label: 'round trip 1 B, p99.9 µs',
    figure: 'rtt-1B',
    key: 'p999',
    better: 'lower',
    digits: 0,
  },
  {
    id: 'rtt1k-p50',
    label: 'round trip 1 KiB, p50 µs',
    figure: 'rtt-1KiB',
    key: 'p50',
    better: 'lower',
    digits: 0,
  },
  {
    id: 'rtt1k-p99',
    label: 'round trip 1 KiB, p99 µs',
    figure: 'rtt-1KiB',
    key: 'p99',
    better: 'lower',
    digits: 0,
  },
  {
    id: 'rtt1k-p999',
    label: 'round trip 1 KiB, p99.9 µs',
    figure: 'rtt-1KiB',
    key: 'p999',
    better: 'lower',
    digits: 0,
  },
  {
    id: 'keepalive-rps',
    label: 'HTTP keep-alive, requests/s',
    figure: 'http-keepalive',
    key: 'requestsPerSecond',
    better: 'higher',
    digits: 0,
  },
  {
    id: 'keepalive-p99',
    label: 'HTTP keep-alive, p99 ms',
    figure: 'http-keepalive',
    key: 'p99Ms',
    better: 'lower',
    digits: 2,
  },
  {
    id: 'close-cps',
    label: 'new connections/s (Connection: close)',
    figure: 'http-close',
    key: 'requestsPerSecond',
    better: 'higher',
    digits: 0,
  },
  {
    id: 'close-p99',
    label: 'Connection: close, p99 ms',
    figure: 'http-close',
    key: 'p99Ms',
    better: 'lower',
    digits: 2,
  },
];

/** CPU the proxies spent per unit of work (`values.cpuPerUnit` of a run). */
export const COSTS: { figure: FigureId; unit: string; digits: number }[] = [
  { figure: 'throughput-1', unit: 'CPU s per GB', digits: 2 },
  { figure: 'throughput-4', unit: 'CPU s per GB', digits: 2 },
  { figure: 'rtt-1B', unit: 'CPU µs per round trip', digits: 0 },
  { figure: 'rtt-1KiB', unit: 'CPU µs per round trip', digits: 0 },
  { figure: 'http-keepalive', unit: 'CPU µs per request', digits: 0 },
  { figure: 'http-close', unit: 'CPU µs per connection', digits: 0 },
];

/** One load-generator run of one case in one round. */
export interface RunRecord {
  round: number;
  case: string;
  figure: FigureId;
  startedAt: string;
  seconds: number;
  error?: string;
  values: Record<string, number>;
  /** The proxies' CPU and memory during the run (absent for direct). */
  usage?: Usage;
  /** Share of the whole machine's CPU (both cores) that was busy during the run, 0..1. */
  machineBusy?: number;
  /** What the tool reported, trimmed to what the figures come from. */
  raw?: unknown;
}
