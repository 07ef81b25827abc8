// The synthetic family writer itself (tools/lib/synthetic-arch.ts): the converter's formulas, what each family's file
// holds and leaves out, the refusals, vocabularies copied from a GGUF, and the make-synthetic-model --arch CLI.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';

import { afterAll, describe, expect, it } from 'vitest';

import { parseGguf, readGgufFile } from '../../tools/lib/gguf-reader.js';
import { encodeGguf, GGML_TYPE } from '../../tools/lib/gguf-writer.js';
import {
  ARCH_PRESETS,
  archTensorPlan,
  buildSyntheticArch,
  headGain,
  llama3RopeFreqs,
  longRopeAttnFactor,
  longRopeFactors,
  validateArchSpec,
  vocabFromGguf,
  vocabSize,
} from '../../tools/lib/synthetic-arch.js';
import { phi3Vocab } from '../helpers/arch-models.js';
import { REPO_ROOT } from '../helpers/shared.js';

const dir = mkdtempSync(join(tmpdir(), 'tl-synthetic-arch-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('RoPE factor formulas', () => {
  it("llama3 rope_freqs: Llama-3.1-8B's rope_scaling gives 1 for the fast frequencies, 8 for the slow ones, a monotone ramp between", () => {
    const f = llama3RopeFreqs(128, 500000, { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalContext: 8192 });
    expect(f).toHaveLength(64);
    expect(f[0]).toBe(1);
    expect(f[63]).toBe(8);
    for (let i = 1; i < f.length; i++) expect(f[i]!).toBeGreaterThanOrEqual(f[i - 1]!);
    // Wavelengths between 8192 / 4 and 8192 are interpolated: the converter's smooth factor.
    const ramp = Array.from(f).filter((x) => x > 1 && x < 8);
    expect(ramp.length).toBeGreaterThan(0);
    const i = Array.from(f).findIndex((x) => x > 1 && x < 8);
    const wavelen = (2 * Math.PI) / (1 / 500000 ** ((2 * i) / 128));
    const smooth = (8192 / wavelen - 1) / (4 - 1);
    expect(f[i]).toBeCloseTo(1 / ((1 - smooth) / 8 + smooth), 4);
  });

  it("LongRoPE: the converter's attention factor and factors of half the rotated width", () => {
    expect(longRopeAttnFactor(131072, 4096)).toBeCloseTo(Math.sqrt(1 + Math.log(32) / Math.log(4096)), 12);
    expect(longRopeAttnFactor(4096, 4096)).toBe(1);
    const f = longRopeFactors(96, { type: 'longrope', originalContext: 4096, maxShortFactor: 1.5, maxLongFactor: 40 });
    expect(f.short).toHaveLength(48);
    expect(f.long[47]).toBeCloseTo(40, 4);
    expect(f.short[0]).toBe(1);
  });

  it('the head gain keeps distributions near 4 nats: 2 for small vocabularies, more for large ones', () => {
    expect(headGain(300)).toBe(2);
    expect(headGain(262144)).toBeCloseTo(Math.sqrt(2 * (Math.log(262144) - 4)), 12);
  });
});

describe('what each family file holds', () => {
  const names = (preset: string): string[] => archTensorPlan(ARCH_PRESETS[preset]!.spec, 512, 'f16').map((t) => t.plan.name);
  const keys = (preset: string): string[] => {
    const m = buildSyntheticArch({ spec: ARCH_PRESETS[preset]!.spec, fileType: 'f16', seed: 1, vocab: { tokenizer: 'llama', nVocab: 300 } });
    return m.metadata.map(([k]) => k);
  };

  it('llama3.1: rope_freqs.weight, no scaling keys, vocab_size', () => {
    expect(names('llama3.1')).toContain('rope_freqs.weight');
    expect(keys('llama3.1')).toContain('llama.vocab_size');
    expect(keys('llama3.1').filter((k) => k.includes('rope.scaling'))).toEqual([]);
  });

  it('qwen2: Q/K/V biases; qwen3: per-head Q/K norms of head_dim, key_length written', () => {
    expect(names('qwen2')).toEqual(expect.arrayContaining(['blk.0.attn_q.bias', 'blk.0.attn_k.bias', 'blk.0.attn_v.bias']));
    const q3 = archTensorPlan(ARCH_PRESETS.qwen3!.spec, 512, 'f16');
    expect(q3.find((t) => t.plan.name === 'blk.1.attn_k_norm.weight')?.plan.ne).toEqual([32]);
    expect(q3.find((t) => t.plan.name === 'blk.0.attn_q.weight')?.plan.ne).toEqual([64, 128]);
    expect(keys('qwen3')).toContain('qwen3.attention.key_length');
  });

  it('gemma2: post norms, soft-caps, a window, no rope.freq_base and no output.weight', () => {
    expect(names('gemma2')).toEqual(expect.arrayContaining(['blk.0.post_attention_norm.weight', 'blk.0.post_ffw_norm.weight']));
    expect(names('gemma2')).not.toContain('output.weight');
    const k = keys('gemma2');
    expect(k).toEqual(expect.arrayContaining(['gemma2.attn_logit_softcapping', 'gemma2.final_logit_softcapping', 'gemma2.attention.sliding_window']));
    expect(k).not.toContain('gemma2.rope.freq_base');
    expect(k).not.toContain('gemma2.attention.sliding_window_pattern');
  });

  it('phi3: fused attn_qkv and gate+up, LongRoPE tensors and keys, no rope.scaling.type', () => {
    const p = archTensorPlan(ARCH_PRESETS.phi3!.spec, 512, 'f16');
    expect(p.find((t) => t.plan.name === 'blk.0.attn_qkv.weight')?.plan.ne).toEqual([128, 128 + 2 * 128]);
    expect(p.find((t) => t.plan.name === 'blk.0.ffn_up.weight')?.plan.ne).toEqual([128, 2 * 320]);
    expect(p.find((t) => t.plan.name === 'rope_factors_long.weight')?.plan.type).toBe(GGML_TYPE.F32);
    const k = keys('phi3');
    expect(k).toEqual(expect.arrayContaining(['phi3.rope.scaling.original_context_length', 'phi3.rope.scaling.attn_factor']));
    expect(k).not.toContain('phi3.rope.scaling.type');
    // Partial rotary (Phi-4-mini): factors as wide as half the rotated dimensions.
    expect(archTensorPlan(ARCH_PRESETS['phi4-mini']!.spec, 512, 'f16').find((t) => t.plan.name === 'rope_factors_short.weight')?.plan.ne).toEqual([12]);
  });

  it('a q4_k file falls back as llama.cpp does where rows are not whole 256-blocks', () => {
    const p = archTensorPlan(ARCH_PRESETS.qwen3!.spec, 512, 'q4_k');
    expect(p.find((t) => t.plan.name === 'blk.0.attn_q.weight')?.plan.type).toBe(GGML_TYPE.Q5_0); // rows of 64
  });
});

describe('refusals', () => {
  const base = ARCH_PRESETS.qwen2!.spec;
  it.each([
    ['qwen2 with head_dim * heads != dim', { ...base, headDim: 16 }, /headDim \* nHeads = dim/],
    ['an untied gemma', { ...ARCH_PRESETS.gemma3!.spec, tiedEmbeddings: false }, /no output.weight/],
    ['an odd head width', { ...base, dim: 124, headDim: 31 }, /even/],
    ['heads not a multiple of KV heads', { ...base, nKvHeads: 3 }, /multiple/],
    ['partial rotary on llama', { ...ARCH_PRESETS.mistral!.spec, ropeDims: 8 }, /partial rotary/],
    ['LongRoPE outside phi3', { ...base, ropeScaling: { type: 'longrope' as const, originalContext: 64, maxShortFactor: 1, maxLongFactor: 2 } }, /phi3/],
  ])('%s', (_label, spec, message) => {
    expect(() => validateArchSpec(spec)).toThrow(message);
  });

  it('vocabulary metadata with a non-tokenizer key is refused', () => {
    expect(() => buildSyntheticArch({ spec: base, fileType: 'f16', seed: 1, vocab: { metadata: [['general.name', { type: 'string', value: 'x' }]] } })).toThrow(
      /only hold tokenizer/,
    );
  });
});

describe('vocabularies copied from a GGUF', () => {
  it("Phi-3's vocabulary file round-trips through the writer with its value types", () => {
    const src = parseGguf(gunzipSync(readFileSync(join(REPO_ROOT, 'tests', 'fixtures', 'vocab', 'ggml-vocab-phi-3.gguf.gz'))));
    const vocab = phi3Vocab();
    expect(vocabSize(vocab)).toBe(32064);
    const { bytes } = encodeGguf({ metadata: vocab, tensors: [] });
    const back = parseGguf(bytes);
    for (const [k] of vocab) {
      expect(back.metadata.get(k), k).toEqual(src.metadata.get(k));
      expect(back.metadataTypes.get(k), k).toBe(src.metadataTypes.get(k));
    }
    expect(vocabFromGguf(back)).toEqual(vocab);
  });
});

describe('make-synthetic-model --arch', () => {
  const run = promisify(execFile);
  const cli = (...args: string[]) => run(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'tools', 'make-synthetic-model.ts'), ...args], { cwd: REPO_ROOT });

  it('writes a family preset with shape overrides', async () => {
    const out = join(dir, 'g3.gguf');
    await cli('--arch', 'gemma3', '--layers', '3', '--type', 'q8_0', '--out', out);
    const f = readGgufFile(out);
    expect(f.metadata.get('general.architecture')).toBe('gemma3');
    expect(f.metadata.get('gemma3.block_count')).toBe(3);
    expect(f.tensors.get('blk.2.attn_q_norm.weight')?.ne).toEqual([32]);
  });

  it('refuses an unknown preset and --shape with --arch', async () => {
    await expect(cli('--arch', 'nope', '--out', join(dir, 'x.gguf'))).rejects.toMatchObject({ stderr: expect.stringMatching(/unknown --arch 'nope'/) });
    await expect(cli('--arch', 'qwen3', '--shape', 'tiny', '--out', join(dir, 'x.gguf'))).rejects.toMatchObject({ stderr: expect.stringMatching(/exclusive/) });
  });
});
