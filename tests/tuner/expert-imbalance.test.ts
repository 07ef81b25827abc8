// Mixture-of-Experts in the tuner: the monitor's routing window, the analyzer's expert_imbalance finding, the cost
// model's MoE term and the optimizer's replication / expert-parallel proposals, over windows whose routing is that of
// a trained router. The per-layer counts are one trained layer's ([17005, 138, 2, 10023, 6189, 726, 16708, 36329],
// top-2 of 8: the hottest expert takes 42% of the tokens, the coldest almost none) with the hot experts at other
// indices in other layers, as trained routers have them. Numbers the assertions compare against are worked out by
// hand in the comments.
import { describe, expect, it } from 'vitest';
import type { EngineStats, MoeStats } from '../../src/engine/types.js';
import { analyze, RANK_IMBALANCE, ROUTING_IMBALANCE } from '../../src/tuner/analyze.js';
import { diffSettings } from '../../src/tuner/apply.js';
import { ALLTOALL_PRIOR_SECONDS, fitStepCost, moeStepCost, priceMoeChange } from '../../src/tuner/cost-model.js';
import { chooseReplicas, layoutBalance, moeWindowOf, observeMoe, ownerOf, rankLoads } from '../../src/tuner/expert-load.js';
import { emptyEngineStats, summarizeWindow } from '../../src/tuner/monitor.js';
import { applyChange, optimize, replicasFor, type OptimizeInput } from '../../src/tuner/optimize.js';
import { needsApproval } from '../../src/tuner/proposals.js';
import { inferExpectFaster, shadowEngineOptions } from '../../src/tuner/shadow.js';
import { DEFAULT_VERIFY_CONFIG } from '../../src/tuner/verify.js';
import { DEFAULT_CONFIG } from '../../src/config/load.js';
import type { Finding, LatencySummary, LiveSettings, MoeWindow, SloTargets, WindowSummary } from '../../src/tuner/types.js';

const SLO: SloTargets = { ttftP99Seconds: 1, interTokenP99Seconds: 0.25, e2eP99Seconds: 10, errorRateBudget: 0.01 };
const T0 = Date.UTC(2026, 0, 5);
const MINUTE = 60_000;

/** Three MoE layers (blocks 1..3; block 0 is a leading dense layer) of 8 experts: the trained layer and two
 *  permutations of it. Each sums to 87 120 routed tokens. */
const TRAINED = [17005, 138, 2, 10023, 6189, 726, 16708, 36329];
const SKEWED = [TRAINED, [6189, 36329, 726, 17005, 2, 16708, 138, 10023], [10023, 726, 16708, 138, 36329, 6189, 2, 17005]];
const LAYER_TOKENS = 87120;
const BALANCED = [
  [10950, 10820, 10890, 10910, 10870, 10880, 10900, 10900],
  [10800, 10990, 10860, 10880, 10900, 10870, 10910, 10910],
  [10890, 10890, 10890, 10890, 10890, 10890, 10890, 10890],
];

function settings(ep: number, threadsPerRank = 1, redundantExperts?: { layer: number; expert: number }[]): LiveSettings {
  return {
    scheduler: { maxBatchSize: 8, maxBatchTokens: 512, maxQueueDelayMs: 2, queueGrowThreshold: 32, maxQueueLength: 256 },
    layout: { weights: 'native', kvDtype: 'f32', tpDegree: 1, threadsPerRank, ...(ep !== 1 ? { epDegree: ep } : {}), ...(redundantExperts ? { redundantExperts } : {}) },
  };
}

/** Deterministic noise in [-1, 1). */
function noise(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32) * 2 - 1;
  };
}

const lat = (mean: number, count = 120): LatencySummary => ({ count, mean, p50: mean, p90: mean * 1.2, p99: mean * 1.5 });

interface MoeSpec {
  counts: number[][];
  ep: number;
  /** Expert seconds per rank in the window. */
  expertSeconds: number[];
  allToAllSeconds?: number[];
  allToAlls?: number;
}

/** A busy one-minute window of an MoE model: 2000 steps of 15 ms (batches of 4), 120 requests. */
function win(i: number, m: MoeSpec, r: () => number): WindowSummary {
  const jitter = (x: number): number => Math.round(x * (1 + 0.03 * r()));
  const moe: MoeWindow = {
    expertCount: 8,
    expertUsed: 2,
    moeLayers: [1, 2, 3],
    tokensPerExpert: m.counts.map((row) => row.map(jitter)),
    epDegree: m.ep,
    redundantExperts: [],
    expertSecondsPerRank: m.expertSeconds.map((s) => s * (1 + 0.02 * r())),
    allToAllSeconds: m.allToAllSeconds ?? m.expertSeconds.map(() => 0),
    allToAlls: m.allToAlls ?? 0,
  };
  return {
    startMs: T0 + i * MINUTE,
    endMs: T0 + (i + 1) * MINUTE,
    source: 'registry',
    settingsVersion: 1,
    requests: { finished: 120, errors: 0, rejected: 0, cancelled: 0, running: 4, waiting: 0, meanConcurrency: 4 },
    tokens: { prompt: 2400, generated: 8000 },
    throughputTokensPerS: 133,
    goodputTokensPerS: 133,
    sloAttainment: 1,
    latency: { queue: lat(0.01), ttft: lat(0.05), interToken: lat(0.015), e2e: lat(1) },
    batch: {
      steps: 2000,
      meanSize: 4,
      fillRatio: 0.5,
      meanTokens: 4.2,
      meanStepSeconds: 0.015,
      meanDecodeStepSeconds: 0.015,
      flushes: { full: 0, timeout: 5, queue_threshold: 0 },
    },
    kv: { usageRatio: 0.3, fragmentationRatio: 1.1, preemptions: 0, prefixHitRatio: 0 },
    utilization: 0.9,
    cpuSeconds: 110,
    moe,
  };
}

const series = (n: number, m: MoeSpec, seed = 7): WindowSummary[] => {
  const r = noise(seed);
  return Array.from({ length: n }, (_, i) => win(i, m, r));
};

// ep 2, contiguous slices (rank 0: experts 0-3, rank 1: 4-7). Rank tokens per layer:
//   layer 1: 27168 | 59952, layer 2: 60249 | 26871, layer 3: 27595 | 59525 (mean 43560)
// so the busiest rank runs 1.376, 1.383, 1.367 × the mean, balance factor (59952 + 60249 + 59525)·2 / 261360 = 1.3753.
// Measured rank seconds follow: 11 s of 16 on the busiest rank each minute (11 / 8 = 1.375).
const EP2_SKEWED: MoeSpec = { counts: SKEWED, ep: 2, expertSeconds: [5, 11], allToAllSeconds: [1.2, 1.2], allToAlls: 6000 };
const EP2_BALANCED: MoeSpec = { counts: BALANCED, ep: 2, expertSeconds: [8, 8.1], allToAllSeconds: [1.2, 1.2], allToAlls: 6000 };
const EP1_SKEWED: MoeSpec = { counts: SKEWED, ep: 1, expertSeconds: [16] };
const EP1_BALANCED: MoeSpec = { counts: BALANCED, ep: 1, expertSeconds: [16] };

describe('expert load under a layout', () => {
  it('slices experts contiguously and splits a replicated expert with the least-loaded other rank', () => {
    expect([0, 1, 2, 3, 4, 5, 6, 7].map((e) => ownerOf(e, 8, 2))).toEqual([0, 0, 0, 0, 1, 1, 1, 1]);
    expect([0, 1, 2, 3, 4, 5, 6, 7].map((e) => ownerOf(e, 8, 4))).toEqual([0, 0, 1, 1, 2, 2, 3, 3]);
    expect(rankLoads(TRAINED, 2)).toEqual([27168, 59952]);
    // Expert 7 (36329) replicated: rank 1 keeps half, rank 0 takes half.
    expect(rankLoads(TRAINED, 2, new Set([7]))).toEqual([27168 + 18164.5, 59952 - 18164.5]);
    expect(rankLoads(TRAINED, 1, new Set([7]))).toEqual([LAYER_TOKENS]);
    expect(layoutBalance([1, 2, 3], SKEWED, 2, []).factor).toBeCloseTo(((59952 + 60249 + 59525) * 2) / (3 * LAYER_TOKENS), 12);
    expect(layoutBalance([1, 2, 3], SKEWED, 1, []).factor).toBe(1);
  });

  it('chooses the hottest expert of the busiest rank while it brings that rank down toward the mean', () => {
    // Layer 1 at ep 2: replicating expert 7 leaves ranks at 45332.5 | 41787.5, within 10% of the mean 43560: done.
    expect(chooseReplicas(TRAINED, 2, new Set(), 4)).toEqual([7]);
    expect(chooseReplicas(SKEWED[1]!, 2, new Set(), 4)).toEqual([1]);
    expect(chooseReplicas(SKEWED[2]!, 2, new Set(), 4)).toEqual([4]);
    // Nothing to do on balanced routing or on one rank.
    expect(chooseReplicas(BALANCED[0]!, 2, new Set(), 4)).toEqual([]);
    expect(chooseReplicas(TRAINED, 1, new Set(), 4)).toEqual([]);
    // At ep 4 the busiest rank (experts 6, 7: 53037 of 87120) needs both its experts split.
    const four = chooseReplicas(TRAINED, 4, new Set(), 4);
    expect(four[0]).toBe(7);
    expect(Math.max(...rankLoads(TRAINED, 4, new Set(four)))).toBeLessThan(Math.max(...rankLoads(TRAINED, 4)) * 0.75);
  });
});

describe('monitor', () => {
  const moeStats = (tokens: number[][], secs: number[], a2a: number[], ops: number): MoeStats => ({
    expertCount: 8,
    expertUsed: 2,
    sharedExperts: 1,
    moeLayers: [1, 2, 3],
    tokensPerExpert: tokens,
    epDegree: 2,
    redundantExperts: [{ layer: 1, expert: 7 }],
    allToAllSeconds: a2a,
    allToAlls: ops,
    expertSecondsPerRank: secs,
  });
  const stats = (moe?: MoeStats): EngineStats => ({ ...emptyEngineStats(), uptimeSeconds: 100, ...(moe ? { moe } : {}) });

  it('carries the window routing counts and per-rank seconds, differenced', () => {
    const prev = stats(moeStats(SKEWED, [10, 20], [1, 1.5], 600));
    const cur = stats(
      moeStats(
        SKEWED.map((row) => row.map((c) => c * 3)),
        [15, 31],
        [1.5, 2.5],
        900,
      ),
    );
    const w = summarizeWindow({ prev, cur, samples: [], startMs: 0, endMs: 60_000, slo: SLO, settingsVersion: 1, cpuSeconds: 1, maxBatchSize: 8 });
    expect(w.moe?.tokensPerExpert).toEqual(SKEWED.map((row) => row.map((c) => c * 2)));
    expect(w.moe?.expertSecondsPerRank).toEqual([5, 11]);
    expect(w.moe?.allToAllSeconds).toEqual([0.5, 1]);
    expect(w.moe?.allToAlls).toBe(300);
    expect(w.moe?.redundantExperts).toEqual([{ layer: 1, expert: 7 }]);
    // A dense engine: no moe section.
    expect(
      summarizeWindow({ prev: stats(), cur: stats(), samples: [], startMs: 0, endMs: 60_000, slo: SLO, settingsVersion: 1, cpuSeconds: 1, maxBatchSize: 8 }).moe,
    ).toBeUndefined();
  });

  it('counts from zero when the counters went down (a new engine) or the model changed', () => {
    const cur = moeStats(SKEWED, [5, 11], [0, 0], 0);
    // A reload restarted the counters: the hot expert of layer 1 already passed its old count, the others did not;
    // the whole section is new, none of it differenced against the old instance.
    const old = moeStats(
      SKEWED.map((row) => row.map((c, e) => (e === 7 ? 100 : c + 1))),
      [1, 1],
      [0, 0],
      0,
    );
    expect(moeWindowOf(old, cur)?.tokensPerExpert).toEqual(SKEWED);
    // Another replica set means another instance too (differenced, rank seconds would read [4, 10]).
    const before = {
      ...moeStats(
        SKEWED.map((r) => r.map(() => 0)),
        [1, 1],
        [0, 0],
        0,
      ),
      redundantExperts: [],
    };
    expect(moeWindowOf(before, cur)?.expertSecondsPerRank).toEqual([5, 11]);
    expect(moeWindowOf({ ...before, redundantExperts: cur.redundantExperts }, cur)?.expertSecondsPerRank).toEqual([4, 10]);
    expect(
      moeWindowOf(
        moeStats(
          SKEWED.map((r) => r.map((c) => c * 2)),
          [50, 50],
          [0, 0],
          0,
        ),
        cur,
      )?.tokensPerExpert,
    ).toEqual(SKEWED);
    expect(moeWindowOf(undefined, cur)?.expertSecondsPerRank).toEqual([5, 11]);
    expect(moeWindowOf({ ...cur, moeLayers: [1, 2, 4] }, cur)?.tokensPerExpert).toEqual(SKEWED);
  });
});

describe('analyze: expert_imbalance', () => {
  const findingOf = (windows: WindowSummary[], s: LiveSettings): Finding | undefined =>
    analyze({ windows, settings: s, slo: SLO }).find((f) => f.kind === 'expert_imbalance');

  it('at epDegree 2: the rank that owns the hot experts serves 1.375× the even share of routed tokens; routing counts as evidence', () => {
    const f = findingOf(series(15, EP2_SKEWED), settings(2));
    expect(f).toBeDefined();
    expect(f!.evidence['metric']).toBe('rank_routed_tokens');
    expect(f!.evidence['imbalance']).toBeGreaterThan(RANK_IMBALANCE);
    expect(f!.evidence['imbalance']).toBeCloseTo(1.375, 1);
    expect(f!.evidence['epDegree']).toBe(2);
    expect(f!.confidence).toBeGreaterThan(0.95);
    expect(f!.summary).toMatch(/^Expert-parallel ranks wait on the busiest one: it serves 1\.3\d× the even share/);
    // The routing counts behind it: every layer's counts summed over the 15 windows, the hottest experts named.
    const layer1 = String(f!.evidence['routingLayer1']).split(',').map(Number);
    expect(layer1).toHaveLength(8);
    expect(layer1.indexOf(Math.max(...layer1))).toBe(7);
    expect(layer1.reduce((a, b) => a + b, 0) / (15 * LAYER_TOKENS)).toBeCloseTo(1, 1);
    expect(String(f!.evidence['hottestExperts'])).toMatch(/^\d:\d 42%/);
    // Impact: rank-seconds waited on the busiest rank per minute, 2·11 − 16 = 6 (±2% jitter).
    expect(f!.impact).toBeGreaterThan(5.5);
    expect(f!.impact).toBeLessThan(6.6);
  });

  it('at epDegree 1: per-layer routing max/mean (3.34 here) above the threshold', () => {
    const f = findingOf(series(15, EP1_SKEWED), settings(1));
    expect(f).toBeDefined();
    expect(f!.evidence['metric']).toBe('routing');
    // 36329 / (87120 / 8) = 3.336 in every layer.
    expect(f!.evidence['imbalance']).toBeCloseTo(3.336, 1);
    expect(f!.evidence['imbalance']).toBeGreaterThan(ROUTING_IMBALANCE);
    // What two ranks would wait: 16 s × (1.3753 − 1) = 6.0 rank-seconds per minute.
    expect(f!.impact).toBeGreaterThan(5.5);
    expect(f!.impact).toBeLessThan(6.6);
  });

  it('a balanced model produces no finding, at either degree', () => {
    expect(findingOf(series(15, EP2_BALANCED), settings(2))).toBeUndefined();
    expect(findingOf(series(15, EP1_BALANCED), settings(1))).toBeUndefined();
  });

  it('a dense model (no moe in the windows) produces no finding', () => {
    const dense = series(15, EP1_SKEWED).map((w) => {
      const { moe: _moe, ...rest } = w;
      return rest;
    });
    expect(findingOf(dense, settings(1))).toBeUndefined();
  });

  it('too few windows or requests: no finding', () => {
    expect(findingOf(series(2, EP2_SKEWED), settings(2))).toBeUndefined();
    expect(
      findingOf(
        series(15, EP2_SKEWED).map((w) => ({ ...w, requests: { ...w.requests, finished: 1 } })),
        settings(2),
      ),
    ).toBeUndefined();
  });
});

describe('cost model: the MoE term', () => {
  it('prices replication from the measured expert work, the routing counts and the measured all-to-all', () => {
    const windows = series(15, EP2_SKEWED);
    const obs = observeMoe(windows)!;
    const model = fitStepCost(windows)!;
    const live = { epDegree: 2, redundantExperts: [], threadsPerRank: 1 };
    const reps = [
      { layer: 1, expert: 7 },
      { layer: 2, expert: 1 },
      { layer: 3, expert: 4 },
    ];
    const cand = { ...live, redundantExperts: reps };
    const price = priceMoeChange(model, obs, live, cand)!;
    // Work per step: Σ rank seconds / steps ≈ 16 · 15 / 30000 = 8 ms. Live: 8 ms · 1.3753 / 2 = 5.50 ms. Replicated:
    // rank loads 45332.5, 45035.5, 45759.5 → balance 136127.5 · 2 / 261360 = 1.0417 → 4.17 ms. All-to-all measured:
    // 6000 / 2000 = 3 per step (one per MoE layer) at 1.2 · 15 / 90000 = 0.2 ms each = 0.6 ms, both sides.
    const work = obs.expertSecondsPerRank.reduce((a, b) => a + b, 0) / obs.steps;
    expect(work).toBeCloseTo(0.008, 3);
    // (±3% jitter on the counts of each window.)
    expect(price.from.balance).toBeCloseTo(1.3753, 2);
    expect(price.to.balance).toBeCloseTo(1.0417, 2);
    expect(price.from.expertS).toBeCloseTo((work * price.from.balance) / 2, 12);
    expect(price.to.expertS).toBeCloseTo((work * price.to.balance) / 2, 12);
    expect(price.from.allToAllS).toBeCloseTo(6e-4, 6);
    expect(price.to.allToAllS).toBeCloseTo(price.from.allToAllS, 12);
    // Step: 15 ms − 1.33 ms → ×0.911, applied to both terms of the step model.
    const expectedRatio = (0.015 + price.to.expertS - price.from.expertS) / 0.015;
    expect(price.ratio).toBeCloseTo(expectedRatio, 9);
    expect(price.ratio).toBeCloseTo(0.911, 2);
    expect(price.model.fixedS).toBeCloseTo(model.fixedS * price.ratio, 12);
    expect(price.model.perSequenceS).toBeCloseTo(model.perSequenceS * price.ratio, 12);
  });

  it('going from one rank to two pays the prior all-to-all plus the injected delay, once per MoE layer', () => {
    const obs = observeMoe(series(15, EP1_SKEWED))!;
    const live = { epDegree: 1, redundantExperts: [], threadsPerRank: 1 };
    const two = moeStepCost(obs, live, { ...live, epDegree: 2 }, 500);
    expect(two.allToAllS).toBeCloseTo(3 * (ALLTOALL_PRIOR_SECONDS + 500e-6), 12);
    expect(moeStepCost(obs, live, live).allToAllS).toBe(0);
    // Two ranks halve the expert work but wait on the busier one: 8 ms · 1.3753 / 2.
    expect(two.expertS / moeStepCost(obs, live, live).expertS).toBeCloseTo(1.3753 / 2, 3);
  });
});

describe('optimize: expert_imbalance', () => {
  const finding: Finding = { kind: 'expert_imbalance', confidence: 0.99, impact: 6, summary: 'skewed', evidence: {}, fromMs: 0, toMs: 1 };
  const input = (over: Partial<OptimizeInput>): OptimizeInput => ({
    findings: [finding],
    windows: series(15, EP2_SKEWED),
    settings: settings(2),
    slo: SLO,
    policy: { forbid: [], maxCandidates: 3 },
    recentlyFailed: [],
    model: { nKvHeads: 4, ffnDim: 768, cores: 2 },
    ...over,
  });

  it('replicates the hottest expert of each layer on the live degree, predicted faster', () => {
    const out = optimize(input({}));
    const rep = out.find((c) => c.change.layout?.redundantExperts !== undefined && c.change.layout.epDegree === undefined);
    expect(rep).toBeDefined();
    expect(rep!.change.layout!.redundantExperts).toEqual([
      { layer: 1, expert: 7 },
      { layer: 2, expert: 1 },
      { layer: 3, expert: 4 },
    ]);
    expect(rep!.temperature).toBe('cold');
    expect(rep!.addresses).toBe('expert_imbalance');
    expect(rep!.predicted.goodputTokensPerS).toBeGreaterThan(rep!.predicted.baselineGoodputTokensPerS);
    expect(rep!.rationale).toMatch(/busiest expert rank 1\.3[78]× → 1\.04× the even share/);
    // Both knobs wait for an approver under the default policy.
    expect(needsApproval(rep!.change, DEFAULT_CONFIG.tuner)).toBe(true);
    expect(needsApproval({ layout: { epDegree: 4 } }, DEFAULT_CONFIG.tuner)).toBe(true);
  });

  it('proposes a wider expert-parallel degree on idle cores, with the replicas that balance it', () => {
    const out = optimize(input({ model: { nKvHeads: 4, ffnDim: 768, cores: 8 } }));
    const wider = out.find((c) => c.change.layout?.epDegree === 4);
    expect(wider).toBeDefined();
    expect(wider!.change.layout!.redundantExperts).toEqual(replicasFor(observeMoe(series(15, EP2_SKEWED))!, 4, []));
    expect(wider!.predicted.goodputTokensPerS).toBeGreaterThan(wider!.predicted.baselineGoodputTokensPerS);
    // Not on a machine whose cores the live layout already uses.
    expect(optimize(input({})).some((c) => c.change.layout?.epDegree === 4)).toBe(false);
  });

  it('from epDegree 1 with a slow interconnect, a second rank is not worth it', () => {
    const ep1 = series(15, EP1_SKEWED);
    const cheap = optimize(input({ windows: ep1, settings: settings(1), model: { nKvHeads: 4, ffnDim: 768, cores: 4, alltoallDelayUs: 0 } }));
    expect(cheap.some((c) => c.change.layout?.epDegree === 2)).toBe(true);
    // 3 all-to-alls of 2 ms each per step cost more than the expert phase two ranks save.
    const slow = optimize(input({ windows: ep1, settings: settings(1), model: { nKvHeads: 4, ffnDim: 768, cores: 4, alltoallDelayUs: 2000 } }));
    expect(slow.some((c) => c.change.layout?.epDegree === 2)).toBe(false);
  });

  it('a replica set already live is not proposed again; a balanced model gets no expert proposal', () => {
    const live = settings(2, 1, [
      { layer: 3, expert: 4 },
      { layer: 1, expert: 7 },
      { layer: 2, expert: 1 },
    ]);
    const after = optimize(input({ settings: live })).filter((c) => c.change.layout?.epDegree === undefined);
    expect(after).toEqual([]);
    expect(optimize(input({ windows: series(15, EP2_BALANCED) })).filter((c) => c.change.layout?.epDegree === undefined)).toEqual([]);
  });
});

describe('an expert-layout proposal flows through apply and shadow verification as a cold change', () => {
  const live = settings(2, 2);
  const target = applyChange(live, {
    layout: {
      redundantExperts: [
        { layer: 1, expert: 7 },
        { layer: 2, expert: 1 },
      ],
    },
  });

  it('diffSettings gives the reload exactly the changed knob; order and absent defaults do not count', () => {
    expect(diffSettings(live, target).layout).toEqual({
      redundantExperts: [
        { layer: 1, expert: 7 },
        { layer: 2, expert: 1 },
      ],
    });
    const reordered = applyChange(target, {
      layout: {
        redundantExperts: [
          { layer: 2, expert: 1 },
          { layer: 1, expert: 7 },
        ],
      },
    });
    expect(diffSettings(target, reordered).knobs).toEqual([]);
    // epDegree absent (settings recorded before the knob existed) is 1; replicas absent are none.
    const dense = settings(1);
    expect(diffSettings(dense, { ...dense, layout: { ...dense.layout, epDegree: 1, redundantExperts: [] } }).knobs).toEqual([]);
    expect(diffSettings(dense, settings(2)).layout).toEqual({ epDegree: 2 });
  });

  it('shadow engines load the MoE layout with the threads split over the ranks, and are expected to be faster', () => {
    const opts = shadowEngineOptions('/models/ds.gguf', target, { ...DEFAULT_VERIFY_CONFIG, shadowThreads: 4 }, {});
    expect(opts).toMatchObject({
      epDegree: 2,
      redundantExperts: [
        { layer: 1, expert: 7 },
        { layer: 2, expert: 1 },
      ],
      tpDegree: 1,
      threadsPerRank: 2,
      threads: 4,
    });
    expect(inferExpectFaster(live, target)).toBe(true);
    expect(inferExpectFaster(live, live)).toBe(false);
  });
});
