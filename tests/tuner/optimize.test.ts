// The optimizer, the cost model, the proposal table and the watch judge: pure functions over constructed windows.
import { describe, expect, it } from 'vitest';
import { fitStepCost, predict, priceWeightsChange, workloadOf, PRIOR_MARGINAL_SHARE } from '../../src/tuner/cost-model.js';
import {
  MIN_WEIGHT_BYTES_SAVING,
  POLICY_BITS_PER_WEIGHT,
  applyChange,
  changeKey,
  heavierWeights,
  lighterWeights,
  optimize,
  type OptimizeInput,
  type WeightFacts,
} from '../../src/tuner/optimize.js';
import { bitsPerWeight, heldBitsPerWeight, planWeights, type TensorDesc } from '../../src/tuner/weight-formats.js';
import { WEIGHTS_POLICIES, type WeightsPolicy } from '../../src/engine/types.js';
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
    // No file facts: a 32-bit file of nominal proportions is assumed; f32 → q8_0 (the old ladder's f32 → int8).
    const ws = [1, 2, 4, 8].map((b, i) => win(i, { size: b, stepS: 0.02 + 0.004 * b, conc: b }));
    const cs = optimize(input({ findings: [finding('compute_bound')], windows: ws, settings: { ...LIVE, scheduler: { ...LIVE.scheduler, maxBatchSize: 16 } } }));
    const q = cs.find((c) => c.change.layout?.weights);
    expect(q?.change.layout?.weights).toBe('q8_0');
    expect(q?.temperature).toBe('cold');
    expect(q!.predicted.goodputTokensPerS).toBeGreaterThan(q!.predicted.baselineGoodputTokensPerS);
    // Without the file's tensors, `native` cannot be resolved: no weights change from it.
    const native = optimize(
      input({
        findings: [finding('compute_bound')],
        windows: ws,
        settings: { scheduler: { ...LIVE.scheduler, maxBatchSize: 16 }, layout: { ...LIVE.layout, weights: 'native' } },
      }),
    );
    expect(native.find((c) => c.change.layout?.weights)).toBeUndefined();
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

// ---- weights: the quantization knob over GGUF formats -------------------------------------------------------------

interface Shape {
  dim: number;
  ffn: number;
  layers: number;
  vocab: number;
  tied: boolean;
}
/** A llama file's tensors (ModelInspection.tensors), each matrix in the type `typeOf` gives it, norms f32. */
function llamaTensors(sh: Shape, typeOf: (name: string, layer: number) => string): TensorDesc[] {
  const out: TensorDesc[] = [{ name: 'token_embd.weight', type: typeOf('token_embd.weight', -1), shape: [sh.dim, sh.vocab] }];
  for (let l = 0; l < sh.layers; l++) {
    const p = `blk.${l}.`;
    out.push({ name: `${p}attn_norm.weight`, type: 'f32', shape: [sh.dim] });
    for (const n of ['attn_q', 'attn_k', 'attn_v', 'attn_output']) out.push({ name: `${p}${n}.weight`, type: typeOf(`${p}${n}.weight`, l), shape: [sh.dim, sh.dim] });
    out.push({ name: `${p}ffn_norm.weight`, type: 'f32', shape: [sh.dim] });
    out.push({ name: `${p}ffn_gate.weight`, type: typeOf(`${p}ffn_gate.weight`, l), shape: [sh.dim, sh.ffn] });
    out.push({ name: `${p}ffn_up.weight`, type: typeOf(`${p}ffn_up.weight`, l), shape: [sh.dim, sh.ffn] });
    out.push({ name: `${p}ffn_down.weight`, type: typeOf(`${p}ffn_down.weight`, l), shape: [sh.ffn, sh.dim] });
  }
  out.push({ name: 'output_norm.weight', type: 'f32', shape: [sh.dim] });
  if (!sh.tied) out.push({ name: 'output.weight', type: typeOf('output.weight', -1), shape: [sh.dim, sh.vocab] });
  return out;
}
const SHAPE: Shape = { dim: 512, ffn: 1536, layers: 4, vocab: 1024, tied: false };
const F16_FILE = llamaTensors(SHAPE, () => 'f16');
const F32_FILE = llamaTensors(SHAPE, () => 'f32');
const Q8_FILE = llamaTensors(SHAPE, () => 'q8_0');
/** llama.cpp's Q4_K_M: q4_K, with q6_K for the output head and for attn_v / ffn_down in half the layers. */
const Q4_K_M_FILE = llamaTensors(SHAPE, (name, l) => (name === 'output.weight' || (/attn_v|ffn_down/.test(name) && l % 2 === 0) ? 'q6_K' : 'q4_K'));
const facts = (tensors: TensorDesc[]): WeightFacts => ({ tensors });
/** Every policy the engine accepts, canonical names. */
const CANONICAL: WeightsPolicy[] = WEIGHTS_POLICIES.filter((p) => p !== 'int8' && p !== 'int4');

describe('weights formats and plans', () => {
  it('bits per weight from the GGUF block sizes; q8_0 and q4_0 held with an f32 scale per 32', () => {
    expect(bitsPerWeight('f32')).toBe(32);
    expect(bitsPerWeight('bf16')).toBe(16);
    expect(bitsPerWeight('q8_0')).toBe((34 * 8) / 32); // 8.5
    expect(bitsPerWeight('q6_K')).toBe((210 * 8) / 256); // 6.5625
    expect(bitsPerWeight('q5_K')).toBe((176 * 8) / 256); // 5.5
    expect(bitsPerWeight('q4_K')).toBe((144 * 8) / 256); // 4.5
    expect(bitsPerWeight('q4_0')).toBe((18 * 8) / 32); // 4.5
    expect(heldBitsPerWeight('q8_0')).toBe(9);
    expect(heldBitsPerWeight('q4_0')).toBe(5);
    expect(heldBitsPerWeight('q4_K')).toBe(4.5);
    expect(POLICY_BITS_PER_WEIGHT).toEqual({ f32: 32, bf16: 16, q8_0: 8.5, q6_k: 6.5625, q5_k: 5.5, q4_k: 4.5, q4_0: 4.5 });
    // mixed lies between bf16 and q8_0, by the model's share of attention weights.
    const mixed = planWeights(F32_FILE, 'mixed').bitsPerWeight;
    expect(mixed).toBeGreaterThan(9);
    expect(mixed).toBeLessThan(16);
  });

  it('native is what the file holds; int8/int4 plan exactly as q8_0/q4_0', () => {
    const f16 = planWeights(F16_FILE, 'native');
    expect(Object.keys(f16.bytesByType).sort()).toEqual(['f16', 'f32']);
    expect(f16.bitsPerWeight).toBeCloseTo(16, 1);
    const q4km = planWeights(Q4_K_M_FILE, 'native');
    expect(Object.keys(q4km.bytesByType).sort()).toEqual(['f32', 'q4_K', 'q6_K']);
    expect(q4km.bitsPerWeight).toBeGreaterThan(4.5);
    expect(q4km.bitsPerWeight).toBeLessThan(5.5);
    expect(planWeights(F16_FILE, 'int8')).toEqual({ ...planWeights(F16_FILE, 'q8_0'), policy: 'int8' });
    expect(planWeights(F16_FILE, 'int4')).toEqual({ ...planWeights(F16_FILE, 'q4_0'), policy: 'int4' });
  });

  it('rows that are not whole blocks fall back as llama.cpp does', () => {
    const ragged = llamaTensors({ ...SHAPE, ffn: 672 }, () => 'f16'); // 672 = 21 × 32, not a multiple of 256
    const q4k = planWeights(ragged, 'q4_k');
    expect(q4k.fallbacks.map((f) => f.tensor)).toEqual(['blk.0.ffn_down.weight', 'blk.1.ffn_down.weight', 'blk.2.ffn_down.weight', 'blk.3.ffn_down.weight']);
    expect(q4k.fallbacks[0]).toMatchObject({ requested: 'q4_K', used: 'q5_0' });
    expect(planWeights(ragged, 'q6_k').fallbacks[0]).toMatchObject({ requested: 'q6_K', used: 'q8_0' });
    expect(planWeights(ragged, 'q5_k').fallbacks[0]).toMatchObject({ requested: 'q5_K', used: 'q5_1' });
    // Not even whole 32-blocks: the file's 16/32-bit type stays.
    const odd = llamaTensors({ ...SHAPE, ffn: 680 }, () => 'f16');
    expect(planWeights(odd, 'q4_k').fallbacks[0]).toMatchObject({ requested: 'q4_K', used: 'f16' });
  });

  it('re-quantizing a 16/32-bit file is never refused; re-quantizing a quantized one into as many or more bits is', () => {
    for (const p of CANONICAL) {
      expect(planWeights(F16_FILE, p).refused, p).toEqual([]);
      expect(planWeights(F32_FILE, p).refused, p).toEqual([]);
    }
    const refusedOnQ4KM = CANONICAL.filter((p) => planWeights(Q4_K_M_FILE, p).refused.length > 0).sort();
    expect(refusedOnQ4KM).toEqual(['mixed', 'q4_0', 'q5_k', 'q6_k', 'q8_0']);
    expect(planWeights(Q4_K_M_FILE, 'q8_0').refused[0]).toEqual({ tensor: 'token_embd.weight', from: 'q4_K', to: 'q8_0' });
    // Same type: kept, not refused (q8_0 on a Q8_0 file is native).
    expect(planWeights(Q8_FILE, 'q8_0').refused).toEqual([]);
  });
});

describe('weights ladder', () => {
  it('from 16/32 bits the lighter step is q8_0, then one K-quant rung at a time, q4_k at the bottom', () => {
    expect(lighterWeights(facts(F16_FILE), 'native')?.to).toBe('q8_0');
    expect(lighterWeights(facts(F32_FILE), 'bf16')?.to).toBe('q8_0');
    expect(lighterWeights(facts(F16_FILE), 'mixed')?.to).toBe('q8_0');
    expect(lighterWeights(facts(F16_FILE), 'q8_0')?.to).toBe('q6_k');
    expect(lighterWeights(facts(F16_FILE), 'int8')?.to).toBe('q6_k'); // an alias is the same rung
    expect(lighterWeights(facts(F16_FILE), 'q6_k')?.to).toBe('q5_k');
    expect(lighterWeights(facts(F16_FILE), 'q5_k')?.to).toBe('q4_k');
    expect(lighterWeights(facts(F16_FILE), 'q4_k')).toBeUndefined();
    // q4_0 is held at 5 bits (f32 scales): q4_k is lighter and more precise.
    expect(lighterWeights(facts(F16_FILE), 'q4_0')?.to).toBe('q4_k');
    // A Q8_0 file run natively: q6_k next (never q8_0 or int8: the same storage).
    expect(lighterWeights(facts(Q8_FILE), 'native')?.to).toBe('q6_k');
  });

  it('drops the bytes that carry nothing first: f32 over an F16 or Q4_K_M file → native', () => {
    const s = lighterWeights(facts(F16_FILE), 'f32')!;
    expect(s.to).toBe('native');
    expect(s.candidate.streamedBytes / s.live.streamedBytes).toBeCloseTo(0.5, 2);
    expect(lighterWeights(facts(Q4_K_M_FILE), 'f32')?.to).toBe('native');
    expect(lighterWeights(facts(Q4_K_M_FILE), 'bf16')?.to).toBe('native');
  });

  it('never proposes a policy that only loses precision or that the engine would refuse (a Q4_K_M file)', () => {
    // q8_0, q6_k, q5_k re-quantize q4_K into more bits (refused); q4_0 is refused too (4.5 ≥ 4.5). Only q4_k is left:
    // it turns the q6_K tensors into q4_K and keeps the q4_K ones.
    const s = lighterWeights(facts(Q4_K_M_FILE), 'native')!;
    expect(s.to).toBe('q4_k');
    expect(s.candidate.refused).toEqual([]);
    expect(s.candidate.streamedBytes).toBeLessThanOrEqual(s.live.streamedBytes * (1 - MIN_WEIGHT_BYTES_SAVING));
    // A Q4_K file has no lighter rung at all.
    expect(lighterWeights(facts(llamaTensors(SHAPE, () => 'q4_K')), 'native')).toBeUndefined();
    // Whatever the live policy, a proposal is never refused and always saves bytes.
    for (const tensors of [F16_FILE, F32_FILE, Q8_FILE, Q4_K_M_FILE]) {
      for (const live of CANONICAL) {
        if (planWeights(tensors, live).refused.length > 0) continue; // not a live setting the engine would run
        const s = lighterWeights(facts(tensors), live);
        if (!s) continue;
        expect(s.candidate.refused, `${live} → ${s.to}`).toEqual([]);
        expect(s.candidate.streamedBytes, `${live} → ${s.to}`).toBeLessThanOrEqual(s.live.streamedBytes * (1 - MIN_WEIGHT_BYTES_SAVING));
      }
    }
  });

  it('a quality step gains precision, loses none, and never spends bytes on precision the file does not have', () => {
    expect(heavierWeights(facts(F16_FILE), 'q4_0')?.to).toBe('q4_k');
    expect(heavierWeights(facts(F16_FILE), 'q4_k')?.to).toBe('q5_k');
    expect(heavierWeights(facts(F16_FILE), 'int8')?.to).toBe('mixed');
    // bf16 over an F16 file: native f16 holds the same bytes and more precision.
    expect(heavierWeights(facts(F16_FILE), 'bf16')?.to).toBe('native');
    expect(heavierWeights(facts(F16_FILE), 'mixed')?.to).toBe('native');
    // f32 over an F16 file gains nothing: nothing above native.
    expect(heavierWeights(facts(F16_FILE), 'native')).toBeUndefined();
    expect(heavierWeights(facts(F32_FILE), 'bf16')?.to).toBe('native');
    // A Q4_K_M file run natively: dequantizing recovers nothing, re-quantizing into more bits is refused.
    expect(heavierWeights(facts(Q4_K_M_FILE), 'native')).toBeUndefined();
    // q4_k over it (the q6_K tensors squeezed): native gives them back.
    expect(heavierWeights(facts(Q4_K_M_FILE), 'q4_k')?.to).toBe('native');
  });

  it('optimize: compute-bound on an F16 file proposes q8_0, priced by the bytes a step reads', () => {
    const ws = [1, 2, 4, 8].map((b, i) => win(i, { size: b, stepS: 0.02 + 0.004 * b, conc: b }));
    const settings: LiveSettings = { scheduler: { ...LIVE.scheduler, maxBatchSize: 16 }, layout: { ...LIVE.layout, weights: 'native' } };
    const live = planWeights(F16_FILE, 'native');
    const model = { nKvHeads: 4, ffnDim: 1536, cores: 2, weights: { tensors: F16_FILE, liveBytesByType: live.bytesByType } };
    const cs = optimize(input({ findings: [finding('compute_bound')], windows: ws, settings, model }));
    const q = cs.find((c) => c.change.layout?.weights)!;
    expect(q.change.layout).toEqual({ weights: 'q8_0' });
    expect(q.rationale).toMatch(/weights native \(f16, 16 bits\/weight\) → q8_0 \(q8_0, 9\.0\d* bits\/weight\); a decode step reads [\d.]+ MB → [\d.]+ MB \(0\.5\d×\)/);
    const fit = fitStepCost(ws)!;
    const price = priceWeightsChange(fit, live, planWeights(F16_FILE, 'q8_0'));
    const expected = predict(price.model, workloadOf(ws)!, settings.scheduler, SLO);
    expect(q.predicted.goodputTokensPerS).toBeCloseTo(expected.goodputTokensPerS, 9);
    // Q4_K_M run natively: the only weights candidate is q4_k, never q8_0.
    const q4 = optimize(input({ findings: [finding('compute_bound')], windows: ws, settings, model: { ...model, weights: facts(Q4_K_M_FILE) } }));
    expect(q4.filter((c) => c.change.layout?.weights).map((c) => c.change.layout!.weights)).toEqual(['q4_k']);
  });

  it('quality drift on a Q4_K_M file run natively proposes no weights change; on q8_0 over F16 it goes up', () => {
    const ws = [0, 1, 2, 3].map((i) => win(i, { size: 4, stepS: 0.02, conc: 4 }));
    const at = (weights: WeightsPolicy, tensors: TensorDesc[]) =>
      optimize(
        input({
          findings: [finding('quality_drift')],
          windows: ws,
          settings: { ...LIVE, layout: { ...LIVE.layout, weights } },
          model: { nKvHeads: 4, ffnDim: 1536, cores: 2, weights: facts(tensors) },
        }),
      );
    expect(at('native', Q4_K_M_FILE)).toEqual([]);
    expect(at('q8_0', F16_FILE).map((c) => c.change.layout?.weights)).toEqual(['mixed']);
  });

  it('a failed change to int8 blocks q8_0 (the same storage), and the other way round', () => {
    const ws = [1, 2, 4, 8].map((b, i) => win(i, { size: b, stepS: 0.02 + 0.004 * b, conc: b }));
    const settings: LiveSettings = { scheduler: { ...LIVE.scheduler, maxBatchSize: 16 }, layout: { ...LIVE.layout, weights: 'native' } };
    const base = input({ findings: [finding('compute_bound')], windows: ws, settings, model: { nKvHeads: 4, ffnDim: 1536, cores: 2, weights: facts(F16_FILE) } });
    expect(optimize(base).some((c) => c.change.layout?.weights === 'q8_0')).toBe(true);
    expect(optimize({ ...base, recentlyFailed: [{ layout: { weights: 'int8' } }] }).some((c) => c.change.layout?.weights)).toBe(false);
  });
});

describe('cost model: weights changes', () => {
  it('scales the fixed part of a step by the bytes a step reads, anchored on the bytes the engine reports', () => {
    const m = { fixedS: 0.02, perSequenceS: 0.002, source: 'fit' as const, points: 4 };
    const live = planWeights(F16_FILE, 'native');
    const cand = planWeights(F16_FILE, 'q4_k');
    const p = priceWeightsChange(m, live, cand);
    expect(p.ratio).toBeCloseTo(cand.streamedBytes / live.streamedBytes, 12);
    expect(p.ratio).toBeCloseTo(4.5 / 16, 2);
    expect(p.model.fixedS).toBeCloseTo(0.02 * p.ratio, 12);
    expect(p.model.perSequenceS).toBe(0.002);
    // The untied embedding table is not read per token: streamed < held.
    expect(live.streamedBytes).toBeLessThan(live.bytes);
    expect(p.fromBytes).toBe(live.streamedBytes);
    // With the engine's report (here: twice the plan, as a tied head held by two ranks would be), the figures scale.
    const doubled = Object.fromEntries(Object.entries(live.bytesByType).map(([k, v]) => [k, 2 * v]));
    const q = priceWeightsChange(m, live, cand, doubled);
    expect(q.fromBytes).toBeCloseTo(2 * live.streamedBytes, 6);
    expect(q.ratio).toBe(p.ratio);
    // Tied embeddings: the head reads the whole table every step.
    const tied = planWeights(
      llamaTensors({ ...SHAPE, tied: true }, () => 'f16'),
      'native',
    );
    expect(tied.streamedBytes).toBe(tied.bytes);
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
