// The optimizer, the cost model, the proposal table and the watch judge: pure functions over constructed windows.
import { describe, expect, it } from 'vitest';
import { fitStepCost, predict, workloadOf, PRIOR_MARGINAL_SHARE } from '../../src/tuner/cost-model.js';
import { applyChange, changeKey, optimize, type OptimizeInput } from '../../src/tuner/optimize.js';
import { FINAL_STATES, OPEN_STATES, PROPOSAL_TRANSITIONS, fromStates, isLegalTransition, needsApproval } from '../../src/tuner/proposals.js';
import { diffSettings, judgeWatchCheck } from '../../src/tuner/apply.js';
import {
  PROPOSAL_STATES as TYPES_PROPOSAL_STATES,
  type Finding,
  type LiveSettings,
  type RequestSample,
  type SloTargets,
  type WindowSummary,
} from '../../src/tuner/types.js';
import { PROPOSAL_STATES } from '../../src/metrics/tuner-families.js';

const SLO: SloTargets = { ttftP99Seconds: 1, interTokenP99Seconds: 0.25, e2eP99Seconds: 10, errorRateBudget: 0.01 };
const LIVE: LiveSettings = {
  scheduler: { maxBatchSize: 1, maxBatchTokens: 512, maxQueueDelayMs: 2, queueGrowThreshold: 32, maxQueueLength: 256 },
  layout: { weights: 'f32', kvDtype: 'f32', tpDegree: 1, threadsPerRank: 2 },
};
const lat = (x: number) => ({ count: 10, mean: x, p50: x, p90: x, p99: x });

/** A one-minute window with `size` sequences per decode step of `stepS` seconds and `conc` requests in flight. */
function win(i: number, o: { size: number; stepS: number; conc: number; finished?: number; tokens?: number; attainment?: number; util?: number }): WindowSummary {
  const finished = o.finished ?? 60;
  const tokens = o.tokens ?? 32;
  return {
    startMs: i * 60_000,
    endMs: (i + 1) * 60_000,
    source: 'registry',
    settingsVersion: 1,
    requests: { finished, errors: 0, rejected: 0, cancelled: 0, running: o.size, waiting: Math.max(0, o.conc - o.size), meanConcurrency: o.conc },
    tokens: { prompt: finished * 8, generated: finished * tokens },
    throughputTokensPerS: (finished * tokens) / 60,
    goodputTokensPerS: (finished * tokens) / 60,
    sloAttainment: o.attainment ?? 1,
    latency: { queue: lat(0.5), ttft: lat(0.6), interToken: lat(o.stepS), e2e: lat(1) },
    batch: {
      steps: 1000,
      meanSize: o.size,
      fillRatio: 1,
      meanTokens: o.size,
      meanStepSeconds: o.stepS,
      meanDecodeStepSeconds: o.stepS,
      flushes: { full: 0, timeout: 0, queue_threshold: 0 },
    },
    kv: { usageRatio: 0.2, fragmentationRatio: 1, preemptions: 0, prefixHitRatio: 0 },
    utilization: o.util ?? 0.9,
    cpuSeconds: 50,
  };
}

const finding = (kind: Finding['kind'], impact = 1): Finding => ({ kind, confidence: 0.99, impact, summary: kind, evidence: {}, fromMs: 0, toMs: 1 });

function input(over: Partial<OptimizeInput>): OptimizeInput {
  return {
    findings: [finding('queueing')],
    windows: [0, 1, 2, 3].map((i) => win(i, { size: 1, stepS: 0.01, conc: 8 })),
    settings: LIVE,
    slo: SLO,
    policy: { forbid: [], maxCandidates: 3 },
    recentlyFailed: [],
    model: { nKvHeads: 4, ffnDim: 768, cores: 2 },
    ...over,
  };
}

describe('cost model', () => {
  it('fits a + b·B when the windows vary the batch size', () => {
    const ws = [1, 2, 4, 8].map((b, i) => win(i, { size: b, stepS: 0.01 + 0.002 * b, conc: b }));
    const m = fitStepCost(ws)!;
    expect(m.source).toBe('fit');
    expect(m.fixedS).toBeCloseTo(0.01, 6);
    expect(m.perSequenceS).toBeCloseTo(0.002, 6);
  });

  it('falls back to the prior when only one batch size was seen', () => {
    const m = fitStepCost([0, 1, 2].map((i) => win(i, { size: 1, stepS: 0.02, conc: 8 })))!;
    expect(m.source).toBe('prior');
    expect(m.fixedS + m.perSequenceS).toBeCloseTo(0.02, 9);
    expect(m.perSequenceS / (m.fixedS + m.perSequenceS)).toBeCloseTo(PRIOR_MARGINAL_SHARE, 9);
  });

  it('predicts more throughput and shorter e2e with a bigger batch for a closed population', () => {
    const m = { fixedS: 0.009, perSequenceS: 0.001, source: 'fit' as const, points: 4 };
    const load = workloadOf([0, 1, 2].map((i) => win(i, { size: 1, stepS: 0.01, conc: 8 })))!;
    expect(load.concurrency).toBeCloseTo(8, 9);
    const one = predict(m, load, { maxBatchSize: 1, maxBatchTokens: 512 }, SLO);
    const eight = predict(m, load, { maxBatchSize: 8, maxBatchTokens: 512 }, SLO);
    expect(one.throughputTokensPerS).toBeCloseTo(100, 6);
    expect(eight.throughputTokensPerS).toBeCloseTo(8 / 0.017, 6);
    expect(eight.e2eS).toBeLessThan(one.e2eS);
    // maxBatchTokens caps a decode batch too.
    expect(predict(m, load, { maxBatchSize: 8, maxBatchTokens: 2 }, SLO).batchSize).toBe(2);
  });

  it('scales goodput down when the predicted latency misses the SLO', () => {
    const m = { fixedS: 0.3, perSequenceS: 0.01, source: 'fit' as const, points: 4 };
    const load = workloadOf([win(0, { size: 1, stepS: 0.3, conc: 1 })])!;
    const p = predict(m, load, { maxBatchSize: 1, maxBatchTokens: 512 }, SLO);
    expect(p.meetsSlo).toBe(false);
    expect(p.goodputTokensPerS).toBeLessThan(p.throughputTokensPerS);
  });
});

describe('optimize', () => {
  it('answers queueing behind maxBatchSize = 1 with bigger batches, best first, within the SLO', () => {
    const cs = optimize(input({}));
    expect(cs.length).toBeGreaterThan(0);
    expect(cs.length).toBeLessThanOrEqual(3);
    for (const c of cs) {
      expect(c.temperature).toBe('hot');
      expect(c.change.scheduler?.maxBatchSize).toBeGreaterThan(1);
      expect(c.predicted.goodputTokensPerS).toBeGreaterThan(c.predicted.baselineGoodputTokensPerS);
    }
    // Concurrency 8: the best predicted cap reaches it.
    expect(cs[0]!.change.scheduler?.maxBatchSize).toBe(8);
    expect(cs[0]!.rationale).toMatch(/maxBatchSize 1 → 8/);
  });

  it('never returns forbidden knobs, recently failed changes or more than maxCandidates', () => {
    expect(optimize(input({ policy: { forbid: ['maxBatchSize'], maxCandidates: 3 } }))).toEqual([]);
    const first = optimize(input({}))[0]!;
    const again = optimize(input({ recentlyFailed: [first.change] }));
    expect(again.map((c) => changeKey(c.change))).not.toContain(changeKey(first.change));
    expect(optimize(input({ policy: { forbid: [], maxCandidates: 1 } }))).toHaveLength(1);
  });

  it('proposes a lighter weight format for compute-bound decode, as a cold change', () => {
    const ws = [1, 2, 4, 8].map((b, i) => win(i, { size: b, stepS: 0.02 + 0.004 * b, conc: b }));
    const cs = optimize(input({ findings: [finding('compute_bound')], windows: ws, settings: { ...LIVE, scheduler: { ...LIVE.scheduler, maxBatchSize: 16 } } }));
    const q = cs.find((c) => c.change.layout?.weights);
    expect(q?.change.layout?.weights).toBe('int8');
    expect(q?.temperature).toBe('cold');
    expect(q!.predicted.goodputTokensPerS).toBeGreaterThan(q!.predicted.baselineGoodputTokensPerS);
  });

  it('returns nothing without windows or findings', () => {
    expect(optimize(input({ windows: [] }))).toEqual([]);
    expect(optimize(input({ findings: [] }))).toEqual([]);
  });

  it('applyChange and changeKey are order-independent', () => {
    expect(applyChange(LIVE, { scheduler: { maxBatchSize: 4 } }).scheduler.maxBatchSize).toBe(4);
    expect(changeKey({ scheduler: { maxBatchSize: 4, maxBatchTokens: 8 } })).toBe(changeKey({ scheduler: { maxBatchTokens: 8, maxBatchSize: 4 } }));
  });
});

describe('proposal lifecycle and policy', () => {
  it('covers every state, and every move stays inside the lifecycle', () => {
    expect(Object.keys(PROPOSAL_TRANSITIONS).sort()).toEqual([...PROPOSAL_STATES].sort());
    for (const tos of Object.values(PROPOSAL_TRANSITIONS)) for (const to of tos) expect(PROPOSAL_STATES).toContain(to);
    expect(fromStates('approved')).toEqual(['verified']);
    expect(fromStates('rolled_back').sort()).toEqual(['applying', 'watching']);
  });

  it('derives every state list from the one PROPOSAL_STATES', () => {
    // The metrics gauge (and the REST state filter) read the very array the ProposalState type comes from.
    expect(PROPOSAL_STATES).toBe(TYPES_PROPOSAL_STATES);
    expect(FINAL_STATES).toEqual(['rejected', 'confirmed', 'rolled_back', 'expired']);
    expect(OPEN_STATES).toEqual(['proposed', 'verifying', 'verified', 'approved', 'applying', 'watching']);
    expect([...FINAL_STATES, ...OPEN_STATES].sort()).toEqual([...PROPOSAL_STATES].sort());
    expect(isLegalTransition('verified', 'approved')).toBe(true);
    expect(isLegalTransition('proposed', 'applying')).toBe(false);
    expect(isLegalTransition('confirmed', 'watching')).toBe(false);
  });

  it('auto-applies hot knobs and asks a human for quantization and TP by default', () => {
    const policy = { autoApply: ['maxBatchSize', 'maxBatchTokens'], requireApproval: ['weights', 'tpDegree'] };
    expect(needsApproval({ scheduler: { maxBatchSize: 8 } }, policy)).toBe(false);
    expect(needsApproval({ layout: { weights: 'int8' } }, policy)).toBe(true);
    expect(needsApproval({ scheduler: { maxBatchSize: 8, maxQueueLength: 4 } }, policy)).toBe(true); // not listed → human
  });
});

describe('apply helpers', () => {
  it('diffs settings knob by knob', () => {
    const d = diffSettings(LIVE, { scheduler: { ...LIVE.scheduler, maxBatchSize: 8 }, layout: { ...LIVE.layout, weights: 'int8' } });
    expect(d.scheduler).toEqual({ maxBatchSize: 8 });
    expect(d.layout).toEqual({ weights: 'int8' });
    expect(d.knobs).toEqual(['maxBatchSize', 'weights']);
  });

  it('judges a watch check like an analysis step: too few, healthy, SLO drop, error burst', () => {
    const s = (ok: boolean, e2eS: number): RequestSample => ({ atMs: 0, ok, queueS: 0, ttftS: 0.1, interTokenS: 0.01, e2eS, promptTokens: 4, completionTokens: 8 });
    const before = { sloAttainment: 1, errorRate: 0 };
    expect(judgeWatchCheck([s(true, 1)], before, SLO, 0.1).ok).toBeNull();
    expect(judgeWatchCheck(Array(10).fill(s(true, 1)), before, SLO, 0.1).ok).toBe(true);
    const slow = [...Array(7).fill(s(true, 1)), ...Array(3).fill(s(true, 20))];
    expect(judgeWatchCheck(slow, before, SLO, 0.1)).toMatchObject({ ok: false, sloAttainment: 0.7 });
    const failing = [...Array(9).fill(s(true, 1)), s(false, 1)];
    expect(judgeWatchCheck(failing, before, SLO, 0.5).reason).toMatch(/error rate 10\.0%/);
  });
});
