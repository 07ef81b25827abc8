// The statistical tests of the tuner, in one place: the analyze stage's one-sided tests (a one-sample t-test, Welch's
// t-test, an exact binomial tail, a regression-slope t-test, a CUSUM change point confirmed by Welch) and the verify
// stage's two-sided Mann-Whitney U.
//
// Student's t CDF is computed here (regularized incomplete beta, Numerical Recipes' continued fraction): simple-
// statistics gives t statistics but no t distribution.
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

import { gammaln, linearRegression, linearRegressionLine, mean, rSquared, sampleVariance } from 'simple-statistics';

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
  const nX = x.length,
    nY = y.length,
    n = nX + nY;
  if (nX === 0 || nY === 0) return { nX, nY, uX: NaN, z: NaN, pValue: NaN, effectSize: NaN };

  // Pool, sort, and give tie groups their average rank (ranks are 1-based).
  const pooled = [...x.map((v) => ({ v, fromX: true })), ...y.map((v) => ({ v, fromX: false }))];
  pooled.sort((a, b) => a.v - b.v);
  let rankSumX = 0,
    tieTerm = 0;
  for (let i = 0; i < n;) {
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
      -z * z -
        1.26551223 +
        t *
          (1.00002368 +
            t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? r : 2 - r;
}

/** Standard normal CDF Φ(z). */
export function normalCdf(z: number): number {
  return 0.5 * erfc(-z / Math.SQRT2);
}

// ---- one-sided tests (analyze) ------------------------------------------------------------------------------------------------

/** Regularized incomplete beta I_x(a, b) (continued fraction, modified Lentz). */
function incompleteBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const front = Math.exp(gammaln(a + b) - gammaln(a) - gammaln(b) + a * Math.log(x) + b * Math.log(1 - x));
  // The fraction converges fast for x < (a+1)/(a+b+2); use the symmetry relation otherwise.
  if (x > (a + 1) / (a + b + 2)) return 1 - incompleteBeta(1 - x, b, a);
  const tiny = 1e-300;
  let c = 1,
    d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let f = d;
  for (let m = 1; m <= 300; m++) {
    const m2 = 2 * m;
    let num = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + num * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + num / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    f *= d * c;
    num = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + num * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + num / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const delta = d * c;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-12) break;
  }
  return (front * f) / a;
}

/** P(T > t) for Student's t with `df` degrees of freedom. */
export function studentTUpperTail(t: number, df: number): number {
  if (Number.isNaN(t) || !(df > 0)) return NaN;
  if (t === Infinity) return 0;
  if (t === -Infinity) return 1;
  const tail = 0.5 * incompleteBeta(df / (df + t * t), df / 2, 0.5);
  return t > 0 ? tail : 1 - tail;
}

export interface TestResult {
  n: number;
  statistic: number;
  pValue: number;
}

/** One-sided one-sample t-test, H1: mean > mu0. Identical values: p 0 when above mu0, else 1. */
export function tTestGreater(values: readonly number[], mu0: number): TestResult & { mean: number } {
  const n = values.length;
  if (n < 2) return { n, mean: n ? values[0]! : NaN, statistic: NaN, pValue: NaN };
  const m = mean([...values]);
  const se = Math.sqrt(sampleVariance([...values]) / n);
  if (!(se > 0)) return { n, mean: m, statistic: m > mu0 ? Infinity : -Infinity, pValue: m > mu0 ? 0 : 1 };
  const t = (m - mu0) / se;
  return { n, mean: m, statistic: t, pValue: studentTUpperTail(t, n - 1) };
}

/** One-sided Welch t-test, H1: mean(after) > mean(before). */
export function welchGreater(after: readonly number[], before: readonly number[]): TestResult {
  const n1 = after.length,
    n2 = before.length;
  if (n1 < 2 || n2 < 2) return { n: n1 + n2, statistic: NaN, pValue: NaN };
  const m1 = mean([...after]),
    m2 = mean([...before]);
  const v1 = sampleVariance([...after]) / n1,
    v2 = sampleVariance([...before]) / n2;
  const se = Math.sqrt(v1 + v2);
  if (!(se > 0)) return { n: n1 + n2, statistic: m1 > m2 ? Infinity : -Infinity, pValue: m1 > m2 ? 0 : 1 };
  const t = (m1 - m2) / se;
  const df = (v1 + v2) ** 2 / (v1 ** 2 / (n1 - 1) + v2 ** 2 / (n2 - 1));
  return { n: n1 + n2, statistic: t, pValue: studentTUpperTail(t, df) };
}

/** Exact one-sided binomial test: P(X ≥ k) for X ~ Binomial(n, p0). */
export function binomialUpperTail(k: number, n: number, p0: number): number {
  if (k <= 0) return 1;
  if (k > n) return 0;
  if (p0 <= 0) return 0;
  if (p0 >= 1) return 1;
  // pmf(k) in log space, then the recurrence pmf(i+1) = pmf(i)·(n−i)/(i+1)·p/(1−p) up the tail.
  let term = Math.exp(gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1) + k * Math.log(p0) + (n - k) * Math.log1p(-p0));
  let sum = 0;
  for (let i = k; i <= n; i++) {
    sum += term;
    if (term < sum * 1e-15) break;
    term *= ((n - i) / (i + 1)) * (p0 / (1 - p0));
  }
  return Math.min(1, sum);
}

/** Least-squares slope with its one-sided t-test (H1: slope > 0). */
export function slopeTest(xs: readonly number[], ys: readonly number[]): TestResult & { slope: number; intercept: number; rSquared: number } {
  const n = xs.length;
  const points = xs.map((x, i): [number, number] => [x, ys[i]!]);
  const { m, b } = linearRegression(points);
  const line = linearRegressionLine({ m, b });
  const r2 = rSquared(points, line);
  const meanX = mean([...xs]);
  const sxx = xs.reduce((a, v) => a + (v - meanX) ** 2, 0);
  const sse = points.reduce((a, [x, y]) => a + (y - line(x)) ** 2, 0);
  const base = { n, slope: m, intercept: b, rSquared: r2 };
  if (n < 3 || !(sxx > 0)) return { ...base, statistic: NaN, pValue: NaN };
  const se = Math.sqrt(sse / (n - 2) / sxx);
  if (!(se > 0)) return { ...base, statistic: m > 0 ? Infinity : -Infinity, pValue: m > 0 ? 0 : 1 };
  const t = m / se;
  return { ...base, statistic: t, pValue: studentTUpperTail(t, n - 2) };
}

/** CUSUM change point: the split that maximises |Σ(x − mean)| before it, tested after > before (Welch). Needs two
 *  windows on each side. */
export function changePoint(values: readonly number[]): { index: number; before: number; after: number; pValue: number } | undefined {
  const n = values.length;
  if (n < 4) return undefined;
  const m = mean([...values]);
  let cusum = 0,
    best = -1,
    bestAbs = -1;
  for (let k = 1; k < n; k++) {
    cusum += values[k - 1]! - m;
    if (k >= 2 && k <= n - 2 && Math.abs(cusum) > bestAbs) {
      bestAbs = Math.abs(cusum);
      best = k;
    }
  }
  if (best < 0) return undefined;
  const before = values.slice(0, best),
    after = values.slice(best);
  return { index: best, before: mean(before), after: mean(after), pValue: welchGreater(after, before).pValue };
}
