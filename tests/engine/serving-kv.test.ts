// The paged KV cache: prefix caching of repeated prompts, preemption (by recomputation) when the pool is too small
// for every running sequence, no block leaked whatever way a request ends, and KV storage in f16 / int8.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EngineError } from '../../src/engine/index.js';
import {
  SERVE_SHAPE,
  argmaxRows,
  cosine,
  expectBlocksAddUp,
  expectNoLeakedBlocks,
  greedy,
  load,
  promptOf,
  rejectionOf,
  runAlone,
  sleep,
  waitFor,
} from '../helpers/serving.js';
import { TempModels } from '../helpers/synthetic.js';

const models = new TempModels();
let model: string;
beforeAll(() => {
  model = models.write(SERVE_SHAPE, 'f32', 'llama', 21);
});
afterAll(() => models.cleanup());

describe('prefix cache', () => {
  it('a repeated long prompt reuses cached blocks and gives the same greedy output', async () => {
    const engine = await load(model, { kvBlockSizeTokens: 16, kvCacheBlocks: 64 });
    try {
      const prompt = promptOf(1, 90); // 5 full blocks + 10 tokens
      const first = await engine.generate(greedy(prompt, 12)).result;
      expect(first.usage.cachedPromptTokens).toBe(0);
      await expectNoLeakedBlocks(engine); // also lets the loop publish the pool's state after the last step
      const s1 = engine.stats();
      expect(s1.kvCache.blocksCached, 'the finished prompt stays cached').toBeGreaterThanOrEqual(5);

      const second = await engine.generate(greedy(prompt, 12)).result;
      await expectNoLeakedBlocks(engine);
      const s2 = engine.stats();
      console.log(`repeat of a 90-token prompt: cachedPromptTokens ${second.usage.cachedPromptTokens}, prefix hits ${s2.kvCache.prefixHits}/${s2.kvCache.prefixQueries}`);
      expect(second.usage.cachedPromptTokens).toBe(80); // every full block of the prompt
      expect(s2.kvCache.prefixHits - s1.kvCache.prefixHits).toBe(5);
      expect(s2.tokens.promptCached - s1.tokens.promptCached).toBe(80);
      expect(s2.tokens.prefillComputed - s1.tokens.prefillComputed).toBe(10);
      expect(second.tokens).toEqual(first.tokens);

      // A prompt that shares only the first two blocks hits exactly those.
      const forked = [...prompt.slice(0, 40), ...promptOf(2, 50).slice(1)];
      const third = await engine.generate(greedy(forked, 12)).result;
      expect(third.usage.cachedPromptTokens).toBe(32);
      // ...and its output is that of the same prompt on a cold engine.
      const cold = await load(model, { kvBlockSizeTokens: 16, kvCacheBlocks: 64 });
      try {
        expect(third.tokens).toEqual((await cold.generate(greedy(forked, 12)).result).tokens);
      } finally {
        await cold.close();
      }
      await expectNoLeakedBlocks(engine);
    } finally {
      await engine.close();
    }
  });

  it('concurrent requests with a shared system prompt share its blocks', async () => {
    const engine = await load(model, { kvBlockSizeTokens: 16, kvCacheBlocks: 64 });
    try {
      const system = promptOf(3, 64);
      // Warm the cache with the system prompt, then 6 different questions after it, at once.
      await engine.generate(greedy([...system, 7], 1)).result;
      const reqs = Array.from({ length: 6 }, (_, i) => greedy([...system, ...promptOf(10 + i, 9).slice(1)], 10));
      const rs = await Promise.all(reqs.map((r) => engine.generate(r).result));
      for (const r of rs) expect(r.usage.cachedPromptTokens).toBe(64);
      const cold = await load(model, { kvBlockSizeTokens: 16, kvCacheBlocks: 64 });
      try {
        const alone = await runAlone(cold, reqs);
        rs.forEach((r, i) => expect(r.tokens, `request ${i}`).toEqual(alone[i]!.tokens));
      } finally {
        await cold.close();
      }
      await expectNoLeakedBlocks(engine);
    } finally {
      await engine.close();
    }
  });
});

describe('preemption when the pool is tiny', () => {
  it('requests that do not all fit are preempted and recomputed, and each still gives its greedy output', async () => {
    // Each request: 20 prompt + 40 new tokens = 60 tokens = 4 blocks of 16. The pool: 6 blocks, about 1.5 sequences.
    const reqs = Array.from({ length: 5 }, (_, i) => greedy(promptOf(40 + i, 20), 40));
    const roomy = await load(model, { kvBlockSizeTokens: 16, kvCacheBlocks: 64 });
    const alone = await runAlone(roomy, reqs);
    await roomy.close();

    const engine = await load(model, { kvBlockSizeTokens: 16, kvCacheBlocks: 6, scheduler: { maxBatchSize: 8, maxQueueDelayMs: 5 } });
    try {
      const gens = reqs.map((r) => engine.generate(r));
      // Every stream delivers its tokens exactly once, in order, even when its sequence is recomputed.
      const streamed = await Promise.all(
        gens.map(async (g) => {
          const toks: number[] = [];
          for await (const c of g) toks.push(...c.tokens);
          return toks;
        }),
      );
      const rs = await Promise.all(gens.map((g) => g.result));
      const s = engine.stats();
      console.log(`6-block pool, 5 x 60-token requests: ${s.batches.preemptions} preemptions, ${s.batches.steps} steps, prefix hits ${s.kvCache.prefixHits}`);
      expect(s.batches.preemptions).toBeGreaterThan(0);
      for (let i = 0; i < reqs.length; i++) {
        expect(rs[i]!.finishReason, `request ${i}`).toBe('length');
        expect(rs[i]!.tokens, `request ${i} vs alone`).toEqual(alone[i]!.tokens);
        expect(streamed[i], `request ${i} stream`).toEqual(rs[i]!.tokens);
        expect(rs[i]!.usage.completionTokens).toBe(40);
      }
      expect(s.requests.finished).toBe(5);
      expect(s.requests.failed).toBe(0);
      await expectNoLeakedBlocks(engine);
    } finally {
      await engine.close();
    }
  });

  it('evaluate() under preemption still returns the logits of a clean pass', async () => {
    const tokens = promptOf(50, 70);
    const roomy = await load(model, { kvBlockSizeTokens: 16, kvCacheBlocks: 64 });
    const ref = await roomy.evaluate(tokens, { allLogits: true });
    await roomy.close();
    const engine = await load(model, { kvBlockSizeTokens: 16, kvCacheBlocks: 7, scheduler: { maxBatchTokens: 16 } });
    try {
      // Two generations compete for the 7 blocks while a 70-token evaluation (5 blocks) is prefilled in 16-token chunks.
      const gens = [0, 1].map((i) => engine.generate(greedy(promptOf(60 + i, 20), 40)));
      const logits = await engine.evaluate(tokens, { allLogits: true });
      await Promise.all(gens.map((g) => g.result));
      expect(logits.length).toBe(ref.length);
      expect(argmaxRows(logits, SERVE_SHAPE.nVocab)).toEqual(argmaxRows(ref, SERVE_SHAPE.nVocab));
      let worst = 1;
      for (let r = 0; r < 70; r++) worst = Math.min(worst, cosine(ref, logits, r * SERVE_SHAPE.nVocab, (r + 1) * SERVE_SHAPE.nVocab));
      expect(worst).toBeGreaterThan(0.99999);
      console.log(`evaluate under a 7-block pool: ${engine.stats().batches.preemptions} preemptions, worst row cosine ${worst}`);
      await expectNoLeakedBlocks(engine);
    } finally {
      await engine.close();
    }
  });

  it('a sequence larger than the whole pool fails with OUT_OF_MEMORY instead of hanging, and others go on', async () => {
    const engine = await load(model, { kvBlockSizeTokens: 16, kvCacheBlocks: 3 });
    try {
      const big = engine.generate(greedy(promptOf(70, 20), 60)); // needs 5 blocks by its end
      const small = engine.generate(greedy(promptOf(71, 5), 10));
      const err = await Promise.race([rejectionOf(big.result), sleep(5000).then(() => undefined)]);
      expect(err, 'the oversized request must end (it hung)').toBeInstanceOf(EngineError);
      expect(err!.code).toBe('OUT_OF_MEMORY');
      expect(err!.message).toMatch(/kvCacheBlocks/);
      expect((await small.result).tokens).toHaveLength(10);
      await expectNoLeakedBlocks(engine);
    } finally {
      await engine.close();
    }
  });
});

describe('no leaked blocks', () => {
  it('after a mixed workload (finished, stopped, cancelled, timed out, evaluated, preempted) every block is free or cached', async () => {
    const engine = await load(model, { kvBlockSizeTokens: 8, kvCacheBlocks: 24, scheduler: { maxBatchSize: 6, maxQueueDelayMs: 1 } });
    try {
      // A stop sequence that does occur: take it from a free-running greedy output.
      const free = await engine.generate({ tokens: promptOf(80, 12), maxTokens: 40, temperature: 0, stopAtEos: false }).result;
      const stopAt = free.text.length > 8 ? free.text.slice(4, 7) : undefined;

      const endings: Promise<string>[] = [];
      const track = (p: Promise<{ finishReason: string }>) =>
        endings.push(
          p.then(
            (r) => r.finishReason,
            (e: EngineError) => e.code,
          ),
        );
      for (let round = 0; round < 3; round++) {
        const gens = [
          engine.generate(greedy(promptOf(81 + round, 30), 30)), // length
          engine.generate({ tokens: promptOf(80, 12), maxTokens: 40, temperature: 0, stopAtEos: false, ...(stopAt ? { stop: [stopAt] } : {}) }), // stop
          engine.generate({ tokens: promptOf(84 + round, 9), maxTokens: 50, temperature: 1, seed: round }), // sampled, may hit EOS
          engine.generate(greedy(promptOf(87 + round, 40), 200, { pauseAfterTokens: 2 })), // cancelled while running (paused: cannot finish first)
          // timed out while running; 10 + 150 tokens fit the 24-block pool (192 tokens), so its ending is TIMEOUT or length,
          // never the oversized-request OUT_OF_MEMORY (with 200 it raced its deadline against outgrowing the pool)
          engine.generate(greedy(promptOf(90 + round, 10), 150, { deadlineMs: 15 })),
          engine.generate(greedy(promptOf(93 + round, 64), 100)), // long: pressure on the pool
          engine.generate(greedy(promptOf(96 + round, 20), 100)), // waiting (batch is 6): cancelled
          engine.generate(greedy(promptOf(99 + round, 20), 100, { deadlineMs: 1 })), // waiting: timed out
        ];
        gens.forEach((g) => track(g.result));
        const evals = [engine.evaluate(promptOf(102 + round, 50), { allLogits: true }), engine.evaluate(promptOf(105, 33))];
        await sleep(3);
        gens[3]!.cancel();
        gens[6]!.cancel();
        await Promise.all(evals);
        expectBlocksAddUp(engine.stats());
        await Promise.allSettled(gens.map((g) => g.result));
      }
      const ends = await Promise.all(endings);
      const tally: Record<string, number> = {};
      for (const e of ends) tally[e] = (tally[e] ?? 0) + 1;
      const s = engine.stats();
      console.log(`mixed workload endings ${JSON.stringify(tally)}; preemptions ${s.batches.preemptions}; kv ${JSON.stringify(s.kvCache)}`);
      expect(s.batches.preemptions, 'the 24-block pool forced preemptions').toBeGreaterThan(0);
      expect(tally.cancelled ?? 0).toBeGreaterThanOrEqual(3);
      expect(tally.TIMEOUT ?? 0).toBeGreaterThanOrEqual(3);
      expect(
        ends.every((e) => ['length', 'stop', 'cancelled', 'TIMEOUT'].includes(e)),
        ends.join(),
      ).toBe(true);
      if (stopAt) expect(tally.stop ?? 0).toBeGreaterThanOrEqual(3);
      await expectNoLeakedBlocks(engine);
      const after = engine.stats();
      expect(after.requests.failed).toBe(0);
      expect(after.requests.submitted).toBe(after.requests.finished + after.requests.cancelled + after.requests.timedOut);
    } finally {
      await engine.close();
    }
  });

  it('a cancelled request frees its blocks at once', async () => {
    const engine = await load(model, { kvBlockSizeTokens: 16, kvCacheBlocks: 64 });
    try {
      // Paused after 3 tokens: it holds its blocks until the cancel, however late the event loop runs.
      const gen = engine.generate(greedy(promptOf(110, 100), 400, { pauseAfterTokens: 3 }));
      let got = 0;
      for await (const c of gen) {
        got += c.tokens.length;
        if (got >= 3) break;
      }
      expect(engine.stats().kvCache.blocksUsed).toBeGreaterThanOrEqual(7);
      const t0 = performance.now();
      gen.cancel();
      const r = await gen.result;
      expect(r.finishReason).toBe('cancelled');
      expect(r.tokens.length).toBeLessThan(400);
      const freed = await waitFor(() => engine.stats().kvCache.blocksUsed === 0, 1000, 1);
      const ms = performance.now() - t0;
      console.log(`blocks freed ${ms.toFixed(2)} ms after cancel()`);
      expect(freed, 'blocks still used 1 s after cancel').toBe(true);
      expect(ms).toBeLessThan(250);
      await expectNoLeakedBlocks(engine);
    } finally {
      await engine.close();
    }
  });
});

describe('KV cache dtypes', () => {
  it('f16 and int8 KV give logits close to f32 KV (and the same greedy choices)', async () => {
    const tokens = promptOf(120, 160);
    const V = SERVE_SHAPE.nVocab;
    const logitsWith = async (kvDtype: 'f32' | 'f16' | 'int8') => {
      const e = await load(model, { kvDtype, kvBlockSizeTokens: 16 });
      try {
        expect(e.info.layout.kvDtype).toBe(kvDtype);
        const bytes = e.stats().memoryBytes.kv / e.info.layout.kvCacheBlocks;
        const logits = await e.evaluate(tokens, { allLogits: true });
        const gen = await e.generate(greedy(tokens.slice(0, 40), 24)).result;
        return { logits, bytes, gen: gen.tokens };
      } finally {
        await e.close();
      }
    };
    const ref = await logitsWith('f32');
    for (const [dtype, bar] of [
      ['f16', 0.99999],
      ['int8', 0.999],
    ] as const) {
      const got = await logitsWith(dtype);
      let worst = 1,
        sum = 0;
      for (let r = 0; r < tokens.length; r++) {
        const c = cosine(ref.logits, got.logits, r * V, (r + 1) * V);
        worst = Math.min(worst, c);
        sum += c;
      }
      const agree = argmaxRows(ref.logits, V).filter((t, i) => t === argmaxRows(got.logits, V)[i]).length / tokens.length;
      console.log(
        `kv ${dtype}: logits cosine vs f32 min ${worst.toFixed(7)} mean ${(sum / tokens.length).toFixed(7)}; argmax agreement ${(agree * 100).toFixed(1)}%; bytes/block ${got.bytes} (f32 ${ref.bytes})`,
      );
      expect(worst, `${dtype} worst row cosine`).toBeGreaterThan(bar);
      expect(agree).toBeGreaterThanOrEqual(dtype === 'f16' ? 1 : 0.95);
      expect(got.bytes, `${dtype} KV is smaller than f32`).toBeLessThanOrEqual(ref.bytes * (dtype === 'f16' ? 0.5 : 0.3));
    }
  });
});
