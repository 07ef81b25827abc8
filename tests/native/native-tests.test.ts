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
const out = mkdtempSync(join(tmpdir(), 'tuneloop-native-'));

async function gxx(args: string[]): Promise<void> {
  await exec('g++', [...FLAGS, ...args], { maxBuffer: 16 << 20 });
}

describe('native C++ test programs', () => {
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it('kernels_test: every kernel set equals the scalar reference', async () => {
    const k = join(SRC, 'kernels', 'cpu');
    await gxx(['-c', join(k, 'matmul_avx512.cpp'), '-o', join(out, 'avx512.o'),
      '-mavx512f', '-mavx512bw', '-mavx512vl', '-mavx512dq', '-mavx512vnni', '-mavx512bf16', '-mfma', '-mf16c', '-mavx2']);
    await gxx(['-c', join(k, 'matmul_avx2.cpp'), '-o', join(out, 'avx2.o'), '-mavx2', '-mfma', '-mf16c']);
    const bin = join(out, 'kernels_test');
    await gxx([join(REPO_ROOT, 'native', 'tests', 'kernels_test.cpp'), join(k, 'quantize.cpp'), join(k, 'matmul_scalar.cpp'),
      join(k, 'dispatch.cpp'), join(out, 'avx512.o'), join(out, 'avx2.o'), '-o', bin, '-lpthread']);
    const { stdout } = await exec(bin, [], { maxBuffer: 16 << 20 });
    expect(stdout).toMatch(/\b0 failed\b|FAIL(ED)?: 0|all .*passed/i);
  });

  it('tokenizer_sampler_test: tokenizers and sampler', async () => {
    const bin = join(out, 'tokenizer_sampler_test');
    await gxx([join(REPO_ROOT, 'native', 'tests', 'tokenizer_sampler_test.cpp'),
      ...['tokenizer', 'sampler', 'gguf', 'errors', 'tensor_convert'].map((f) => join(SRC, `${f}.cpp`)), '-o', bin]);
    const { stdout } = await exec(bin, STORIES_260K ? [STORIES_260K] : [], { maxBuffer: 16 << 20, env: { ...process.env, TL_TEST_NO_TIMING: '1' } });
    expect(stdout).toMatch(/\b0 fail/i);
  });
});
