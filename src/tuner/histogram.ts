// Bucket-count histogram helpers shared by both metrics sources, so an in-process window and a Prometheus window
// interpolate quantiles and SLO shares by the very same rule.
//
// Quantiles follow Prometheus' histogram_quantile: find the bucket where the cumulative count reaches q·count and
// interpolate linearly inside it, taking 0 as the lower edge of the first bucket; a rank that falls in the +Inf bucket
// answers the highest finite bound (the only finite thing known about it). Shares under a target use the largest
// bucket bound at or below the target, so they never credit observations the histogram cannot place under it.
import type { HistogramSnapshot } from '../engine/types.js';
import type { LatencySummary } from './types.js';

export const EMPTY_LATENCY: Readonly<LatencySummary> = Object.freeze({ count: 0, mean: NaN, p50: NaN, p90: NaN, p99: NaN });

export function emptyHistogram(bounds: readonly number[] = []): HistogramSnapshot {
  return { bounds: [...bounds], counts: new Array<number>(bounds.length + 1).fill(0), sum: 0, count: 0 };
}

function sameBounds(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** cur − prev. A histogram whose count or any bucket went down, or whose buckets changed, belongs to a new engine
 *  (restart): then everything in `cur` happened since, so prev counts as empty. */
export function diffHistogram(cur: HistogramSnapshot, prev: HistogramSnapshot | undefined): HistogramSnapshot {
  if (!prev || !sameBounds(cur.bounds, prev.bounds) || cur.count < prev.count || cur.counts.some((c, i) => c < (prev.counts[i] ?? 0))) {
    return { bounds: [...cur.bounds], counts: [...cur.counts], sum: cur.sum, count: cur.count };
  }
  return {
    bounds: [...cur.bounds],
    counts: cur.counts.map((c, i) => c - (prev.counts[i] ?? 0)),
    sum: cur.sum - prev.sum,
    count: cur.count - prev.count,
  };
}

/** Total observations: the buckets, not `count`, so a histogram rebuilt from `le` series needs no separate _count. */
function total(h: HistogramSnapshot): number {
  return h.counts.reduce((a, b) => a + b, 0);
}

/** Prometheus' histogram_quantile over one histogram; NaN when it is empty. */
export function histogramQuantile(q: number, h: HistogramSnapshot): number {
  const n = total(h);
  if (!(n > 0)) return NaN;
  if (q < 0) return -Infinity;
  if (q > 1) return Infinity;
  const rank = q * n;
  let below = 0;
  for (let i = 0; i < h.counts.length; i++) {
    const inBucket = h.counts[i]!;
    // `> 0` skips empty buckets for rank 0 (q = 0), where Prometheus would divide 0 by 0.
    if (below + inBucket >= rank && inBucket > 0) {
      if (i >= h.bounds.length) return h.bounds[h.bounds.length - 1] ?? NaN;
      const upper = h.bounds[i]!;
      if (i === 0 && upper <= 0) return upper;
      const lower = i === 0 ? 0 : h.bounds[i - 1]!;
      return lower + (upper - lower) * ((rank - below) / inBucket);
    }
    below += inBucket;
  }
  return h.bounds[h.bounds.length - 1] ?? NaN;
}

export function histogramMean(h: HistogramSnapshot): number {
  const n = total(h);
  return n > 0 ? h.sum / n : NaN;
}

export function latencyFromHistogram(h: HistogramSnapshot): LatencySummary {
  const count = total(h);
  if (count === 0) return { ...EMPTY_LATENCY };
  return { count, mean: h.sum / count, p50: histogramQuantile(0.5, h), p90: histogramQuantile(0.9, h), p99: histogramQuantile(0.99, h) };
}

/** Share of observations in buckets whose upper bound is at or below `target` (NaN when empty). Conservative: the
 *  observations between that bound and the target cannot be told apart from those above it. */
export function shareAtOrBelow(h: HistogramSnapshot, target: number): number {
  const n = total(h);
  if (!(n > 0)) return NaN;
  let under = 0;
  h.bounds.forEach((b, i) => {
    if (b <= target) under += h.counts[i]!;
  });
  return under / n;
}

/** A histogram from Prometheus' cumulative `le` series (e.g. `sum by (le) (increase(x_bucket[1m]))`). Cumulative
 *  counts that dip (increase() extrapolates each series separately) are lifted to the running maximum, as
 *  histogram_quantile does, so no bucket goes negative. */
export function histogramFromCumulative(buckets: readonly { le: number; value: number }[], sum: number): HistogramSnapshot {
  const sorted = [...buckets].filter((b) => !Number.isNaN(b.le)).sort((a, b) => a.le - b.le);
  const finite = sorted.filter((b) => Number.isFinite(b.le));
  const inf = sorted.find((b) => b.le === Infinity);
  const cumulative = [...finite.map((b) => b.value), inf ? inf.value : (finite[finite.length - 1]?.value ?? 0)];
  const counts: number[] = [];
  let prev = 0;
  for (const c of cumulative) {
    const v = Math.max(prev, c);
    counts.push(v - prev);
    prev = v;
  }
  return { bounds: finite.map((b) => b.le), counts, sum, count: prev };
}
