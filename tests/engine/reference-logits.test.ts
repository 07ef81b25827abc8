// The engine's logits against an independent TS forward pass (tests/engine/reference/llama-reference.ts), on
// synthetic GGUF files of every file type, several shapes (MHA and GQA, tied and untied output head, ragged FFN
// widths, non-default alignment) and both tokenizer kinds.
//
// With weights 'f32' the engine computes on exactly the values the file holds, so every logit must match the
// reference to float32 rounding. The compressed policies ('bf16', 'int8', 'int4', 'mixed') re-quantize at load;
// for them we bound the cosine similarity of the logits to the reference and print the figures (or, where one would
// re-quantize the file's blocks into more bits per weight, expect the refusal). Every GGUF type run as it is (weights
// 'native'): gguf-types.test.ts.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Engine, type WeightsPolicy } from '../../src/engine/index.js';
import { writeGgufFile } from '../../tools/lib/gguf-writer.js';
import { Xoshiro128, buildSyntheticLlama, type LlamaShape, type SyntheticFileType, type SyntheticTokenizer } from '../../tools/lib/synthetic-llama.js';
import { argmax, loadReferenceModel, referenceForward, topMargin, withGroupQuantizedMatrices, type ReferenceModel } from './reference/llama-reference.js';

interface Case {
  label: string;
  fileType: SyntheticFileType;
  tokenizer: SyntheticTokenizer;
  alignment?: number;
  shape: LlamaShape;
}

const base = { contextLength: 128, ropeTheta: 10000, rmsEps: 1e-5 };
const CASES: Case[] = [
  {
    label: 'f32 file, MHA (GQA ratio 1), untied, ragged ffn 176, llama tokenizer',
    fileType: 'f32',
    tokenizer: 'llama',
    shape: { ...base, dim: 64, nLayers: 2, nHeads: 4, nKvHeads: 4, ffnDim: 176, nVocab: 300, tiedEmbeddings: false },
  },
  {
    label: 'f16 file, GQA ratio 4, tied, gpt2 tokenizer',
    fileType: 'f16',
    tokenizer: 'gpt2',
    shape: { ...base, dim: 128, nLayers: 2, nHeads: 8, nKvHeads: 2, ffnDim: 352, nVocab: 320, tiedEmbeddings: true },
  },
  {
    label: 'bf16 file, GQA ratio 2, head dim 16, ragged ffn 172, alignment 64, rope theta 500000',
    fileType: 'bf16',
    tokenizer: 'llama',
    alignment: 64,
    shape: { ...base, ropeTheta: 500000, dim: 96, nLayers: 2, nHeads: 6, nKvHeads: 3, ffnDim: 172, nVocab: 300, tiedEmbeddings: false },
  },
  {
    // ffn_down (rows of 176) cannot be Q8_0 and is written F16: a file mixing tensor types.
    label: 'q8_0 file, GQA ratio 2, head dim 32, untied, ragged ffn 176',
    fileType: 'q8_0',
    tokenizer: 'llama',
    shape: { ...base, dim: 128, nLayers: 2, nHeads: 4, nKvHeads: 2, ffnDim: 176, nVocab: 290, tiedEmbeddings: false },
  },
  {
    label: 'q4_0 file, GQA ratio 4, 3 layers, tied',
    fileType: 'q4_0',
    tokenizer: 'llama',
    shape: { ...base, dim: 64, nLayers: 3, nHeads: 4, nKvHeads: 1, ffnDim: 192, nVocab: 300, tiedEmbeddings: true },
  },
];

// Lower bounds on the minimum per-position cosine similarity to the reference. bf16 keeps 8 mantissa bits; int8 and
// int4 are symmetric per-32-group formats. 4-bit is genuinely lossy on these small random models: even an ideal
// Q4_0 round trip of every matrix gives a minimum cosine of only ~0.88-0.95 here, so int4 gets a loose absolute
// floor plus a relative one: within IDEAL_SLACK of that ideal Q4_0 (Q8_0 for int8) round trip, computed per model.
const COSINE_BOUNDS: Partial<Record<WeightsPolicy, number>> = { bf16: 0.999, int8: 0.995, mixed: 0.995, int4: 0.85 };
// Policies that would re-quantize a file's blocks into a type with more bits per weight are refused (they would only
// lose precision): int8 (q8_0) and mixed (q8_0 FFN) on the q4_0 file.
const REFUSED: Partial<Record<SyntheticFileType, WeightsPolicy[]>> = { q4_0: ['int8', 'mixed'] };
const IDEAL_KIND: Partial<Record<WeightsPolicy, 'q8_0' | 'q4_0'>> = { int8: 'q8_0', int4: 'q4_0' };
const IDEAL_SLACK: Partial<Record<WeightsPolicy, number>> = { int8: 0.002, int4: 0.03 };
// f32 engine weights: max |engine - reference| over all logits, relative to the largest |reference logit|.
const F32_REL_TOL = 1e-4;
const SEQ_LEN = 12;
const THREADS = 2;

let tmpDir = '';
beforeAll(() => {
  tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tl-reflogits-'));
});
afterAll(() => {
  if (tmpDir) fs.rmSync(tmpDir, { recursive: true, force: true });
});

function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i]! * b[i]!;
    aa += a[i]! * a[i]!;
    bb += b[i]! * b[i]!;
  }
  return ab / Math.sqrt(aa * bb);
}

/** Per-position cosine similarities of engine logits (flat [n][V]) to reference rows. */
function rowCosines(engine: Float32Array, ref: Float64Array[], nVocab: number): number[] {
  return ref.map((row, t) => cosine(engine.subarray(t * nVocab, (t + 1) * nVocab), row));
}

function maxAbs(rows: Float64Array[]): number {
  let m = 0;
  for (const r of rows) for (const v of r) m = Math.max(m, Math.abs(v));
  return m;
}

describe.each(CASES)('reference logits: $label', (c) => {
  let file = '';
  let ref: ReferenceModel;
  let tokens: number[] = [];
  let refLogits: Float64Array[] = [];
  let scale = 1;

  beforeAll(() => {
    file = path.join(tmpDir, `${c.fileType}-${c.shape.dim}-${c.shape.nKvHeads}.gguf`);
    writeGgufFile(file, buildSyntheticLlama({ shape: c.shape, fileType: c.fileType, seed: 1234, tokenizer: c.tokenizer, alignment: c.alignment }));
    ref = loadReferenceModel(file);
    const rng = new Xoshiro128(99);
    tokens = Array.from({ length: SEQ_LEN }, () => rng.nextInt(c.shape.nVocab));
    refLogits = referenceForward(ref, tokens);
    scale = maxAbs(refLogits);
    // A sanity check on the test itself: logits that are all ~0 would make any comparison meaningless.
    expect(scale).toBeGreaterThan(1);
  });

  it('f32 weights: every logit matches the reference', async () => {
    const e = await Engine.load({ model: file, weights: 'f32', threads: THREADS });
    try {
      expect(e.info.nVocab).toBe(c.shape.nVocab);
      expect(e.info.dim).toBe(c.shape.dim);
      expect(e.info.nKvHeads).toBe(c.shape.nKvHeads);
      expect(e.info.ffnDim).toBe(c.shape.ffnDim);
      expect(e.info.tokenizer.model).toBe(c.tokenizer);
      const logits = await e.evaluate(tokens, { allLogits: true });
      expect(logits.length).toBe(SEQ_LEN * c.shape.nVocab);
      let worst = 0;
      let where = '';
      refLogits.forEach((row, t) => {
        for (let v = 0; v < row.length; v++) {
          const d = Math.abs(logits[t * c.shape.nVocab + v]! - row[v]!);
          if (!(d <= worst)) {
            worst = d;
            where = `position ${t}, token ${v}: engine ${logits[t * c.shape.nVocab + v]}, reference ${row[v]}`;
          }
        }
      });
      const rel = worst / scale;
      console.log(`[${c.fileType}] f32 weights: max |diff| / max |logit| = ${rel.toExponential(2)} (scale ${scale.toFixed(2)})`);
      expect(rel, `worst at ${where}`).toBeLessThan(F32_REL_TOL);

      // Without allLogits only the last row comes back, and it is the same row.
      const last = await e.evaluate(tokens);
      expect(last.length).toBe(c.shape.nVocab);
      const lastRef = refLogits[SEQ_LEN - 1]!;
      for (let v = 0; v < lastRef.length; v++) expect(Math.abs(last[v]! - lastRef[v]!) / scale).toBeLessThan(F32_REL_TOL);
    } finally {
      await e.close();
    }
  });

  it.each(Object.entries(COSINE_BOUNDS))('%s weights: cosine similarity to the reference', async (policy, bound) => {
    if (REFUSED[c.fileType]?.includes(policy as WeightsPolicy)) {
      const err = await Engine.load({ model: file, weights: policy as WeightsPolicy, threads: THREADS }).then(
        async (e) => e.close(),
        (x: unknown) => x,
      );
      expect(err).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/from q4_0 .* to q8_0 .*only loses precision/) });
      return;
    }
    const e = await Engine.load({ model: file, weights: policy as WeightsPolicy, threads: THREADS });
    try {
      expect(e.info.weights).toBe(policy);
      const logits = await e.evaluate(tokens, { allLogits: true });
      expect(logits.length).toBe(SEQ_LEN * c.shape.nVocab);
      const cos = rowCosines(logits, refLogits, c.shape.nVocab);
      const min = Math.min(...cos);
      const mean = cos.reduce((a, b) => a + b, 0) / cos.length;
      const agree = refLogits.filter((row, t) => argmax(row) === argmax(logits.subarray(t * c.shape.nVocab, (t + 1) * c.shape.nVocab))).length;
      const kind = IDEAL_KIND[policy as WeightsPolicy];
      let ideal = NaN;
      if (kind !== undefined) {
        const q = referenceForward(withGroupQuantizedMatrices(ref, kind), tokens);
        ideal = Math.min(...q.map((row, t) => cosine(row, refLogits[t]!)));
      }
      console.log(
        `[${c.fileType}] ${policy} weights: cosine min ${min.toFixed(6)} mean ${mean.toFixed(6)}, ` +
          `argmax agrees ${agree}/${SEQ_LEN} (bound ${bound}${kind ? `; ideal ${kind} round trip: min ${ideal.toFixed(6)}` : ''})`,
      );
      expect(min).toBeGreaterThan(bound);
      if (kind !== undefined) expect(min, `vs an ideal ${kind} round trip (${ideal})`).toBeGreaterThan(ideal - IDEAL_SLACK[policy as WeightsPolicy]!);
    } finally {
      await e.close();
    }
  });

  it('greedy generation (temperature 0) follows the reference argmax', async () => {
    const e = await Engine.load({ model: file, weights: 'f32', threads: THREADS });
    try {
      const prompt = tokens.slice(0, 5);
      const steps = 6;
      const g = e.generate({ tokens: prompt, maxTokens: steps, temperature: 0, stopAtEos: false });
      const streamed: number[] = [];
      for await (const chunk of g) streamed.push(...chunk.tokens);
      const r = await g.result;
      expect(r.tokens).toHaveLength(steps);
      expect(streamed).toEqual(r.tokens);
      expect(r.finishReason).toBe('length');
      expect(r.usage.promptTokens).toBe(prompt.length);
      expect(r.usage.completionTokens).toBe(steps);

      // Replay with the reference: at each step the engine's token must be the reference argmax, unless the top two
      // reference logits are so close (below float32 noise) that either is a correct argmax.
      const seq = [...prompt];
      const margins: number[] = [];
      for (let i = 0; i < steps; i++) {
        const row = referenceForward(ref, seq)[seq.length - 1]!;
        const want = argmax(row);
        const got = r.tokens[i]!;
        margins.push(topMargin(row));
        if (got !== want) {
          expect(Math.abs(row[want]! - row[got]!) / scale, `step ${i}: engine ${got}, reference argmax ${want}`).toBeLessThan(F32_REL_TOL);
        }
        seq.push(got);
      }
      console.log(`[${c.fileType}] greedy: ${r.tokens.join(' ')} (smallest top-2 margin ${Math.min(...margins).toFixed(4)})`);
    } finally {
      await e.close();
    }
  });
});
