// The Mixture-of-Experts synthetic files (tools/lib/synthetic-arch.ts MOE_PRESETS, issue 17): Qwen3-30B-A3B-shaped
// `qwen3moe` and DeepSeek-V2-Lite / V3-shaped `deepseek2` files, scaled down, with seeded random weights and skewed
// routers. What is checked here, before tuneloop's engine runs MoE:
//   - each file holds the tensor names, ggml shapes and keys llama.cpp's loaders read (and the converters write);
//   - llama.cpp (node-llama-cpp 3.21.1, the oracle) loads each preset in several weight types and its teacher-forced
//     next-token distributions are finite, normalized and deterministic;
//   - each preset's distinguishing feature (top-k, shared experts, YaRN mscale, selection bias, sigmoid gating, group
//     routing, routed-weight scale and renormalization) moves llama.cpp's distributions by more than the agreement bar,
//     so the agreement test the engine work adds can fail for the reason it exists;
//   - the router is skewed (some experts take far more tokens than others), as trained routers are;
//   - tuneloop's engine (native/src/moe.cpp, and for deepseek2 native/src/mla.cpp) agrees with llama.cpp on every
//     preset (f16, q8_0, q4_k: mean cosine >= 0.999, top-1 >= 99% at every teacher-forced position, near-ties of
//     block-type files excepted as below);
//   - a `deepseek` (DeepSeek-MoE 16B layout) file rewritten from the qwen3moe preset: shared experts, a leading
//     dense layer and the routed-weight scale agree with llama.cpp (tp 1, tp 2, ep 2);
//   - MoE serving (moe-serving.test.ts): tensor parallelism (tp 1 vs 2), batch invariance (a request alone vs among 15 others), routing
//     statistics in stats() and the active-parameter facts in info().
import { afterAll, describe, expect, it } from 'vitest';

import { Engine } from '../../src/engine/index.js';
import { GGML_TYPE, gv } from '../../tools/lib/gguf-writer.js';
import { archTensorPlan, buildSyntheticArch, MOE_PRESETS, routerGains, validateArchSpec, type ArchSpec, type MoeSpec } from '../../tools/lib/synthetic-arch.js';
import type { SyntheticFileType } from '../../tools/lib/synthetic-llama.js';
import { ArchModels, ARCH_TEXT, editTensor } from '../helpers/arch-models.js';
import { LlamaCppOracle, compareDistributions, softmaxRows, type Distribution, type DistributionAgreement } from '../helpers/llama-cpp.js';

// llama.cpp's threads spin at barriers: on a loaded two-core machine one is faster than two.
const ORACLE_THREADS = 1;
const CONTEXT = 256;
// Past the YaRN original context (64) of the deepseek2 presets.
const SEQ = 160;
// The agreement bar the engine will have to meet (issue 17: mean cosine >= 0.999, top-1 >= 99%).
const FLOAT_BAR = { meanCosine: 0.999, top1: 0.99 };
// A top-1 disagreement on a block-type file where llama.cpp's probability of tuneloop's token is within this factor
// of its own top token's is a near-tie (see the agreement test); never more than BLOCK_TOP1_FLOOR of them.
const NEAR_TIE = 0.95;
const BLOCK_TOP1_FLOOR = 0.975;
// Widths of 256 so that every expert row is whole q4_K blocks (256 values).
const WIDE: Partial<ArchSpec> = { dim: 256 };

const models = new ArchModels();
afterAll(() => models.cleanup());

const spec = (preset: string): ArchSpec => MOE_PRESETS[preset]!.spec;
const moeWith = (preset: string, change: Partial<MoeSpec>): Partial<ArchSpec> => ({ moe: { ...spec(preset).moe!, ...change } });
const wide = (preset: string): Partial<ArchSpec> => ({ ...WIDE, ...moeWith(preset, { expertFfnDim: 256 }) });

async function oracleRun(file: string, twice = false): Promise<{ tokens: number[]; dists: Distribution[]; again?: Distribution[] }> {
  const oracle = await LlamaCppOracle.load(file, { threads: ORACLE_THREADS, contextSize: CONTEXT });
  try {
    const tokens = oracle.tokenize(ARCH_TEXT).slice(0, SEQ);
    const dists = await oracle.distributions(tokens);
    return twice ? { tokens, dists, again: await oracle.distributions(tokens) } : { tokens, dists };
  } finally {
    await oracle.model.dispose();
  }
}

const argmaxOf = (d: Float32Array): number => d.reduce((best, x, i) => (x > d[best]! ? i : best), 0);
const summary = (c: DistributionAgreement): string => `mean cos ${c.meanCosine.toFixed(6)}, min ${c.minCosine.toFixed(4)}, top-1 ${(100 * c.top1Agreement).toFixed(1)}%`;

describe('what each MoE file holds', () => {
  const plan = (preset: string, fileType: SyntheticFileType = 'f16', over: Partial<ArchSpec> = {}): Map<string, { ne: number[]; type: number }> =>
    new Map(archTensorPlan({ ...spec(preset), ...over }, 512, fileType).map((t) => [t.plan.name, { ne: t.plan.ne, type: t.plan.type }]));
  const keys = (preset: string): Map<string, unknown> => {
    const m = buildSyntheticArch({ spec: spec(preset), fileType: 'f16', seed: 1, vocab: { tokenizer: 'gpt2', nVocab: 300 } });
    return new Map(m.metadata.map(([k, v]) => [k, 'value' in v ? v.value : v.items]));
  };

  it('qwen3moe: QK-norm attention, an F32 router and 3-D expert tensors ne [in, out, experts] in every layer', () => {
    const p = plan('qwen3moe');
    for (const l of [0, 1]) {
      expect(p.get(`blk.${l}.attn_q_norm.weight`)?.ne).toEqual([32]);
      expect(p.get(`blk.${l}.ffn_gate_inp.weight`)).toEqual({ ne: [128, 16], type: GGML_TYPE.F32 });
      expect(p.get(`blk.${l}.ffn_gate_exps.weight`)?.ne).toEqual([128, 64, 16]);
      expect(p.get(`blk.${l}.ffn_up_exps.weight`)?.ne).toEqual([128, 64, 16]);
      expect(p.get(`blk.${l}.ffn_down_exps.weight`)?.ne).toEqual([64, 128, 16]);
      expect(p.has(`blk.${l}.ffn_gate.weight`) || p.has(`blk.${l}.ffn_down.weight`)).toBe(false);
    }
    const k = keys('qwen3moe');
    expect(k.get('qwen3moe.expert_count')).toBe(16);
    expect(k.get('qwen3moe.expert_used_count')).toBe(4);
    expect(k.get('qwen3moe.expert_feed_forward_length')).toBe(64);
    expect(k.get('qwen3moe.attention.key_length')).toBe(32);
    // llama.cpp's qwen3moe graph hard-codes softmax + renormalization; Qwen3's converter writes neither key.
    expect(k.has('qwen3moe.expert_gating_func') || k.has('qwen3moe.expert_weights_norm')).toBe(false);
  });

  it('deepseek2-lite: direct attn_q, the latent and rope part in attn_kv_a_mqa, split k_b / v_b, a leading dense layer, shared experts', () => {
    const p = plan('deepseek2-lite');
    expect(p.get('blk.0.attn_q.weight')?.ne).toEqual([128, 4 * 48]);
    expect(p.has('blk.0.attn_q_a.weight')).toBe(false);
    expect(p.get('blk.0.attn_kv_a_mqa.weight')?.ne).toEqual([128, 64 + 16]);
    expect(p.get('blk.0.attn_kv_a_norm.weight')?.ne).toEqual([64]);
    expect(p.get('blk.0.attn_k_b.weight')?.ne).toEqual([32, 64, 4]);
    expect(p.get('blk.0.attn_v_b.weight')?.ne).toEqual([64, 32, 4]);
    expect(p.get('blk.0.attn_output.weight')?.ne).toEqual([4 * 32, 128]);
    expect(p.get('blk.0.ffn_gate.weight')?.ne).toEqual([128, 384]);
    expect(p.has('blk.0.ffn_gate_inp.weight')).toBe(false);
    expect(p.get('blk.1.ffn_gate_shexp.weight')?.ne).toEqual([128, 2 * 32]);
    expect(p.get('blk.1.ffn_down_shexp.weight')?.ne).toEqual([2 * 32, 128]);
    expect(p.get('blk.2.ffn_down_exps.weight')?.ne).toEqual([32, 128, 16]);
    expect(p.has('blk.1.exp_probs_b.bias')).toBe(false);
    const k = keys('deepseek2-lite');
    expect(k.get('deepseek2.attention.q_lora_rank')).toBe(0);
    expect(k.get('deepseek2.attention.head_count_kv')).toBe(1);
    expect(k.get('deepseek2.attention.key_length')).toBe(64 + 16);
    expect(k.get('deepseek2.attention.value_length')).toBe(64);
    expect(k.get('deepseek2.attention.key_length_mla')).toBe(48);
    expect(k.get('deepseek2.attention.value_length_mla')).toBe(32);
    expect(k.get('deepseek2.rope.dimension_count')).toBe(16);
    expect(k.get('deepseek2.expert_gating_func')).toBe(1);
    expect(k.get('deepseek2.leading_dense_block_count')).toBe(1);
    expect(k.get('deepseek2.expert_shared_count')).toBe(2);
    expect(k.has('deepseek2.expert_weights_norm')).toBe(false);
    expect(k.get('deepseek2.rope.scaling.type')).toBe('yarn');
    expect(k.get('deepseek2.rope.scaling.yarn_log_multiplier')).toBeCloseTo(0.0707, 6);
  });

  it('deepseek3: q_lora (attn_q_a, attn_q_a_norm, attn_q_b), selection bias, sigmoid gating, groups, renormalized and scaled weights', () => {
    const p = plan('deepseek3');
    expect(p.get('blk.0.attn_q_a.weight')?.ne).toEqual([128, 96]);
    expect(p.get('blk.0.attn_q_a_norm.weight')?.ne).toEqual([96]);
    expect(p.get('blk.0.attn_q_b.weight')?.ne).toEqual([96, 4 * 48]);
    expect(p.get('blk.3.exp_probs_b.bias')).toEqual({ ne: [16], type: GGML_TYPE.F32 });
    const k = keys('deepseek3');
    expect(k.get('deepseek2.attention.q_lora_rank')).toBe(96);
    expect(k.get('deepseek2.expert_gating_func')).toBe(2);
    expect(k.get('deepseek2.expert_group_count')).toBe(4);
    expect(k.get('deepseek2.expert_group_used_count')).toBe(2);
    expect(k.get('deepseek2.expert_weights_norm')).toBe(true);
    expect(k.get('deepseek2.expert_weights_scale')).toBeCloseTo(2.5, 6);
    expect(k.get('deepseek2.rope.scaling.yarn_log_multiplier')).toBeCloseTo(0.1, 6);
  });

  it('block types: expert rows of 256 are whole q4_K blocks; narrower ones fall back as the quantizer does', () => {
    const q = plan('qwen3moe', 'q4_k', wide('qwen3moe'));
    expect(q.get('blk.0.ffn_gate_exps.weight')?.type).toBe(GGML_TYPE.Q4_K);
    expect(q.get('blk.0.ffn_down_exps.weight')?.type).toBe(GGML_TYPE.Q4_K);
    expect(q.get('blk.0.ffn_gate_inp.weight')?.type).toBe(GGML_TYPE.F32);
    const narrow = plan('qwen3moe', 'q4_k');
    expect(narrow.get('blk.0.ffn_down_exps.weight')?.type).not.toBe(GGML_TYPE.Q4_K);
    expect(plan('deepseek3', 'q8_0').get('blk.1.ffn_up_exps.weight')?.type).toBe(GGML_TYPE.Q8_0);
  });

  it.each([
    ['top-k above the expert count', moeWith('qwen3moe', { nExpertsUsed: 17 }), 'qwen3moe', /exceeds nExperts/],
    ['a deepseek2 without shared experts', moeWith('deepseek3', { nShared: 0 }), 'deepseek3', /shared expert/],
    ['groups that do not divide the experts', moeWith('deepseek3', { groups: { count: 3, used: 1 } }), 'deepseek3', /groups/],
    ['a DeepSeek key on qwen3moe', moeWith('qwen3moe', { gating: 'sigmoid' }), 'qwen3moe', /not read/],
    ['more dense layers than layers', moeWith('deepseek3', { leadingDense: 5 }), 'deepseek3', /exceeds nLayers/],
    ['MLA head widths that disagree', { headDim: 40 }, 'deepseek3', /qkNopeDim \+ qkRopeDim/],
  ])('refuses %s', (_label, over, preset, message) => {
    expect(() => validateArchSpec({ ...spec(preset), ...over })).toThrow(message);
  });
});

describe('router skew', () => {
  /** Top-k load per expert of the file's own router (layer `layer`) over random unit-RMS inputs: max / mean and
   *  max / min. */
  function imbalance(s: ArchSpec, layer: number): { maxMean: number; maxMin: number } {
    const m = buildSyntheticArch({ spec: s, fileType: 'f32', seed: 7, vocab: { tokenizer: 'gpt2', nVocab: 300 } });
    const t = m.tensors.find((x) => x.name === `blk.${layer}.ffn_gate_inp.weight`)!;
    const w = new Float32Array(t.ne[0]! * t.ne[1]!);
    let off = 0;
    for (const c of t.data()) {
      w.set(c, off);
      off += (c as Float32Array).length;
    }
    const dim = t.ne[0]!;
    const nE = t.ne[1]!;
    const k = s.moe!.nExpertsUsed;
    const load = new Array<number>(nE).fill(0);
    let state = 12345;
    const rand = (): number => {
      state = (state * 1103515245 + 12345) >>> 0;
      return state / 2 ** 32;
    };
    const gauss = (): number => Math.sqrt(-2 * Math.log(rand() + 1e-12)) * Math.cos(2 * Math.PI * rand());
    for (let n = 0; n < 2000; n++) {
      const x = Array.from({ length: dim }, gauss);
      const logits = Array.from({ length: nE }, (_, e) => x.reduce((acc, v, i) => acc + v * w[e * dim + i]!, 0));
      const top = logits.map((v, e) => [v, e] as const).sort((a, b) => b[0] - a[0]);
      for (let j = 0; j < k; j++) load[top[j]![1]]! += 1;
    }
    const mean = load.reduce((a, b) => a + b, 0) / nE;
    return { maxMean: Math.max(...load) / mean, maxMin: Math.max(...load) / Math.max(1, Math.min(...load)) };
  }

  it('the hottest expert takes well over its share (trained-router-like), a flat router does not', () => {
    const g = routerGains(16, 2);
    expect(Math.min(...g)).toBe(1);
    expect(Math.max(...g)).toBeCloseTo(Math.exp(2), 5);
    expect(new Set(g).size).toBe(16);
    const fmt = (x: { maxMean: number; maxMin: number }): string => `max/mean ${x.maxMean.toFixed(2)}, max/min ${x.maxMin.toFixed(2)}`;
    for (const preset of ['qwen3moe', 'deepseek3']) {
      const layer = spec(preset).moe!.leadingDense ?? 0;
      const skewed = imbalance(spec(preset), layer);
      const flat = imbalance({ ...spec(preset), ...moeWith(preset, { routerSkew: 0 }) }, layer);
      console.log(`${preset} router load: skew 2 ${fmt(skewed)}; skew 0 ${fmt(flat)}`);
      expect(skewed.maxMean).toBeGreaterThan(1.45);
      expect(skewed.maxMin).toBeGreaterThan(3);
      expect(flat.maxMean).toBeLessThan(1.35);
      expect(flat.maxMin).toBeLessThan(2.5);
    }
  });
});

/**
 * deepseek2 (MLA + MoE with sigmoid scores, a selection bias and group-limited routing): a token's experts change when
 * two scores swap, and llama.cpp rounds every product's activations (to f16 for f16 weights, to 8 bits for block
 * types), which moves the hidden state enough to swap near-tied scores at some positions; the token then runs other
 * experts and its distribution differs outright. Measured on the 256-wide deepseek3 q4_k file: llama.cpp on it vs
 * llama.cpp on its F32 twin (the same weights decoded, no activation rounding) mean cosine 0.944, top-1 81%; tuneloop
 * vs llama.cpp 0.948 / 82.5%; tuneloop vs the twin 1.000000 at every position. So:
 *   - exactness: tuneloop on the file's own weights (weights 'f32') against llama.cpp on the F32 twin, at every
 *     position (min cosine >= 0.9999, mean >= 0.99999, top-1 >= 99%);
 *   - the file as it is: tuneloop against llama.cpp at the agreement bar, or, where llama.cpp's own rounding moves
 *     it further from its exact result (its quantized run vs its twin run), within that distance (0.005 of mean
 *     cosine, 3 points of top-1).
 */
async function expectDeepseekAgreement(
  f: { file: string; twin?: string | undefined },
  run: { tokens: number[]; dists: Distribution[] },
  ours: DistributionAgreement,
): Promise<void> {
  const twin = await oracleRun(f.twin!);
  const self = compareDistributions(run.dists, twin.dists);
  const e = await Engine.load({ model: f.file, threads: 2, contextLength: CONTEXT, weights: 'f32' });
  try {
    const exact = compareDistributions(softmaxRows(await e.evaluate(run.tokens, { allLogits: true }), e.info.nVocab), twin.dists);
    console.log(`  llama.cpp vs its F32 twin: ${summary(self)}; tuneloop (weights f32) vs the twin: ${summary(exact)}`);
    expect(exact.minCosine).toBeGreaterThanOrEqual(0.9999);
    expect(exact.meanCosine).toBeGreaterThanOrEqual(0.99999);
    expect(exact.top1Agreement).toBeGreaterThanOrEqual(FLOAT_BAR.top1);
  } finally {
    await e.close();
  }
  expect(ours.meanCosine).toBeGreaterThanOrEqual(Math.min(FLOAT_BAR.meanCosine, self.meanCosine - 0.005));
  expect(ours.top1Agreement).toBeGreaterThanOrEqual(Math.min(FLOAT_BAR.top1, self.top1Agreement - 0.03));
}

describe('llama.cpp runs each preset', () => {
  const cases: { preset: string; fileType: SyntheticFileType; spec?: Partial<ArchSpec> }[] = [
    { preset: 'qwen3moe', fileType: 'f16' },
    { preset: 'qwen3moe', fileType: 'q8_0' },
    { preset: 'qwen3moe', fileType: 'q4_k', spec: wide('qwen3moe') },
    { preset: 'deepseek2-lite', fileType: 'f16' },
    { preset: 'deepseek2-lite', fileType: 'q8_0' },
    { preset: 'deepseek3', fileType: 'f16' },
    { preset: 'deepseek3', fileType: 'q4_k', spec: wide('deepseek3') },
  ];
  it.each(cases)('$preset $fileType: finite, normalized, deterministic distributions; tuneloop agrees', async (c) => {
    const deepseek = c.preset !== 'qwen3moe';
    const f = models.write(c.preset, { real: false, fileType: c.fileType, spec: c.spec ?? {}, f32Twin: deepseek });
    const run = await oracleRun(f.file, true);
    expect(run.dists).toHaveLength(SEQ);
    for (const d of run.dists) {
      const p = d as Float32Array;
      let sum = 0;
      for (const x of p) {
        expect(Number.isFinite(x)).toBe(true);
        sum += x;
      }
      expect(sum).toBeCloseTo(1, 3);
    }
    const same = compareDistributions(run.again!, run.dists);
    expect(same.maxAbsDiff).toBe(0);
    // tuneloop's MoE FFN: the same next-token distributions at every teacher-forced position.
    const e = await Engine.load({ model: f.file, threads: 2, contextLength: CONTEXT });
    try {
      const logits = await e.evaluate(run.tokens, { allLogits: true });
      const ours = softmaxRows(logits, e.info.nVocab);
      const cmp = compareDistributions(ours, run.dists);
      // Block types: llama.cpp and tuneloop sum the block products in different orders, so where llama.cpp's own
      // two best tokens are a near-tie the top-1 may differ; such a position counts as agreeing (measured: 2 of
      // 160 in q8_0, gaps of 0.1% and 3%), any other disagreement does not.
      let nearTies = 0;
      ours.forEach((d, p) => {
        const ref = run.dists[p] as Float32Array;
        const a = argmaxOf(d),
          r = argmaxOf(ref);
        if (a === r) return;
        console.log(`position ${p}: tuneloop's top-1 ${a} (llama.cpp p ${ref[a]}), llama.cpp's ${r} (p ${ref[r]})`);
        if (c.fileType !== 'f16' && ref[a]! >= NEAR_TIE * ref[r]!) nearTies++;
      });
      console.log(`${c.preset} ${c.fileType}: ${summary(cmp)}; near-ties ${nearTies}`);
      if (deepseek) {
        await expectDeepseekAgreement(f, run, cmp);
        return;
      }
      expect(cmp.meanCosine).toBeGreaterThanOrEqual(FLOAT_BAR.meanCosine);
      expect(cmp.top1Agreement + nearTies / cmp.positions).toBeGreaterThanOrEqual(FLOAT_BAR.top1);
      expect(cmp.top1Agreement).toBeGreaterThanOrEqual(BLOCK_TOP1_FLOOR);
    } finally {
      await e.close();
    }
  });
});

describe("each preset's distinguishing feature moves llama.cpp's distributions past the agreement bar", () => {
  const zeroTensor =
    (suffix: string) =>
    (m: Parameters<typeof editTensor>[0]): void => {
      for (const t of m.tensors.filter((x) => x.name.endsWith(suffix))) {
        editTensor(m, t.name, (_row0, rows, set) => {
          for (let i = 0; i < rows * t.ne[0]!; i++) set(i, 0);
        });
      }
    };
  const cases: { label: string; preset: string; ablation?: Partial<ArchSpec>; edit?: (m: Parameters<typeof editTensor>[0]) => void }[] = [
    { label: 'qwen3moe: top-4 vs top-2', preset: 'qwen3moe', ablation: moeWith('qwen3moe', { nExpertsUsed: 2 }) },
    { label: 'qwen3moe: skewed vs flat router', preset: 'qwen3moe', ablation: moeWith('qwen3moe', { routerSkew: 0 }) },
    { label: 'deepseek2-lite: top-4 vs top-2', preset: 'deepseek2-lite', ablation: moeWith('deepseek2-lite', { nExpertsUsed: 2 }) },
    { label: 'deepseek2-lite: shared experts zeroed', preset: 'deepseek2-lite', edit: zeroTensor('ffn_down_shexp.weight') },
    {
      label: 'deepseek2-lite: YaRN mscale_all_dim (yarn_log_multiplier) left out',
      preset: 'deepseek2-lite',
      ablation: { mla: { ...spec('deepseek2-lite').mla!, mscaleAllDim: undefined } },
    },
    { label: 'deepseek3: no selection bias', preset: 'deepseek3', ablation: moeWith('deepseek3', { selectionBias: false }) },
    { label: 'deepseek3: softmax instead of sigmoid scores', preset: 'deepseek3', ablation: moeWith('deepseek3', { gating: 'softmax' }) },
    { label: 'deepseek3: no group-limited routing', preset: 'deepseek3', ablation: moeWith('deepseek3', { groups: undefined }) },
    { label: 'deepseek3: routed scale 1 instead of 2.5', preset: 'deepseek3', ablation: moeWith('deepseek3', { weightsScale: 1 }) },
    { label: 'deepseek3: weights not renormalized', preset: 'deepseek3', ablation: moeWith('deepseek3', { normTopK: false }) },
  ];
  const refs = new Map<string, Promise<{ dists: Distribution[] }>>();
  it.each(cases)('$label', async (c) => {
    if (!refs.has(c.preset)) refs.set(c.preset, oracleRun(models.write(c.preset, { real: false, fileType: 'f16' }).file));
    const ref = await refs.get(c.preset)!;
    const other = await oracleRun(models.write(c.preset, { real: false, fileType: 'f16', spec: c.ablation ?? {}, edit: c.edit }).file);
    const cmp = compareDistributions(other.dists, ref.dists);
    console.log(`${c.label}: ${summary(cmp)}`);
    expect(cmp.meanCosine < FLOAT_BAR.meanCosine || cmp.top1Agreement < FLOAT_BAR.top1, `the feature is observable: ${summary(cmp)}`).toBe(true);
  });
});

describe('group-limited routing on a qwen3moe file', () => {
  // llama.cpp reads expert_group_count / expert_group_used_count for every architecture (llama-model.cpp) and
  // build_moe_ffn applies them whenever there are groups, so a qwen3moe file with the keys routes each token within
  // its best 2 of 4 groups: the engine's group routing (moe.cpp moe_route) checked against llama.cpp, and the keys
  // shown to change llama.cpp's distributions (so the check can fail).
  const withGroups = (m: Parameters<typeof editTensor>[0]): void => {
    m.metadata.push(['qwen3moe.expert_group_count', gv.u32(4)], ['qwen3moe.expert_group_used_count', gv.u32(2)]);
  };
  it('tuneloop agrees with llama.cpp, whose distributions the groups move past the bar', async () => {
    const grouped = models.write('qwen3moe', { real: false, fileType: 'f16', edit: withGroups });
    const ref = await oracleRun(grouped.file);
    const plain = await oracleRun(models.write('qwen3moe', { real: false, fileType: 'f16' }).file);
    const moved = compareDistributions(plain.dists, ref.dists);
    console.log(`qwen3moe groups 4/2 vs none (llama.cpp): ${summary(moved)}`);
    expect(moved.meanCosine < FLOAT_BAR.meanCosine || moved.top1Agreement < FLOAT_BAR.top1).toBe(true);
    const e = await Engine.load({ model: grouped.file, threads: 2, contextLength: CONTEXT });
    try {
      const cmp = compareDistributions(softmaxRows(await e.evaluate(ref.tokens, { allLogits: true }), e.info.nVocab), ref.dists);
      console.log(`qwen3moe groups 4/2: ${summary(cmp)}`);
      expect(cmp.meanCosine).toBeGreaterThanOrEqual(FLOAT_BAR.meanCosine);
      expect(cmp.top1Agreement).toBeGreaterThanOrEqual(FLOAT_BAR.top1);
    } finally {
      await e.close();
    }
  });
});

describe('deepseek (DeepSeek-MoE 16B layout): shared experts, a leading dense layer, a routed-weight scale', () => {
  // The synthetic tool has no `deepseek` preset (deepseek2's MLA is another file); this one is the qwen3moe preset
  // rewritten into llama.cpp's deepseek layout: no QK-norm, heads of dim / head_count, NORM RoPE, layer 0 dense
  // (ffn_gate/up/down), layers 1-2 MoE with 2 shared experts (ffn_*_shexp) and expert_weights_scale 1.5, softmax
  // without renormalization. f32 weights: both engines multiply in f32.
  const SHARED = 2;
  const rand = (seed: number): (() => number) => {
    let s = seed >>> 0;
    return () => {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      return s / 2 ** 32 - 0.5;
    };
  };
  const matrix = (name: string, cols: number, rows: number, seed: number): { name: string; ne: number[]; type: number; data: () => Float32Array[] } => {
    const r = rand(seed);
    const scale = Math.sqrt(12 / cols); // uniform of variance 1 / cols
    const values = Float32Array.from({ length: cols * rows }, () => r() * scale);
    return { name, ne: [cols, rows], type: GGML_TYPE.F32, data: () => [values] };
  };
  const toDeepseek =
    (scale: number, zeroShared = false) =>
    (m: Parameters<typeof editTensor>[0]): void => {
      const s = spec('qwen3moe');
      const ef = s.moe!.expertFfnDim;
      m.metadata = m.metadata.map(([k, v]) => {
        if (k === 'general.architecture') return [k, gv.str('deepseek')];
        return [k.startsWith('qwen3moe.') ? 'deepseek.' + k.slice('qwen3moe.'.length) : k, v];
      });
      m.metadata.push(
        ['deepseek.leading_dense_block_count', gv.u32(1)],
        ['deepseek.expert_shared_count', gv.u32(SHARED)],
        ['deepseek.expert_weights_scale', gv.f32(scale)],
      );
      m.tensors = m.tensors.filter((t) => !/attn_[qk]_norm/.test(t.name) && !/^blk\.0\.(ffn_gate_inp|ffn_\w+_exps)/.test(t.name));
      m.tensors.push(
        matrix('blk.0.ffn_gate.weight', s.dim, s.ffnDim, 11),
        matrix('blk.0.ffn_up.weight', s.dim, s.ffnDim, 12),
        matrix('blk.0.ffn_down.weight', s.ffnDim, s.dim, 13),
      );
      for (const l of [1, 2]) {
        const down = matrix(`blk.${l}.ffn_down_shexp.weight`, ef * SHARED, s.dim, 30 + l);
        if (zeroShared) down.data = () => [new Float32Array(ef * SHARED * s.dim)];
        m.tensors.push(matrix(`blk.${l}.ffn_gate_shexp.weight`, s.dim, ef * SHARED, 10 + l), matrix(`blk.${l}.ffn_up_shexp.weight`, s.dim, ef * SHARED, 20 + l), down);
      }
    };
  const file = (scale: number, zeroShared = false): string =>
    models.write('qwen3moe', { real: false, fileType: 'f32', spec: { nLayers: 3, headDim: 16, writeHeadDim: false }, edit: toDeepseek(scale, zeroShared) }).file;

  it('tuneloop agrees with llama.cpp; the shared experts and the scale each move llama.cpp past the bar', async () => {
    const ref = await oracleRun(file(1.5));
    for (const [label, other] of [
      ['shared experts zeroed', file(1.5, true)],
      ['routed scale 1 instead of 1.5', file(1)],
    ] as const) {
      const cmp = compareDistributions((await oracleRun(other)).dists, ref.dists);
      console.log(`deepseek ${label} (llama.cpp): ${summary(cmp)}`);
      expect(cmp.meanCosine < FLOAT_BAR.meanCosine || cmp.top1Agreement < FLOAT_BAR.top1, label).toBe(true);
    }
    for (const options of [{}, { tpDegree: 2, threadsPerRank: 1 }, { epDegree: 2, threadsPerRank: 1 }]) {
      const e = await Engine.load({ model: file(1.5), threads: 2, contextLength: CONTEXT, ...options });
      try {
        expect(e.info.moe).toMatchObject({ sharedExperts: SHARED, leadingDenseLayers: 1, gating: 'softmax' });
        const cmp = compareDistributions(softmaxRows(await e.evaluate(ref.tokens, { allLogits: true }), e.info.nVocab), ref.dists);
        console.log(`deepseek ${JSON.stringify(options)}: ${summary(cmp)}`);
        expect(cmp.meanCosine).toBeGreaterThanOrEqual(FLOAT_BAR.meanCosine);
        expect(cmp.top1Agreement).toBeGreaterThanOrEqual(FLOAT_BAR.top1);
        expect(e.stats().moe!.moeLayers).toEqual([1, 2]);
      } finally {
        await e.close();
      }
    }
  });
});
