// A real trained model (../shared/models/stories260K-f32.gguf, TinyStories, llama tokenizer). Skipped when absent.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../../src/engine/index.js';
import { STORIES_260K, TINY_SHAKESPEARE } from '../helpers/shared.js';

describe.skipIf(!STORIES_260K)('stories260K (real trained llama)', () => {
  let engine: Engine;
  beforeAll(async () => {
    engine = await Engine.load({ model: STORIES_260K!, weights: 'f32', threads: 2 });
  });
  afterAll(async () => engine?.close());

  it('reads the model shape from GGUF metadata', () => {
    expect(engine.info).toMatchObject({ architecture: 'llama', dim: 64, nLayers: 5, nHeads: 8, nKvHeads: 4, ffnDim: 172, nVocab: 512, tokenizer: { model: 'llama' } });
  });

  it('tokenizer round-trips text, including bytes it has no token for', () => {
    for (const s of ['Once upon a time', '  two leading spaces', 'Lily and Tom\nwent out.', 'naïve café — 😀 ok', 'x']) {
      const ids = engine.tokenize(s, { addBos: true });
      expect(ids[0]).toBe(engine.info.bos);
      expect(engine.detokenize(ids)).toBe(s);
    }
  });

  it('greedy generation from "Once upon a time" is fluent English', async () => {
    const gen = engine.generate({ prompt: 'Once upon a time', maxTokens: 60, temperature: 0 });
    let streamed = '';
    for await (const c of gen) streamed += c.text;
    const r = await gen.result;
    expect(streamed).toBe(r.text);
    const words = r.text.trim().split(/\s+/);
    expect(words.length).toBeGreaterThan(20);
    // Fluent TinyStories English: mostly dictionary-like lowercase words, common function words present.
    const common = ['the', 'a', 'was', 'and', 'to', 'she', 'he', 'her', 'his', 'named', 'little', 'there'];
    const hits = words.filter((w) => common.includes(w.toLowerCase().replace(/[^a-z]/g, ''))).length;
    expect(hits / words.length).toBeGreaterThan(0.15);
    expect(r.text).toMatch(/^[\x20-\x7e\n]+$/);
    console.log(`stories260K greedy: Once upon a time${r.text}`);
  });

  it('greedy decoding is deterministic and seeded sampling is reproducible', async () => {
    const a = await engine.generate({ prompt: 'Once upon a time', maxTokens: 20, temperature: 0 }).result;
    const b = await engine.generate({ prompt: 'Once upon a time', maxTokens: 20, temperature: 0 }).result;
    expect(a.tokens).toEqual(b.tokens);
    const s1 = await engine.generate({ prompt: 'The cat', maxTokens: 20, temperature: 1, seed: 7 }).result;
    const s2 = await engine.generate({ prompt: 'The cat', maxTokens: 20, temperature: 1, seed: 7 }).result;
    const s3 = await engine.generate({ prompt: 'The cat', maxTokens: 20, temperature: 1, seed: 8 }).result;
    expect(s1.tokens).toEqual(s2.tokens);
    expect(s1.tokens).not.toEqual(s3.tokens);
  });

  it('greedy tokens are the argmax of the model logits', async () => {
    const prompt = engine.tokenize('Once upon a time', { addBos: true });
    const r = await engine.generate({ tokens: prompt, maxTokens: 5, temperature: 0, stopAtEos: false }).result;
    const ctx = [...prompt];
    for (const t of r.tokens) {
      const logits = await engine.evaluate(ctx);
      let best = 0;
      for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
      expect(t).toBe(best);
      ctx.push(t);
    }
  });

  it('stops at a stop sequence and never emits it', async () => {
    const free = await engine.generate({ prompt: 'Once upon a time', maxTokens: 60, temperature: 0 }).result;
    const cut = free.text.indexOf(' the ');
    expect(cut).toBeGreaterThan(0);
    const r = await engine.generate({ prompt: 'Once upon a time', maxTokens: 60, temperature: 0, stop: [' the '] }).result;
    expect(r.finishReason).toBe('stop');
    expect(r.text).toBe(free.text.slice(0, cut));
  });

  it('reports logprobs that agree with the logits', async () => {
    const r = await engine.generate({ prompt: 'Once upon a time', maxTokens: 3, temperature: 0, logprobs: 3 }).result;
    expect(r.logprobs).toHaveLength(3);
    for (const lp of r.logprobs!) {
      expect(lp.logprob).toBeLessThanOrEqual(0);
      expect(lp.top).toHaveLength(3);
      expect(lp.top[0]!.token).toBe(lp.token); // greedy picks the most likely token
      expect(lp.top[0]!.logprob).toBeCloseTo(lp.logprob, 5);
      expect(lp.top[1]!.logprob).toBeLessThanOrEqual(lp.top[0]!.logprob);
    }
  });

  it.skipIf(!TINY_SHAKESPEARE)('perplexity on a slice of tinyshakespeare is finite and near 100', async () => {
    const text = readFileSync(TINY_SHAKESPEARE!, 'utf8').slice(0, 2000);
    const ids = engine.tokenize(text, { addBos: true }).slice(0, 400);
    const { perplexity } = await engine.perplexity(ids);
    console.log(`stories260K perplexity on tinyshakespeare[0:400 tokens]: ${perplexity.toFixed(1)}`);
    expect(Number.isFinite(perplexity)).toBe(true);
    // A 260K-parameter children's-story model on Shakespeare: far better than uniform (512), order 100.
    expect(perplexity).toBeGreaterThan(20);
    expect(perplexity).toBeLessThan(400);
  });

  it('int8 and int4 keep the next-token distribution close to f32 (ragged 172-wide rows)', async () => {
    const ids = engine.tokenize('Once upon a time, there was a little girl named Lily.', { addBos: true });
    const ref = await engine.evaluate(ids, { allLogits: true });
    for (const [weights, bar] of [
      ['int8', 0.995],
      ['int4', 0.95],
      ['bf16', 0.9995],
      ['mixed', 0.995],
    ] as const) {
      const q = await Engine.load({ model: STORIES_260K!, weights, threads: 2 });
      try {
        const got = await q.evaluate(ids, { allLogits: true });
        let dot = 0,
          na = 0,
          nb = 0;
        for (let i = 0; i < ref.length; i++) {
          dot += ref[i]! * got[i]!;
          na += ref[i]! ** 2;
          nb += got[i]! ** 2;
        }
        const cos = dot / Math.sqrt(na * nb);
        console.log(`stories260K ${weights} vs f32 logits cosine: ${cos.toFixed(5)}`);
        expect(cos).toBeGreaterThan(bar);
      } finally {
        await q.close();
      }
    }
  });
});
