// engine.hiddenStates (what /v1/embeddings pools): the final normed hidden state of every token is written by the
// shared output head (native/src/layers.cpp output_head), so it must land in the right rows however the scheduler
// cuts the work — chunked prefill, batches shared with other requests, tensor parallelism (rank 0 writes; every rank
// holds the whole residual) — and it must be causal: row i of a sequence is the last row of its first i + 1 tokens.
// The values themselves are checked against llama.cpp in tests/controlplane/embeddings.test.ts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine, EngineError } from '../../src/engine/index.js';
import { MODEL } from '../controlplane/harness.js';

function maxDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe('engine.hiddenStates', () => {
  let engine: Engine;
  let tokens: number[];
  let dim: number;
  beforeAll(async () => {
    engine = await Engine.load({ model: MODEL, threads: 1 });
    dim = engine.info.dim;
    tokens = engine.tokenize('Now is the winter of our discontent made glorious summer by this sun of York;');
  });
  afterAll(async () => {
    await engine?.close();
  });

  it('one row of the model width per token, causal: row i is the last row of the first i + 1 tokens', async () => {
    const h = await engine.hiddenStates(tokens);
    expect(h.length).toBe(tokens.length * dim);
    for (const i of [0, 3, tokens.length - 1]) {
      const prefix = await engine.hiddenStates(tokens.slice(0, i + 1));
      expect(maxDiff(h.slice(i * dim, (i + 1) * dim), prefix.slice(i * dim))).toBeLessThan(1e-4);
    }
    // Distinct positions give distinct states (a buffer written in the wrong rows would repeat or leave zeros).
    expect(maxDiff(h.slice(0, dim), h.slice(dim, 2 * dim))).toBeGreaterThan(1e-2);
    expect(h.slice((tokens.length - 1) * dim).some((v) => v !== 0)).toBe(true);
  });

  it('the same under chunked prefill (8 tokens a step) and beside a running generation', async () => {
    const whole = await engine.hiddenStates(tokens);
    const chunked = await Engine.load({ model: MODEL, threads: 1, scheduler: { maxBatchTokens: 8 } });
    try {
      const gen = chunked.generate({ prompt: 'ROMEO:', maxTokens: 24, temperature: 0 });
      const [a, b] = await Promise.all([chunked.hiddenStates(tokens), chunked.hiddenStates(tokens.slice(0, 5))]);
      await gen.result;
      expect(maxDiff(a, whole)).toBeLessThan(1e-4);
      expect(maxDiff(b, whole.slice(0, 5 * dim))).toBeLessThan(1e-4);
    } finally {
      await chunked.close();
    }
  });

  it('the same at tpDegree 2 as at 1', async () => {
    const whole = await engine.hiddenStates(tokens);
    const tp2 = await Engine.load({ model: MODEL, tpDegree: 2, threadsPerRank: 1, threads: 2 });
    try {
      expect(maxDiff(await tp2.hiddenStates(tokens), whole)).toBeLessThan(1e-3);
    } finally {
      await tp2.close();
    }
  });

  it('refuses what evaluate refuses: no tokens, ids outside the vocabulary, more than the context', async () => {
    for (const bad of [[], [-1], [engine.info.nVocab], Array.from({ length: engine.info.contextLength + 1 }, () => 1)]) {
      const err = await engine.hiddenStates(bad).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(EngineError);
    }
  });
});
