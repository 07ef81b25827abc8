// Helpers that build pulled families over the engines of a scrape: each sample gets the engine's model/role labels.
import type { Registry } from 'prom-client';
import type { HistogramSnapshot } from '../engine/types.js';
import { PulledMetric, histogramSamples, registerPulled, type Labels, type Sample } from './pulled.js';
import type { ScrapeSnapshots, UpSnapshot } from './snapshot.js';

export class FamilyBuilder {
  constructor(
    private readonly registry: Registry,
    private readonly snapshots: ScrapeSnapshots,
  ) {}

  /** One unlabelled value per engine (besides model/role). */
  counter(name: string, help: string, value: (s: UpSnapshot) => number): void {
    this.labelled(name, help, 'counter', (s) => [[{}, value(s)]]);
  }

  gauge(name: string, help: string, value: (s: UpSnapshot) => number): void {
    this.labelled(name, help, 'gauge', (s) => [[{}, value(s)]]);
  }

  /** Several series per engine, e.g. one per reason. */
  labelled(name: string, help: string, type: 'counter' | 'gauge', series: (s: UpSnapshot) => [Labels, number][]): void {
    registerPulled(
      this.registry,
      new PulledMetric(name, help, type, () =>
        this.snapshots.up().flatMap((s) => series(s).map(([labels, value]): Sample => ({ labels: { ...s.labels, ...labels }, value }))),
      ),
    );
  }

  /** Engine histograms; `series` may give several (e.g. one per phase) with extra labels. */
  histogram(name: string, help: string, series: (s: UpSnapshot) => [Labels, HistogramSnapshot][]): void {
    registerPulled(
      this.registry,
      new PulledMetric(name, help, 'histogram', () =>
        this.snapshots.up().flatMap((s) => series(s).flatMap(([labels, h]) => histogramSamples(name, { ...s.labels, ...labels }, h))),
      ),
    );
  }
}

/** Record<string, number> → one series per key under `label`. */
export function byKey(label: string, values: Record<string, number>): [Labels, number][] {
  return Object.entries(values).map(([k, v]) => [{ [label]: k }, v]);
}
