// Continuous batching: a request's greedy output does not depend on what it is batched with, concurrent streams
// really share steps, every step records why it ran (full / timeout / queue_threshold), and engine.stats() is one
// coherent snapshot whose counters and histograms agree with what the requests themselves report.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine, GenerateRequest, GenerationResult } from '../../src/engine/index.js';
import {
  SERVE_SHAPE,
  expectBlocksAddUp,
  expectHistogramConsistent,
  expectNoLeakedBlocks,
  greedy,
  histMean,
  load,
  promptOf,
  runAlone,
  sleep,
  waitFor,
} from '../helpers/serving.js';
import { TempModels } from '../helpers/synthetic.js';

const models = new TempModels();
let model: string;
beforeAll(() => {
  model = models.write(SERVE_SHAPE, 'f32', 'llama', 11);
});
afterAll(() => models.cleanup());

/** 16 different requests: prompts of 3..63 tokens, 8..48 new tokens, 12 greedy and 4 seeded-sampled. */
function mixedRequests(): GenerateRequest[] {
  const reqs: GenerateRequest[] = [greedy(promptOf(0, 24), 32)];
  for (let i = 1; i < 16; i++) {
    const len = 3 + ((i * 37) % 61),
      n = 8 + ((i * 13) % 41);
    reqs.push(i % 4 === 0 ? { tokens: promptOf(i, len), maxTokens: n, temperature: 0.9, topK: 40, seed: 1000 + i, stopAtEos: false } : greedy(promptOf(i, len), n));
  }
  return reqs;
}

describe('batch invariance', () => {
  it('a greedy request gives the same tokens alone as among 15 other requests (maxBatchSize 16)', async () => {
    const reqs = mixedRequests();
    // Reference: every request alone, on its own engine (no prefix cache shared with the batched run).
    const solo = await load(model, { threads: 1 });
    let alone: GenerationResult[];
    try {
      alone = await runAlone(solo, reqs);
      expect(
        solo
          .stats()
          .batches.size.counts.slice(1)
          .every((c) => c === 0),
        'alone: every step had one sequence',
      ).toBe(true);
    } finally {
      await solo.close();
    }

    // All 16 at once: a queue delay long enough that they start together, then they finish at different steps,
    // so the target sees batches of changing size and mixed prefill / decode.
    const engine = await load(model, { threads: 1, scheduler: { maxBatchSize: 16, maxQueueDelayMs: 20 } });
    try {
      const gens = reqs.map((r) => engine.generate(r));
      const together = await Promise.all(gens.map((g) => g.result));
      for (let i = 0; i < reqs.length; i++) {
        expect(together[i]!.finishReason, `request ${i}`).toBe('length');
        expect(together[i]!.tokens, `request ${i} (${reqs[i]!.temperature === 0 ? 'greedy' : 'seeded sampling'}): batched vs alone`).toEqual(alone[i]!.tokens);
      }
      const s = engine.stats();
      const size = s.batches.size;
      // Batches of more than one sequence did happen: buckets above le=1 hold steps, and the largest reached 16.
      expect(
        size.counts.slice(1).reduce((a, b) => a + b, 0),
        'steps with more than one sequence',
      ).toBeGreaterThan(0);
      expect(size.counts[4]!, 'steps in the (8, 16] bucket').toBeGreaterThan(0);
      expect(s.batches.stepDurationSeconds.mixed.count + s.batches.stepDurationSeconds.prefill.count).toBeGreaterThan(0);
      await expectNoLeakedBlocks(engine);
    } finally {
      await engine.close();
    }
  });

  it('batching pays: with 16 concurrent streams the mean batch size is above 8', async () => {
    // A long batching delay: the first step waits for all 16 (a full batch), so the batch sizes do not depend on how
    // fast this process submits them.
    const engine = await load(model, { threads: 1, scheduler: { maxBatchSize: 16, maxQueueDelayMs: 5000 } });
    try {
      const gens = Array.from({ length: 16 }, (_, i) => engine.generate(greedy(promptOf(100 + i, 12), 48)));
      // Consume as streams (as a server would), not just the results.
      const counts = await Promise.all(
        gens.map(async (g) => {
          let n = 0;
          for await (const c of g) n += c.tokens.length;
          return n;
        }),
      );
      expect(counts).toEqual(Array(16).fill(48));
      const s = engine.stats();
      const mean = histMean(s.batches.size);
      console.log(`16 streams x 48 tokens: ${s.batches.steps} steps, mean batch size ${mean.toFixed(2)}, flushes ${JSON.stringify(s.batches.flushes)}`);
      expect(mean).toBeGreaterThan(8);
      // 16 x 48 tokens take far fewer steps than 768.
      expect(s.batches.steps).toBeLessThan((16 * 48) / 4);
    } finally {
      await engine.close();
    }
  });
});

describe('flush reasons: every batch records why it ran', () => {
  let engine: Engine;
  beforeAll(async () => {
    engine = await load(model, { threads: 1, scheduler: { maxBatchSize: 16, maxQueueDelayMs: 50, queueGrowThreshold: 32 } });
  });
  afterAll(async () => engine?.close());

  const flushes = () => ({ ...engine.stats().batches.flushes });

  it('timeout: a lone request waits maxQueueDelayMs for company, then runs under-full', async () => {
    const before = flushes();
    const qBefore = engine.stats().latency.queueTimeSeconds;
    const t0 = performance.now();
    const r = await engine.generate(greedy(promptOf(1, 8), 1)).result;
    const elapsed = performance.now() - t0;
    console.log(`lone request: queueMs ${r.timings.queueMs.toFixed(1)} (maxQueueDelayMs 50), elapsed ${elapsed.toFixed(1)} ms`);
    expect(r.timings.queueMs).toBeGreaterThanOrEqual(40);
    expect(r.timings.queueMs).toBeLessThan(1000);
    // A step's counters are updated just after its results go out: give the loop a moment.
    await waitFor(() => flushes().timeout > before.timeout);
    await sleep(5);
    const after = flushes();
    expect(after.timeout - before.timeout).toBe(1); // one step: prefill and the only token
    expect(after.full).toBe(before.full);
    expect(after.queue_threshold).toBe(before.queue_threshold);
    const q = engine.stats().latency.queueTimeSeconds;
    expect(q.count - qBefore.count).toBe(1);
    expect(q.sum - qBefore.sum).toBeGreaterThanOrEqual(0.04);
  });

  it('full by sequences: maxBatchSize requests run at once, without waiting out the delay', async () => {
    engine.reconfigure({ maxBatchSize: 4, maxQueueDelayMs: 5000 });
    try {
      const before = flushes();
      const t0 = performance.now();
      const rs = await Promise.all(Array.from({ length: 4 }, (_, i) => engine.generate(greedy(promptOf(10 + i, 8), 4)).result));
      expect(performance.now() - t0, 'a full batch must not wait for the 5 s delay').toBeLessThan(2500);
      for (const r of rs) expect(r.timings.queueMs).toBeLessThan(2500);
      await waitFor(() => flushes().full - before.full >= 4);
      await sleep(5);
      const after = flushes();
      // Four steps (prefill, then three decodes), each with all four sequences: all full.
      expect(after.full - before.full).toBe(4);
      expect(after.timeout - before.timeout).toBe(0);
    } finally {
      engine.reconfigure({ maxBatchSize: 16, maxQueueDelayMs: 50 });
    }
  });

  it('full by tokens: a prompt of maxBatchTokens tokens runs at once', async () => {
    engine.reconfigure({ maxBatchTokens: 64, maxQueueDelayMs: 5000 });
    try {
      const before = flushes();
      const r = await engine.generate(greedy(promptOf(20, 64), 1)).result;
      expect(r.timings.queueMs).toBeLessThan(2500);
      await waitFor(() => flushes().full > before.full);
      expect(flushes().full - before.full).toBe(1);
    } finally {
      engine.reconfigure({ maxBatchTokens: 512, maxQueueDelayMs: 50 });
    }
  });

  it('queue_threshold: more than queueGrowThreshold waiting requests run at once', async () => {
    engine.reconfigure({ queueGrowThreshold: 4, maxQueueDelayMs: 5000 });
    try {
      const before = flushes();
      const t0 = performance.now();
      // Long enough generations that, should this process be descheduled in the middle of submitting, the first
      // ones are still running when the rest arrive (and join them at once instead of waiting out the delay).
      const rs = await Promise.all(Array.from({ length: 8 }, (_, i) => engine.generate(greedy(promptOf(30 + i, 8), 150)).result));
      expect(performance.now() - t0, 'a queue over the threshold must not wait for the 5 s delay').toBeLessThan(2500);
      expect(rs.every((r) => r.tokens.length === 150)).toBe(true);
      await waitFor(() => flushes().queue_threshold > before.queue_threshold);
      const after = flushes();
      expect(after.queue_threshold - before.queue_threshold).toBeGreaterThanOrEqual(1);
      expect(after.full - before.full).toBe(0); // never 16 sequences nor 512 tokens
    } finally {
      engine.reconfigure({ queueGrowThreshold: 32, maxQueueDelayMs: 50 });
    }
  });

  it('flush counts add up to the steps taken', async () => {
    await waitFor(() => {
      const t = engine.stats();
      return t.batches.flushes.full + t.batches.flushes.timeout + t.batches.flushes.queue_threshold === t.batches.steps;
    });
    const s = engine.stats();
    const f = s.batches.flushes;
    expect(f.full + f.timeout + f.queue_threshold).toBe(s.batches.steps);
  });
});

describe('stats snapshot', () => {
  it('counters and histograms agree with what the requests report', async () => {
    const engine = await load(model, {
      threads: 1,
      kvBlockSizeTokens: 16,
      kvCacheBlocks: 48,
      scheduler: { maxBatchSize: 8, maxBatchTokens: 256, maxQueueDelayMs: 3, queueGrowThreshold: 20, maxQueueLength: 100 },
    });
    try {
      // Distinct prompts, then one repeated (a prefix-cache hit), all greedy with fixed lengths; no preemption (48 blocks).
      const reqs = Array.from({ length: 10 }, (_, i) => greedy(promptOf(200 + i, 10 + 7 * i), 5 + 3 * i));
      const rs = await Promise.all(reqs.map((r) => engine.generate(r).result));
      rs.push(await engine.generate(reqs[9]!).result);
      await expectNoLeakedBlocks(engine);
      const s = engine.stats();

      // Requests and tokens.
      expect(s.requests.submitted).toBe(11);
      expect(s.requests.finished).toBe(11);
      expect(s.requests).toMatchObject({ cancelled: 0, timedOut: 0, failed: 0, running: 0, waiting: 0 });
      expect(s.requests.rejected).toEqual({ queue_full: 0, context_overflow: 0, invalid: 0, closed: 0 });
      const promptSum = rs.reduce((a, r) => a + r.usage.promptTokens, 0);
      const genSum = rs.reduce((a, r) => a + r.usage.completionTokens, 0);
      const cachedSum = rs.reduce((a, r) => a + r.usage.cachedPromptTokens, 0);
      expect(s.tokens.prompt).toBe(promptSum);
      expect(s.tokens.generated).toBe(genSum);
      expect(cachedSum, 'the repeated prompt reused cached blocks').toBeGreaterThan(0);
      expect(s.tokens.promptCached).toBe(cachedSum);
      expect(s.tokens.prefillComputed + s.tokens.promptCached, 'every prompt token computed or cached, once').toBe(promptSum);

      // Histograms: well formed, and their counts match the requests.
      const h = { ...s.latency, batchSize: s.batches.size, batchTokens: s.batches.tokens, ...s.batches.stepDurationSeconds };
      for (const [name, hist] of Object.entries(h)) expectHistogramConsistent(name, hist);
      expect(s.latency.queueTimeSeconds.count).toBe(11);
      expect(s.latency.timeToFirstTokenSeconds.count).toBe(11);
      expect(s.latency.e2eSeconds.count).toBe(11);
      expect(s.latency.interTokenSeconds.count).toBe(genSum - 11);
      expect(s.latency.interTokenSeconds.sum).toBeGreaterThan(0);
      expect(s.latency.promptTokens).toMatchObject({ count: 11, sum: promptSum });
      expect(s.latency.generationTokens).toMatchObject({ count: 11, sum: genSum });
      const ttftMax = Math.max(...rs.map((r) => r.timings.timeToFirstTokenMs)) / 1000;
      expect(s.latency.timeToFirstTokenSeconds.sum).toBeLessThanOrEqual(11 * ttftMax + 1e-6);
      expect(s.latency.e2eSeconds.sum).toBeGreaterThanOrEqual(s.latency.timeToFirstTokenSeconds.sum - 1e-6);

      // Steps: one batch-size and one batch-tokens observation each; tokens computed = prompt tokens not cached plus
      // every generated token except each request's last (which is never fed back).
      expect(s.batches.size.count).toBe(s.batches.steps);
      expect(s.batches.tokens.count).toBe(s.batches.steps);
      const sd = s.batches.stepDurationSeconds;
      expect(sd.prefill.count + sd.decode.count + sd.mixed.count).toBe(s.batches.steps);
      expect(s.batches.tokens.sum).toBe(s.tokens.prefillComputed + genSum - 11);
      expect(s.batches.preemptions).toBe(0);
      expect(s.busySeconds).toBeGreaterThan(0);
      expect(s.busySeconds).toBeLessThanOrEqual(s.uptimeSeconds);

      // Time per operation, memory, settings echo.
      for (const [op, sec] of Object.entries(s.opSeconds)) expect(sec, `opSeconds.${op}`).toBeGreaterThan(0);
      expect(s.memoryBytes.weights).toBeGreaterThan(0);
      expect(s.memoryBytes.kv).toBeGreaterThan(0);
      expect(s.memoryBytes.scratch).toBeGreaterThan(0);
      expect(Object.values(s.weightBytesByDtype).reduce((a, b) => a + b, 0)).toBe(s.memoryBytes.weights);
      expect(s.weightBytesByDtype).toEqual(engine.info.weightBytes);
      // f32 KV: 2 layers x 48 blocks x 16 tokens x kv_dim 64 x (K and V) x 4 bytes.
      expect(s.memoryBytes.kv).toBe(2 * 48 * 16 * 64 * 2 * 4);
      expect(s.settings).toEqual({
        maxBatchSize: 8,
        maxBatchTokens: 256,
        maxQueueDelayMs: 3,
        queueGrowThreshold: 20,
        maxQueueLength: 100,
        weights: 'native', // the default policy: the file's types (f32 here)
        kvDtype: 'f32',
        tpDegree: 1,
        threadsPerRank: 1,
        kvBlockSizeTokens: 16,
        kvCacheBlocks: 48,
        allreduceDelayUs: 0,
        epDegree: 1,
        redundantExperts: [],
        alltoallDelayUs: 0,
        contextLength: 512,
      });
      expect(s.kvCache.blocksTotal).toBe(48);
      expect(s.kvCache.blockSizeTokens).toBe(16);
      expect(s.kvCache.usageRatio).toBe(0);
      expect(s.kvCache.prefixHits).toBeGreaterThan(0);
      expect(s.kvCache.prefixHits).toBeLessThanOrEqual(s.kvCache.prefixQueries);
      expect(s.tensorParallel.rankBusySeconds).toHaveLength(1);
      expect(s.tensorParallel.rankBusySeconds[0]!).toBeGreaterThan(0);
      expect(s.tensorParallel.allreduces).toBe(0);
      expect(s.reloads).toBe(0);
      expect(s.reconfigures).toBe(0);
    } finally {
      await engine.close();
    }
  });

  it('usage and fragmentation ratios describe the pool while requests run', async () => {
    const engine = await load(model, { threads: 1, kvBlockSizeTokens: 16, kvCacheBlocks: 64 });
    try {
      // Prompt of 17 tokens: two blocks reserved for 17 computed tokens right after prefill. Each pauses after its
      // first token, so the four stay running (in that state) however late this loop polls.
      const gens = Array.from({ length: 4 }, (_, i) => engine.generate(greedy(promptOf(300 + i, 17), 200, { pauseAfterTokens: 1 })));
      let seen = false;
      const until = performance.now() + 2000;
      while (!seen && performance.now() < until) {
        const s = engine.stats();
        expectBlocksAddUp(s);
        if (s.kvCache.blocksUsed > 0 && s.requests.running === 4) {
          expect(s.kvCache.usageRatio).toBeCloseTo(s.kvCache.blocksUsed / s.kvCache.blocksTotal, 12);
          // Reserved slots over computed tokens: >= 1, and < 2 once each sequence has filled more than half a block.
          expect(s.kvCache.fragmentationRatio).toBeGreaterThanOrEqual(1);
          expect(s.kvCache.fragmentationRatio).toBeLessThan(2);
          seen = true;
        }
        await new Promise((r) => setTimeout(r, 1));
      }
      expect(seen, 'saw the four requests running with blocks in use').toBe(true);
      for (const g of gens) g.cancel();
      await Promise.all(gens.map((g) => g.result));
      await expectNoLeakedBlocks(engine);
    } finally {
      await engine.close();
    }
  });

  it('reading stats is cheap and does not hold up generation', async () => {
    const engine = await load(model, { threads: 1 });
    try {
      const gens = Array.from({ length: 8 }, (_, i) => engine.generate(greedy(promptOf(400 + i, 8), 300)));
      await new Promise((r) => setTimeout(r, 5));
      const first = engine.stats();
      const t0 = performance.now();
      let worst = 0,
        n = 0;
      while (performance.now() - t0 < 150) {
        const a = performance.now();
        engine.stats();
        worst = Math.max(worst, performance.now() - a);
        n++;
      }
      const last = engine.stats();
      console.log(`${n} stats() calls in 150 ms while generating; slowest ${worst.toFixed(3)} ms; tokens ${first.tokens.generated} -> ${last.tokens.generated}`);
      expect(n).toBeGreaterThan(150); // well under 1 ms a call
      expect(last.tokens.generated, 'generation went on while stats were read in a tight loop').toBeGreaterThan(first.tokens.generated);
      await Promise.all(gens.map((g) => g.result));
    } finally {
      await engine.close();
    }
  });
});
