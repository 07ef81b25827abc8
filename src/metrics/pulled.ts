// A metric whose samples are computed at scrape time from an engine snapshot. prom-client's Counter and Histogram
// only accumulate observations (inc/observe), but the engine already keeps the counts: a scrape must *report* them,
// so these families hand prom-client ready-made samples through the same get() interface its own metrics use.
import type { Metric, Registry } from 'prom-client';
import type { HistogramSnapshot } from '../engine/types.js';

export type Labels = Record<string, string | number>;

export interface Sample {
  labels: Labels;
  value: number;
  /** For histograms: name_bucket / name_sum / name_count. */
  metricName?: string;
}

export type PulledType = 'counter' | 'gauge' | 'histogram';

export class PulledMetric {
  /** How prom-client's cluster aggregation would merge workers; we run one process, but the field is part of the shape. */
  readonly aggregator = 'sum';

  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: PulledType,
    private readonly read: () => Sample[],
  ) {}

  async get(): Promise<{ name: string; help: string; type: PulledType; aggregator: string; values: Sample[] }> {
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: this.read() };
  }

  /** registry.resetMetrics() calls this; the engine owns the values, so there is nothing to reset. */
  reset(): void {}
}

/** Register a pulled metric; prom-client's typings only name its own classes, but the registry needs just
 *  name/help/type and get() (see prom-client lib/registry.js). */
export function registerPulled(registry: Registry, m: PulledMetric): PulledMetric {
  registry.registerMetric(m as unknown as Metric);
  return m;
}

/** Engine histogram (per-bucket counts, +Inf last) → Prometheus samples (cumulative buckets, _sum, _count). */
export function histogramSamples(name: string, labels: Labels, h: HistogramSnapshot): Sample[] {
  const out: Sample[] = [];
  let cumulative = 0;
  for (let i = 0; i < h.counts.length; i++) {
    cumulative += h.counts[i]!;
    const le = i < h.bounds.length ? String(h.bounds[i]) : '+Inf';
    out.push({ metricName: `${name}_bucket`, labels: { ...labels, le }, value: cumulative });
  }
  // _count is the +Inf bucket by definition; take it from the buckets so the two can never disagree.
  out.push({ metricName: `${name}_sum`, labels, value: h.sum });
  out.push({ metricName: `${name}_count`, labels, value: cumulative });
  return out;
}
