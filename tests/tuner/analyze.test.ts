// Analyze stage: window series built so the right answer is known, one per bottleneck kind, plus a healthy series,
// series too small or too noisy to support a finding, and the statistics behind the tests.
import { describe, expect, it } from 'vitest';
import { analyze } from '../../src/tuner/analyze.js';
import { binomialUpperTail, changePoint, slopeTest, studentTUpperTail, tTestGreater, welchGreater } from '../../src/tuner/statistics.js';
import type { LatencySummary, LiveSettings, SloTargets, WindowSummary } from '../../src/tuner/types.js';

const SLO: SloTargets = { ttftP99Seconds: 1, interTokenP99Seconds: 0.25, e2eP99Seconds: 10, errorRateBudget: 0.01 };
const SETTINGS: LiveSettings = {
  scheduler: { maxBatchSize: 16, maxBatchTokens: 512, maxQueueDelayMs: 2, queueGrowThreshold: 32, maxQueueLength: 256 },
  layout: { weights: 'f32', kvDtype: 'f32', tpDegree: 1, threadsPerRank: 1 },
};
const withScheduler = (o: Partial<LiveSettings['scheduler']>): LiveSettings => ({ ...SETTINGS, scheduler: { ...SETTINGS.scheduler, ...o } });
const T0 = Date.UTC(2025, 0, 1);
const MINUTE = 60_000;

/** Deterministic noise in [-1, 1). */
function noise(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32) * 2 - 1;
  };
}

const lat = (mean: number, p50 = mean, p99 = mean * 1.5, count = 120): LatencySummary => ({ count, mean, p50, p90: (p50 + p99) / 2, p99 });

/** A healthy one-minute window: 120 requests, little queueing, batches a fifth full, engine half busy. */
function win(i: number, edit: (w: WindowSummary) => void = () => {}): WindowSummary {
  const w: WindowSummary = {
    startMs: T0 + i * MINUTE,
    endMs: T0 + (i + 1) * MINUTE,
    source: 'registry',
    settingsVersion: 1,
    requests: { finished: 120, errors: 0, rejected: 0, cancelled: 0, running: 3, waiting: 0, meanConcurrency: 3 },
    tokens: { prompt: 1200, generated: 1920 },
    throughputTokensPerS: 32,
    goodputTokensPerS: 32,
    sloAttainment: 1,
    latency: { queue: lat(0.02), ttft: lat(0.1), interToken: lat(0.05), e2e: lat(1.5, 1.4, 2.4) },
    batch: {
      steps: 2000,
      meanSize: 3,
      fillRatio: 3 / 16,
      meanTokens: 3.5,
      meanStepSeconds: 0.015,
      meanDecodeStepSeconds: 0.014,
      flushes: { full: 0, timeout: 10, queue_threshold: 0 },
    },
    kv: { usageRatio: 0.3, fragmentationRatio: 1.1, preemptions: 0, prefixHitRatio: 0.2 },
    utilization: 0.5,
    cpuSeconds: 30,
  };
  edit(w);
  return w;
}

const series = (n: number, edit: (w: WindowSummary, i: number, r: () => number) => void, seed = 1): WindowSummary[] => {
  const r = noise(seed);
  return Array.from({ length: n }, (_, i) => win(i, (w) => edit(w, i, r)));
};

/** The integration test's mis-set: maxBatchSize = 1 with ~8 closed-loop clients. One sequence per step, the other
 *  seven wait: queue time ≈ 7/8 of e2e, batches always "full", the engine always busy. */
function misSetBatchCap(n = 15): WindowSummary[] {
  return series(n, (w, _i, r) => {
    const e2e = 0.4 * (1 + 0.1 * r());
    const queue = e2e * (0.86 + 0.03 * r());
    w.requests.finished = 150 + Math.round(10 * r());
    w.requests.meanConcurrency = 8 * (1 + 0.05 * r());
    w.requests.running = 1;
    w.requests.waiting = 7;
    w.latency.queue = lat(queue, queue, queue * 1.2, w.requests.finished);
    w.latency.ttft = lat(queue + 0.003, queue + 0.003, (queue + 0.003) * 1.2, w.requests.finished);
    w.latency.e2e = lat(e2e, e2e, e2e * 1.3, w.requests.finished);
    w.batch.meanSize = 1;
    w.batch.fillRatio = 1;
    w.batch.meanTokens = 1.1;
    w.batch.meanDecodeStepSeconds = 0.003 * (1 + 0.05 * r());
    w.utilization = 0.97;
  });
}

describe('statistics', () => {
  it('Student t tail, binomial tail, slope and change-point tests match reference values', () => {
    // scipy.stats.t.sf(2, 10), t.sf(12.706, 1), binom.sf(2, 10, 0.1), binom.sf(4, 100, 0.01)
    expect(studentTUpperTail(2, 10)).toBeCloseTo(0.036694, 5);
    expect(studentTUpperTail(12.706, 1)).toBeCloseTo(0.025, 4);
    expect(studentTUpperTail(-2, 10)).toBeCloseTo(1 - 0.036694, 5);
    expect(binomialUpperTail(3, 10, 0.1)).toBeCloseTo(0.0701908, 6);
    expect(binomialUpperTail(5, 100, 0.01)).toBeCloseTo(0.0034323, 6);
    expect(binomialUpperTail(0, 100, 0.01)).toBe(1);
    const fit = slopeTest([1, 2, 3, 4, 5], [1.1, 1.9, 3.2, 3.9, 5.1]);
    expect(fit.slope).toBeCloseTo(1, 9);
    expect(fit.intercept).toBeCloseTo(0.04, 9);
    expect(fit.pValue).toBeCloseTo(0.0001285, 6); // scipy.stats.linregress p / 2
    expect(tTestGreater([0.8, 0.85, 0.9], 0.3).pValue).toBeCloseTo(0.0013717, 6);
    expect(welchGreater([5, 6, 7], [1, 2, 3]).pValue).toBeLessThan(0.01);
    expect(changePoint([1, 1.1, 0.9, 1, 5, 5.2, 4.9, 5.1])).toMatchObject({ index: 4 });
  });
});

describe('analyze', () => {
  it('finds nothing in a healthy series', () => {
    expect(
      analyze({
        windows: series(15, (w, _i, r) => {
          w.latency.e2e.mean *= 1 + 0.1 * r();
        }),
        settings: SETTINGS,
        slo: SLO,
      }),
    ).toEqual([]);
  });

  it('maxBatchSize=1 with ~8 concurrent clients: queueing, ranked first', () => {
    const windows = misSetBatchCap();
    const findings = analyze({ windows, settings: withScheduler({ maxBatchSize: 1 }), slo: SLO });
    expect(findings.length).toBeGreaterThan(0);
    const f = findings[0]!;
    expect(f.kind).toBe('queueing');
    expect(f.confidence).toBeGreaterThan(0.95);
    expect(f.evidence['queueShare']).toBeGreaterThan(0.8);
    expect(f.evidence['fillRatio']).toBe(1);
    expect(f.evidence['maxBatchSize']).toBe(1);
    expect(f.evidence['meanConcurrency']).toBeGreaterThan(7);
    expect(f.evidence['pValue']).toBeLessThan(0.05);
    expect(f.summary).toMatch(/maxBatchSize=1/);
    expect(f.fromMs).toBe(windows[0]!.startMs);
    expect(f.toMs).toBe(windows[14]!.endMs);
    // Queue-seconds per minute: requests × mean queue time.
    const expected = windows.reduce((a, w) => a + w.latency.queue.mean * w.latency.queue.count, 0) / 15;
    expect(f.impact).toBeCloseTo(expected, 1);
    expect(findings.map((x) => x.kind)).not.toContain('batch_starved');
    expect(findings.map((x) => x.kind)).not.toContain('compute_bound'); // one batch size: no slope to fit
  });

  it('judges only the windows after a significant onset, and dates the finding from it', () => {
    const healthy = series(8, () => {});
    const bad = misSetBatchCap(7).map((w, i) => ({ ...w, startMs: T0 + (8 + i) * MINUTE, endMs: T0 + (9 + i) * MINUTE }));
    const f = analyze({ windows: [...healthy, ...bad], settings: withScheduler({ maxBatchSize: 1 }), slo: SLO })[0]!;
    expect(f.kind).toBe('queueing');
    expect(f.evidence['changeDetected']).toBe(true);
    expect(f.evidence['changeAtMs']).toBe(bad[0]!.startMs);
    expect(f.fromMs).toBe(bad[0]!.startMs);
    expect(f.evidence['windows']).toBe(7);
  });

  it('batch_starved: batches under-filled while requests wait (token budget binds)', () => {
    const windows = series(10, (w, _i, r) => {
      const e2e = 1 + 0.1 * r();
      w.requests.meanConcurrency = 8 + 0.5 * r();
      w.latency.queue = lat(e2e * 0.6, e2e * 0.6);
      w.latency.e2e = lat(e2e, e2e);
      w.batch.meanSize = 2 + 0.2 * r();
      w.batch.fillRatio = w.batch.meanSize / 16;
      w.batch.meanTokens = 62;
    });
    const findings = analyze({ windows, settings: withScheduler({ maxBatchTokens: 64 }), slo: SLO });
    expect(findings.map((f) => f.kind)).toEqual(['batch_starved']);
    const f = findings[0]!;
    expect(f.evidence['tokenBudgetBinds']).toBe(true);
    expect(f.evidence['unbatchedRequests']).toBeGreaterThan(5);
    expect(f.summary).toMatch(/maxBatchTokens=64/);
  });

  it('compute_bound: decode step time rises with batch size at high utilization (slope, r², n reported)', () => {
    const windows = series(12, (w, i, r) => {
      w.batch.meanSize = 2 + i;
      w.batch.fillRatio = w.batch.meanSize / 16;
      w.requests.meanConcurrency = w.batch.meanSize;
      w.batch.meanDecodeStepSeconds = 0.002 + 0.0008 * w.batch.meanSize + 0.0002 * r();
      w.utilization = 0.9;
    });
    const findings = analyze({ windows, settings: SETTINGS, slo: SLO });
    expect(findings.map((f) => f.kind)).toEqual(['compute_bound']);
    const e = findings[0]!.evidence;
    expect(e['slopeSecondsPerSequence']).toBeCloseTo(0.0008, 4);
    expect(e['interceptSeconds']).toBeCloseTo(0.002, 3);
    expect(e['rSquared']).toBeGreaterThan(0.95);
    expect(e['n']).toBe(12);
    expect(e['stepMetric']).toBe('decode');
    // The same rise at half utilization is not compute-bound; a flat step time is not either.
    expect(analyze({ windows: windows.map((w) => ({ ...w, utilization: 0.5 })), settings: SETTINGS, slo: SLO })).toEqual([]);
    const r = noise(7);
    const flat = windows.map((w) => ({ ...w, batch: { ...w.batch, meanDecodeStepSeconds: 0.01 + 0.0005 * r() } }));
    expect(analyze({ windows: flat, settings: SETTINGS, slo: SLO })).toEqual([]);
  });

  it('kv_pressure: high usage or preemptions in a significant share of windows; one burst is not', () => {
    const windows = series(10, (w, i) => {
      if (i >= 4) {
        w.kv.usageRatio = 0.95;
        w.kv.preemptions = i % 2 === 0 ? 3 : 0;
      }
    });
    const findings = analyze({ windows, settings: SETTINGS, slo: SLO });
    expect(findings.map((f) => f.kind)).toEqual(['kv_pressure']);
    const f = findings[0]!;
    expect(f.evidence['windowsFlagged']).toBe(6);
    expect(f.evidence['preemptions']).toBe(9);
    expect(f.impact).toBeCloseTo(9 / 10, 9); // preemptions per minute
    expect(f.fromMs).toBe(windows[4]!.startMs);
    const burst = series(15, (w, i) => {
      if (i === 7) w.kv.preemptions = 2;
    });
    expect(analyze({ windows: burst, settings: SETTINGS, slo: SLO })).toEqual([]);
  });

  it('tail_latency: p99/p50 of e2e well above 3 with enough requests', () => {
    const windows = series(8, (w, _i, r) => {
      w.latency.e2e = lat(1.2, 1, 5 + r());
    });
    const findings = analyze({ windows, settings: SETTINGS, slo: SLO });
    expect(findings.map((f) => f.kind)).toEqual(['tail_latency']);
    expect(findings[0]!.evidence['metric']).toBe('e2e');
    expect(findings[0]!.evidence['p99OverP50']).toBeGreaterThan(4);
    // Tail ratios that only touch 3 now and then: no finding.
    const borderline = series(8, (w, i) => {
      w.latency.e2e = lat(1.2, 1, i % 2 ? 3.4 : 2.2);
    });
    expect(analyze({ windows: borderline, settings: SETTINGS, slo: SLO })).toEqual([]);
  });

  it('errors: error share above the budget with binomial significance; a share within noise of it is not', () => {
    const windows = series(10, (w, i) => {
      w.requests.finished = 100;
      w.requests.errors = i % 2 ? 4 : 2; // 3% of 1000 against a 1% budget
      w.requests.rejected = i === 9 ? 5 : 0;
    });
    const findings = analyze({ windows, settings: SETTINGS, slo: SLO });
    expect(findings.map((f) => f.kind)).toEqual(['errors']);
    const f = findings[0]!;
    expect(f.evidence['failed']).toBe(35);
    expect(f.evidence['total']).toBe(1005);
    expect(f.evidence['pValue']).toBeLessThan(1e-6);
    expect(f.impact).toBeCloseTo(3.5, 9); // failed requests per minute
    // 12 of 1000 against 1%: P(X ≥ 12) ≈ 0.3.
    const noisy = series(10, (w, i) => {
      w.requests.finished = 100;
      w.requests.errors = i < 2 ? 2 : 1;
    });
    expect(analyze({ windows: noisy, settings: SETTINGS, slo: SLO })).toEqual([]);
  });

  it('quality_drift: below the bar with enough samples', () => {
    const windows = series(5, () => {});
    const f = analyze({ windows, settings: SETTINGS, slo: SLO, quality: { meanCosine: 0.91, bar: 0.98, samples: 64 } });
    expect(f.map((x) => x.kind)).toEqual(['quality_drift']);
    expect(f[0]!.evidence['meanCosine']).toBe(0.91);
    expect(analyze({ windows, settings: SETTINGS, slo: SLO, quality: { meanCosine: 0.91, bar: 0.98, samples: 5 } })).toEqual([]);
    expect(analyze({ windows, settings: SETTINGS, slo: SLO, quality: { meanCosine: 0.99, bar: 0.98, samples: 64 } })).toEqual([]);
  });

  it('says nothing from too few windows or too few requests', () => {
    const settings = withScheduler({ maxBatchSize: 1 });
    expect(analyze({ windows: misSetBatchCap(2), settings, slo: SLO })).toEqual([]);
    const few = misSetBatchCap(3).map((w) => ({ ...w, requests: { ...w.requests, finished: 5 } }));
    expect(analyze({ windows: few, settings, slo: SLO })).toEqual([]);
    expect(analyze({ windows: few, settings, slo: SLO, minRequests: 10 }).map((f) => f.kind)).toEqual(['queueing']);
    expect(analyze({ windows: [], settings, slo: SLO })).toEqual([]);
  });

  it('says nothing when the signal is noise: a median over the threshold that the test does not support', () => {
    const shares = [0.9, 0.31, 0.32, 0.02, 0.33, 0.05, 0.34];
    const windows = misSetBatchCap(7).map((w, i) => ({ ...w, latency: { ...w.latency, queue: lat(w.latency.e2e.mean * shares[i]!) } }));
    expect(analyze({ windows, settings: withScheduler({ maxBatchSize: 1 }), slo: SLO })).toEqual([]);
  });

  it('ranks several findings by impact', () => {
    // The mis-set cap plus errors: queue-seconds per minute (~50) outrank failed requests per minute (~5).
    const windows = misSetBatchCap().map((w) => ({ ...w, requests: { ...w.requests, errors: 5 } }));
    const kinds = analyze({ windows, settings: withScheduler({ maxBatchSize: 1 }), slo: SLO }).map((f) => f.kind);
    expect(kinds).toEqual(['queueing', 'errors']);
  });
});
