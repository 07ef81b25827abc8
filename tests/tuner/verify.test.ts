// decideVerdict and its helpers on constructed evidence: one case per rule (rules at the top of verify.ts).
import { describe, expect, it } from 'vitest';
import type { DistributionComparison, RequestSample } from '../../src/tuner/types.js';
import { DEFAULT_CONFIG } from '../../src/config/schema.js';
import {
  compareLatency,
  decideVerdict,
  DEFAULT_MAX_MIRROR_QUEUE,
  DEFAULT_MIN_REPLAY_SECONDS,
  DEFAULT_VERIFY_CONFIG,
  goodputEvidence,
  goodputPerCore,
  meetsSlo,
  qualityPassed,
  verifyConfigFrom,
  type GoodputEvidence,
  type QualityEvidence,
} from '../../src/tuner/verify.js';

const cfg = DEFAULT_VERIFY_CONFIG;
const SLO = { ttftP99Seconds: 1, interTokenP99Seconds: 0.25, e2eP99Seconds: 10, errorRateBudget: 0.01 };

function quality(over: Partial<QualityEvidence> = {}): QualityEvidence {
  return {
    positions: 400,
    meanCosine: 0.9999,
    minCosine: 0.999,
    greedyAgreement: 1,
    baselinePerplexity: 28.37,
    candidatePerplexity: 28.38,
    perplexityDelta: 0.0004,
    passed: true,
    ...over,
  };
}

function cmp(metric: DistributionComparison['metric'], outcome: DistributionComparison['outcome'], n = 24): DistributionComparison {
  const effectSize = outcome === 'better' ? -0.8 : outcome === 'worse' ? 0.8 : 0.05;
  return {
    metric,
    baselineN: n,
    candidateN: n,
    baselineMedianS: 0.1,
    candidateMedianS: outcome === 'better' ? 0.05 : outcome === 'worse' ? 0.2 : 0.1,
    relativeChange: outcome === 'better' ? -0.5 : outcome === 'worse' ? 1 : 0,
    u: 100,
    pValue: outcome === 'same' ? 0.6 : 1e-5,
    effectSize,
    outcome,
  };
}

function comps(o: Partial<Record<DistributionComparison['metric'], DistributionComparison['outcome']>> = {}, n = 24): DistributionComparison[] {
  return [cmp('ttft', o.ttft ?? 'same', n), cmp('inter_token', o.inter_token ?? 'same', n), cmp('e2e', o.e2e ?? 'same', n)];
}

function gp(change: number): GoodputEvidence {
  return { baselineGoodputPerCore: 100, candidateGoodputPerCore: 100 * (1 + change), goodputChange: change };
}

describe('defaults', () => {
  it("are the config schema's verify defaults (one copy), less the deadline and seed, plus the replay knobs", () => {
    const { timeoutSeconds: _t, seed: _s, ...section } = DEFAULT_CONFIG.verify;
    expect(DEFAULT_VERIFY_CONFIG).toEqual({ ...section, maxMirrorQueue: DEFAULT_MAX_MIRROR_QUEUE, minReplaySeconds: DEFAULT_MIN_REPLAY_SECONDS });
    expect(DEFAULT_VERIFY_CONFIG).toMatchObject({ shadowShare: 0.05, similarityBar: 0.98 });
    expect(Object.isFrozen(DEFAULT_VERIFY_CONFIG)).toBe(true);
    expect(verifyConfigFrom({ ...DEFAULT_CONFIG.verify, similarityBar: 0.9 })).toEqual({ ...section, similarityBar: 0.9, maxMirrorQueue: 256 });
  });
});

describe('decideVerdict', () => {
  it('rule 1: quality below the cosine bar fails, with the figures in the reason', () => {
    const d = decideVerdict(quality({ meanCosine: 0.91, minCosine: 0.4 }), comps({ e2e: 'better' }), gp(0.5), 30, cfg, true);
    expect(d.verdict).toBe('fail');
    expect(d.reasons.join(' ')).toMatch(/0\.9100.*below the bar of 0\.98/);
  });

  it('rule 1: greedy agreement and perplexity bars fail too, even with few samples', () => {
    expect(decideVerdict(quality({ greedyAgreement: 0.85 }), [], gp(0), 3, cfg, false).reasons[0]).toMatch(/85\.0%.*90\.0%/);
    const ppl = decideVerdict(quality({ candidatePerplexity: 30.5, perplexityDelta: 0.075 }), comps(), gp(0), 30, cfg, false);
    expect(ppl.verdict).toBe('fail');
    expect(ppl.reasons[0]).toMatch(/\+7\.5%.*28\.370 → 30\.500/);
  });

  it('rule 1: unmeasured quality (NaN) is not a failure', () => {
    const q = quality({ positions: 0, meanCosine: NaN, minCosine: NaN, greedyAgreement: NaN, perplexityDelta: NaN, passed: false });
    expect(decideVerdict(q, [], gp(NaN), 0, cfg, true).verdict).toBe('inconclusive');
  });

  it('rule 2: too few mirrored requests or replayed requests is inconclusive', () => {
    const few = decideVerdict(quality(), comps({ e2e: 'better' }), gp(0.5), 12, cfg, true);
    expect(few.verdict).toBe('inconclusive');
    expect(few.reasons[0]).toMatch(/Only 12 mirrored requests.*20/);
    const short = decideVerdict(quality(), comps({ e2e: 'better' }, 8), gp(0.5), 30, cfg, true);
    expect(short.verdict).toBe('inconclusive');
    expect(short.reasons[0]).toMatch(/Only 8 replayed requests per arm/);
    expect(decideVerdict(quality(), [], gp(0.5), 30, cfg, true).verdict).toBe('inconclusive');
  });

  it('rule 3: a significantly worse latency without a goodput gain fails', () => {
    const d = decideVerdict(quality(), comps({ ttft: 'worse' }), gp(0.01), 30, cfg, false);
    expect(d.verdict).toBe('fail');
    expect(d.reasons[0]).toMatch(/ttft is significantly worse: median 200\.0 ms vs 100\.0 ms.*\+100\.0%.*p = 1\.00e-5/);
  });

  it('rule 3: a worse latency paid for with more goodput is not a regression', () => {
    const d = decideVerdict(quality(), comps({ ttft: 'worse', e2e: 'better' }), gp(0.3), 30, cfg, true);
    expect(d.verdict).toBe('pass');
  });

  it('rule 3: goodput per core lower by more than the A/A noise (20%) fails on its own', () => {
    const d = decideVerdict(quality(), comps(), gp(-0.25), 30, cfg, false);
    expect(d.verdict).toBe('fail');
    expect(d.reasons[0]).toMatch(/75\.0 vs 100\.0 tokens\/s\/core baseline \(-25\.0%\).*lower by more than 20\.0%/);
    // Within the noise and no latency metric significantly worse: not a regression.
    expect(decideVerdict(quality(), comps(), gp(-0.15), 30, cfg, false).verdict).toBe('pass');
    // With a significant latency regression beside it, a smaller drop fails.
    expect(decideVerdict(quality(), comps({ e2e: 'worse' }), gp(-0.06), 30, cfg, false).verdict).toBe('fail');
  });

  it('rule 4 (expectFaster): passes on +5% goodput or a better e2e, else inconclusive', () => {
    expect(decideVerdict(quality(), comps(), gp(0.06), 30, cfg, true).verdict).toBe('pass');
    const e2e = decideVerdict(quality(), comps({ e2e: 'better' }), gp(0.02), 30, cfg, true);
    expect(e2e.verdict).toBe('pass');
    expect(e2e.reasons.join(' ')).toMatch(/e2e is significantly better/);
    const flat = decideVerdict(quality(), comps(), gp(0.02), 30, cfg, true);
    expect(flat.verdict).toBe('inconclusive');
    expect(flat.reasons[0]).toMatch(/No measurable gain.*\+2\.0%/);
  });

  it('rule 4 (not expectFaster): quality held and no regression passes', () => {
    const d = decideVerdict(quality(), comps(), gp(0), 30, cfg, false);
    expect(d.verdict).toBe('pass');
    expect(d.reasons.join(' ')).toMatch(/mean cosine 0\.9999/);
  });
});

describe('helpers', () => {
  it('qualityPassed needs measured positions and every bar', () => {
    expect(qualityPassed(quality(), cfg)).toBe(true);
    expect(qualityPassed(quality({ positions: 0 }), cfg)).toBe(false);
    expect(qualityPassed(quality({ meanCosine: 0.97 }), cfg)).toBe(false);
  });

  it('compareLatency calls a clear slowdown worse and small samples same', () => {
    const base = Array.from({ length: 25 }, (_, i) => 0.1 + i * 0.001);
    const slow = base.map((v) => v * 1.5);
    const c = compareLatency('e2e', base, slow, cfg);
    expect(c.outcome).toBe('worse');
    expect(c.effectSize).toBe(1);
    expect(c.relativeChange).toBeCloseTo(0.5, 9);
    expect(compareLatency('e2e', slow, base, cfg).outcome).toBe('better');
    expect(compareLatency('e2e', base.slice(0, 10), slow.slice(0, 10), cfg).outcome).toBe('same');
    expect(compareLatency('e2e', base, base, cfg).outcome).toBe('same');
  });

  it('goodput counts only SLO-meeting tokens, per wall second per core', () => {
    const s = (e2eS: number, interTokenS = 0.01): RequestSample => ({
      atMs: 0,
      ok: true,
      queueS: 0,
      ttftS: 0.05,
      interTokenS,
      e2eS,
      promptTokens: 4,
      completionTokens: 10,
    });
    expect(meetsSlo(s(1, NaN), SLO)).toBe(true);
    expect(meetsSlo(s(11), SLO)).toBe(false);
    expect(goodputPerCore([s(1), s(11), s(2, 0.3)], 2, 1, SLO)).toBe(5);
    expect(goodputEvidence(5, 6).goodputChange).toBeCloseTo(0.2, 12);
    expect(goodputEvidence(0, 6).goodputChange).toBe(Infinity);
    expect(Number.isNaN(goodputEvidence(0, 0).goodputChange)).toBe(true);
  });
});
