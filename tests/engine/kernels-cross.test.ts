// Every kernel set this CPU supports (scalar, AVX2, AVX-512 VNNI) must give the same logits, per weights policy, to
// float rounding. TL_KERNELS picks the set at addon load, so each runs in its own child process.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/shared.js';
import { SMALL_SHAPE, TempModels } from '../helpers/synthetic.js';

const run = promisify(execFile);
const SCRIPT = `
import { Engine } from ${JSON.stringify(join(REPO_ROOT, 'src', 'engine', 'index.ts'))};
const [model, weights] = process.argv.slice(-2);
const e = await Engine.load({ model, weights, threads: 2 });
const logits = await e.evaluate([1, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100], { allLogits: true });
process.stdout.write(JSON.stringify({ kernels: Engine.kernels(), logits: Array.from(logits) }));
await e.close();
`;

async function logitsWith(kernels: string, model: string, weights: string): Promise<{ kernels: string; logits: number[] }> {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', SCRIPT, model, weights], {
    env: { ...process.env, TL_KERNELS: kernels },
    maxBuffer: 64 << 20,
  });
  return JSON.parse(stdout);
}

describe('kernel sets agree', () => {
  const models = new TempModels();
  // Ragged FFN (176 = 5.5 groups of 32) and several row counts that are not multiples of the kernels' tiles.
  const model = models.write({ ...SMALL_SHAPE, dim: 96, nHeads: 6, nKvHeads: 2, ffnDim: 176, nVocab: 333 }, 'f16');
  afterAll(() => models.cleanup());

  for (const weights of ['f32', 'bf16', 'int8', 'int4', 'mixed']) {
    it(`${weights}: scalar, avx2 and avx512 logits match`, async () => {
      const ref = await logitsWith('scalar', model, weights);
      expect(ref.kernels).toBe('scalar');
      const scale = Math.max(...ref.logits.map(Math.abs));
      for (const k of ['avx2', 'avx512']) {
        const got = await logitsWith(k, model, weights);
        if (got.kernels !== k) continue; // this CPU lacks it (the child logged why)
        let maxDiff = 0;
        for (let i = 0; i < ref.logits.length; i++) maxDiff = Math.max(maxDiff, Math.abs(ref.logits[i]! - got.logits[i]!));
        expect(maxDiff / scale, `${k} vs scalar, ${weights}`).toBeLessThan(1e-4);
      }
    });
  }
});
