// The GGUF block-format library (native/src/quant) and its C++ test program (native/tests/quant_test.cpp), built with
// g++ in a temporary folder (never build/, which node-gyp owns) and run: block traits, golden blocks written from the
// layout description, quantize -> dequantize error bounds, every kernel set's dot products and tiled matmul against
// the dequantized reference, and NaN / Inf scale detection.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/shared.js';

const exec = promisify(execFile);
const SRC = join(REPO_ROOT, 'native', 'src');
const QUANT = join(SRC, 'quant');
// -O2 (not -O3): two cores shared with other builds; the kernels are intrinsics either way.
const FLAGS = ['-std=c++17', '-O2', `-I${SRC}`];
const AVX512 = ['-mavx512f', '-mavx512bw', '-mavx512vl', '-mavx512dq', '-mavx512vnni', '-mavx512bf16', '-mfma', '-mf16c', '-mavx2'];
const out = mkdtempSync(join(tmpdir(), 'tuneloop-quant-'));

async function gxx(args: string[]): Promise<void> {
  await exec('g++', [...FLAGS, ...args], { maxBuffer: 16 << 20 });
}

describe('GGUF block formats (native/src/quant)', () => {
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it('quant_test: layouts, quantizers, and every kernel set against the dequantized reference', async () => {
    // The ISA files compile with their own -m flags (as binding.gyp will build them); the rest is portable.
    await gxx(['-c', join(QUANT, 'dot_avx512.cpp'), '-o', join(out, 'dot_avx512.o'), ...AVX512]);
    await gxx(['-c', join(QUANT, 'dot_avx2.cpp'), '-o', join(out, 'dot_avx2.o'), '-mavx2', '-mfma', '-mf16c']);
    const portable = ['formats', 'dequantize', 'quantize_weights', 'quantize_acts', 'dot_scalar', 'dispatch', 'matmul'];
    const bin = join(out, 'quant_test');
    await gxx([join(REPO_ROOT, 'native', 'tests', 'quant_test.cpp'), ...portable.map((f) => join(QUANT, `${f}.cpp`)),
      join(out, 'dot_avx512.o'), join(out, 'dot_avx2.o'), '-o', bin, '-lpthread']);
    const { stdout } = await exec(bin, [], { maxBuffer: 16 << 20 });
    expect(stdout).toMatch(/^\d+ passed, 0 failed$/m);
    // On an x86 machine with AVX2 the SIMD sets must actually have been exercised (not silently skipped).
    if (process.arch === 'x64') expect(stdout).toMatch(/quant kernel sets: scalar avx2/);
  });
});
