// The llama.cpp oracle (tests/helpers/llama-cpp.ts) against tuneloop's engine on files committed or made here:
// teacher-forced next-token distributions at every position, perplexity, tokenization. Needs nothing outside the
// repository (node-llama-cpp's prebuilt CPU binaries come with `npm ci`).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../../src/engine/index.js';
import { LlamaCppOracle, compareDistributions, softmaxRows, type Distribution } from '../helpers/llama-cpp.js';
import { REPO_ROOT } from '../helpers/shared.js';
import { TempModels } from '../helpers/synthetic.js';

const SHIPPED = join(REPO_ROOT, 'models', 'tuneloop-shakespeare.gguf');
const SLICE = readFileSync(join(REPO_ROOT, 'models', 'validation-slice.txt'), 'utf8');
const THREADS = 2;
// llama.cpp's worker threads spin-wait at every barrier: on a busy two-core machine (CI runs two test files at once)
// two of them are 10-100x slower than one. The oracle needs no speed, so it runs single-threaded.
const ORACLE_THREADS = 1;

describe('compareDistributions', () => {
  const d = (...p: number[]) => Float32Array.from(p);
  it('identical distributions agree exactly', () => {
    const a = [d(0.7, 0.2, 0.1), d(0.1, 0.1, 0.8)];
    expect(compareDistributions(a, a)).toMatchObject({ positions: 2, top1Agreement: 1, maxAbsDiff: 0 });
    expect(compareDistributions(a, a).meanCosine).toBeCloseTo(1, 12);
  });
  it('counts top-1 disagreements and the largest difference', () => {
    const r = compareDistributions([d(0.6, 0.4, 0), d(0.5, 0.3, 0.2)], [d(0.4, 0.6, 0), d(0.5, 0.3, 0.2)]);
    expect(r.top1Agreement).toBe(0.5);
    expect(r.maxAbsDiff).toBeCloseTo(0.2, 6);
    expect(r.minCosine).toBeLessThan(1);
  });
  it('sparse top-k lists compare over the union of their ids, and mix with dense ones', () => {
    const dense = d(0.05, 0.6, 0.3, 0.05);
    const sparse = { ids: Int32Array.from([1, 2]), probs: Float32Array.from([0.6, 0.3]) };
    const r = compareDistributions([dense], [sparse]);
    expect(r.top1Agreement).toBe(1);
    expect(r.maxAbsDiff).toBeCloseTo(0.05, 6);
    expect(r.meanCosine).toBeGreaterThan(0.99);
  });
  it('refuses mismatched inputs', () => {
    expect(() => compareDistributions([d(1)], [])).toThrow(/position counts/);
    expect(() => compareDistributions([d(1, 0)], [d(1, 0, 0)])).toThrow(/vocabulary sizes/);
  });
});

/** llama.cpp and tuneloop (f32 weights) on one file, both loaded once. */
async function loadBoth(model: string, contextSize: number): Promise<{ oracle: LlamaCppOracle; engine: Engine; close: () => Promise<void> }> {
  const oracle = await LlamaCppOracle.load(model, { threads: ORACLE_THREADS, contextSize });
  const engine = await Engine.load({ model, weights: 'f32', threads: THREADS });
  return {
    oracle,
    engine,
    close: async () => {
      await engine.close();
      await oracle.close();
    },
  };
}

/** Distributions at every position of `tokens` from both, compared; and both perplexities. */
async function agreement(oracle: LlamaCppOracle, engine: Engine, tokens: number[]) {
  const ref: Distribution[] = await oracle.distributions(tokens);
  const ours = softmaxRows(await engine.evaluate(tokens, { allLogits: true }), engine.info.nVocab);
  expect(ref).toHaveLength(tokens.length);
  expect(ours).toHaveLength(tokens.length);
  return { cmp: compareDistributions(ours, ref), ref: await oracle.perplexity(tokens), ours: await engine.perplexity(tokens) };
}

describe('llama.cpp oracle vs tuneloop', () => {
  const models = new TempModels();
  afterAll(() => models.cleanup());

  describe('the shipped model (llama, gpt2 byte-level BPE, F16 matrices)', () => {
    let both: Awaited<ReturnType<typeof loadBoth>>;
    beforeAll(async () => {
      both = await loadBoth(SHIPPED, 256);
    });
    afterAll(() => both?.close());

    it('llama.cpp tokenizes the validation text exactly as tuneloop does', () => {
      const text = SLICE.slice(0, 2000);
      expect(both.oracle.nVocab).toBe(both.engine.info.nVocab);
      expect(both.oracle.tokenize(text)).toEqual(both.engine.tokenize(text));
    });

    it('teacher-forced distributions agree at all 256 positions of the context, and so do perplexities', async () => {
      const tokens = both.engine.tokenize(SLICE).slice(0, 256);
      const { cmp, ref, ours } = await agreement(both.oracle, both.engine, tokens);
      console.log(`shipped model, f32 weights vs llama.cpp (F16 matmuls): ${JSON.stringify(cmp)}; perplexity ${ours.perplexity} vs ${ref.perplexity}`);
      expect(cmp.positions).toBe(256);
      expect(cmp.meanCosine).toBeGreaterThanOrEqual(0.999);
      expect(cmp.top1Agreement).toBeGreaterThanOrEqual(0.99);
      expect(ref.tokens).toBe(ours.tokens);
      expect(Math.abs(ours.perplexity / ref.perplexity - 1)).toBeLessThan(0.005);
    });
  });

  describe('a synthetic F32 llama (SentencePiece vocabulary)', () => {
    let both: Awaited<ReturnType<typeof loadBoth>>;
    beforeAll(async () => {
      const model = models.write(
        { dim: 256, nLayers: 2, nHeads: 4, nKvHeads: 2, ffnDim: 512, nVocab: 512, contextLength: 256, ropeTheta: 10000, rmsEps: 1e-5, tiedEmbeddings: false },
        'f32',
      );
      both = await loadBoth(model, 256);
    });
    afterAll(() => both?.close());

    it('teacher-forced distributions agree at every position (all-F32 arithmetic on both sides)', async () => {
      const tokens = [1, ...Array.from({ length: 191 }, (_, i) => 3 + ((i * 7919) % 509))];
      const { cmp, ref, ours } = await agreement(both.oracle, both.engine, tokens);
      console.log(`synthetic F32: ${JSON.stringify(cmp)}; perplexity ${ours.perplexity} vs ${ref.perplexity}`);
      expect(cmp.meanCosine).toBeGreaterThanOrEqual(0.9999);
      expect(cmp.top1Agreement).toBeGreaterThanOrEqual(0.99);
      expect(cmp.maxAbsDiff).toBeLessThan(1e-3);
      expect(Math.abs(ours.perplexity / ref.perplexity - 1)).toBeLessThan(1e-4);
    });

    it('greedy decoding gives the same tokens, and the timing helpers report sane rates', async () => {
      const prompt = [1, 40, 41, 42, 43, 44, 45, 46];
      const theirs = await both.oracle.decode(prompt, 16);
      const ours = await both.engine.generate({ tokens: prompt, maxTokens: 16, temperature: 0, stopAtEos: false }).result;
      expect(theirs.tokens).toHaveLength(16);
      expect(theirs.completionTokens).toBe(16);
      expect(theirs.tokens).toEqual(ours.tokens);
      expect(theirs.prefillTokensPerS).toBeGreaterThan(0);
      expect(theirs.decodeTokensPerS).toBeGreaterThan(0);
      const pre = await both.oracle.prefill(Array.from({ length: 64 }, (_, i) => 3 + i));
      expect(pre.tokensPerS).toBeGreaterThan(0);
    });
  });
});
