// Seeded mutation fuzzing of the GGUF loader. Starting from valid small synthetic models, each iteration applies
// 1-8 random mutations (bit flips, random bytes, huge values in u64 length/count/shape/offset fields, ggml type ids,
// truncation, duplicated chunks) and loads the result. Each must either load (then evaluate a few tokens and close)
// or fail with an EngineError of an expected code; any other exception, a hang, or a crash is a failure.
//
//   TL_FUZZ_ITERATIONS=5000 npx vitest run tests/engine/gguf-fuzz.test.ts   # longer run (default 300)
//   TL_FUZZ_SEED=123 ...                                                      # another sequence (default 20250101)
//
// A crash kills the test process before it can report; the case being tried is always in
// $TMPDIR/tl-fuzz-last.json (seed, iteration, mutations), and its file is kept next to it as tl-fuzz-last.gguf.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Engine, EngineError, type EngineErrorCode, type WeightsPolicy } from '../../src/engine/index.js';
import { encodeGguf, type GgufLayout } from '../../tools/lib/gguf-writer.js';
import { buildSyntheticArch, MOE_PRESETS } from '../../tools/lib/synthetic-arch.js';
import { Xoshiro128, buildSyntheticLlama, hashSeed, type LlamaShape } from '../../tools/lib/synthetic-llama.js';

const ITERATIONS = Number(process.env.TL_FUZZ_ITERATIONS ?? 300);
const BASE_SEED = Number(process.env.TL_FUZZ_SEED ?? 20250101);
const LOAD_TIMEOUT_MS = 20_000;
// Codes a malformed file may legitimately produce. INTERNAL (a bug by definition), ENGINE_CLOSED, CANCELLED and
// MODEL_NOT_FOUND (the file exists) are not among them. INVALID_ARGUMENT: a mutated context_length below the
// contextLength we ask for. OUT_OF_MEMORY: plausible-looking but huge dimensions.
const ACCEPTED: ReadonlySet<EngineErrorCode> = new Set([
  'MODEL_CORRUPT',
  'UNSUPPORTED_ARCHITECTURE',
  'UNSUPPORTED_TENSOR_TYPE',
  'OUT_OF_MEMORY',
  'INVALID_ARGUMENT',
  'CONTEXT_OVERFLOW',
]);
const POLICIES: WeightsPolicy[] = ['native', 'f32', 'bf16', 'int8', 'int4', 'mixed', 'q4_k', 'q6_k'];

const SHAPE: LlamaShape = {
  dim: 32,
  nLayers: 1,
  nHeads: 2,
  nKvHeads: 1,
  ffnDim: 64,
  nVocab: 262,
  contextLength: 64,
  ropeTheta: 10000,
  rmsEps: 1e-5,
  tiedEmbeddings: false,
};

interface Base {
  label: string;
  bytes: Buffer;
  layout: GgufLayout;
}

let tmpDir = '';
const bases: Base[] = [];

beforeAll(() => {
  tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tl-fuzz-'));
  // Bases so that both tokenizers' metadata, plain and block-quantized tensor data, and a K-quant file (rows of
  // 256; its ffn_down of 64-element rows falls back to q5_0 as llama.cpp's does) get mutated.
  const q8 = encodeGguf(buildSyntheticLlama({ shape: SHAPE, fileType: 'q8_0', seed: 3, tokenizer: 'llama' }));
  const f16 = encodeGguf(buildSyntheticLlama({ shape: { ...SHAPE, tiedEmbeddings: true }, fileType: 'f16', seed: 4, tokenizer: 'gpt2' }));
  const kq = encodeGguf(buildSyntheticLlama({ shape: { ...SHAPE, dim: 256, nHeads: 2, nKvHeads: 1 }, fileType: 'q4_k_m', seed: 5, tokenizer: 'llama' }));
  bases.push({ label: 'q8_0/llama', ...q8 }, { label: 'f16/gpt2/tied', ...f16 }, { label: 'q4_k_m/llama', ...kq });
  // A Mixture-of-Experts file (qwen3moe): expert counts, 3-D expert tensors and the f32 router get mutated too.
  const moeSpec = { ...MOE_PRESETS.qwen3moe!.spec, dim: 64, nLayers: 1, nHeads: 2, nKvHeads: 1, headDim: 32, ffnDim: 64, contextLength: 64 };
  const moe = encodeGguf(
    buildSyntheticArch({
      spec: { ...moeSpec, moe: { nExperts: 4, nExpertsUsed: 2, expertFfnDim: 32, routerSkew: 2 } },
      fileType: 'q8_0',
      seed: 6,
      vocab: { tokenizer: 'gpt2', nVocab: 262 },
    }),
  );
  bases.push({ label: 'q8_0/qwen3moe', ...moe });
});
afterAll(() => {
  if (tmpDir) fs.rmSync(tmpDir, { recursive: true, force: true });
});

const HUGE_U64 = [0xffffffffffffffffn, 0x8000000000000000n, 0x7fffffffffffffffn, 0x100000000n, 0xffffffffn, 0x80000000n, 1n << 40n, 0n, 1n];

const U32_VALUES = [0, 1, 2, 3, 7, 31, 32, 33, 64, 1000, 65536, 0x7fffffff, 0x80000000, 0xffffffff];
const F32_VALUES = [0, -1, NaN, Infinity, -Infinity, 1e-30, 1e30, 0.5];
// Relative weights of the mutation kinds: structural damage (truncation, huge counts) stops the parser early, so
// value-level mutations that reach hyperparameter validation, the tokenizer and the weights are favoured.
const KINDS = [
  ['bitflip', 25],
  ['random bytes', 10],
  ['u64 field', 15],
  ['tensor type', 5],
  ['metadata value', 20],
  ['tensor data', 10],
  ['truncate', 5],
  ['duplicate', 10],
] as const;
type Kind = (typeof KINDS)[number][0];
const KIND_TOTAL = KINDS.reduce((a, [, w]) => a + w, 0);

function pickKind(rng: Xoshiro128): Kind {
  let r = rng.nextInt(KIND_TOTAL);
  for (const [k, w] of KINDS) {
    if (r < w) return k;
    r -= w;
  }
  return 'bitflip';
}

/** Apply 1-8 random mutations (fewer more often) to a copy of `base`; returns the bytes and what was done. */
function mutate(base: Base, rng: Xoshiro128): { bytes: Buffer; log: string[] } {
  let b = Buffer.from(base.bytes);
  const log: string[] = [];
  const { layout } = base;
  // Positional mutations aim at the header 3/4 of the time: that is where the parser's decisions are.
  const pos = (): number => (rng.nextFloat() < 0.75 ? rng.nextInt(Math.min(layout.tensorInfoEnd, b.length)) : rng.nextInt(b.length));
  const n = 1 + Math.floor(8 * rng.nextFloat() ** 2);
  for (let k = 0; k < n && b.length > 0; k++) {
    const kind = pickKind(rng);
    switch (kind) {
      case 'bitflip': {
        const p = pos();
        const bit = rng.nextInt(8);
        b[p] = b[p]! ^ (1 << bit);
        log.push(`flip bit ${bit} at ${p}`);
        break;
      }
      case 'random bytes': {
        const p = pos();
        const len = Math.min(1 + rng.nextInt(16), b.length - p);
        for (let i = 0; i < len; i++) b[p + i] = rng.nextInt(256);
        log.push(`${len} random bytes at ${p}`);
        break;
      }
      case 'u64 field': {
        // A u64 of the original layout: a count, string or array length, tensor dimension or offset.
        const p = layout.u64Positions[rng.nextInt(layout.u64Positions.length)]!;
        if (p + 8 > b.length) break;
        const choice = rng.nextInt(HUGE_U64.length + 3);
        const v =
          choice < HUGE_U64.length
            ? HUGE_U64[choice]!
            : choice === HUGE_U64.length
              ? BigInt(b.length + rng.nextInt(64)) // just past the end of the file
              : choice === HUGE_U64.length + 1
                ? (BigInt(rng.nextU32()) << 32n) | BigInt(rng.nextU32())
                : BigInt(rng.nextInt(512));
        b.writeBigUInt64LE(v, p);
        log.push(`u64 at ${p} = ${v}`);
        break;
      }
      case 'tensor type': {
        // A tensor's ggml type id (the u32 before its u64 offset).
        const info = layout.tensorInfos[rng.nextInt(layout.tensorInfos.length)]!;
        const p = info.end - 12;
        if (p + 4 > b.length) break;
        const t = rng.nextFloat() < 0.5 ? rng.nextInt(40) : rng.nextU32();
        b.writeUInt32LE(t, p);
        log.push(`type of ${info.name} = ${t}`);
        break;
      }
      case 'metadata value': {
        // A scalar hyperparameter or token id: plausible-looking but wrong values reach the model's own checks.
        const scalars = layout.kv.filter((kv) => kv.end - kv.valueStart === 8 || kv.end - kv.valueStart === 5);
        const kv = scalars[rng.nextInt(scalars.length)]!;
        const p = kv.valueStart + 4;
        if (kv.end > b.length) break;
        const type = b.readUInt32LE(kv.valueStart);
        if (type === 6) {
          const v = F32_VALUES[rng.nextInt(F32_VALUES.length)]!;
          b.writeFloatLE(v, p);
          log.push(`${kv.key} = ${v} (f32)`);
        } else if (kv.end - kv.valueStart === 8) {
          const v = rng.nextFloat() < 0.8 ? U32_VALUES[rng.nextInt(U32_VALUES.length)]! : rng.nextU32();
          b.writeUInt32LE(v, p);
          log.push(`${kv.key} = ${v} (u32)`);
        } else {
          const v = rng.nextInt(256);
          b[p] = v;
          log.push(`${kv.key} = ${v} (u8)`);
        }
        break;
      }
      case 'tensor data': {
        // Weights become arbitrary bit patterns (NaN, inf, huge): loading and evaluating must still be safe.
        const t = layout.tensors[rng.nextInt(layout.tensors.length)]!;
        const len = Math.min(1 + rng.nextInt(64), t.nBytes);
        const p = t.absOffset + rng.nextInt(t.nBytes - len + 1);
        if (p + len > b.length) break;
        for (let i = 0; i < len; i++) b[p + i] = rng.nextInt(256);
        log.push(`${len} random bytes in ${t.name} at ${p}`);
        break;
      }
      case 'truncate': {
        const len = rng.nextInt(b.length);
        b = b.subarray(0, len);
        log.push(`truncate to ${len}`);
        break;
      }
      case 'duplicate': {
        const start = pos();
        const len = Math.min(1 + rng.nextInt(256), b.length - start);
        const at = pos();
        b = Buffer.concat([b.subarray(0, at), b.subarray(start, start + len), b.subarray(at)]);
        log.push(`duplicate ${len} bytes from ${start} at ${at}`);
        break;
      }
    }
  }
  return { bytes: Buffer.from(b), log };
}

function timeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
    }),
  ]);
}

/** Returns a problem description, or undefined when the outcome is acceptable; `outcome` counts what happened. */
function judge(err: unknown, stage: string): string | undefined {
  if (!(err instanceof EngineError)) {
    return `${stage} threw a non-EngineError: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`;
  }
  if (!ACCEPTED.has(err.code)) return `${stage} failed with unexpected code ${err.code}: ${err.message}`;
  if (err.message.length === 0) return `${stage} failed with ${err.code} and an empty message`;
  return undefined;
}

async function tryOne(file: string, policy: WeightsPolicy, outcomes: Map<string, number>): Promise<string | undefined> {
  const count = (k: string): void => void outcomes.set(k, (outcomes.get(k) ?? 0) + 1);
  let e: Engine;
  try {
    e = await timeout(Engine.load({ model: file, weights: policy, threads: 1, contextLength: 32 }), LOAD_TIMEOUT_MS, 'load');
  } catch (err) {
    count(err instanceof EngineError ? err.code : 'other');
    return judge(err, 'load');
  }
  try {
    const nVocab = e.info.nVocab;
    if (!(nVocab > 0)) return `loaded with nVocab ${nVocab}`;
    const tokens = [1, 2, 3].map((t) => t % nVocab);
    try {
      const logits = await timeout(e.evaluate(tokens, { allLogits: true }), LOAD_TIMEOUT_MS, 'evaluate');
      if (logits.length !== tokens.length * nVocab) return `evaluate returned ${logits.length} logits, expected ${tokens.length * nVocab}`;
      count('loaded+evaluated');
    } catch (err) {
      count(`evaluate:${err instanceof EngineError ? err.code : 'other'}`);
      return judge(err, 'evaluate');
    }
    return undefined;
  } finally {
    await timeout(e.close(), LOAD_TIMEOUT_MS, 'close');
  }
}

describe('GGUF mutation fuzzing', () => {
  it('the unmutated bases load', async () => {
    for (const base of bases) {
      const file = path.join(tmpDir, 'base.gguf');
      fs.writeFileSync(file, base.bytes);
      const outcomes = new Map<string, number>();
      expect(await tryOne(file, 'f32', outcomes), base.label).toBeUndefined();
      expect(outcomes.get('loaded+evaluated'), base.label).toBe(1);
    }
  });

  it(
    `${ITERATIONS} mutated files load or fail cleanly (seed ${BASE_SEED})`,
    async () => {
      const outcomes = new Map<string, number>();
      const failures: string[] = [];
      const lastCase = path.join(os.tmpdir(), 'tl-fuzz-last.json');
      const lastFile = path.join(os.tmpdir(), 'tl-fuzz-last.gguf');
      for (let i = 0; i < ITERATIONS; i++) {
        const iterSeed = hashSeed(BASE_SEED, `iteration ${i}`);
        const rng = new Xoshiro128(iterSeed);
        const base = bases[i % bases.length]!;
        const policy = POLICIES[rng.nextInt(POLICIES.length)]!;
        const { bytes, log } = mutate(base, rng);
        const describeCase = `TL_FUZZ_SEED=${BASE_SEED} iteration ${i} (base ${base.label}, weights ${policy}): ${log.join('; ')}`;
        // Written before the attempt: if the engine crashes the process, this is what it was doing.
        fs.writeFileSync(lastCase, JSON.stringify({ seed: BASE_SEED, iteration: i, base: base.label, policy, mutations: log }));
        fs.writeFileSync(lastFile, bytes);
        const file = path.join(tmpDir, `fuzz-${i}.gguf`);
        fs.writeFileSync(file, bytes);
        const problem = await tryOne(file, policy, outcomes);
        if (problem !== undefined) {
          failures.push(`${describeCase}\n    -> ${problem}`);
          fs.copyFileSync(file, path.join(os.tmpdir(), `tl-fuzz-failure-${BASE_SEED}-${i}.gguf`));
        }
        fs.rmSync(file, { force: true });
      }
      console.log(`fuzz (seed ${BASE_SEED}, ${ITERATIONS} iterations): ${JSON.stringify(Object.fromEntries(outcomes))}`);
      // Some mutations must be rejected and some survive; otherwise the mutator (not the engine) is broken.
      expect(outcomes.get('MODEL_CORRUPT') ?? 0).toBeGreaterThan(0);
      if (ITERATIONS >= 100) expect(outcomes.get('loaded+evaluated') ?? 0).toBeGreaterThan(0);
      expect(failures, failures.join('\n')).toEqual([]);
      fs.rmSync(lastCase, { force: true });
      fs.rmSync(lastFile, { force: true });
    },
    Math.max(120_000, ITERATIONS * 2_000),
  );
});
