// GET /v1/models: OpenAI's four fields, then the model's architecture, parameters, context length, the live weights
// policy with the bytes held per GGUF type and the bits per weight — refreshed by a reload — and the chat template.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../../src/engine/index.js';
import { MODEL, MODEL_NAME, startHarness, type Harness } from './harness.js';

describe('GET /v1/models', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h?.stop();
  });

  const list = async () => {
    const r = await fetch(`${h.url}/v1/models`);
    expect(r.status).toBe(200);
    return (await r.json()) as { object: string; data: Record<string, unknown>[] };
  };

  it("lists the served model in OpenAI's shape, with its architecture, size and live weights", async () => {
    const body = await list();
    expect(body.object).toBe('list');
    expect(body.data).toHaveLength(1);
    const m = body.data[0]!;
    expect(Object.keys(m).slice(0, 4)).toEqual(['id', 'object', 'created', 'owned_by']);
    expect(m).toMatchObject({ id: MODEL_NAME, object: 'model', owned_by: 'tuneloop' });
    expect(Number.isInteger(m.created)).toBe(true);
    const ins = Engine.inspect(MODEL);
    expect(m).toMatchObject({
      architecture: 'llama',
      parameters: ins.parameters,
      context_length: 256,
      trained_context_length: 256,
      weights: 'native',
      // The shipped file's types, held as they are.
      weight_bytes: { f16: 9_601_024, f32: 13_312 },
    });
    expect(m.bits_per_weight).toBeCloseTo(16.01, 2);
    // The shipped file has no chat template: the built-in one (chat-templates-serving.test.ts covers files with one).
    expect(m.chat_template).toEqual({ source: 'tuneloop-default', names: [], warnings: [] });
    // The same answer twice (created is when the server started serving the model, not the request time).
    expect((await list()).data[0]).toEqual(m);
  });

  it('follows a reload: the new policy, its bytes by type and bits per weight', async () => {
    await h.engine.reload({ weights: 'q4_k' });
    const m = (await list()).data[0]!;
    expect(m.weights).toBe('q4_k');
    // 672-wide FFN rows are not whole 256-blocks: ffn_down falls back to q5_0.
    expect(Object.keys(m.weight_bytes as object).sort()).toEqual(['f32', 'q4_K', 'q5_0']);
    expect(m.bits_per_weight as number).toBeGreaterThan(4.5);
    expect(m.bits_per_weight as number).toBeLessThan(5);
    await h.engine.reload({ weights: 'native' });
    expect((await list()).data[0]!.weights).toBe('native');
  });
});
