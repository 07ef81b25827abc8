// The dense model families beyond plain Llama (issue 16), each as a synthetic file of a scaled-down real shape
// (tools/lib/synthetic-arch.ts), run by tuneloop and by llama.cpp (node-llama-cpp, the oracle): next-token
// distributions at every teacher-forced position of a 160-token text must agree (mean cosine >= 0.999, top-1 >= 99%),
// with sequences that pass the sliding windows (16 tokens) and the original contexts of RoPE scaling (64); and
// tensor parallelism (2 ranks) must give the logits of 1 rank.
//
// Each family runs twice: with a small synthetic vocabulary of its tokenizer model (whole distributions compared), and
// with its real vocabulary (Llama-3.1, Qwen3 for Qwen2/3, Gemma-3 for Gemma-2/3, Phi-3; 32k-262k tokens). There
// llama.cpp hands back only its top 256 tokens per position (the full list costs ~0.5 s per position through
// node-llama-cpp), renormalized over those; tuneloop's distribution is renormalized over the same 256 ids, and its
// top-1 is taken over the whole vocabulary (a top token outside llama.cpp's 256 counts as a disagreement).
//
// That these comparisons can fail for the reason they exist is checked too: for each family's distinguishing feature
// (RoPE scaling, biases, sliding window, soft-caps, LongRoPE factors), llama.cpp's distributions on the file without
// it differ from those on the file with it by more than the agreement bar, so an engine that ignored the feature
// would fail the comparison.
//
// Weight types: every family in f16 (as converters write them) plus q8_0 and q4_k (rows of 64 / 128 are not whole
// 256-blocks, so q4_k falls back to q5_0 there, as llama.cpp's quantizer does); and one non-llama family (qwen3, at
// widths of 256 so that every block type applies) in every type the engine runs. Block types quantize activations to
// 8 bits on both sides (each its own way), so they get the looser bars of the quantized presets test.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Engine } from '../../src/engine/index.js';
import { ARCH_PRESETS, type ArchSpec } from '../../tools/lib/synthetic-arch.js';
import { SYNTHETIC_TENSOR_TYPES, type SyntheticFileType } from '../../tools/lib/synthetic-llama.js';
import { ArchModels, ARCH_TEXT, type ArchModelFile } from '../helpers/arch-models.js';
import { LlamaCppOracle, compareDistributions, softmaxRows, type Distribution, type DistributionAgreement, type SparseDistribution } from '../helpers/llama-cpp.js';
import { argmaxRows, maxRelDiff } from '../helpers/serving.js';

const THREADS = 2;
// llama.cpp's threads spin at barriers: on a loaded two-core machine one is faster than two.
const ORACLE_THREADS = 1;
const CONTEXT = 256;
const SEQ = 160;
// llama.cpp's top-k list per position on the real vocabularies.
const REAL_TOP_K = 256;
// The agreement bar (issue 16) for float weights; block types: see the quantized presets test's reasoning.
const FLOAT_BAR = { meanCosine: 0.999, top1: 0.99 };
const BLOCK_BAR = { meanCosine: 0.995, top1: 0.9 };
const FLOAT_TYPES: ReadonlySet<string> = new Set(['f32', 'f16', 'bf16']);
// llama.cpp rounds the activations to bf16 for a bf16 matrix (8 mantissa bits) where tuneloop keeps them in f32: two
// near-ties may flip on that rounding alone (measured 1 of 96 here), as in the quantized presets test.
const BF16_TOP1_SLACK = 2;
// TP 1 vs 2: max |diff| / max |logit| (float rounding of partial sums added in another order).
const TP_REL_TOL = 1e-4;

const models = new ArchModels();
afterAll(() => models.cleanup());

interface Row {
  family: string;
  vocab: string;
  weights: string;
  cmp: DistributionAgreement;
  tp?: number;
}
const rows: Row[] = [];
afterAll(() => {
  if (rows.length === 0) return;
  const head = ['family', 'vocab', 'weights', 'positions', 'mean cosine', 'min cosine', 'top-1', 'TP2 rel diff'];
  const lines = rows.map((r) => [
    r.family,
    r.vocab,
    r.weights,
    String(r.cmp.positions),
    r.cmp.meanCosine.toFixed(6),
    r.cmp.minCosine.toFixed(6),
    `${(100 * r.cmp.top1Agreement).toFixed(1)}%`,
    r.tp === undefined ? '' : r.tp.toExponential(1),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  console.log(['', fmt(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...lines.map(fmt)].join('\n'));
});

/** llama.cpp's teacher-forced distributions of the architecture text (its own tokenization, BOS as the vocabulary
 *  says), and the tokens. */
async function oracleRun(file: string, seq = SEQ, samplerTopK?: number, contextSize = CONTEXT): Promise<{ tokens: number[]; dists: Distribution[] }> {
  const oracle = await LlamaCppOracle.load(file, { threads: ORACLE_THREADS, contextSize });
  try {
    const tokens = oracle.tokenize(ARCH_TEXT).slice(0, seq);
    expect(tokens.length).toBe(seq);
    return { tokens, dists: await oracle.distributions(tokens, samplerTopK === undefined ? {} : { samplerTopK }) };
  } finally {
    await oracle.close();
  }
}

/** tuneloop's logits against llama.cpp's top-k lists: our softmax over the same ids, compared; top-1 over our whole
 *  vocabulary against llama.cpp's first id. */
function topKAgreement(logits: Float32Array, nVocab: number, ref: Distribution[]): DistributionAgreement {
  const ours: SparseDistribution[] = [];
  let top1 = 0;
  ref.forEach((r, t) => {
    if (r instanceof Float32Array) throw new Error('expected top-k lists');
    const row = logits.subarray(t * nVocab, (t + 1) * nVocab);
    let best = 0;
    for (let i = 1; i < nVocab; i++) if (row[i]! > row[best]!) best = i;
    if (best === r.ids[0]) top1++;
    let max = -Infinity;
    for (const id of r.ids) max = Math.max(max, row[id]!);
    const probs = Float32Array.from(r.ids, (id) => Math.exp(row[id]! - max));
    const sum = probs.reduce((a, b) => a + b, 0);
    ours.push({ ids: r.ids, probs: probs.map((p) => p / sum) });
  });
  return { ...compareDistributions(ours, ref), top1Agreement: top1 / ref.length };
}

async function engineDists(engine: Engine, tokens: number[]): Promise<{ logits: Float32Array; dists: Distribution[] }> {
  const logits = await engine.evaluate(tokens, { allLogits: true });
  return { logits, dists: softmaxRows(logits, engine.info.nVocab) };
}

function summary(c: DistributionAgreement): string {
  return `mean cosine ${c.meanCosine.toFixed(6)} (min ${c.minCosine.toFixed(6)}), top-1 ${(100 * c.top1Agreement).toFixed(1)}%, max |dp| ${c.maxAbsDiff.toExponential(2)}`;
}

// Per family: the spec changes that take its distinguishing features away (tensor values depend only on (seed,
// name), so the remaining weights are the same).
const ABLATIONS: Record<string, Record<string, Partial<ArchSpec>>> = {
  'llama3.1': { 'no rope_freqs': { ropeScaling: undefined } },
  'llama-linear': { 'no linear scaling': { ropeScaling: undefined } },
  'llama-yarn': { 'no YaRN scaling': { ropeScaling: undefined }, 'linear instead of YaRN': { ropeScaling: { type: 'linear', factor: 4 } } },
  mistral: { 'theta 10000 instead of 1e6': { ropeTheta: 10000 } },
  qwen2: { 'no Q/K/V biases': { qkvBias: false } },
  gemma2: { 'no sliding window': { slidingWindow: 1 << 20 }, 'no soft-caps': { attnSoftcap: 1e6, finalSoftcap: 1e6 } },
  gemma3: { 'no sliding window': { slidingWindow: undefined }, 'no linear scaling on the global layer': { ropeScaling: undefined } },
  phi3: { 'no LongRoPE factors': { ropeScaling: undefined } },
  'phi4-mini': { 'full rotary instead of partial': { ropeDims: undefined } },
};

describe.each(Object.keys(ARCH_PRESETS))('%s', (family) => {
  let m: ArchModelFile;
  let ref: { tokens: number[]; dists: Distribution[] };
  beforeAll(async () => {
    m = models.write(family, { real: false });
    ref = await oracleRun(m.file);
  });

  it('llama.cpp loads the file and gives proper, non-degenerate distributions', () => {
    for (const d of ref.dists as Float32Array[]) {
      let sum = 0,
        max = 0;
      for (const p of d) {
        sum += p;
        max = Math.max(max, p);
      }
      expect(sum).toBeCloseTo(1, 3);
      // Neither one-hot nor uniform: a comparison of such distributions would prove little.
      expect(max).toBeLessThan(0.999);
      expect(max).toBeGreaterThan(2 / d.length);
    }
  });

  const ablations = ABLATIONS[family] ?? {};
  it.each(Object.entries(ablations))("the test can fail: llama.cpp's distributions %s differ beyond the bar", async (_label, change) => {
    const other = await oracleRun(models.write(family, { spec: change, real: false }).file);
    const cmp = compareDistributions(other.dists, ref.dists);
    console.log(`${family} ${_label}: ${summary(cmp)}`);
    expect(cmp.meanCosine < FLOAT_BAR.meanCosine || cmp.top1Agreement < FLOAT_BAR.top1, summary(cmp)).toBe(true);
  });

  describe('tuneloop', () => {
    let tp1: Engine;
    let ours: { logits: Float32Array; dists: Distribution[] };
    beforeAll(async () => {
      tp1 = await Engine.load({ model: m.file, threads: THREADS, contextLength: CONTEXT });
      ours = await engineDists(tp1, ref.tokens);
    });
    afterAll(() => tp1?.close());

    it('reports the file as llama.cpp reads it', () => {
      expect(tp1.info.architecture).toBe(m.spec.arch);
      expect(tp1.info.dim).toBe(m.spec.dim);
      expect(tp1.info.nKvHeads).toBe(m.spec.nKvHeads);
    });

    it('next-token distributions agree with llama.cpp at every position', () => {
      const cmp = compareDistributions(ours.dists, ref.dists);
      rows.push({ family, vocab: m.vocabLabel, weights: 'f16', cmp });
      console.log(`${family} (${m.spec.mimics}), f16: ${summary(cmp)}`);
      expect(cmp.positions).toBe(SEQ);
      expect(cmp.meanCosine).toBeGreaterThanOrEqual(FLOAT_BAR.meanCosine);
      expect(cmp.top1Agreement).toBeGreaterThanOrEqual(FLOAT_BAR.top1);
    });

    it('tensor parallelism: 2 ranks give the logits of 1', async () => {
      const tp2 = await Engine.load({ model: m.file, threads: THREADS, tpDegree: 2, threadsPerRank: 1, contextLength: CONTEXT });
      try {
        expect(tp2.info.layout).toMatchObject({ tpDegree: 2 });
        const b = await tp2.evaluate(ref.tokens, { allLogits: true });
        const rel = maxRelDiff(ours.logits, b);
        const row = rows.find((r) => r.family === family && r.vocab === m.vocabLabel && r.weights === 'f16');
        if (row) row.tp = rel;
        expect(rel).toBeLessThan(TP_REL_TOL);
        expect(argmaxRows(b, tp1.info.nVocab)).toEqual(argmaxRows(ours.logits, tp1.info.nVocab));
      } finally {
        await tp2.close();
      }
    });

    it.each(['q8_0', 'q4_k'] as SyntheticFileType[])('a %s file agrees with llama.cpp too', async (fileType) => {
      const q = models.write(family, { fileType, real: false });
      const qref = await oracleRun(q.file);
      const e = await Engine.load({ model: q.file, threads: THREADS, contextLength: CONTEXT });
      try {
        const cmp = compareDistributions((await engineDists(e, qref.tokens)).dists, qref.dists);
        rows.push({ family, vocab: q.vocabLabel, weights: fileType, cmp });
        console.log(`${family}, ${fileType}: ${summary(cmp)}`);
        expect(cmp.meanCosine).toBeGreaterThanOrEqual(BLOCK_BAR.meanCosine);
        expect(cmp.top1Agreement).toBeGreaterThanOrEqual(BLOCK_BAR.top1);
      } finally {
        await e.close();
      }
    });
  });

  const real = ARCH_PRESETS[family]!.vocab.real;
  // Only the presets that name a real vocabulary get this case (the others have none: no skipped placeholder).
  if (real !== undefined)
    it(`with the real ${real} vocabulary, tuneloop agrees with llama.cpp at every position`, async () => {
      const f = models.write(family, { real: true });
      const fref = await oracleRun(f.file, SEQ, REAL_TOP_K);
      const e = await Engine.load({ model: f.file, threads: THREADS, contextLength: CONTEXT });
      try {
        // The text is tokenized by the real tokenizer: the sequence is ordinary subword text, not letters.
        expect(e.info.nVocab).toBeGreaterThan(30000);
        const logits = await e.evaluate(fref.tokens, { allLogits: true });
        const cmp = topKAgreement(logits, e.info.nVocab, fref.dists);
        const row: Row = { family, vocab: f.vocabLabel, weights: 'f16', cmp };
        rows.push(row);
        console.log(`${family}, real ${f.vocabLabel} vocabulary, f16 (top ${REAL_TOP_K}): ${summary(cmp)}`);
        expect(cmp.positions).toBe(SEQ);
        expect(cmp.meanCosine).toBeGreaterThanOrEqual(FLOAT_BAR.meanCosine);
        expect(cmp.top1Agreement).toBeGreaterThanOrEqual(FLOAT_BAR.top1);
        await e.close();
        // The head split over 2 ranks at a real vocabulary's size (Gemma's 262145 rows are odd).
        const tp2 = await Engine.load({ model: f.file, threads: THREADS, tpDegree: 2, threadsPerRank: 1, contextLength: CONTEXT });
        try {
          const b = await tp2.evaluate(fref.tokens, { allLogits: true });
          row.tp = maxRelDiff(logits, b);
          expect(row.tp).toBeLessThan(TP_REL_TOL);
        } finally {
          await tp2.close();
        }
      } finally {
        await e.close();
      }
    });
});

// Qwen3 at widths of 256 (dim, Q and FFN rows), so that every block type applies to every matrix, in every type.
describe('qwen3 in every weight type', () => {
  const spec: Partial<ArchSpec> = { dim: 256, nHeads: 4, nKvHeads: 2, headDim: 64, ffnDim: 768 };
  const seq = 96;
  it.each(SYNTHETIC_TENSOR_TYPES)('%s', async (type) => {
    const f = models.write('qwen3', { fileType: type, real: false, spec });
    const qref = await oracleRun(f.file, seq);
    const e = await Engine.load({ model: f.file, threads: THREADS, contextLength: CONTEXT });
    try {
      const cmp = compareDistributions((await engineDists(e, qref.tokens)).dists, qref.dists);
      rows.push({ family: 'qwen3 (256 wide)', vocab: f.vocabLabel, weights: type, cmp });
      const bar = !FLOAT_TYPES.has(type) ? BLOCK_BAR : type === 'bf16' ? { ...FLOAT_BAR, top1: FLOAT_BAR.top1 - BF16_TOP1_SLACK / seq } : FLOAT_BAR;
      console.log(`qwen3 256-wide, ${type}: ${summary(cmp)}`);
      expect(cmp.meanCosine).toBeGreaterThanOrEqual(bar.meanCosine);
      expect(cmp.top1Agreement).toBeGreaterThanOrEqual(bar.top1);
    } finally {
      await e.close();
    }
  });
});

// Variants a family's files come in, each against llama.cpp on the same file.
describe('variants', () => {
  const cases: { label: string; preset: string; spec?: Partial<ArchSpec>; context?: number; seq?: number; ablation?: Partial<ArchSpec> }[] = [
    // llama.cpp picks LongRoPE's short factors when the context it is given is within the original one, not by
    // position; it pads every context to a multiple of 256, so the original context here is 256 and so is the
    // context: the short factors apply (a file without factors would differ: the ablation).
    {
      label: 'phi3 within its original context (short factors)',
      preset: 'phi3',
      spec: { ropeScaling: { type: 'longrope', originalContext: 256, maxShortFactor: 1.5, maxLongFactor: 40 } },
      context: 256,
      ablation: { ropeScaling: undefined },
    },
    // Newer converters write rope.freq_base_swa for Gemma-3's local layers (older files rely on the default 10000).
    { label: 'gemma3 with rope.freq_base_swa written (100000)', preset: 'gemma3', spec: { ropeThetaSwa: 1e5 }, ablation: { ropeThetaSwa: undefined } },
    // llama.cpp scales Gemma's queries by 1/sqrt(dim / heads) instead of 1/sqrt(head_dim) for the 27B shapes, which
    // it recognises by layer count (Gemma-2: 46, Gemma-3: 62); here dim / heads = 16 != head_dim 32. The layers are
    // tiny, so the real depths cost little.
    { label: 'gemma2 with 46 layers (27B query scale)', preset: 'gemma2', spec: { nLayers: 46 } },
    { label: 'gemma3 with 62 layers (27B query scale)', preset: 'gemma3', spec: { nLayers: 62 } },
    // Untied heads (Llama-3.1-8B, Qwen2.5-7B).
    { label: 'llama3.1 untied', preset: 'llama3.1', spec: { tiedEmbeddings: false } },
    { label: 'qwen2 untied', preset: 'qwen2', spec: { tiedEmbeddings: false } },
  ];
  it.each(cases)('$label', async (c) => {
    const context = c.context ?? CONTEXT;
    const f = models.write(c.preset, { real: false, spec: c.spec ?? {} });
    const ref = await oracleRun(f.file, c.seq ?? SEQ, undefined, context);
    if (c.ablation) {
      const other = await oracleRun(models.write(c.preset, { real: false, spec: { ...c.spec, ...c.ablation } }).file, c.seq ?? SEQ, undefined, context);
      const cmp = compareDistributions(other.dists, ref.dists);
      expect(cmp.meanCosine < FLOAT_BAR.meanCosine || cmp.top1Agreement < FLOAT_BAR.top1, `the variant is observable: ${summary(cmp)}`).toBe(true);
    }
    const e = await Engine.load({ model: f.file, threads: THREADS, contextLength: context });
    try {
      const cmp = compareDistributions((await engineDists(e, ref.tokens)).dists, ref.dists);
      rows.push({ family: c.label, vocab: f.vocabLabel, weights: 'f16', cmp });
      console.log(`${c.label}: ${summary(cmp)}`);
      expect(cmp.meanCosine).toBeGreaterThanOrEqual(FLOAT_BAR.meanCosine);
      expect(cmp.top1Agreement).toBeGreaterThanOrEqual(FLOAT_BAR.top1);
    } finally {
      await e.close();
    }
  });
});
