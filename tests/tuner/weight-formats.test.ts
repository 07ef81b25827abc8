// The tuner's weight plans against the real engine: for every policy, on the shipped F16 model and on a synthetic
// Q4_K_M file, planWeights() predicts exactly the bytes by type the engine then holds (ModelInfo.weightBytes), its
// fallbacks, and whether the engine refuses the policy. The optimizer vets and prices weights changes with these
// plans, so a loader rule that changes without them fails here.
import { afterAll, describe, expect, it } from 'vitest';
import { Engine, EngineError, WEIGHTS_POLICIES } from '../../src/engine/index.js';
import { planWeights } from '../../src/tuner/weight-formats.js';
import { REPO_ROOT } from '../helpers/shared.js';
import { TempModels } from '../helpers/synthetic.js';
import { join } from 'node:path';

const SHIPPED = join(REPO_ROOT, 'models', 'tuneloop-shakespeare.gguf');

describe('weight plans match the engine', () => {
  const models = new TempModels();
  afterAll(() => models.cleanup());
  const q4km = models.write(
    { dim: 256, nLayers: 2, nHeads: 4, nKvHeads: 2, ffnDim: 768, nVocab: 320, contextLength: 128, ropeTheta: 10000, rmsEps: 1e-5, tiedEmbeddings: false },
    'q4_k_m',
  );

  for (const [label, file] of [
    ['shipped F16 (ragged 672-wide FFN)', SHIPPED],
    ['synthetic Q4_K_M', q4km],
  ] as const) {
    it(`${label}: bytes by type, fallbacks and refusals for every policy`, async () => {
      const tensors = Engine.inspect(file).tensors;
      for (const policy of WEIGHTS_POLICIES) {
        const plan = planWeights(tensors, policy);
        let loaded: Engine | undefined;
        let refusal: unknown;
        try {
          loaded = await Engine.load({ model: file, weights: policy, threads: 1, kvCacheBlocks: 8 });
        } catch (e) {
          refusal = e;
        }
        if (plan.refused.length > 0) {
          expect(refusal, policy).toBeInstanceOf(EngineError);
          expect((refusal as EngineError).code, policy).toBe('INVALID_ARGUMENT');
          expect((refusal as EngineError).message, policy).toMatch(/only loses precision/);
          continue;
        }
        expect(refusal, policy).toBeUndefined();
        try {
          expect(plan.bytesByType, policy).toEqual(loaded!.info.weightBytes);
          expect(plan.fallbacks.map((f) => [f.tensor, f.requested, f.used]).sort(), policy).toEqual(
            loaded!.info.weightFallbacks.map((f) => [f.tensor, f.requested, f.used]).sort(),
          );
        } finally {
          await loaded!.close();
        }
      }
    });
  }
});
