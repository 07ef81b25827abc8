// The shadow A/B on real engines (the shipped model, one thread each): quality by teacher forcing, the interleaved
// performance replay, failure containment, and the deterministic mirror sampler.
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine, EngineError, type EngineOptions } from '../../src/engine/index.js';
import type { LiveSettings } from '../../src/tuner/types.js';
import { MirrorSampler, ShadowVerifier, type MirroredRequest, type ShadowStartOptions } from '../../src/tuner/shadow.js';
import { DEFAULT_VERIFY_CONFIG, type VerifyConfig } from '../../src/tuner/verify.js';
import { writeCorruptedModel } from '../helpers/corrupt-model.js';
import { MODEL } from '../controlplane/harness.js';
import { REPO_ROOT } from '../helpers/shared.js';

const KV_BYTES = 16 * 1024 * 1024;
const SLO = { ttftP99Seconds: 1, interTokenP99Seconds: 0.25, e2eP99Seconds: 10, errorRateBudget: 0.01 };
const CFG: VerifyConfig = { ...DEFAULT_VERIFY_CONFIG, minSamples: 20 };
const BASE: LiveSettings = {
  scheduler: { maxBatchSize: 1, maxBatchTokens: 512, maxQueueDelayMs: 2, queueGrowThreshold: 32, maxQueueLength: 256 },
  layout: { weights: 'f32', kvDtype: 'f32', tpDegree: 1, threadsPerRank: 1 },
};

let requests: MirroredRequest[] = [];
let probeTokens: number[][] = [];
let dir = '';
let corruptModel = '';

function startOpts(over: Partial<ShadowStartOptions> = {}): ShadowStartOptions {
  return { modelPath: MODEL, baseline: BASE, candidate: BASE, config: CFG, slo: SLO, kvCacheMaxBytes: KV_BYTES, probeTokens, seed: 7, ...over };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tuneloop-shadow-'));
  corruptModel = join(dir, 'corrupt.gguf');
  writeCorruptedModel(corruptModel);
  // The "primary": its generated tokens are what the shadows are teacher-forced on.
  const primary = await Engine.load({ model: MODEL, threads: 1, kvCacheMaxBytes: KV_BYTES });
  try {
    const text = readFileSync(join(REPO_ROOT, 'models', 'validation-slice.txt'), 'utf8');
    const lines = text
      .split('\n')
      .filter((l) => l.trim().length > 20)
      .slice(0, 24);
    requests = await Promise.all(
      lines.map(async (line, i) => {
        const tokens = primary.tokenize(line, { addBos: true });
        const r = await primary.generate({ tokens, maxTokens: 16, temperature: 0.8, seed: i }).result;
        return { tokens, maxTokens: 16, primaryTokens: r.tokens, temperature: 0.8, seed: i };
      }),
    );
    const all = primary.tokenize(text.slice(4000, 7000), { addBos: true });
    probeTokens = [all.slice(0, 120), all.slice(120, 240)];
  } finally {
    await primary.close();
  }
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('ShadowVerifier', () => {
  it('an identical candidate: cosine ≈ 1, full agreement, not a failure', async () => {
    let mirrored = 0;
    const sims: number[] = [];
    // A longer replay than the default: identical arms differ only by the shared box's noise, and the goodput bar
    // is ±5% (shadow.ts's design note has the A/A figures).
    const config = { ...CFG, minReplaySeconds: 6 };
    const v = await ShadowVerifier.start(startOpts({ config, onMirrored: () => mirrored++, onSimilarity: (c) => sims.push(c) }));
    try {
      expect(v.engines.baseline).toBeInstanceOf(Engine);
      expect(v.engines.candidate).toBeInstanceOf(Engine);
      for (const r of requests.slice(0, 20)) v.mirror(r);
      const t0 = performance.now();
      const ev = await v.finish({ deadlineMs: Date.now() + 40_000, observedConcurrency: 2 });
      console.log(
        `identical: finish ${((performance.now() - t0) / 1000).toFixed(2)} s, rss +${(ev.shadowCost.rssBytes / 2 ** 20).toFixed(1)} MiB, ` +
          `cpu ${ev.shadowCost.cpuSeconds.toFixed(2)} s, wall ${ev.shadowCost.wallSeconds.toFixed(2)} s; ${ev.verdict}: ${ev.reasons.join(' | ')}`,
      );
      expect(ev.mirroredRequests).toBe(20);
      expect(mirrored).toBe(20);
      expect(sims).toHaveLength(20);
      expect(ev.quality.meanCosine).toBeGreaterThan(0.99999);
      expect(ev.quality.minCosine).toBeGreaterThan(0.9999);
      expect(ev.quality.greedyAgreement).toBe(1);
      expect(ev.quality.positions).toBe(requests.slice(0, 20).reduce((n, r) => n + r.primaryTokens.length + 1, 0));
      expect(Math.abs(ev.quality.perplexityDelta)).toBeLessThan(1e-9);
      expect(ev.quality.passed).toBe(true);
      expect(ev.verdict).not.toBe('fail');
      expect(ev.method).toMatch(/interleaved/);
      expect(ev.performance.comparisons.map((c) => c.metric)).toEqual(['ttft', 'inter_token', 'e2e']);
      expect(ev.performance.comparisons.every((c) => c.baselineN >= 20 && c.candidateN >= 20)).toBe(true);
      expect(ev.shadowCost.rssBytes).toBeGreaterThan(0);
      expect(ev.shadowCost.wallSeconds).toBeGreaterThan(0);
    } finally {
      await v.close();
      await v.close(); // idempotent
    }
  });

  it('a batching candidate (maxBatchSize 8 vs 1 at concurrency 8) is faster: e2e better, pass', async () => {
    const candidate: LiveSettings = { ...BASE, scheduler: { ...BASE.scheduler, maxBatchSize: 8 } };
    const v = await ShadowVerifier.start(startOpts({ candidate }));
    try {
      for (const r of requests) v.mirror(r);
      const ev = await v.finish({ deadlineMs: Date.now() + 40_000, observedConcurrency: 8 });
      const e2e = ev.performance.comparisons.find((c) => c.metric === 'e2e')!;
      console.log(
        `batching: ${ev.verdict}; e2e median ${(e2e.candidateMedianS * 1000).toFixed(1)} vs ${(e2e.baselineMedianS * 1000).toFixed(1)} ms, ` +
          `p ${e2e.pValue.toExponential(2)}, effect ${e2e.effectSize.toFixed(2)}; goodput ${ev.performance.goodputChange.toFixed(3)}`,
      );
      expect(e2e.outcome).toBe('better');
      expect(ev.verdict).toBe('pass');
      expect(ev.reasons[0]).toMatch(/faster/);
    } finally {
      await v.close();
    }
  });

  it('a corrupted candidate model fails on quality, with the cosine in the evidence', async () => {
    const loadEngine = (o: EngineOptions, role: 'baseline' | 'candidate'): Promise<Engine> => Engine.load(role === 'candidate' ? { ...o, model: corruptModel } : o);
    const v = await ShadowVerifier.start(startOpts({ loadEngine }));
    try {
      for (const r of requests.slice(0, 20)) v.mirror(r);
      const ev = await v.finish({ deadlineMs: Date.now() + 40_000, observedConcurrency: 1 });
      console.log(
        `corrupted: cosine ${ev.quality.meanCosine.toFixed(4)} (min ${ev.quality.minCosine.toFixed(4)}), agreement ` +
          `${ev.quality.greedyAgreement.toFixed(3)}, perplexity ${ev.quality.perplexityDelta.toFixed(3)}; ${ev.reasons[0]}`,
      );
      expect(ev.verdict).toBe('fail');
      expect(ev.quality.meanCosine).toBeLessThan(0.98);
      expect(ev.quality.passed).toBe(false);
      expect(ev.reasons[0]).toContain(ev.quality.meanCosine.toFixed(4));
      expect(ev.method).toMatch(/replay skipped: quality already failed/);
    } finally {
      await v.close();
    }
  });

  it('a candidate that fails to load: start and mirror do not throw, finish fails with the error', async () => {
    const loadEngine = (o: EngineOptions, role: 'baseline' | 'candidate'): Promise<Engine> =>
      role === 'candidate' ? Promise.reject(new EngineError('MODEL_CORRUPT', 'tensor blk.0.attn_q.weight is truncated')) : Engine.load(o);
    const v = await ShadowVerifier.start(startOpts({ loadEngine }));
    try {
      expect(v.engines).toEqual({});
      expect(() => v.mirror(requests[0]!)).not.toThrow();
      expect(v.shouldMirror()).toBe(false);
      const ev = await v.finish({ deadlineMs: Date.now() + 10_000, observedConcurrency: 1 });
      expect(ev.verdict).toBe('fail');
      expect(ev.reasons[0]).toBe('The candidate shadow engine failed to load: MODEL_CORRUPT: tensor blk.0.attn_q.weight is truncated.');
    } finally {
      await v.close();
    }
  });

  it('a shadow that breaks mid-run (evaluate fails) makes finish fail, mirror never throws', async () => {
    const v = await ShadowVerifier.start(startOpts());
    try {
      await v.engines.candidate!.close(); // every later evaluate on it rejects with ENGINE_CLOSED
      for (const r of requests.slice(0, 3)) expect(() => v.mirror(r)).not.toThrow();
      const ev = await v.finish({ deadlineMs: Date.now() + 10_000, observedConcurrency: 1 });
      expect(ev.verdict).toBe('fail');
      expect(ev.reasons[0]).toMatch(/A shadow engine failed: ENGINE_CLOSED/);
    } finally {
      await v.close();
    }
  });

  it('fewer than minSamples mirrored requests by the deadline is inconclusive', async () => {
    const v = await ShadowVerifier.start(startOpts());
    try {
      for (const r of requests.slice(0, 5)) v.mirror(r);
      const ev = await v.finish({ deadlineMs: 1500, observedConcurrency: 1 }); // a duration: 1.5 s from now
      expect(ev.verdict).toBe('inconclusive');
      expect(ev.mirroredRequests).toBe(5);
      expect(ev.reasons[0]).toMatch(/Only 5 mirrored requests.*20 required/);
    } finally {
      await v.close();
    }
  });

  it('drops mirrored requests beyond maxMirrorQueue and unusable ones; shouldMirror follows the seeded sampler', async () => {
    const v = await ShadowVerifier.start(startOpts({ config: { ...CFG, maxMirrorQueue: 2 } }));
    try {
      const ref = new MirrorSampler(CFG.shadowShare, 7);
      const picks = Array.from({ length: 2000 }, () => v.shouldMirror());
      expect(picks).toEqual(Array.from({ length: 2000 }, () => ref.next()));
      for (const r of requests.slice(0, 6)) v.mirror(r);
      v.mirror({ tokens: [999_999], maxTokens: 4, primaryTokens: [] });
      expect(v.droppedCount).toBeGreaterThanOrEqual(4);
    } finally {
      await v.close();
    }
  });
});

describe('mirror sampler', () => {
  it('selects ≈ shadowShare of requests, deterministically for a seed', () => {
    const draw = (seed: number): boolean[] => {
      const s = new MirrorSampler(0.05, seed);
      return Array.from({ length: 10_000 }, () => s.next());
    };
    const a = draw(42);
    const picked = a.filter(Boolean).length;
    // Binomial(10000, 0.05): mean 500, sd 21.8; ±5 sd.
    expect(Math.abs(picked - 500)).toBeLessThan(5 * Math.sqrt(10_000 * 0.05 * 0.95));
    expect(draw(42)).toEqual(a);
    expect(draw(43)).not.toEqual(a);
  });
});
