// engine.generateN: n choices of one prompt. The prompt is prefilled once (by choice 0); the other choices start from
// its KV blocks when its logits are ready — full blocks shared through the pool's reference counts, the partial last
// block copied — each with its own sampler (choice i: seed + i). The counters must show the sharing, and each choice
// must stay an independent request: cancel, preemption and its source ending early leave the others correct.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine, GenerationResult } from '../../src/engine/index.js';
import { SERVE_SHAPE, expectNoLeakedBlocks, greedy, load, promptOf, thrownBy, waitFor } from '../helpers/serving.js';
import { TempModels } from '../helpers/synthetic.js';
import { REPO_ROOT } from '../helpers/shared.js';
import { join } from 'node:path';

const models = new TempModels();
let model: string;
let engine: Engine;
beforeAll(async () => {
  model = models.write(SERVE_SHAPE, 'f32', 'llama', 61);
  engine = await load(model, { kvBlockSizeTokens: 16, kvCacheBlocks: 128 });
});
afterAll(async () => {
  await engine?.close();
  models.cleanup();
});

const results = (gens: { result: Promise<GenerationResult> }[]): Promise<GenerationResult[]> => Promise.all(gens.map((g) => g.result));

describe('generateN', () => {
  it('prefills the prompt once: greedy choices equal the single greedy answer, counters show the shares', async () => {
    const prompt = promptOf(101, 90); // 5 full blocks + 10 tokens
    const solo = await engine.generate(greedy(promptOf(101, 90), 12)).result; // warms nothing: a different engine below
    const fresh = await load(model, { kvBlockSizeTokens: 16, kvCacheBlocks: 128 });
    try {
      const before = fresh.stats();
      const gens = fresh.generateN(greedy(prompt, 12), 3);
      expect(new Set(gens.map((g) => g.id)).size).toBe(3);
      const rs = await results(gens);
      await expectNoLeakedBlocks(fresh);
      const after = fresh.stats();
      for (const r of rs) expect(r.tokens).toEqual(solo.tokens);
      expect(rs.map((r) => r.usage.cachedPromptTokens)).toEqual([0, 90, 90]);
      expect(rs.map((r) => r.usage.promptTokens)).toEqual([90, 90, 90]);
      expect(after.tokens.prefillComputed - before.tokens.prefillComputed, 'the prompt is computed once').toBe(90);
      expect(after.tokens.promptCached - before.tokens.promptCached).toBe(180);
      expect(after.tokens.prompt - before.tokens.prompt).toBe(270);
      expect(after.requests.finished - before.requests.finished).toBe(3);
    } finally {
      await fresh.close();
    }
  });

  it('a prompt of whole blocks shares them all (no copy needed)', async () => {
    const prompt = promptOf(102, 32);
    const solo = await engine.generate(greedy(prompt, 10)).result;
    const before = engine.stats();
    const rs = await results(engine.generateN(greedy(prompt, 10), 2));
    for (const r of rs) expect(r.tokens).toEqual(solo.tokens);
    expect(rs[1]!.usage.cachedPromptTokens).toBe(32);
    const after = engine.stats();
    // Choice 0 itself hit the prefix cache for the first block (from `solo`); choice 1 recomputed nothing.
    expect(after.tokens.prefillComputed - before.tokens.prefillComputed).toBe(32 - rs[0]!.usage.cachedPromptTokens);
    await expectNoLeakedBlocks(engine);
  });

  it('seeded sampled choices differ from each other, are reproducible, and choice i is the solo request with seed + i', async () => {
    const req = { tokens: promptOf(103, 20), maxTokens: 16, temperature: 1.2, seed: 4242, stopAtEos: false };
    const a = await results(engine.generateN(req, 3));
    const b = await results(engine.generateN(req, 3));
    expect(a.map((r) => r.tokens)).toEqual(b.map((r) => r.tokens));
    expect(new Set(a.map((r) => r.tokens.join(','))).size).toBe(3);
    for (let i = 0; i < 3; i++) expect((await engine.generate({ ...req, seed: 4242 + i }).result).tokens).toEqual(a[i]!.tokens);
    // Without a seed the choices are independent draws (different, with overwhelming probability at T = 1.2).
    const { seed: _seed, ...unseeded } = req;
    const c = await results(engine.generateN(unseeded, 3));
    expect(new Set(c.map((r) => r.tokens.join(','))).size).toBeGreaterThan(1);
  });

  it('penalties and logprobs apply per choice', async () => {
    const req = greedy(promptOf(104, 20), 10, { frequencyPenalty: 1.5, repetitionPenalty: 1.2, logprobs: 2 });
    const solo = await engine.generate(req).result;
    const rs = await results(engine.generateN(req, 3));
    for (const r of rs) {
      expect(r.tokens).toEqual(solo.tokens);
      expect(r.logprobs!.map((l) => l.logprob)).toEqual(solo.logprobs!.map((l) => l.logprob));
    }
  });

  it('cancelling one choice mid-way leaves the others to finish as they would have', async () => {
    const req = greedy(promptOf(105, 40), 20);
    const solo = await engine.generate(req).result;
    const gens = engine.generateN({ ...req, pauseAfterTokens: 3 }, 3);
    const counts = [0, 0, 0];
    gens.forEach((g, i) => {
      void (async () => {
        for await (const c of g) counts[i]! += c.tokens.length;
      })();
    });
    expect(await waitFor(() => counts.every((n) => n === 3), 3000)).toBe(true);
    gens[1]!.cancel();
    engine.resume(gens[0]!.id);
    engine.resume(gens[2]!.id);
    const rs = await results(gens);
    expect(rs[1]!.finishReason).toBe('cancelled');
    expect(rs[1]!.tokens).toEqual(solo.tokens.slice(0, 3));
    expect(rs[0]!.tokens).toEqual(solo.tokens);
    expect(rs[2]!.tokens).toEqual(solo.tokens);
    await expectNoLeakedBlocks(engine);
  });

  it('choices cancelled before the fork, and choice 0 cancelled before its prefill, leave the rest correct', async () => {
    const req = greedy(promptOf(106, 50), 8);
    const solo = await engine.generate(req).result;
    const gens = engine.generateN(req, 3);
    gens[2]!.cancel(); // still held: it never runs
    const rs = await results(gens);
    expect(rs[2]!.finishReason).toBe('cancelled');
    expect(rs[2]!.tokens).toEqual([]);
    expect(rs[0]!.tokens).toEqual(solo.tokens);
    expect(rs[1]!.tokens).toEqual(solo.tokens);

    const orphans = engine.generateN(greedy(promptOf(107, 50), 8), 3);
    orphans[0]!.cancel(); // the source goes before its prefill: the others queue on their own
    const ro = await results(orphans);
    const soloB = await engine.generate(greedy(promptOf(107, 50), 8)).result;
    expect(ro[0]!.finishReason).toBe('cancelled');
    expect(ro[1]!.tokens).toEqual(soloB.tokens);
    expect(ro[2]!.tokens).toEqual(soloB.tokens);
    await expectNoLeakedBlocks(engine);
  });

  it('choices preempted by a small pool are recomputed correctly', async () => {
    const small = await load(model, { kvBlockSizeTokens: 16, kvCacheBlocks: 8 });
    try {
      const req = greedy(promptOf(108, 40), 40); // 80 tokens: 5 blocks each; 3 choices cannot all fit 8 blocks
      const solo = await small.generate(req).result;
      const before = small.stats();
      const rs = await results(small.generateN(req, 3));
      for (const r of rs) expect(r.tokens).toEqual(solo.tokens);
      expect(small.stats().batches.preemptions - before.batches.preemptions).toBeGreaterThan(0);
      await expectNoLeakedBlocks(small);
    } finally {
      await small.close();
    }
  });

  for (const kvDtype of ['f16', 'int8'] as const) {
    it(`the copied partial block is exact with kvDtype ${kvDtype}`, async () => {
      const e = await load(model, { kvBlockSizeTokens: 16, kvCacheBlocks: 64, kvDtype });
      try {
        const req = greedy(promptOf(109, 45), 12);
        const solo = await e.generate(req).result;
        const rs = await results(e.generateN({ ...req, tokens: promptOf(110, 45) }, 3));
        const soloB = await e.generate({ ...req, tokens: promptOf(110, 45) }).result;
        expect(solo.tokens).toHaveLength(12);
        for (const r of rs) expect(r.tokens).toEqual(soloB.tokens);
        await expectNoLeakedBlocks(e);
      } finally {
        await e.close();
      }
    });
  }

  it('with a grammar every choice keeps its own matcher state (shipped model), penalties counting accepted tokens only', async () => {
    const shipped = await load(join(REPO_ROOT, 'models', 'tuneloop-shakespeare.gguf'));
    try {
      const req = { prompt: 'ROMEO:', grammar: 'root ::= ([a-z]+ " "?)+', maxTokens: 40, temperature: 1, seed: 5, frequencyPenalty: 0.8, presencePenalty: 0.5 };
      const rs = await results(shipped.generateN(req, 3));
      for (const r of rs) expect(r.text).toMatch(/^([a-z]+ ?)+$/);
      expect(new Set(rs.map((r) => r.text)).size).toBeGreaterThan(1);
      // Choice i is the solo request with seed + i: the grammar's speculative first draw never leaks into the counts.
      for (let i = 0; i < 3; i++) expect((await shipped.generate({ ...req, seed: 5 + i }).result).text).toBe(rs[i]!.text);
    } finally {
      await shipped.close();
    }
  });

  it('refuses n outside 1..16', () => {
    for (const n of [0, 17, 1.5]) expect(thrownBy(() => engine.generateN(greedy([1, 2, 3], 2), n)).message).toContain('n');
  });
});
