// Statistics for the verify stage: a two-sided Mann-Whitney U test and the similarity of two next-token
// distributions.
//
// Design note (Mann-Whitney U). Latency samples are skewed, heavy-tailed and few (tens per arm), so the stage
// compares ranks, not means. U for x counts the pairs (x_i, y_j) with x_i > y_j, ties counting one half; it is
// computed from the ranks of the pooled sample (average ranks for ties): U_x = R_x − n_x(n_x + 1)/2. The p-value
// uses the normal approximation, which is within ~0.01 of the exact distribution from about 8 per arm and is what
// scipy.stats.mannwhitneyu(method='asymptotic') gives:
//   mean μ = n_x·n_y/2,
//   variance σ² = n_x·n_y/12 · ((n+1) − Σ(t³ − t)/(n(n − 1)))   (tie correction: t = size of each tie group),
//   z = (|U_x − μ| − 0.5)/σ                                      (continuity correction, floored at 0),
//   p = 2·(1 − Φ(z)), capped at 1.
// The effect size is the rank-biserial correlation r = 2·U_x/(n_x·n_y) − 1 = P(x > y) − P(x < y): +1 when every x
// exceeds every y, −1 in the other direction, 0 for interleaved samples. With x = candidate latencies and
// y = baseline latencies, positive means the candidate is slower.
//
// Φ comes from erfc, a Chebyshev fit (Numerical Recipes' erfcc, fractional error < 1.2e-7 everywhere): the
// table-based normal CDF in simple-statistics has two decimals of z, too coarse near alpha = 0.05.

export interface MannWhitneyResult {
  nX: number;
  nY: number;
  /** U for x: pairs with x > y, ties counting one half (U for y is nX·nY − uX). */
  uX: number;
  /** Signed z of uX (positive when x tends to be larger), after the continuity correction. */
  z: number;
  /** Two-sided p-value (normal approximation with tie and continuity corrections). */
  pValue: number;
  /** Rank-biserial correlation in [-1, 1]; positive when x tends to be larger than y. */
  effectSize: number;
}

/** Two-sided Mann-Whitney U test of x against y. NaN values are ignored; NaN fields when either side is empty. */
export function mannWhitneyU(xIn: readonly number[], yIn: readonly number[]): MannWhitneyResult {
  const x = xIn.filter((v) => !Number.isNaN(v));
  const y = yIn.filter((v) => !Number.isNaN(v));
  const nX = x.length, nY = y.length, n = nX + nY;
  if (nX === 0 || nY === 0) return { nX, nY, uX: NaN, z: NaN, pValue: NaN, effectSize: NaN };

  // Pool, sort, and give tie groups their average rank (ranks are 1-based).
  const pooled = [...x.map((v) => ({ v, fromX: true })), ...y.map((v) => ({ v, fromX: false }))];
  pooled.sort((a, b) => a.v - b.v);
  let rankSumX = 0, tieTerm = 0;
  for (let i = 0; i < n; ) {
    let j = i;
    while (j + 1 < n && pooled[j + 1]!.v === pooled[i]!.v) j++;
    const t = j - i + 1;
    const avgRank = (i + 1 + j + 1) / 2;
    for (let k = i; k <= j; k++) if (pooled[k]!.fromX) rankSumX += avgRank;
    tieTerm += t * t * t - t;
    i = j + 1;
  }
  const uX = rankSumX - (nX * (nX + 1)) / 2;
  const mean = (nX * nY) / 2;
  const variance = ((nX * nY) / 12) * (n + 1 - tieTerm / (n * (n - 1)));
  const effectSize = (2 * uX) / (nX * nY) - 1;
  // All values equal: no evidence of any difference.
  if (!(variance > 0)) return { nX, nY, uX, z: 0, pValue: 1, effectSize };
  const zAbs = Math.max(0, Math.abs(uX - mean) - 0.5) / Math.sqrt(variance);
  const pValue = Math.min(1, erfc(zAbs / Math.SQRT2));
  return { nX, nY, uX, z: Math.sign(uX - mean) * zAbs, pValue, effectSize };
}

/** Complementary error function (Numerical Recipes' erfcc: fractional error < 1.2e-7). */
export function erfc(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r =
    t *
    Math.exp(
      -z * z - 1.26551223 +
        t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 +
        t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? r : 2 - r;
}

/** Standard normal CDF Φ(z). */
export function normalCdf(z: number): number {
  return 0.5 * erfc(-z / Math.SQRT2);
}

/** Softmax in float64, shifted by the maximum so that large logits neither overflow nor lose the small ones. */
export function softmax(logits: ArrayLike<number>): Float64Array {
  const n = logits.length;
  const out = new Float64Array(n);
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (logits[i]! > max) max = logits[i]!;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const e = Math.exp(logits[i]! - max);
    out[i] = e;
    sum += e;
  }
  for (let i = 0; i < n; i++) out[i]! /= sum;
  return out;
}

/** Cosine similarity of two equal-length vectors; NaN when either is all zeros. */
export function cosineSimilarity(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`cosineSimilarity: lengths differ (${a.length} vs ${b.length})`);
  let dot = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  return dot / Math.sqrt(na * nb);
}

/** Index of the largest value (the first one on ties). */
export function argmax(v: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i]! > v[best]!) best = i;
  return best;
}

/** Compare two logit rows as next-token distributions: cosine of their softmaxes, and whether the greedy picks agree. */
export function compareLogitRows(a: ArrayLike<number>, b: ArrayLike<number>): { cosine: number; greedyAgrees: boolean } {
  return { cosine: cosineSimilarity(softmax(a), softmax(b)), greedyAgrees: argmax(a) === argmax(b) };
}
