// Mann-Whitney U against scipy.stats.mannwhitneyu(method='asymptotic') (scipy 1.17.1: normal approximation with
// tie and continuity corrections, two-sided), and the distribution-similarity helpers.
import { describe, expect, it } from 'vitest';
import { erfc, mannWhitneyU, normalCdf } from '../../src/tuner/statistics.js';
import { argmax, compareLogitRows, cosineSimilarity, softmax } from '../../src/tuner/logit-similarity.js';

describe('mannWhitneyU', () => {
  it('matches scipy on fully separated samples', () => {
    const r = mannWhitneyU([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]);
    expect(r.uX).toBe(0);
    expect(r.pValue).toBeCloseTo(0.012185780355344813, 6);
    expect(r.effectSize).toBe(-1);
    expect(r.z).toBeLessThan(0);
  });

  it('matches scipy with ties (tie-corrected variance)', () => {
    const r = mannWhitneyU([1, 2, 2, 3, 4, 4, 4, 5], [3, 4, 5, 5, 6, 6, 7]);
    expect(r.uX).toBe(8);
    expect(r.pValue).toBeCloseTo(0.021920655864769517, 6);
  });

  it('matches scipy on overlapping samples of unequal size', () => {
    const a = mannWhitneyU([19, 22, 16, 29, 24], [20, 11, 17, 12]);
    expect(a.uX).toBe(17);
    expect(a.pValue).toBeCloseTo(0.11134688653314041, 6);
    const b = mannWhitneyU([1.1, 2.2, 3.3, 4.4, 5.5, 6.6, 7.7, 8.8, 9.9, 10.1, 11.2, 12.3], [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18]);
    expect(b.uX).toBe(36);
    expect(b.pValue).toBeCloseTo(0.014560234126405914, 6);
  });

  it('is symmetric: swapping the samples keeps p and flips U and the effect size', () => {
    const x = [3.1, 4.7, 2.2, 8.9, 5.5, 6.1, 7.3],
      y = [1.2, 2.8, 3.3, 0.9, 4.1, 2.5];
    const xy = mannWhitneyU(x, y),
      yx = mannWhitneyU(y, x);
    expect(yx.pValue).toBeCloseTo(xy.pValue, 12);
    expect(xy.uX + yx.uX).toBe(x.length * y.length);
    expect(yx.effectSize).toBeCloseTo(-xy.effectSize, 12);
    expect(xy.effectSize).toBeGreaterThan(0); // x tends to be larger
  });

  it('gives p = 1 and effect 0 for identical samples, NaN for an empty side', () => {
    const same = mannWhitneyU([2, 2, 2], [2, 2, 2, 2]);
    expect(same.pValue).toBe(1);
    expect(same.effectSize).toBe(0);
    const inter = mannWhitneyU([1, 3, 5, 7], [2, 4, 6, 8]);
    expect(inter.pValue).toBeGreaterThan(0.5);
    expect(Number.isNaN(mannWhitneyU([], [1, 2]).pValue)).toBe(true);
  });

  it('ignores NaN samples', () => {
    expect(mannWhitneyU([1, 2, NaN, 3, 4, 5], [6, 7, 8, 9, 10, NaN])).toEqual(mannWhitneyU([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]));
  });
});

describe('normal distribution helpers', () => {
  it('erfc and the normal CDF match reference values', () => {
    expect(erfc(0)).toBeCloseTo(1, 7);
    expect(erfc(1)).toBeCloseTo(0.157299207050285, 7);
    expect(erfc(-1)).toBeCloseTo(1.842700792949715, 7);
    expect(normalCdf(1.959963984540054)).toBeCloseTo(0.975, 7);
    expect(normalCdf(-3)).toBeCloseTo(0.0013498980316301, 8);
  });
});

describe('softmax and cosine', () => {
  it('softmax is a distribution and stable for large logits', () => {
    const p = softmax([1000, 1001, 1002]);
    expect(p.every((v) => Number.isFinite(v))).toBe(true);
    expect(p.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    const q = softmax([0, 1, 2]);
    for (let i = 0; i < 3; i++) expect(p[i]).toBeCloseTo(q[i]!, 12);
    const extreme = softmax(new Float32Array([-3e38, 3e38, 0]));
    expect(Array.from(extreme)).toEqual([0, 1, 0]);
  });

  it('cosine of identical distributions is 1; of near-disjoint ones it is small', () => {
    const logits = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i) * 3);
    expect(compareLogitRows(logits, logits)).toEqual({ cosine: expect.closeTo(1, 12) as number, greedyAgrees: true });
    const a = new Float32Array(64).fill(-20),
      b = new Float32Array(64).fill(-20);
    a[3] = 20;
    b[40] = 20;
    const r = compareLogitRows(a, b);
    expect(r.cosine).toBeLessThan(1e-6);
    expect(r.greedyAgrees).toBe(false);
  });

  it('cosineSimilarity checks lengths; argmax takes the first maximum', () => {
    expect(cosineSimilarity([1, 0], [0, 1])).toBe(0);
    expect(cosineSimilarity([1, 2], [2, 4])).toBeCloseTo(1, 12);
    expect(() => cosineSimilarity([1], [1, 2])).toThrow(RangeError);
    expect(argmax([1, 5, 5, 2])).toBe(1);
  });
});
