// Live changes under load: reconfigure() (hot batching knobs, applied between steps) and reload() (cold layout:
// weights, KV dtype, tensor parallelism, block size — a new model instance beside the old one). No request fails
// or changes its greedy output because of either.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GenerateRequest, GenerationResult, Generation } from '../../src/engine/index.js';
import { SERVE_SHAPE, expectNoLeakedBlocks, greedy, load, maxRelDiff, promptOf, rejectionOf, runAlone, sleep, thrownBy, waitFor } from '../helpers/serving.js';
import { TempModels } from '../helpers/synthetic.js';

const models = new TempModels();
let model: string, slow: string;
beforeAll(() => {
  model = models.write(SERVE_SHAPE, 'f32', 'llama', 51);
  // Steps of a few milliseconds: makes the timing of the reload bug below deterministic.
  slow = models.write({ ...SERVE_SHAPE, dim: 512, nLayers: 4, nHeads: 8, nKvHeads: 4, ffnDim: 1536, nVocab: 2048 }, 'f32', 'llama', 52);
});
afterAll(() => models.cleanup());

async function collect(g: Generation): Promise<{ streamed: number[]; result: GenerationResult }> {
  const streamed: number[] = [];
  for await (const c of g) streamed.push(...c.tokens);
  return { streamed, result: await g.result };
}

describe('reconfigure under load', () => {
  it('batching knobs change between steps while 10 streams generate; every output is unchanged', async () => {
    const reqs: GenerateRequest[] = Array.from({ length: 10 }, (_, i) => greedy(promptOf(i, 5 + 4 * i), 120));
    const late: GenerateRequest[] = Array.from({ length: 4 }, (_, i) => greedy(promptOf(20 + i, 40), 30)); // chunked prefill
    const ref = await load(model);
    const alone = await runAlone(ref, [...reqs, ...late]);
    await ref.close();

    const engine = await load(model, { scheduler: { maxBatchSize: 16 } });
    try {
      const gens = reqs.map((r) => engine.generate(r));
      const done = Promise.all(gens.map(collect));
      const generated = () => engine.stats().tokens.generated;
      const progress = async (n: number) => {
        const start = generated();
        expect(await waitFor(() => generated() >= start + n, 5000), `generation went on (${n} more tokens)`).toBe(true);
      };
      await progress(20);

      // maxBatchSize 2: after the step in flight, no step holds more than two sequences.
      const set = engine.reconfigure({ maxBatchSize: 2 });
      expect(set.maxBatchSize).toBe(2);
      expect(engine.stats().settings.maxBatchSize).toBe(2);
      await progress(6);
      const a = engine.stats().batches.size;
      await progress(20);
      const b = engine.stats().batches.size;
      expect(b.count - a.count, 'steps ran with maxBatchSize 2').toBeGreaterThan(0);
      expect(b.counts.slice(2).reduce((x, y) => x + y, 0) - a.counts.slice(2).reduce((x, y) => x + y, 0), 'steps of more than 2 sequences under maxBatchSize 2').toBe(0);

      // Back to 16, with a tiny token budget: new long prompts are prefilled 8 tokens at a time.
      engine.reconfigure({ maxBatchSize: 16, maxBatchTokens: 8 });
      const lateGens = late.map((r) => engine.generate(r));
      const lateDone = Promise.all(lateGens.map(collect));
      await progress(30);
      engine.reconfigure({ maxQueueDelayMs: 0, queueGrowThreshold: 0 });
      await progress(10);
      engine.reconfigure({ maxBatchSize: 3, maxBatchTokens: 512 });
      await progress(10);
      const final = engine.reconfigure({ maxBatchSize: 16, maxQueueDelayMs: 2, queueGrowThreshold: 32 });
      expect(final).toEqual({ maxBatchSize: 16, maxBatchTokens: 512, maxQueueDelayMs: 2, queueGrowThreshold: 32, maxQueueLength: 256 });

      const results = [...(await done), ...(await lateDone)];
      results.forEach(({ streamed, result }, i) => {
        expect(result.finishReason, `request ${i}`).toBe('length');
        expect(result.tokens, `request ${i} vs alone`).toEqual(alone[i]!.tokens);
        expect(streamed, `request ${i} stream`).toEqual(result.tokens);
      });
      const s = engine.stats();
      expect(s.reconfigures).toBe(5);
      expect(s.requests.failed).toBe(0);
      expect(s.settings).toMatchObject(final);
      // The small token budget forced the late prompts through several prefill steps, batched with decodes.
      expect(s.batches.stepDurationSeconds.mixed.count).toBeGreaterThan(0);
      await expectNoLeakedBlocks(engine);
    } finally {
      await engine.close();
    }
  });

  it('invalid settings are refused with INVALID_ARGUMENT naming the field, and nothing changes', async () => {
    const engine = await load(model);
    try {
      const before = engine.stats().settings;
      const cases: [Record<string, unknown>, RegExp][] = [
        [{ maxBatchSize: 0 }, /maxBatchSize/],
        [{ maxBatchSize: 2.5 }, /maxBatchSize/],
        [{ maxBatchTokens: -1 }, /maxBatchTokens/],
        [{ maxQueueDelayMs: Number.NaN }, /maxQueueDelayMs/],
        [{ queueGrowThreshold: 'x' }, /queueGrowThreshold/],
        [{ maxQueueLength: -5 }, /maxQueueLength/],
        [{ maxBatchSize: 4, tpDegree: 2 }, /tpDegree/], // a cold setting: reload(), not reconfigure()
      ];
      for (const [settings, field] of cases) {
        const err = thrownBy(() => engine.reconfigure(settings));
        expect(err.code, JSON.stringify(settings)).toBe('INVALID_ARGUMENT');
        expect(err.message).toMatch(field);
      }
      expect(engine.stats().settings).toEqual(before);
      expect(engine.stats().reconfigures).toBe(0);
    } finally {
      await engine.close();
    }
  });
});

describe('reload under load', () => {
  it('three reloads while streams run and new requests keep arriving: zero failed requests', async () => {
    const engine = await load(model, { threads: 2, threadsPerRank: 1 });
    try {
      const gens: Generation[] = [];
      const submit = (i: number, n: number) => gens.push(engine.generate(greedy(promptOf(100 + i, 4 + (i % 30)), n)));
      for (let i = 0; i < 8; i++) submit(i, 150);
      // A client that keeps submitting every 2 ms for the whole test.
      let stop = false,
        n = 8;
      const client = (async () => {
        while (!stop) {
          submit(n++, 20 + (n % 40));
          await sleep(2);
        }
      })();
      await waitFor(() => engine.stats().tokens.generated > 50, 5000);

      const layouts = [
        { weights: 'int8' as const },
        { kvDtype: 'f16' as const, tpDegree: 2, threadsPerRank: 1 },
        { weights: 'bf16' as const, kvBlockSizeTokens: 8, tpDegree: 1, threadsPerRank: 2, kvDtype: 'int8' as const },
      ];
      for (const layout of layouts) {
        // Two long streams per reload, so some are mid-generation whatever the engine's speed.
        submit(n++, 200);
        submit(n++, 200);
        expect(await waitFor(() => engine.stats().requests.running > 0, 5000), 'requests were running when the reload began').toBe(true);
        const before = engine.stats().tokens.generated;
        await engine.reload(layout);
        // The engine went on generating during the reload and goes on after it.
        expect(await waitFor(() => engine.stats().tokens.generated > before + 20, 5000)).toBe(true);
      }
      stop = true;
      await client;

      const settled = await Promise.allSettled(gens.map((g) => g.result));
      const failed = settled.filter((r) => r.status === 'rejected').map((r) => String(r.reason));
      console.log(`${gens.length} requests across 3 reloads; failed: ${failed.length} ${failed.slice(0, 3).join(' | ')}`);
      expect(failed).toEqual([]);
      for (const r of settled) {
        const res = (r as PromiseFulfilledResult<GenerationResult>).value;
        expect(res.finishReason).toBe('length');
        expect(res.tokens.length).toBe(res.usage.completionTokens);
      }
      const s = engine.stats();
      expect(s.reloads).toBe(3);
      expect(s.requests.failed).toBe(0);
      expect(s.requests.finished).toBe(gens.length);
      expect(s.requests.submitted).toBe(gens.length);
      await expectNoLeakedBlocks(engine);
      const fin = engine.stats().settings;
      expect(fin).toMatchObject({ weights: 'bf16', kvDtype: 'int8', tpDegree: 1, threadsPerRank: 2, kvBlockSizeTokens: 8 });
      expect(engine.stats().weightBytesByDtype.bf16 ?? 0).toBeGreaterThan(0);
    } finally {
      await engine.close();
    }
  });

  it('waiting requests move to the new instance; running ones finish on the old: both give their exact outputs', async () => {
    const first = greedy(promptOf(200, 8), 480);
    const queued = Array.from({ length: 4 }, (_, i) => greedy(promptOf(201 + i, 8 + 5 * i), 16));
    const f32 = await load(model);
    const refFirst = await f32.generate(first).result;
    await f32.close();
    const int8 = await load(model, { weights: 'int8' });
    const refQueued = await runAlone(int8, queued);
    await int8.close();

    const engine = await load(model, { scheduler: { maxBatchSize: 1 } });
    try {
      // The first pauses after a token until resumed: it is still running on the old instance when the reload
      // completes, however long the reload takes.
      const g0 = engine.generate({ ...first, pauseAfterTokens: 1 });
      await waitFor(() => engine.stats().requests.running === 1);
      const gs = queued.map((r) => engine.generate(r));
      await waitFor(() => engine.stats().requests.waiting === 4);
      let firstDone = false;
      void g0.result.then(() => (firstDone = true));
      await engine.reload({ weights: 'int8' });
      expect(firstDone, 'precondition: the first request was still running when the reload completed').toBe(false);
      engine.resume(g0.id);
      const r0 = await g0.result;
      const rs = await Promise.all(gs.map((g) => g.result));
      expect(r0.tokens, 'the running request finished on the f32 instance').toEqual(refFirst.tokens);
      rs.forEach((r, i) => expect(r.tokens, `queued request ${i} ran on the int8 instance`).toEqual(refQueued[i]!.tokens));
      await expectNoLeakedBlocks(engine);
    } finally {
      await engine.close();
    }
  });

  it('after a reload the engine computes what a freshly loaded engine with those settings computes', async () => {
    const tokens = promptOf(300, 64);
    const layout = { weights: 'int8' as const, kvDtype: 'f16' as const, tpDegree: 2, threadsPerRank: 1, kvBlockSizeTokens: 32 };
    const fresh = await load(model, { ...layout, threads: 2 });
    const want = await fresh.evaluate(tokens, { allLogits: true });
    const wantGen = await fresh.generate(greedy(tokens, 20)).result;
    await fresh.close();
    const engine = await load(model, { threads: 2, threadsPerRank: 2 });
    try {
      await engine.reload(layout);
      await waitFor(() => engine.stats().settings.tpDegree === 2);
      const got = await engine.evaluate(tokens, { allLogits: true });
      expect(maxRelDiff(want, got)).toBeLessThan(1e-6);
      expect((await engine.generate(greedy(tokens, 20)).result).tokens).toEqual(wantGen.tokens);
      expect(engine.stats().tensorParallel.rankAllreduceSeconds).toHaveLength(2);
    } finally {
      await engine.close();
    }
  });

  // Regression (a fixed engine bug): reload() resolves as soon as the step loop has taken the new instance, and the
  // layout that info() and stats() read was once published only at the end of that loop iteration, after its steps,
  // so Engine.reload() cached the old layout for good. The loop now publishes the new instance before reload()
  // returns. Here a long prompt waits, so the first step after the reload (its prefill, on the new instance) is long
  // and the old window would be wide open.
  it('reload() returns, and engine.info / stats().settings show, the new layout at once', async () => {
    const engine = await load(slow, { scheduler: { maxBatchSize: 1 } });
    try {
      const busy = engine.generate(greedy(promptOf(400, 5), 400));
      await waitFor(() => engine.stats().requests.running === 1);
      const long = engine.generate(greedy(promptOf(401, 300, 2048), 1));
      await waitFor(() => engine.stats().requests.waiting === 1);
      const info = await engine.reload({ weights: 'int8', kvDtype: 'f16', contextLength: 400 });
      const settings = engine.stats().settings;
      busy.cancel();
      await Promise.all([busy.result, long.result]);
      expect(info.weights).toBe('int8');
      expect(info.layout).toMatchObject({ weights: 'int8', kvDtype: 'f16', contextLength: 400 });
      expect(engine.info.weights).toBe('int8');
      expect(settings).toMatchObject({ weights: 'int8', kvDtype: 'f16', contextLength: 400 });
    } finally {
      await engine.close();
    }
  });

  it('an invalid reload is refused and requests in flight are untouched', async () => {
    const engine = await load(model);
    try {
      const ref = await engine.generate(greedy(promptOf(500, 6), 60)).result;
      const g = engine.generate(greedy(promptOf(500, 6), 60));
      for (const bad of [{ tpDegree: 3 }, { kvBlockSizeTokens: 0 }, { contextLength: 100_000 }, { weights: 'fp8' }] as const) {
        const err = await rejectionOf(engine.reload(bad as never));
        expect(err.code, JSON.stringify(bad)).toBe('INVALID_ARGUMENT');
        expect(err.message).toMatch(new RegExp(Object.keys(bad)[0]!));
      }
      expect((await g.result).tokens).toEqual(ref.tokens);
      expect(engine.stats().reloads).toBe(0);
    } finally {
      await engine.close();
    }
  });
});
