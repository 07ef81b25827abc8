// Every GGUF weight type, executed as the file holds it (weights 'native'), against the f32 reference forward pass
// (tests/engine/reference/llama-reference.ts) run on the dequantized weights: exactly the values the blocks encode
// (decoded by native.dequantizeRows for the block types the TS codecs do not know). Then a file that mixes types per
// tensor (llama.cpp's Q4_K_M, and one with a different type for every matrix), the re-quantizing weights policies and
// their fallbacks, the refusal of a policy that would only lose precision, tensor-parallel block alignment, the same
// logits from every quant kernel set, and the addon's quantizeRows / dequantizeRows / inspectModel.
//
// Tolerances. The engine quantizes each layer's input to 8 bits per block (Q8_0 / Q8_1 / Q8_K, as llama.cpp does) for
// the block types, so their logits differ from the f32 reference by that rounding, carried through two layers:
// measured max |diff| / max |logit| 0.3-2.5% here. The float types (f32, f16, bf16 weights with f32 activations) match
// to float rounding.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Engine, EngineError, native, type WeightsPolicy } from '../../src/engine/index.js';
import { writeGgufFile } from '../../tools/lib/gguf-writer.js';
import {
  SYNTHETIC_TENSOR_TYPES,
  Xoshiro128,
  buildSyntheticLlama,
  parameterCount,
  type LlamaShape,
  type SyntheticFileType,
  type SyntheticTensorType,
} from '../../tools/lib/synthetic-llama.js';
import { REPO_ROOT } from '../helpers/shared.js';
import { loadReferenceModel, referenceForward } from './reference/llama-reference.js';

const THREADS = 2;
const SEQ = 8;
// Rows of 256 (dim) and 512 (ffn): every block type fits every matrix.
const SHAPE: LlamaShape = {
  dim: 256,
  nLayers: 2,
  nHeads: 4,
  nKvHeads: 2,
  ffnDim: 512,
  nVocab: 272,
  contextLength: 64,
  ropeTheta: 10000,
  rmsEps: 1e-5,
  tiedEmbeddings: false,
};
const FLOAT_TYPES: ReadonlySet<string> = new Set(['f32', 'f16', 'bf16']);
// max |engine - reference| / max |reference logit|, and the smallest per-position cosine similarity.
const FLOAT_REL_TOL = 1e-4;
const BLOCK_REL_TOL = 0.05;
const BLOCK_MIN_COSINE = 0.999;

let tmp = '';
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tl-gguf-types-'));
});
afterAll(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

let n = 0;
function writeModel(fileType: SyntheticFileType, shape: LlamaShape = SHAPE, tensorTypes?: Record<string, SyntheticTensorType>): string {
  const file = path.join(tmp, `${fileType}-${n++}.gguf`);
  writeGgufFile(file, buildSyntheticLlama({ shape, fileType, seed: 4242, tensorTypes }));
  return file;
}

function tokensFor(nVocab: number, len = SEQ): number[] {
  const rng = new Xoshiro128(17);
  return Array.from({ length: len }, () => rng.nextInt(nVocab));
}

interface Agreement {
  rel: number;
  minCos: number;
}

function compare(logits: Float32Array, ref: Float64Array[], nVocab: number): Agreement {
  let worst = 0;
  let scale = 0;
  let minCos = 1;
  ref.forEach((row, t) => {
    let ab = 0;
    let aa = 0;
    let bb = 0;
    for (let v = 0; v < nVocab; v++) {
      const e = logits[t * nVocab + v]!;
      worst = Math.max(worst, Math.abs(e - row[v]!));
      scale = Math.max(scale, Math.abs(row[v]!));
      ab += e * row[v]!;
      aa += e * e;
      bb += row[v]! * row[v]!;
    }
    minCos = Math.min(minCos, ab / Math.sqrt(aa * bb));
  });
  return { rel: worst / scale, minCos };
}

async function evaluate(file: string, options: { weights?: WeightsPolicy; tpDegree?: number } = {}): Promise<{ logits: Float32Array; engine: Engine }> {
  const engine = await Engine.load({ model: file, threads: THREADS, ...options });
  try {
    return { logits: await engine.evaluate(tokensFor(engine.info.nVocab), { allLogits: true }), engine };
  } finally {
    await engine.close();
  }
}

function referenceLogits(file: string): Float64Array[] {
  const ref = loadReferenceModel(file);
  return referenceForward(ref, tokensFor(ref.nVocab));
}

async function errorOf(p: Promise<unknown>): Promise<EngineError> {
  try {
    const e = await p;
    if (e instanceof Engine) await e.close();
  } catch (err) {
    expect(err).toBeInstanceOf(EngineError);
    return err as EngineError;
  }
  throw new Error('expected a rejection');
}

describe.each(SYNTHETIC_TENSOR_TYPES)('a %s file, weights native', (type) => {
  it('loads in its own type and its logits match the reference on the dequantized weights', async () => {
    const file = writeModel(type);
    const ref = referenceLogits(file);
    const { logits, engine } = await evaluate(file);
    expect(engine.info.weights).toBe('native');
    // Every matrix is held in the file's type; the norms are f32.
    const held = Object.keys(engine.info.weightBytes).sort();
    const ggmlName = type.replace(/_k$/, '_K');
    expect(held).toEqual([...new Set(['f32', ggmlName])].sort());
    expect(engine.info.weightFallbacks).toEqual([]);
    const a = compare(logits, ref, SHAPE.nVocab);
    console.log(`${type}: max |diff| / max |logit| ${a.rel.toExponential(2)}, min cosine ${a.minCos.toFixed(6)}`);
    if (FLOAT_TYPES.has(type)) {
      expect(a.rel).toBeLessThan(FLOAT_REL_TOL);
    } else {
      expect(a.rel).toBeLessThan(BLOCK_REL_TOL);
      expect(a.minCos).toBeGreaterThan(BLOCK_MIN_COSINE);
    }
  });
});

describe('files that mix types per tensor', () => {
  it("llama.cpp's Q4_K_M mix (q4_K, q6_K for output and half the layers' attn_v / ffn_down) runs natively", async () => {
    const file = writeModel('q4_k_m', { ...SHAPE, nLayers: 4 });
    const inspect = native().inspectModel(file);
    const typeOf = (name: string) => inspect.tensors.find((t) => t.name === name)?.type;
    expect(typeOf('output.weight')).toBe('q6_K');
    expect(typeOf('token_embd.weight')).toBe('q4_K');
    expect(typeOf('blk.0.attn_q.weight')).toBe('q4_K');
    // use_more_bits(i, 4): i < 4 / 8 (none), i >= 7 * 4 / 8 (layer 3) or i % 3 == 2 (layer 2).
    expect([0, 1, 2, 3].map((l) => typeOf(`blk.${l}.attn_v.weight`))).toEqual(['q4_K', 'q4_K', 'q6_K', 'q6_K']);
    expect([0, 1, 2, 3].map((l) => typeOf(`blk.${l}.ffn_down.weight`))).toEqual(['q4_K', 'q4_K', 'q6_K', 'q6_K']);
    const ref = referenceLogits(file);
    const { logits, engine } = await evaluate(file);
    expect(Object.keys(engine.info.weightBytes).sort()).toEqual(['f32', 'q4_K', 'q6_K']);
    const a = compare(logits, ref, SHAPE.nVocab);
    console.log(`q4_k_m: max |diff| / max |logit| ${a.rel.toExponential(2)}, min cosine ${a.minCos.toFixed(6)}`);
    expect(a.rel).toBeLessThan(BLOCK_REL_TOL);
    expect(a.minCos).toBeGreaterThan(BLOCK_MIN_COSINE);
  });

  it('Q4_K_M with FFN rows that are not whole 256-blocks: the file carries llama.cpp fallbacks (q5_0, q8_0), run as they are', async () => {
    const shape = { ...SHAPE, ffnDim: 352 }; // 11 x 32: ffn_down's rows fall back
    const file = writeModel('q4_k_m', shape);
    const inspect = native().inspectModel(file);
    const typeOf = (name: string) => inspect.tensors.find((t) => t.name === name)?.type;
    expect(typeOf('blk.0.ffn_down.weight')).toBe('q5_0'); // q4_K → q5_0
    expect(typeOf('blk.1.ffn_down.weight')).toBe('q8_0'); // q6_K (use_more_bits) → q8_0
    const ref = referenceLogits(file);
    const { logits, engine } = await evaluate(file);
    expect(Object.keys(engine.info.weightBytes).sort()).toEqual(['f32', 'q4_K', 'q5_0', 'q6_K', 'q8_0']);
    const a = compare(logits, ref, shape.nVocab);
    expect(a.rel).toBeLessThan(BLOCK_REL_TOL);
    expect(a.minCos).toBeGreaterThan(BLOCK_MIN_COSINE);
  });

  it('a different type for every matrix (Q, K and V of one layer each in its own activation format)', async () => {
    const file = writeModel('f16', SHAPE, MIXED_TYPES);
    const ref = referenceLogits(file);
    const { logits, engine } = await evaluate(file);
    expect(Object.keys(engine.info.weightBytes).length).toBe(new Set([...Object.values(MIXED_TYPES), 'f32']).size);
    const a = compare(logits, ref, SHAPE.nVocab);
    console.log(`every type: max |diff| / max |logit| ${a.rel.toExponential(2)}, min cosine ${a.minCos.toFixed(6)}`);
    expect(a.rel).toBeLessThan(BLOCK_REL_TOL);
    expect(a.minCos).toBeGreaterThan(BLOCK_MIN_COSINE);
  });
});

/** One type per matrix: every engine type appears, and layer 0's Q / K / V need Q8_K, Q8_1 and Q8_0 activations. */
const MIXED_TYPES: Record<string, SyntheticTensorType> = {
  'token_embd.weight': 'q6_k',
  'output.weight': 'q4_k',
  'blk.0.attn_q.weight': 'q4_k',
  'blk.0.attn_k.weight': 'q5_1',
  'blk.0.attn_v.weight': 'q5_0',
  'blk.0.attn_output.weight': 'q3_k',
  'blk.0.ffn_gate.weight': 'q2_k',
  'blk.0.ffn_up.weight': 'iq4_xs',
  'blk.0.ffn_down.weight': 'q5_k',
  'blk.1.attn_q.weight': 'q4_1',
  'blk.1.attn_k.weight': 'iq4_nl',
  'blk.1.attn_v.weight': 'q6_k',
  'blk.1.attn_output.weight': 'f16',
  'blk.1.ffn_gate.weight': 'q8_0',
  'blk.1.ffn_up.weight': 'q4_0',
  'blk.1.ffn_down.weight': 'bf16',
};

describe('re-quantizing weights policies on an f16 file', () => {
  // ffnDim 352 = 11 x 32: ffn_down's rows are not whole 256-blocks (the K-quant policies fall back), and an ffnDim of
  // 176 (5.5 x 32) is not whole 32-blocks either (kept in the file's f16).
  const shape = { ...SHAPE, ffnDim: 352 };
  let file = '';
  let ref: Float64Array[] = [];
  beforeAll(() => {
    file = writeModel('f16', shape);
    ref = referenceLogits(file);
  });

  // Expected types held (besides the f32 norms), the fallbacks, and a floor on the cosine to the f16 reference.
  const cases: [WeightsPolicy, string[], [string, string] | undefined, number][] = [
    ['f32', ['f32'], undefined, 0.99999],
    ['bf16', ['bf16'], undefined, 0.9995],
    ['q8_0', ['q8_0'], undefined, 0.999],
    ['int8', ['q8_0'], undefined, 0.999],
    ['q6_k', ['q6_K', 'q8_0'], ['q6_K', 'q8_0'], 0.995],
    ['q5_k', ['q5_K', 'q5_1'], ['q5_K', 'q5_1'], 0.98],
    ['q4_k', ['q4_K', 'q5_0'], ['q4_K', 'q5_0'], 0.95],
    ['q4_0', ['q4_0'], undefined, 0.9],
    ['int4', ['q4_0'], undefined, 0.9],
    ['mixed', ['bf16', 'q8_0'], undefined, 0.999],
  ];
  it.each(cases)('%s: holds %j, fallback %j', async (weights, types, fallback, minCos) => {
    const { logits, engine } = await evaluate(file, { weights });
    expect(engine.info.weights).toBe(weights);
    expect(Object.keys(engine.info.weightBytes).sort()).toEqual([...new Set([...types, 'f32'])].sort());
    const fb = engine.info.weightFallbacks;
    if (fallback === undefined) {
      expect(fb).toEqual([]);
    } else {
      expect(fb).toEqual([0, 1].map((l) => ({ tensor: `blk.${l}.ffn_down.weight`, requested: fallback[0], used: fallback[1] })));
    }
    const a = compare(logits, ref, shape.nVocab);
    console.log(`f16 file, weights ${weights}: min cosine ${a.minCos.toFixed(6)}, max |diff| / max |logit| ${a.rel.toExponential(2)}`);
    expect(a.minCos).toBeGreaterThan(minCos);
  });

  it('rows that are not whole 32-blocks keep the file type under a block policy, and say so', async () => {
    const ragged = writeModel('f16', { ...SHAPE, ffnDim: 176 });
    const engine = await Engine.load({ model: ragged, threads: THREADS, weights: 'q4_k' });
    try {
      expect(Object.keys(engine.info.weightBytes).sort()).toEqual(['f16', 'f32', 'q4_K']);
      expect(engine.info.weightFallbacks).toEqual([0, 1].map((l) => ({ tensor: `blk.${l}.ffn_down.weight`, requested: 'q4_K', used: 'f16' })));
    } finally {
      await engine.close();
    }
  });
});

describe('a policy that would only lose precision is refused', () => {
  let file = '';
  beforeAll(() => {
    file = writeModel('q4_k');
  });

  it.each(['q8_0', 'int8', 'q6_k', 'q5_k', 'q4_0', 'mixed'] as WeightsPolicy[])('%s on a q4_K file: INVALID_ARGUMENT saying why', async (weights) => {
    const err = await errorOf(Engine.load({ model: file, threads: 1, weights }));
    expect(err.code).toBe('INVALID_ARGUMENT');
    expect(err.message).toContain(`weights '${weights}'`);
    expect(err.message).toMatch(/tensor '[a-z_.0-9]+\.weight'/);
    expect(err.message).toMatch(/from q4_K \(4\.50 bits per weight\) to q\d_[0K1] \(\d+\.\d\d bits per weight\): that only loses precision, it saves no bytes/);
  });

  it.each(['native', 'q4_k', 'f32', 'bf16'] as WeightsPolicy[])('%s on a q4_K file loads (kept, or dequantized without loss)', async (weights) => {
    const engine = await Engine.load({ model: file, threads: 1, weights });
    await engine.close();
  });

  it('a refused reload leaves the engine serving', async () => {
    const engine = await Engine.load({ model: file, threads: 1 });
    try {
      const err = await errorOf(engine.reload({ weights: 'q8_0' }));
      expect(err.code).toBe('INVALID_ARGUMENT');
      expect(engine.info.weights).toBe('native');
      const r = await engine.generate({ tokens: [1, 2, 3], maxTokens: 3, temperature: 0, stopAtEos: false }).result;
      expect(r.tokens).toHaveLength(3);
    } finally {
      await engine.close();
    }
  });
});

describe('tensor parallelism over block types', () => {
  // q_dim 512 and ffn 1024: tpDegree 2 cuts O and down at whole 256-blocks, tpDegree 4 (128 / 256 columns) cannot.
  const shape = { ...SHAPE, dim: 512, nHeads: 4, nKvHeads: 4, ffnDim: 1024, nLayers: 1 };
  let file = '';
  beforeAll(() => {
    file = writeModel('q4_k_m', shape);
  });

  it('tpDegree 2 on a Q4_K_M file computes what tpDegree 1 does', async () => {
    const one = await evaluate(file, { tpDegree: 1 });
    const two = await evaluate(file, { tpDegree: 2 });
    let worst = 0;
    let scale = 0;
    for (let i = 0; i < one.logits.length; i++) {
      worst = Math.max(worst, Math.abs(one.logits[i]! - two.logits[i]!));
      scale = Math.max(scale, Math.abs(one.logits[i]!));
    }
    expect(worst / scale).toBeLessThan(1e-4);
  });

  it('tpDegree 4 would cut a row-split q4_K tensor inside a block: INVALID_ARGUMENT naming the tensor and block size', async () => {
    const err = await errorOf(Engine.load({ model: file, threads: 4, tpDegree: 4, threadsPerRank: 1 }));
    expect(err.code).toBe('INVALID_ARGUMENT');
    expect(err.message).toMatch(/tpDegree/);
    expect(err.message).toMatch(/tensor 'blk\.0\.(attn_output|ffn_down)\.weight' \(q[46]_K, blocks of 256 elements\)/);
    expect(err.message).toMatch(/column 128 .*multiple of the block size 256/);
  });

  it('the same split of an f16 file re-quantized to q8_0 (blocks of 32) is fine', async () => {
    const f16 = writeModel('f16', shape);
    const engine = await Engine.load({ model: f16, threads: 4, tpDegree: 4, threadsPerRank: 1, weights: 'q8_0' });
    await engine.close();
  });
});

describe('every quant kernel set gives the same logits', () => {
  const run = promisify(execFile);
  const SCRIPT = `
import { Engine } from ${JSON.stringify(path.join(REPO_ROOT, 'src', 'engine', 'index.ts'))};
const [model] = process.argv.slice(-1);
const e = await Engine.load({ model, threads: 2 });
const logits = await e.evaluate([1, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100], { allLogits: true });
process.stdout.write(JSON.stringify({ kernels: Engine.quantKernels(), logits: Array.from(logits) }));
await e.close();
`;
  async function logitsWith(kernels: string, model: string): Promise<{ kernels: string; logits: number[] }> {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', SCRIPT, model], {
      env: { ...process.env, TL_QUANT_KERNELS: kernels, TL_KERNELS: kernels },
      maxBuffer: 64 << 20,
    });
    return JSON.parse(stdout) as { kernels: string; logits: number[] };
  }

  it('scalar, avx2 and avx512 on a file with every type (TL_QUANT_KERNELS in child processes)', async () => {
    const file = writeModel('f16', SHAPE, MIXED_TYPES);
    const ref = await logitsWith('scalar', file);
    expect(ref.kernels).toBe('scalar');
    const scale = Math.max(...ref.logits.map(Math.abs));
    for (const k of ['avx2', 'avx512']) {
      const got = await logitsWith(k, file);
      if (got.kernels !== k) continue; // this CPU lacks it
      let maxDiff = 0;
      for (let i = 0; i < ref.logits.length; i++) maxDiff = Math.max(maxDiff, Math.abs(ref.logits[i]! - got.logits[i]!));
      console.log(`quant kernels ${k} vs scalar: max |diff| / max |logit| ${(maxDiff / scale).toExponential(2)}`);
      expect(maxDiff / scale, `${k} vs scalar`).toBeLessThan(1e-3);
    }
  });
});

describe('addon: quantizeRows, dequantizeRows, inspectModel', () => {
  it('round-trips every type within its format error', () => {
    const cols = 512;
    const rng = new Xoshiro128(3);
    const x = Float32Array.from({ length: 4 * cols }, () => (rng.nextFloat() - 0.5) * 2);
    // Relative RMSE bounds (uniform data; the 2-bit type is the loosest).
    const bound: Partial<Record<SyntheticTensorType, number>> = { f32: 0, f16: 1e-3, bf16: 5e-3, q8_0: 0.01, q6_k: 0.03, q5_k: 0.06, q5_0: 0.06, q5_1: 0.06 };
    for (const type of SYNTHETIC_TENSOR_TYPES) {
      const bytes = native().quantizeRows(type, x, cols);
      const y = native().dequantizeRows(type, bytes, cols);
      expect(y.length).toBe(x.length);
      let se = 0;
      let ss = 0;
      for (let i = 0; i < x.length; i++) {
        se += (x[i]! - y[i]!) ** 2;
        ss += x[i]! ** 2;
      }
      const rel = Math.sqrt(se / ss);
      expect(rel, type).toBeLessThanOrEqual(bound[type] ?? (type === 'q2_k' ? 0.4 : 0.2));
    }
  });

  it('refuses bad arguments with INVALID_ARGUMENT', () => {
    const thrown = (f: () => unknown): EngineError => {
      try {
        f();
      } catch (e) {
        return e as EngineError;
      }
      throw new Error('expected a throw');
    };
    const x = new Float32Array(512);
    expect(thrown(() => native().quantizeRows('q9_k', x, 256))).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining("'q9_k'") });
    expect(thrown(() => native().quantizeRows('q4_K', x, 128))).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/128.*256/) });
    expect(thrown(() => native().quantizeRows('q8_0', x, 96))).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('whole number of rows') });
    expect(thrown(() => native().dequantizeRows('q4_K', new Uint8Array(100), 256))).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('144') });
    expect(thrown(() => native().quantizeRows('iq2_xxs', x, 256))).toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('inspectModel reads the header: shapes, tokenizer, types and bytes', () => {
    const shape = { ...SHAPE, nLayers: 4 };
    const file = writeModel('q4_k_m', shape);
    const m = Engine.inspect(file);
    expect(m).toMatchObject({
      architecture: 'llama',
      name: 'synthetic-llama',
      contextLength: shape.contextLength,
      embeddingLength: shape.dim,
      blockCount: 4,
      headCount: shape.nHeads,
      headCountKv: shape.nKvHeads,
      vocabSize: shape.nVocab,
      tokenizer: { model: 'llama', pre: '', tokens: shape.nVocab, bos: 1, eos: 2 },
      fileBytes: fs.statSync(file).size,
      parameters: parameterCount(shape),
    });
    expect(m.tensors).toHaveLength(2 + 9 * 4 + 1);
    expect(m.tensors[0]).toEqual({ name: 'token_embd.weight', type: 'q4_K', shape: [shape.dim, shape.nVocab], bytes: (shape.dim / 256) * 144 * shape.nVocab });
    expect(m.tensorTypes.map((t) => t.type).sort()).toEqual(['f32', 'q4_K', 'q6_K']);
    const sum = (k: 'bytes' | 'elements' | 'tensors') => m.tensorTypes.reduce((a, t) => a + t[k], 0);
    expect(sum('bytes')).toBe(m.tensors.reduce((a, t) => a + t.bytes, 0));
    expect(sum('elements')).toBe(m.parameters);
    expect(sum('tensors')).toBe(m.tensors.length);
    expect(m.bitsPerWeight).toBeCloseTo((8 * sum('bytes')) / m.parameters, 6);
    expect(m.bitsPerWeight).toBeGreaterThan(4.5);
    expect(m.bitsPerWeight).toBeLessThan(5.5);
    expect(m.fileBytes).toBeGreaterThan(sum('bytes'));
  });

  it('inspectModel of a missing or corrupt file is MODEL_NOT_FOUND / MODEL_CORRUPT', () => {
    const missing = path.join(tmp, 'nope.gguf');
    expect(() => Engine.inspect(missing)).toThrow(expect.objectContaining({ code: 'MODEL_NOT_FOUND' }));
    const bad = path.join(tmp, 'bad.gguf');
    fs.writeFileSync(bad, Buffer.from('GGUF\x07\x00\x00\x00'));
    expect(() => Engine.inspect(bad)).toThrow(expect.objectContaining({ code: 'MODEL_CORRUPT' }));
  });
});
