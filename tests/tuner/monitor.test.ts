// Monitor stage: histogram helpers and summarizeWindow on hand-built engine snapshots (every number known), the
// RegistrySource's windowing and ring buffer, and one run against the real engine.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine, type EngineStats, type GenerationResult, type HistogramSnapshot } from '../../src/engine/index.js';
import { diffHistogram, histogramFromCumulative, histogramMean, histogramQuantile, latencyFromHistogram, shareAtOrBelow } from '../../src/tuner/histogram.js';
import { RegistrySource, emptyEngineStats, latencyFromValues, meetsSlo, requestSampleFromResult, summarizeWindow, type WindowInput } from '../../src/tuner/monitor.js';
import type { RequestSample, SloTargets } from '../../src/tuner/types.js';
import { MODEL } from '../controlplane/harness.js';

const SLO: SloTargets = { ttftP99Seconds: 0.5, interTokenP99Seconds: 0.05, e2eP99Seconds: 2, errorRateBudget: 0.01 };
const BOUNDS = [0.1, 0.5, 1, 2];

function hist(counts: number[], sum: number, bounds = BOUNDS): HistogramSnapshot {
  return { bounds, counts, sum, count: counts.reduce((a, b) => a + b, 0) };
}

/** An engine snapshot: all zeros (latency histograms on BOUNDS) with the given changes applied. */
function stats(edit: (s: EngineStats) => void = () => {}): EngineStats {
  const s = emptyEngineStats();
  for (const k of Object.keys(s.latency) as (keyof EngineStats['latency'])[]) s.latency[k] = hist([0, 0, 0, 0, 0], 0);
  s.batches.size = hist([0, 0, 0, 0, 0], 0, [1, 2, 4, 8]);
  s.batches.tokens = hist([0, 0, 0, 0, 0], 0, [1, 2, 4, 8]);
  for (const p of ['prefill', 'decode', 'mixed'] as const) s.batches.stepDurationSeconds[p] = hist([0, 0, 0, 0, 0], 0);
  s.kvCache.usageRatio = 0;
  s.kvCache.fragmentationRatio = 1;
  s.settings.maxBatchSize = 4;
  s.uptimeSeconds = 10;
  edit(s);
  return s;
}

function sample(o: Partial<RequestSample> = {}): RequestSample {
  return { atMs: 1000, ok: true, queueS: 0.01, ttftS: 0.1, interTokenS: 0.02, e2eS: 0.5, promptTokens: 4, completionTokens: 10, ...o };
}

function input(o: Partial<WindowInput>): WindowInput {
  return { prev: stats(), cur: stats(), samples: [], startMs: 0, endMs: 10_000, slo: SLO, settingsVersion: 3, cpuSeconds: 1.5, maxBatchSize: 4, ...o };
}

describe('histogram helpers', () => {
  // 8 observations: 2 in (0, 1], 2 in (1, 2], 4 in (2, 4], none above.
  const h = hist([2, 2, 4, 0], 20, [1, 2, 4]);

  it('interpolates quantiles linearly inside the bucket, as histogram_quantile does', () => {
    expect(histogramQuantile(0.25, h)).toBeCloseTo(1, 12); // rank 2: top of the first bucket
    expect(histogramQuantile(0.5, h)).toBeCloseTo(2, 12); // rank 4: top of the second
    expect(histogramQuantile(0.75, h)).toBeCloseTo(3, 12); // rank 6: halfway through (2, 4]
    expect(histogramQuantile(0.99, h)).toBeCloseTo(2 + (2 * (7.92 - 4)) / 4, 12);
    expect(histogramQuantile(0.125, h)).toBeCloseTo(0.5, 12); // first bucket starts at 0
    expect(histogramMean(h)).toBe(2.5);
  });

  it('answers the highest finite bound for ranks in +Inf, and NaN when empty', () => {
    expect(histogramQuantile(0.5, hist([0, 0, 0, 5], 100, [1, 2, 4]))).toBe(4);
    expect(histogramQuantile(0.5, hist([0, 0, 0, 0], 0, [1, 2, 4]))).toBeNaN();
    expect(latencyFromHistogram(hist([0, 0, 0, 0], 0, [1, 2, 4]))).toEqual({ count: 0, mean: NaN, p50: NaN, p90: NaN, p99: NaN });
  });

  it('shares under a target count only buckets whose bound is at or below it', () => {
    expect(shareAtOrBelow(h, 2)).toBe(0.5);
    expect(shareAtOrBelow(h, 3.9)).toBe(0.5); // (2, 4] cannot be split at 3.9
    expect(shareAtOrBelow(h, 4)).toBe(1);
    expect(shareAtOrBelow(h, 0.5)).toBe(0);
  });

  it('differences histograms, and treats a drop as a restart', () => {
    const prev = hist([1, 1, 0, 0], 2, [1, 2, 4]);
    expect(diffHistogram(h, prev)).toEqual({ bounds: [1, 2, 4], counts: [1, 1, 4, 0], sum: 18, count: 6 });
    expect(diffHistogram(prev, h)).toEqual(prev);
    expect(diffHistogram(h, hist([0, 0, 0], 0, [1, 2]))).toEqual(h); // other bounds: another engine
  });

  it('rebuilds per-bucket counts from cumulative le series, lifting dips', () => {
    const r = histogramFromCumulative(
      [
        { le: Infinity, value: 8 },
        { le: 2, value: 4 },
        { le: 1, value: 2 },
        { le: 4, value: 3.9 },
      ],
      20,
    );
    expect(r.bounds).toEqual([1, 2, 4]);
    expect(r.counts).toEqual([2, 2, 0, 4]);
    expect(r.count).toBe(8);
  });
});

describe('summarizeWindow', () => {
  const prev = stats((s) => {
    s.requests.finished = 10;
    s.requests.failed = 1;
    s.requests.timedOut = 0;
    s.requests.cancelled = 2;
    s.requests.rejected.queue_full = 1;
    s.tokens.prompt = 100;
    s.tokens.generated = 400;
    s.batches.steps = 50;
    s.busySeconds = 4;
    s.batches.preemptions = 1;
    s.kvCache.prefixQueries = 10;
    s.kvCache.prefixHits = 5;
    s.latency.e2eSeconds = hist([0, 5, 5, 0, 0], 6);
    s.latency.timeToFirstTokenSeconds = hist([10, 0, 0, 0, 0], 0.5);
    s.batches.size = hist([10, 10, 0, 0, 0], 30, [1, 2, 4, 8]);
    s.batches.stepDurationSeconds.decode = hist([40, 0, 0, 0, 0], 0.2);
    s.batches.flushes = { full: 3, timeout: 2, queue_threshold: 0 };
  });
  const cur = stats((s) => {
    s.requests.finished = 28;
    s.requests.failed = 2;
    s.requests.timedOut = 1;
    s.requests.cancelled = 3;
    s.requests.rejected.queue_full = 4;
    s.requests.running = 3;
    s.requests.waiting = 7;
    s.tokens.prompt = 180;
    s.tokens.generated = 700;
    s.batches.steps = 150;
    s.busySeconds = 12;
    s.batches.preemptions = 3;
    s.kvCache.prefixQueries = 30;
    s.kvCache.prefixHits = 20;
    s.kvCache.usageRatio = 0.8;
    s.kvCache.fragmentationRatio = 1.2;
    // 20 more e2e: 4 in (0.1, 0.5], 8 in (0.5, 1], 8 in (1, 2].
    s.latency.e2eSeconds = hist([0, 9, 13, 8, 0], 6 + 20);
    // 20 more TTFT: 15 in (0, 0.1], 5 in (0.5, 1].
    s.latency.timeToFirstTokenSeconds = hist([25, 0, 5, 0, 0], 0.5 + 4);
    s.batches.size = hist([10, 40, 70, 0, 0], 30 + 300, [1, 2, 4, 8]);
    s.batches.stepDurationSeconds.decode = hist([120, 0, 0, 0, 0], 0.2 + 0.4);
    s.batches.stepDurationSeconds.prefill = hist([20, 0, 0, 0, 0], 1);
    s.batches.flushes = { full: 10, timeout: 2, queue_threshold: 5 };
  });

  it('differences counters and histograms over the window', () => {
    const w = summarizeWindow(input({ prev, cur }));
    expect(w.source).toBe('registry');
    expect(w.settingsVersion).toBe(3);
    expect(w.cpuSeconds).toBe(1.5);
    expect(w.requests).toMatchObject({ finished: 18 + 1 + 1, errors: 2, rejected: 3, cancelled: 1, running: 3, waiting: 7 });
    expect(w.tokens).toEqual({ prompt: 80, generated: 300 });
    expect(w.throughputTokensPerS).toBe(30);
    expect(w.batch.steps).toBe(100);
    expect(w.batch.meanSize).toBe(3); // 300 / 100
    expect(w.batch.fillRatio).toBe(0.75);
    expect(w.batch.meanDecodeStepSeconds).toBeCloseTo(0.4 / 80, 12);
    expect(w.batch.meanStepSeconds).toBeCloseTo((0.4 + 1) / 100, 12);
    expect(w.batch.flushes).toEqual({ full: 7, timeout: 0, queue_threshold: 5 });
    expect(w.utilization).toBeCloseTo(0.8, 12);
    expect(w.kv).toEqual({ usageRatio: 0.8, fragmentationRatio: 1.2, preemptions: 2, prefixHitRatio: 0.75 });
  });

  it('without samples, interpolates latency from the differenced histograms and estimates attainment from buckets', () => {
    const w = summarizeWindow(input({ prev, cur }));
    expect(w.latency.e2e.count).toBe(20);
    expect(w.latency.e2e.mean).toBeCloseTo(1, 12);
    // rank 10 of 20: 4 below 0.5, 8 in (0.5, 1] → 0.5 + 0.5·6/8.
    expect(w.latency.e2e.p50).toBeCloseTo(0.875, 12);
    // rank 19.8: 12 below 1, 8 in (1, 2] → 1 + 7.8/8.
    expect(w.latency.e2e.p99).toBeCloseTo(1.975, 12);
    expect(w.latency.ttft.p50).toBeCloseTo((0.1 * 10) / 15, 12);
    // Little's law from the e2e histogram: 20 request-seconds over 10 s.
    expect(w.requests.meanConcurrency).toBeCloseTo(2, 12);
    // ok share 18/20; under e2e target 2: all 20; under TTFT 0.5: 15/20 → 0.9 · 0.75.
    expect(w.sloAttainment).toBeCloseTo(0.675, 12);
    expect(w.goodputTokensPerS).toBeCloseTo(30 * 0.675, 12);
  });

  it('with samples, uses exact quantiles and counts goodput request by request', () => {
    const samples = [
      sample({ e2eS: 0.4, completionTokens: 10 }), // meets all
      sample({ e2eS: 0.6, ttftS: 0.9, completionTokens: 20 }), // TTFT over 0.5
      sample({ e2eS: 0.8, ok: false, completionTokens: 5 }), // failed
      sample({ e2eS: 1.0, interTokenS: NaN, completionTokens: 1 }), // single token: inter-token not judged
      sample({ e2eS: 1.2, interTokenS: 0.06, completionTokens: 40 }), // inter-token over 0.05
      sample({ e2eS: 2.5, completionTokens: 7 }), // e2e over 2
    ];
    const w = summarizeWindow(input({ prev, cur, samples }));
    expect(w.sloAttainment).toBeCloseTo(2 / 6, 12);
    expect(w.goodputTokensPerS).toBeCloseTo((10 + 1) / 10, 12);
    // Latency over ok samples only (5 of them); the failed one still occupied the system.
    expect(w.latency.e2e).toEqual(latencyFromValues([0.4, 0.6, 1.0, 1.2, 2.5]));
    expect(w.latency.e2e.p50).toBe(1.0);
    expect(w.latency.interToken.count).toBe(4); // NaN left out
    expect(w.requests.meanConcurrency).toBeCloseTo((0.4 + 0.6 + 0.8 + 1.0 + 1.2 + 2.5) / 10, 12);
    // Counts stay the engine's.
    expect(w.requests.finished).toBe(20);
    expect(samples.filter((s) => meetsSlo(s, SLO))).toHaveLength(2);
  });

  it('treats a restarted engine (counters went down) as starting from zero', () => {
    const restarted = stats((s) => {
      s.uptimeSeconds = 2;
      s.requests.finished = 4;
      s.tokens.generated = 64;
      s.batches.steps = 16;
      s.busySeconds = 0.5;
      s.latency.e2eSeconds = hist([0, 4, 0, 0, 0], 1);
    });
    const w = summarizeWindow(input({ prev: cur, cur: restarted }));
    expect(w.requests.finished).toBe(4);
    expect(w.tokens.generated).toBe(64);
    expect(w.batch.steps).toBe(16);
    expect(w.latency.e2e.count).toBe(4);
    expect(w.utilization).toBeCloseTo(0.05, 12);
  });

  it('reports NaN, not zero, for what an empty window cannot say', () => {
    const w = summarizeWindow(input({}));
    expect(w.requests.finished).toBe(0);
    expect(w.throughputTokensPerS).toBe(0);
    expect(w.goodputTokensPerS).toBe(0);
    expect(w.sloAttainment).toBeNaN();
    for (const l of Object.values(w.latency)) expect(l).toEqual({ count: 0, mean: NaN, p50: NaN, p90: NaN, p99: NaN });
    expect(w.batch.meanSize).toBeNaN();
    expect(w.batch.fillRatio).toBeNaN();
    expect(w.batch.meanDecodeStepSeconds).toBeNaN();
    expect(w.kv.prefixHitRatio).toBeNaN();
    expect(w.requests.meanConcurrency).toBe(0);
  });
});

describe('RegistrySource', () => {
  it('splits samples between windows by when they were recorded, and keeps a bounded ring', async () => {
    let t = 1000,
      cpu = 5;
    let snapshot = stats();
    const src = new RegistrySource({
      engine: () => ({ stats: () => snapshot }),
      slo: SLO,
      now: () => t,
      cpuSeconds: () => cpu,
      settingsVersion: () => 7,
      maxSamples: 3,
    });
    expect(src.kind).toBe('registry');
    t = 3000;
    cpu = 6;
    src.record(sample({ atMs: 2000 }));
    snapshot = stats((s) => {
      s.requests.finished = 1;
      s.tokens.generated = 10;
      s.uptimeSeconds = 12;
    });
    const w1 = await src.collect();
    expect(w1).toMatchObject({ startMs: 1000, endMs: 3000, settingsVersion: 7, cpuSeconds: 1 });
    expect(w1.requests.finished).toBe(1);
    expect(w1.latency.e2e.count).toBe(1);
    expect(w1.throughputTokensPerS).toBe(5);

    t = 5000;
    for (let i = 0; i < 5; i++) src.record(sample({ atMs: 4000 + i, e2eS: i }));
    const w2 = await src.collect();
    expect(w2.startMs).toBe(3000);
    expect(w2.requests.finished).toBe(0); // the engine did not move
    expect(w2.latency.e2e.count).toBe(3); // the ring kept the last 3
    expect(src.recentSamples(4003).map((s) => s.e2eS)).toEqual([3, 4]);
    expect(src.recentSamples(0)).toHaveLength(3);
  });

  it('survives an engine that is absent or closed', async () => {
    let engine: { stats(): EngineStats } | undefined;
    const src = new RegistrySource({ engine: () => engine, slo: SLO, now: () => 0 });
    engine = {
      stats: () => {
        throw new Error('ENGINE_CLOSED');
      },
    };
    const w = await src.collect();
    expect(w.requests.finished).toBe(0);
    expect(w.batch.fillRatio).toBeNaN();
  });
});

describe('RegistrySource on the real engine', () => {
  let engine: Engine;
  beforeAll(async () => {
    engine = await Engine.load({ threads: 1, model: MODEL });
  });
  afterAll(async () => {
    await engine?.close();
  });

  it('reports the finished requests and tokens the engine and its results report', async () => {
    const src = new RegistrySource({ engine: () => engine, slo: SLO });
    const before = engine.stats();
    const gens = [8, 12, 16, 5, 20].map((maxTokens, i) => engine.generate({ prompt: 'ROMEO:', maxTokens, seed: i, stopAtEos: false }));
    const results: GenerationResult[] = await Promise.all(gens.map((g) => g.result));
    for (const r of results) src.record(requestSampleFromResult(r, Date.now()));
    const w = await src.collect();
    const after = engine.stats();

    expect(w.requests.finished).toBe(5);
    expect(w.requests.finished).toBe(after.requests.finished - before.requests.finished);
    expect(w.tokens.generated).toBe(results.reduce((a, r) => a + r.usage.completionTokens, 0));
    expect(w.tokens.generated).toBe(8 + 12 + 16 + 5 + 20);
    expect(w.tokens.prompt).toBe(results.reduce((a, r) => a + r.usage.promptTokens, 0));
    expect(w.batch.steps).toBe(after.batches.steps - before.batches.steps);
    expect(w.batch.meanSize).toBeGreaterThan(1); // five requests submitted together share steps
    expect(w.batch.fillRatio).toBeCloseTo(w.batch.meanSize / after.settings.maxBatchSize, 12);
    expect(w.utilization).toBeGreaterThan(0);
    // Latency from the samples: exact, and agreeing with the results' own timings.
    expect(w.latency.ttft.count).toBe(5);
    expect(w.latency.ttft.p50).toBeCloseTo([...results.map((r) => r.timings.timeToFirstTokenMs / 1000)].sort((a, b) => a - b)[2]!, 12);
    // With the default SLO targets far above a tiny model's latency, everything is good.
    expect(w.sloAttainment).toBe(1);
    expect(w.goodputTokensPerS).toBeCloseTo(w.throughputTokensPerS, 9);
    // The e2e histogram saw the same requests; its interpolated median lies within the samples' bucket.
    const e2eHist = diffHistogram(after.latency.e2eSeconds, before.latency.e2eSeconds);
    expect(e2eHist.count).toBe(5);
    const bucket = e2eHist.bounds.findIndex((b) => b >= w.latency.e2e.p50);
    expect(histogramQuantile(0.5, e2eHist)).toBeLessThanOrEqual(e2eHist.bounds[bucket]!);
    expect(histogramQuantile(0.5, e2eHist)).toBeGreaterThanOrEqual(bucket > 0 ? e2eHist.bounds[bucket - 1]! : 0);
  });
});
