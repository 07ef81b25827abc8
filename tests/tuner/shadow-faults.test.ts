// Issue 9, Faults: a shadow engine that runs out of memory fails its verification, never the primary (the crash case,
// an engine closed under the verifier, is in shadow.test.ts). Two ways to run out, on the shipped model:
//   - at load: the candidate's KV pool cannot be allocated (kvCacheBlocks 2^24 is 824 GB: the allocation is refused);
//   - while verifying: the candidate's pool is one 16-token block, too small for any mirrored request, so its
//     teacher-forced evaluate fails with OUT_OF_MEMORY.
// Meanwhile a primary engine in the same process serves a long generation, which must finish as if nothing happened.
import { readFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine, type EngineOptions } from '../../src/engine/index.js';
import { BUILTIN_PROMPTS } from '../../src/loadgen/index.js';
import type { LiveSettings } from '../../src/tuner/types.js';
import { ShadowVerifier, type MirroredRequest, type ShadowRole } from '../../src/tuner/shadow.js';
import { DEFAULT_VERIFY_CONFIG } from '../../src/tuner/verify.js';
import { MODEL, waitFor } from '../controlplane/harness.js';

const SETTINGS: LiveSettings = {
  scheduler: { maxBatchSize: 4, maxBatchTokens: 512, maxQueueDelayMs: 2, queueGrowThreshold: 32, maxQueueLength: 256 },
  layout: { weights: 'f32', kvDtype: 'f32', tpDegree: 1, threadsPerRank: 1 },
};
const SLO = { ttftP99Seconds: 1, interTokenP99Seconds: 0.25, e2eP99Seconds: 10, errorRateBudget: 0.01 };
const HUGE_POOL_BLOCKS = 1 << 24;

// With overcommit_memory 1 the kernel grants any allocation and the pool's zero-fill would be OOM-killed instead;
// the load-time case needs the default heuristic (0) or strict accounting (2), which refuse 824 GB outright.
const overcommit = (() => {
  try {
    return readFileSync('/proc/sys/vm/overcommit_memory', 'utf8').trim();
  } catch {
    return 'unknown';
  }
})();
const refusesHugeAllocations = (overcommit === '0' || overcommit === '2') && totalmem() < 200 * 2 ** 30;

let primary: Engine;
let requests: MirroredRequest[] = [];
const LONG = { prompt: BUILTIN_PROMPTS[0]!, maxTokens: 200, temperature: 0, stopAtEos: false };
let longReference: number[] = [];

beforeAll(async () => {
  primary = await Engine.load({ model: MODEL, threads: 1, kvCacheMaxBytes: 16 * 2 ** 20 });
  requests = await Promise.all(
    BUILTIN_PROMPTS.slice(0, 6).map(async (prompt, i) => {
      const tokens = primary.tokenize(prompt, { addBos: true });
      const r = await primary.generate({ tokens, maxTokens: 24, temperature: 0.8, seed: i }).result;
      return { tokens, maxTokens: 24, primaryTokens: r.tokens };
    }),
  );
  longReference = (await primary.generate(LONG).result).tokens;
});

afterAll(async () => {
  await primary?.close();
});

/** A verification whose candidate is loaded with `candidate` options on top, while the primary serves a long
 *  generation; returns the evidence and what the primary produced meanwhile. */
async function verifyBesidePrimary(candidate: Partial<EngineOptions>) {
  const loadEngine = (o: EngineOptions, role: ShadowRole): Promise<Engine> => Engine.load(role === 'candidate' ? { ...o, ...candidate } : o);
  const failedBefore = primary.stats().requests.failed;
  const live = primary.generate(LONG).result;
  const v = await ShadowVerifier.start({
    modelPath: MODEL,
    baseline: SETTINGS,
    candidate: SETTINGS,
    config: { ...DEFAULT_VERIFY_CONFIG, minSamples: 4 },
    slo: SLO,
    kvCacheMaxBytes: 16 * 2 ** 20,
    probeTokens: [],
    seed: 3,
    loadEngine,
  });
  try {
    for (const r of requests) v.mirror(r);
    const evidence = await v.finish({ deadlineMs: Date.now() + 20_000, observedConcurrency: 2 });
    const served = await live;
    return { evidence, served, primaryFailures: primary.stats().requests.failed - failedBefore };
  } finally {
    await v.close();
  }
}

describe('a shadow engine out of memory', () => {
  it.skipIf(!refusesHugeAllocations)(`at load (KV pool of ${HUGE_POOL_BLOCKS} blocks): verification fails with OUT_OF_MEMORY, the primary serves on`, async () => {
    const { evidence, served, primaryFailures } = await verifyBesidePrimary({ kvCacheBlocks: HUGE_POOL_BLOCKS });
    expect(evidence.verdict).toBe('fail');
    expect(evidence.reasons[0]).toMatch(/^The candidate shadow engine failed to load: OUT_OF_MEMORY: cannot allocate \d+ bytes\.$/);
    expect(evidence.mirroredRequests).toBe(0);
    expect(served.tokens).toEqual(longReference);
    expect(primaryFailures).toBe(0);
  });

  it('while verifying (a one-block KV pool): verification fails with OUT_OF_MEMORY, the primary serves on', async () => {
    const { evidence, served, primaryFailures } = await verifyBesidePrimary({ kvCacheBlocks: 1 });
    expect(evidence.verdict).toBe('fail');
    expect(evidence.reasons[0]).toMatch(/^A shadow engine failed: OUT_OF_MEMORY: the KV cache \(1 blocks of 16 tokens\) cannot hold a sequence of \d+ tokens/);
    expect(evidence.mirroredRequests).toBe(0);
    expect(evidence.method).toMatch(/replay skipped/);
    expect(served.tokens).toEqual(longReference);
    expect(served.finishReason).toBe('length');
    expect(primaryFailures).toBe(0);
    // The primary's own pool is untouched: everything it held is back (stats are published after each engine step,
    // a moment after the result).
    expect(await waitFor(() => primary.stats().kvCache.blocksUsed === 0, 2000)).toBe(true);
  });
});
