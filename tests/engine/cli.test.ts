// `tuneloop generate` as a user runs it: through bin/tuneloop.js on the compiled dist/ (built by `npm install`).
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { WEIGHTS_POLICIES } from '../../src/engine/index.js';
import { REPO_ROOT } from '../helpers/shared.js';
import { TempModels } from '../helpers/synthetic.js';

const run = promisify(execFile);
const BIN = join(REPO_ROOT, 'bin', 'tuneloop.js');
const built = existsSync(join(REPO_ROOT, 'dist', 'src', 'cli.js'));

describe.skipIf(!built)('tuneloop generate (CLI)', () => {
  const models = new TempModels();
  const model = models.write();
  afterAll(() => models.cleanup());

  it('--json prints one object with text, tokens and timings', async () => {
    const { stdout } = await run(process.execPath, [
      BIN,
      'generate',
      '--model',
      model,
      '--prompt',
      'hello world',
      '--max-tokens',
      '8',
      '--temperature',
      '0',
      '--quant',
      'int8',
      '--threads',
      '1',
      '--json',
    ]);
    const out = JSON.parse(stdout.trim());
    expect(typeof out.text).toBe('string');
    expect(out.tokens.length).toBeGreaterThan(0);
    expect(out.tokens.length).toBeLessThanOrEqual(8);
    for (const k of ['load_ms', 'prefill_ms', 'decode_ms', 'prefill_tokens_per_s', 'decode_tokens_per_s']) {
      expect(typeof out.timings[k]).toBe('number');
      expect(out.timings[k]).toBeGreaterThanOrEqual(0);
    }
    expect(out.timings.load_ms).toBeGreaterThan(0);
  });

  it('the same greedy request gives the same tokens as a second run', async () => {
    const args = [BIN, 'generate', '--model', model, '--prompt', 'abc', '--max-tokens', '6', '--temperature', '0', '--json'];
    const a = JSON.parse((await run(process.execPath, args)).stdout);
    const b = JSON.parse((await run(process.execPath, args)).stdout);
    expect(a.tokens).toEqual(b.tokens);
  });

  it('a missing model exits 2 with the error code on stderr', async () => {
    const err = await run(process.execPath, [BIN, 'generate', '--model', join(models.dir, 'nope.gguf'), '--prompt', 'x']).catch((e) => e);
    expect(err.code).toBe(2);
    expect(err.stderr).toMatch(/MODEL_NOT_FOUND: cannot open model file/);
  });

  it('a bad flag value is refused with a clear message', async () => {
    const err = await run(process.execPath, [BIN, 'generate', '--model', model, '--prompt', 'x', '--quant', 'int3']).catch((e) => e);
    expect(err.code).toBe(2);
    expect(err.stderr).toContain(`--quant expects one of ${WEIGHTS_POLICIES.join(', ')}, got 'int3'`);
    expect(WEIGHTS_POLICIES).toEqual(expect.arrayContaining(['native', 'f32', 'bf16', 'q8_0', 'q4_k', 'int8', 'int4', 'mixed']));
  });
});
