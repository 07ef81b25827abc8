// How alike two next-token distributions are: the verify stage's teacher-forced quality check compares the
// baseline's and the candidate's logit rows position by position.

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
  let dot = 0,
    na = 0,
    nb = 0;
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
