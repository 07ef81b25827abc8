// The engine's C++ below the N-API layer under AddressSanitizer (with LeakSanitizer, part of ASan on Linux) and
// UndefinedBehaviorSanitizer: the native unit tests (native/tests) pass, and the fuzz targets' seed corpora
// (native/fuzz/corpus, crash reproducers included) replay through the standalone driver with no finding. Any
// out-of-bounds access, use after free, leak or undefined behaviour (signed overflow, misaligned load, bad shift…)
// makes a program exit non-zero with the sanitizer's report, which the failure shows. Only g++ is needed; libFuzzer
// runs are offline (native/fuzz/run.sh).
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MODEL } from '../controlplane/harness.js';
import { REPO_ROOT, STORIES_260K } from '../helpers/shared.js';

const exec = promisify(execFile);
const SRC = join(REPO_ROOT, 'native', 'src');
const KERNELS = join(SRC, 'kernels', 'cpu');
const QUANT = join(SRC, 'quant');
const FUZZ = join(REPO_ROOT, 'native', 'fuzz');
// -O1: most of -O2's speed for the tests at a fraction of the compile time; -fno-sanitize-recover: UB aborts.
const FLAGS = ['-std=c++17', '-O1', '-g', '-fno-omit-frame-pointer', '-fsanitize=address,undefined', '-fno-sanitize-recover=undefined', `-I${SRC}`];
const AVX512 = ['-mavx512f', '-mavx512bw', '-mavx512vl', '-mavx512dq', '-mavx512vnni', '-mavx512bf16', '-mfma', '-mf16c', '-mavx2'];
const AVX2 = ['-mavx2', '-mfma', '-mf16c'];
const RUN_ENV = {
  ...process.env,
  ASAN_OPTIONS: 'detect_leaks=1:halt_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1',
  UBSAN_OPTIONS: 'print_stacktrace=1:halt_on_error=1',
  TL_TEST_NO_TIMING: '1', // the speed checks mean nothing in a sanitizer build
  TL_FUZZ_MODEL: MODEL,
};
const SANITIZER_REPORT = /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: UndefinedBehaviorSanitizer/;

const out = mkdtempSync(join(tmpdir(), 'tuneloop-sanitizers-'));
const o = (name: string): string => join(out, name);

/** One compiler at a time: vitest already runs two test files at once on CI's two cores, and a third busy process
 *  would disturb the timing tests beside this one (event-loop.test.ts). */
async function inTurn(jobs: (() => Promise<unknown>)[]): Promise<void> {
  for (const job of jobs) await job();
}

const gxx = (args: string[]) => () => exec('g++', [...FLAGS, ...args], { maxBuffer: 16 << 20 });
const compile = (src: string, obj: string, extra: string[] = []) => gxx(['-c', src, '-o', o(obj), ...extra]);

/** Run a sanitized program; its output must carry no sanitizer report (a non-zero exit already rejects). */
async function run(bin: string, args: string[]): Promise<string> {
  let stdout: string, stderr: string;
  try {
    ({ stdout, stderr } = await exec(o(bin), args, { cwd: REPO_ROOT, env: RUN_ENV, maxBuffer: 64 << 20 }));
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    throw new Error(`${bin} exited ${err.code}:\n${(err.stderr ?? '').slice(-8000)}\n${(err.stdout ?? '').slice(-2000)}`, { cause: e });
  }
  expect(stderr).not.toMatch(SANITIZER_REPORT);
  return stdout;
}

describe('native code under AddressSanitizer, LeakSanitizer and UBSan', () => {
  beforeAll(async () => {
    // Each source compiled once: the engine sources serve the tokenizer test and both fuzz drivers.
    const common = ['gguf', 'tokenizer', 'pretokenizer', 'split_pattern', 'unicode', 'errors', 'tensor_convert', 'sampler'];
    // The quant library (block geometry, validators, decoders, kernels; its ISA files with their own flags) and the
    // engine's weight layouts (kernels/cpu/quantize.cpp) serve every program: the reader and the fuzz targets use them.
    const quant = ['formats', 'dequantize', 'quantize_weights', 'quantize_acts', 'dot_scalar', 'dispatch', 'matmul'];
    const quantObjs = [...quant.map((f) => o(`q_${f}.o`)), o('q_avx512.o'), o('q_avx2.o'), o('quantize.o')];
    const engine = [...['gguf', 'tokenizer', 'pretokenizer', 'split_pattern', 'unicode', 'errors', 'tensor_convert'].map((f) => o(`${f}.o`)), ...quantObjs];
    await inTurn([
      compile(join(KERNELS, 'matmul_avx512.cpp'), 'avx512.o', AVX512),
      compile(join(KERNELS, 'matmul_avx2.cpp'), 'avx2.o', AVX2),
      compile(join(KERNELS, 'attention_avx512.cpp'), 'att_avx512.o', AVX512),
      compile(join(KERNELS, 'attention_avx2.cpp'), 'att_avx2.o', AVX2),
      compile(join(QUANT, 'dot_avx512.cpp'), 'q_avx512.o', AVX512),
      compile(join(QUANT, 'dot_avx2.cpp'), 'q_avx2.o', AVX2),
      ...quant.map((f) => compile(join(QUANT, `${f}.cpp`), `q_${f}.o`)),
      ...['quantize', 'matmul_scalar', 'attention_scalar', 'dispatch'].map((f) => compile(join(KERNELS, `${f}.cpp`), `${f}.o`)),
      ...common.map((f) => compile(join(SRC, `${f}.cpp`), `${f}.o`)),
      ...['grammar', 'grammar_matcher'].map((f) => compile(join(SRC, `${f}.cpp`), `${f}.o`)),
      compile(join(FUZZ, 'driver.cpp'), 'driver.o'),
      gxx([
        join(REPO_ROOT, 'native', 'tests', 'kernels_test.cpp'),
        ...['matmul_scalar', 'attention_scalar', 'dispatch', 'avx512', 'avx2', 'att_avx512', 'att_avx2', 'errors'].map((f) => o(`${f}.o`)),
        ...quantObjs,
        '-o',
        o('kernels_test'),
        '-lpthread',
      ]),
      gxx([join(REPO_ROOT, 'native', 'tests', 'tokenizer_sampler_test.cpp'), ...common.map((f) => o(`${f}.o`)), ...quantObjs, '-o', o('tokenizer_sampler_test')]),
      gxx([join(FUZZ, 'gguf_fuzz.cpp'), o('driver.o'), ...engine, '-o', o('gguf_fuzz')]),
      gxx([join(FUZZ, 'tokenizer_fuzz.cpp'), o('driver.o'), ...engine, '-o', o('tokenizer_fuzz')]),
      gxx([join(FUZZ, 'grammar_fuzz.cpp'), o('driver.o'), o('grammar.o'), o('grammar_matcher.o'), ...engine, '-o', o('grammar_fuzz')]),
    ]);
  }, 600_000);
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it('kernels_test passes, clean', async () => {
    expect(await run('kernels_test', [])).toMatch(/\b0 failed\b|FAIL(ED)?: 0|all .*passed/i);
  });

  it('tokenizer_sampler_test passes, clean', async () => {
    expect(await run('tokenizer_sampler_test', STORIES_260K ? [STORIES_260K] : [])).toMatch(/\b0 failures?\b/i);
  });

  it('the GGUF fuzz corpus replays clean', async () => {
    expect(await run('gguf_fuzz', [join(FUZZ, 'corpus', 'gguf')])).toMatch(/replayed [1-9]\d* inputs, no findings/);
  });

  it('the tokenizer fuzz corpus replays clean', async () => {
    expect(await run('tokenizer_fuzz', [join(FUZZ, 'corpus', 'tokenizer')])).toMatch(/replayed [1-9]\d* inputs, no findings/);
  });

  it('the grammar fuzz corpus replays clean', async () => {
    expect(await run('grammar_fuzz', [join(FUZZ, 'corpus', 'grammar')])).toMatch(/replayed [1-9]\d* inputs, no findings/);
  });
});
