// The engine's own C++ test programs (native/tests/*.cpp), built with g++ and run. They check every kernel set
// against the scalar reference over many shapes, and the tokenizers and sampler in depth, below the N-API layer.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, STORIES_260K } from '../helpers/shared.js';

const exec = promisify(execFile);
const SRC = join(REPO_ROOT, 'native', 'src');
// Warnings are errors here as in binding.gyp.
const FLAGS = ['-std=c++17', '-O2', '-Wall', '-Wextra', '-Werror', `-I${SRC}`];
const QUANT = join(SRC, 'quant');
const QUANT_PORTABLE = ['formats', 'dequantize', 'quantize_weights', 'quantize_acts', 'dot_scalar', 'dispatch', 'matmul'];
const AVX512 = ['-mavx512f', '-mavx512bw', '-mavx512vl', '-mavx512dq', '-mavx512vnni', '-mavx512bf16', '-mfma', '-mf16c', '-mavx2'];
const out = mkdtempSync(join(tmpdir(), 'tuneloop-native-'));

async function gxx(args: string[]): Promise<void> {
  await exec('g++', [...FLAGS, ...args], { maxBuffer: 16 << 20 });
}

describe('native C++ test programs', () => {
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it('kernels_test: every kernel set equals the scalar reference', async () => {
    const k = join(SRC, 'kernels', 'cpu');
    await gxx(['-c', join(k, 'matmul_avx512.cpp'), '-o', join(out, 'avx512.o'), ...AVX512]);
    await gxx(['-c', join(k, 'matmul_avx2.cpp'), '-o', join(out, 'avx2.o'), '-mavx2', '-mfma', '-mf16c']);
    await gxx(['-c', join(k, 'attention_avx512.cpp'), '-o', join(out, 'att-avx512.o'), ...AVX512]);
    await gxx(['-c', join(k, 'attention_avx2.cpp'), '-o', join(out, 'att-avx2.o'), '-mavx2', '-mfma', '-mf16c']);
    // The int8 / int4 layouts hold Q8_0 / Q4_0 blocks repacked: quantize.cpp uses the quant library (native/src/quant).
    await gxx(['-c', join(QUANT, 'dot_avx512.cpp'), '-o', join(out, 'qavx512.o'), ...AVX512]);
    await gxx(['-c', join(QUANT, 'dot_avx2.cpp'), '-o', join(out, 'qavx2.o'), '-mavx2', '-mfma', '-mf16c']);
    const bin = join(out, 'kernels_test');
    await gxx([join(REPO_ROOT, 'native', 'tests', 'kernels_test.cpp'), join(k, 'quantize.cpp'), join(k, 'matmul_scalar.cpp'), join(k, 'attention_scalar.cpp'),
      join(k, 'dispatch.cpp'), join(SRC, 'errors.cpp'), ...QUANT_PORTABLE.map((f) => join(QUANT, `${f}.cpp`)), join(out, 'avx512.o'), join(out, 'avx2.o'),
      join(out, 'att-avx512.o'), join(out, 'att-avx2.o'), join(out, 'qavx512.o'), join(out, 'qavx2.o'), '-o', bin, '-lpthread']);
    const { stdout } = await exec(bin, [], { maxBuffer: 16 << 20 });
    expect(stdout).toMatch(/\b0 failed\b|FAIL(ED)?: 0|all .*passed/i);
  });

  it('tokenizer_sampler_test: tokenizers and sampler', async () => {
    const bin = join(out, 'tokenizer_sampler_test');
    await gxx([join(REPO_ROOT, 'native', 'tests', 'tokenizer_sampler_test.cpp'),
      ...['tokenizer', 'pretokenizer', 'split_pattern', 'unicode', 'sampler', 'gguf', 'errors', 'tensor_convert'].map((f) => join(SRC, `${f}.cpp`)),
      join(QUANT, 'formats.cpp'), join(QUANT, 'dequantize.cpp'), '-o', bin]);
    const { stdout } = await exec(bin, STORIES_260K ? [STORIES_260K] : [], { maxBuffer: 16 << 20, env: { ...process.env, TL_TEST_NO_TIMING: '1' } });
    expect(stdout).toMatch(/\b0 fail/i);
  });

  it('grammar_test: the GBNF parser and matcher', async () => {
    const bin = join(out, 'grammar_test');
    await gxx([join(REPO_ROOT, 'native', 'tests', 'grammar_test.cpp'),
      ...['grammar', 'grammar_matcher', 'tokenizer', 'pretokenizer', 'split_pattern', 'unicode', 'gguf', 'errors', 'tensor_convert'].map((f) => join(SRC, `${f}.cpp`)),
      join(QUANT, 'formats.cpp'), join(QUANT, 'dequantize.cpp'), '-o', bin]);
    const { stdout } = await exec(bin, [], { maxBuffer: 16 << 20 });
    expect(stdout).toMatch(/[1-9]\d* checks, 0 failures/);
  });
});
