// Admission and request lifetime: the waiting-queue limit (QUEUE_FULL), per-request deadlines (TIMEOUT, refused while
// waiting or cut while running), cancellation (by the generation or by id), and close() with work in flight.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EngineError, type Engine, type Generation } from '../../src/engine/index.js';
import { SERVE_SHAPE, expectNoLeakedBlocks, greedy, load, promptOf, rejectionOf, thrownBy, waitFor } from '../helpers/serving.js';
import { TempModels } from '../helpers/synthetic.js';

const models = new TempModels();
let fast: string, slow: string;
beforeAll(() => {
  fast = models.write(SERVE_SHAPE, 'f32', 'llama', 41);
  // A few milliseconds a step on one thread: long enough that timing-dependent behaviour is not a race.
  slow = models.write({ ...SERVE_SHAPE, dim: 512, nLayers: 4, nHeads: 8, nKvHeads: 4, ffnDim: 1536, nVocab: 2048 }, 'f32', 'llama', 42);
});
afterAll(() => models.cleanup());

/** Start a long request on a maxBatchSize-1 engine and wait until it is running (so later ones must wait). With
 *  `hold` (the default) it pauses after its first token, keeping the batch slot until engine.resume(id) or a cancel:
 *  it cannot finish while the test is still arranging things, however slowly this process is scheduled. */
async function occupy(engine: Engine, maxTokens = 400, hold = true): Promise<Generation> {
  const g = engine.generate(greedy(promptOf(1, 5), maxTokens, hold ? { pauseAfterTokens: 1 } : {}));
  expect(await waitFor(() => engine.stats().requests.running === 1, 2000), 'the first request started').toBe(true);
  return g;
}

function busyWaitMs(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    /* spin */
  }
}

describe('admission limit (maxQueueLength)', () => {
  it('beyond maxQueueLength waiting requests, generate() throws QUEUE_FULL at once, and the counter matches', async () => {
    const engine = await load(fast, { scheduler: { maxBatchSize: 1, maxQueueLength: 3 } });
    try {
      const first = await occupy(engine, 300);
      const accepted: Generation[] = [];
      const refused: EngineError[] = [];
      for (let i = 0; i < 12; i++) {
        try {
          accepted.push(engine.generate(greedy(promptOf(10 + i, 6), 4)));
        } catch (e) {
          expect(e).toBeInstanceOf(EngineError);
          refused.push(e as EngineError);
        }
      }
      expect(refused.length).toBeGreaterThan(0);
      for (const e of refused) {
        expect(e.code).toBe('QUEUE_FULL');
        expect(e.message).toMatch(/maxQueueLength 3/);
      }
      expect(accepted.length).toBeGreaterThanOrEqual(3);
      expect(engine.stats().requests.rejected.queue_full).toBe(refused.length);
      expect(engine.stats().requests.submitted).toBe(1 + accepted.length);
      // Every accepted request completes.
      engine.resume(first.id);
      expect((await first.result).tokens).toHaveLength(300);
      for (const g of accepted) expect((await g.result).tokens).toHaveLength(4);
      // Once the queue drained, requests are accepted again.
      expect((await engine.generate(greedy(promptOf(30, 6), 2)).result).tokens).toHaveLength(2);
      await expectNoLeakedBlocks(engine);
    } finally {
      await engine.close();
    }
  });

  // Free batch slots take arrivals before the queue does: maxQueueLength counts only requests that must wait behind a
  // full batch. (It once counted every not-yet-started request, so maxQueueLength 0 refused all work on an idle engine.)
  it('free batch slots absorb a burst: an idle engine admits maxBatchSize + maxQueueLength, then refuses', async () => {
    for (const [maxBatchSize, maxQueueLength] of [
      [16, 0],
      [4, 2],
    ] as const) {
      const engine = await load(slow, { scheduler: { maxBatchSize, maxQueueLength, maxQueueDelayMs: 0 } });
      try {
        const accepted: Generation[] = [];
        let refusal: EngineError | undefined;
        // Synchronous submissions, each paused after its first token: none can finish in between (however slowly this
        // process is scheduled), so only the admission arithmetic decides.
        for (let i = 0; i < maxBatchSize + maxQueueLength + 3 && !refusal; i++) {
          try {
            accepted.push(engine.generate(greedy(promptOf(60 + i, 5), 6, { pauseAfterTokens: 1 })));
          } catch (e) {
            refusal = e as EngineError;
          }
        }
        expect(accepted.length, `batch ${maxBatchSize}, queue ${maxQueueLength}`).toBe(maxBatchSize + maxQueueLength);
        expect(refusal?.code).toBe('QUEUE_FULL');
        for (const g of accepted) engine.resume(g.id);
        for (const g of accepted) expect((await g.result).tokens).toHaveLength(6);
        expect(engine.stats().requests.rejected.queue_full).toBe(1);
        await expectNoLeakedBlocks(engine);
      } finally {
        await engine.close();
      }
    }
  });

  it('maxQueueLength 0 never queues: with the only batch slot taken the next request is refused, once free it is served', async () => {
    const engine = await load(slow, { scheduler: { maxBatchSize: 1, maxQueueLength: 0 } });
    try {
      const first = await occupy(engine, 300);
      expect(thrownBy(() => engine.generate(greedy(promptOf(70, 5), 2))).code).toBe('QUEUE_FULL');
      first.cancel();
      await first.result;
      expect(await waitFor(() => engine.stats().requests.running === 0, 2000)).toBe(true);
      expect((await engine.generate(greedy(promptOf(71, 5), 2)).result).tokens).toHaveLength(2);
    } finally {
      await engine.close();
    }
  });

  it('reconfigure({ maxQueueLength }) changes the limit live', async () => {
    const engine = await load(fast, { scheduler: { maxBatchSize: 1, maxQueueLength: 1 } });
    try {
      const first = await occupy(engine, 300);
      const a = engine.generate(greedy(promptOf(40, 6), 2));
      expect(thrownBy(() => engine.generate(greedy(promptOf(41, 6), 2))).code).toBe('QUEUE_FULL');
      engine.reconfigure({ maxQueueLength: 8 });
      const b = engine.generate(greedy(promptOf(42, 6), 2));
      first.cancel();
      await Promise.all([a.result, b.result]);
      expect(engine.stats().requests.rejected.queue_full).toBe(1);
    } finally {
      await engine.close();
    }
  });

  // Regression (a fixed engine bug): enqueue() counts `incoming_.size() + counters_.waiting`, and the step loop once
  // moved incoming requests into the scheduler's waiting queue without counting them until after the step, so for
  // the length of a step they were counted nowhere and more were admitted. Moved arrivals now count as waiting at once.
  it('the waiting queue never holds more than maxQueueLength requests', async () => {
    const engine = await load(slow, { scheduler: { maxBatchSize: 1, maxQueueLength: 2 } });
    try {
      // Not held: the steps of the running request are the window this test watches (~1.5 s of them, against the
      // test's ~0.2 s).
      const first = await occupy(engine, 500, false);
      // While the first request holds the only batch slot, keep trying to submit for 25 ms (a few steps); then
      // cancel what got in and try again. Nothing accepted can start, so every accepted request is waiting.
      let worst = 0,
        worstWaiting = 0,
        refused = 0;
      for (let round = 0; round < 4; round++) {
        const accepted: Generation[] = [];
        const t0 = performance.now();
        while (performance.now() - t0 < 25) {
          try {
            accepted.push(engine.generate(greedy(promptOf(50 + round, 5), 2)));
          } catch (e) {
            expect((e as EngineError).code).toBe('QUEUE_FULL');
            refused++;
          }
          busyWaitMs(0.1);
        }
        await waitFor(() => false, 15); // let the loop publish its counters
        worstWaiting = Math.max(worstWaiting, engine.stats().requests.waiting);
        worst = Math.max(worst, accepted.length);
        expect(engine.stats().requests.running, 'the first request still holds the batch slot').toBe(1);
        for (const g of accepted) g.cancel();
        await Promise.all(accepted.map((g) => g.result));
        await waitFor(() => engine.stats().requests.waiting === 0);
      }
      first.cancel();
      await first.result;
      console.log(`maxQueueLength 2, batch slot taken: at most ${worst} accepted in a round, waiting up to ${worstWaiting}; ${refused} refused`);
      expect(worstWaiting, 'requests waiting behind a full batch').toBeLessThanOrEqual(2);
      expect(worst, 'requests admitted while the batch slot was taken').toBeLessThanOrEqual(2);
    } finally {
      await engine.close();
    }
  });
});

describe('deadlines', () => {
  let engine: Engine;
  beforeAll(async () => {
    engine = await load(slow, { scheduler: { maxBatchSize: 1 } });
  });
  afterAll(async () => engine?.close());

  it('a request whose deadline passes while it waits is refused with TIMEOUT, without tokens', async () => {
    const first = await occupy(engine, 200);
    const before = engine.stats().requests.timedOut;
    const t0 = performance.now();
    const late = engine.generate(greedy(promptOf(60, 5), 10, { deadlineMs: 20 }));
    let streamed = 0;
    let iterErr: unknown;
    try {
      for await (const c of late) streamed += c.tokens.length;
    } catch (e) {
      iterErr = e;
    }
    const err = await rejectionOf(late.result);
    const ms = performance.now() - t0;
    console.log(`waiting request with deadlineMs 20: ${err.code} after ${ms.toFixed(1)} ms: ${err.message}`);
    expect(err.code).toBe('TIMEOUT');
    expect(err.message).toMatch(/wait/);
    expect(iterErr, 'the stream ends with the same error').toBe(err);
    expect(streamed).toBe(0);
    expect(ms).toBeGreaterThanOrEqual(15);
    expect(ms, 'refused near its deadline, not when the batch slot freed').toBeLessThan(400);
    expect(engine.stats().requests.timedOut - before).toBe(1);
    first.cancel();
    await first.result;
    await expectNoLeakedBlocks(engine);
  });

  it('a running generation is cut with TIMEOUT at its deadline, after streaming some tokens', async () => {
    const before = engine.stats().requests.timedOut;
    const t0 = performance.now();
    const gen = engine.generate(greedy(promptOf(61, 5), 480, { deadlineMs: 80 }));
    let streamed = 0;
    try {
      for await (const c of gen) streamed += c.tokens.length;
    } catch {
      /* the stream ends with the error too */
    }
    const err = await rejectionOf(gen.result);
    const ms = performance.now() - t0;
    console.log(`running request with deadlineMs 80: ${err.code} after ${ms.toFixed(1)} ms and ${streamed} tokens: ${err.message}`);
    expect(err.code).toBe('TIMEOUT');
    expect(err.message).toMatch(/running/);
    expect(streamed).toBeGreaterThan(0);
    expect(streamed).toBeLessThan(480);
    expect(ms).toBeGreaterThanOrEqual(75);
    expect(ms).toBeLessThan(600);
    expect(engine.stats().requests.timedOut - before).toBe(1);
    await expectNoLeakedBlocks(engine);
  });

  it('a deadline that is not reached changes nothing', async () => {
    const a = await engine.generate(greedy(promptOf(62, 5), 8, { deadlineMs: 60_000 })).result;
    const b = await engine.generate(greedy(promptOf(62, 5), 8)).result;
    expect(a.finishReason).toBe('length');
    expect(a.tokens).toEqual(b.tokens);
  });
});

describe('cancellation', () => {
  let engine: Engine;
  beforeAll(async () => {
    engine = await load(fast, { scheduler: { maxBatchSize: 2 } });
  });
  afterAll(async () => engine?.close());

  it('gen.cancel() mid-stream ends it with finishReason cancelled and the tokens streamed so far', async () => {
    const before = engine.stats().requests.cancelled;
    // Paused after 5 tokens until the cancel lands: it cannot run to 450 first, however late the event loop is.
    const gen = engine.generate(greedy(promptOf(70, 30), 450, { pauseAfterTokens: 5 }));
    const streamed: number[] = [];
    for await (const c of gen) {
      streamed.push(...c.tokens);
      if (streamed.length >= 5) gen.cancel();
    }
    const r = await gen.result;
    expect(r.finishReason).toBe('cancelled');
    expect(r.tokens).toEqual(streamed);
    expect(r.tokens.length).toBeGreaterThanOrEqual(5);
    expect(r.tokens.length).toBeLessThan(450);
    expect(r.usage.completionTokens).toBe(r.tokens.length);
    expect(engine.stats().requests.cancelled - before).toBe(1);
    await expectNoLeakedBlocks(engine);
  });

  it('engine.cancel(id) cancels a waiting request too, and running ones by id', async () => {
    // The running ones pause after a token, holding both batch slots: the third must wait, and nothing ends by itself.
    const running = [0, 1].map((i) => engine.generate(greedy(promptOf(71 + i, 5), 450, { pauseAfterTokens: 1 })));
    const queued = engine.generate(greedy(promptOf(73, 5), 10));
    expect(await waitFor(() => engine.stats().requests.running === 2 && engine.stats().requests.waiting === 1)).toBe(true);
    expect(engine.cancel(queued.id)).toBe(true);
    const q = await queued.result;
    expect(q.finishReason).toBe('cancelled');
    expect(q.tokens).toEqual([]);
    for (const g of running) expect(engine.cancel(g.id)).toBe(true);
    for (const g of running) expect((await g.result).finishReason).toBe('cancelled');
    expect(engine.cancel(123456789), 'unknown id').toBe(false);
    const done = engine.generate(greedy(promptOf(74, 5), 2));
    await done.result;
    done.cancel(); // a no-op on a finished generation
    expect((await done.result).finishReason).toBe('length');
    expect(await waitFor(() => engine.cancel(done.id) === false, 500), 'cancel(id) of an ended request').toBe(true);
    await expectNoLeakedBlocks(engine);
  });

  // Regression (a fixed engine bug): the id once left the engine's active set only at the end of the loop iteration
  // in which the request ended, after its final event was delivered, so cancel(id) could return true for a request
  // whose result had resolved (documented: "false if it already ended"). Ending a request now retires its id first
  // (RequestOutput::end in native/src/engine_output.cpp).
  it('engine.cancel(id) is false as soon as the result has settled', async () => {
    const e = await load(slow, { scheduler: { maxBatchSize: 1 } });
    try {
      await occupy(e, 400, false); // steps of a few ms keep going
      let trues = 0;
      for (let i = 0; i < 4; i++) {
        const g = e.generate(greedy(promptOf(76 + i, 5), 4));
        g.cancel();
        expect((await g.result).finishReason).toBe('cancelled');
        if (e.cancel(g.id)) trues++;
        const t = e.generate(greedy(promptOf(80 + i, 5), 4, { deadlineMs: 5 }));
        expect((await rejectionOf(t.result)).code).toBe('TIMEOUT');
        if (e.cancel(t.id)) trues++;
      }
      expect(trues, 'cancel(id) returned true after the result settled (of 8)').toBe(0);
    } finally {
      await e.close();
    }
  });

  it('cancelling one of a batch leaves the others exactly as they would have been', async () => {
    const reqs = [0, 1].map((i) => greedy(promptOf(80 + i, 12), 40));
    const ref = await engine.generate(reqs[1]!).result;
    // `a` pauses after 3 tokens until the cancel lands, so it cannot finish first however late the event loop runs
    // (it once did on a busy machine: all 40 tokens before the cancel reached the engine).
    const [a, b] = reqs.map((r, i) => engine.generate(i === 0 ? { ...r, pauseAfterTokens: 3 } : r));
    let n = 0;
    for await (const c of a!) {
      n += c.tokens.length;
      if (n >= 3) a!.cancel();
    }
    expect((await a!.result).finishReason).toBe('cancelled');
    expect((await b!.result).tokens).toEqual(ref.tokens);
  });

  it('close() with work in flight ends every request as cancelled; later calls throw ENGINE_CLOSED', async () => {
    const e = await load(fast, { scheduler: { maxBatchSize: 2 } });
    // Paused after a token: none can finish before close(), however late the event loop runs.
    const gens = Array.from({ length: 5 }, (_, i) => e.generate(greedy(promptOf(90 + i, 5), 450, { pauseAfterTokens: 1 })));
    await waitFor(() => e.stats().requests.running === 2);
    await e.close();
    const rs = await Promise.all(gens.map((g) => g.result));
    for (const r of rs) expect(r.finishReason).toBe('cancelled');
    expect(thrownBy(() => e.generate(greedy([1, 2], 1))).code).toBe('ENGINE_CLOSED');
    expect(thrownBy(() => e.stats()).code).toBe('ENGINE_CLOSED');
    await e.close(); // idempotent
  });
});
