/** Small statistics for the bench: medians of runs and percentiles read from histograms. */

/** Round-trip times as 1 µs bins: [lower edge in µs, count], ascending. */
export type Histogram = [number, number][];

export interface LatencySummary {
  count: number;
  p50: number;
  p99: number;
  p999: number;
  min: number;
  max: number;
  mean: number;
  histogram: Histogram;
}

export function histogramOf(micros: number[]): Histogram {
  const bins = new Map<number, number>();
  for (const us of micros) {
    const bin = Math.floor(us);
    bins.set(bin, (bins.get(bin) ?? 0) + 1);
  }
  return [...bins.entries()].sort((a, b) => a[0] - b[0]);
}

/** The bin holding the sample of rank ceil(p·n): what the JSON's histogram shows, exactly. */
export function percentileOf(histogram: Histogram, p: number): number {
  const total = histogram.reduce((sum, [, count]) => sum + count, 0);
  const rank = Math.max(1, Math.ceil(p * total));
  let seen = 0;
  for (const [bin, count] of histogram) {
    seen += count;
    if (seen >= rank) return bin;
  }
  return Number.NaN;
}

export function latencySummary(micros: number[]): LatencySummary {
  const histogram = histogramOf(micros);
  const sum = micros.reduce((a, b) => a + b, 0);
  return {
    count: micros.length,
    p50: percentileOf(histogram, 0.5),
    p99: percentileOf(histogram, 0.99),
    p999: percentileOf(histogram, 0.999),
    min: histogram[0]?.[0] ?? Number.NaN,
    max: histogram.at(-1)?.[0] ?? Number.NaN,
    mean: micros.length ? Math.round((sum / micros.length) * 10) / 10 : Number.NaN,
    histogram,
  };
}

/** The median of the finite values (the mean of the middle two for an even count). */
export function median(values: number[]): number {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2
    ? (sorted[mid] ?? Number.NaN)
    : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}
