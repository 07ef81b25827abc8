// The pauseAfterTokens test hook (GenerateRequest.pauseAfterTokens, engine.resume): a paused request stops at exactly
// that many tokens, keeps its batch slot and KV blocks, and is not stepped until it is resumed or cancelled. Tests
// use it to act at a known token count however late their event loop runs; these checks keep it honest.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../../src/engine/index.js';
import { SERVE_SHAPE, expectNoLeakedBlocks, greedy, load, promptOf, sleep, waitFor } from '../helpers/serving.js';
import { TempModels } from '../helpers/synthetic.js';

const models = new TempModels();
let engine: Engine;
beforeAll(async () => {
  engine = await load(models.write(SERVE_SHAPE, 'f32', 'llama', 51), { scheduler: { maxBatchSize: 1 } });
});
afterAll(async () => {
  await engine?.close();
  models.cleanup();
});

describe('pauseAfterTokens', () => {
  it('stops at exactly N tokens holding its slot; resumed, it gives the tokens it would have given', async () => {
    const req = greedy(promptOf(1, 9), 30);
    const ref = await engine.generate(req).result;
    const g = engine.generate({ ...req, pauseAfterTokens: 4 });
    const other = engine.generate(greedy(promptOf(2, 9), 3));
    let streamed = 0;
    const counting = (async () => {
      for await (const c of g) streamed += c.tokens.length;
    })();
    expect(await waitFor(() => streamed === 4, 2000)).toBe(true);
    const before = engine.stats();
    await sleep(30);
    const after = engine.stats();
    expect(streamed, 'no token past the pause').toBe(4);
    expect(after.tokens.generated).toBe(before.tokens.generated);
    expect(after.requests).toMatchObject({ running: 1, waiting: 1 }); // the slot stays taken
    expect(after.kvCache.blocksUsed).toBeGreaterThan(0);
    expect(engine.resume(g.id)).toBe(true);
    await counting;
    expect((await g.result).tokens).toEqual(ref.tokens);
    expect((await other.result).tokens).toHaveLength(3);
    expect(engine.resume(g.id), 'an ended request').toBe(false);
    await expectNoLeakedBlocks(engine);
  });

  it('a paused request is cancelled with the tokens it had; resume before the pause point disarms it', async () => {
    const g = engine.generate(greedy(promptOf(3, 9), 30, { pauseAfterTokens: 2 }));
    let n = 0;
    for await (const c of g) {
      n += c.tokens.length;
      if (n >= 2) g.cancel(); // it waits at the pause for this
    }
    const r = await g.result;
    expect(r.finishReason).toBe('cancelled');
    expect(r.tokens).toHaveLength(2);

    const early = engine.generate(greedy(promptOf(4, 9), 12, { pauseAfterTokens: 6 }));
    engine.resume(early.id);
    expect((await early.result).tokens).toHaveLength(12);
    await expectNoLeakedBlocks(engine);
  });
});
