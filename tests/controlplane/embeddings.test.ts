// POST /v1/embeddings with the official openai SDK against a real server, and POST /tokenize, /detokenize in both
// llama.cpp's and vLLM's shapes. The embeddings' oracle is llama.cpp itself (node-llama-cpp's embedding context on the
// same file): for a decoder model without pooling metadata it returns the last token's final-normed hidden state
// (llama_get_embeddings_ith(ctx, -1)), which is our documented default (last pooling) before the L2 normalisation; for
// files that carry a pooling_type (mean, cls, last) llama.cpp pools as the file says, and so must we.
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine, EngineError, l2Normalize } from '../../src/engine/index.js';
import { gv } from '../../tools/lib/gguf-writer.js';
import { ArchModels } from '../helpers/arch-models.js';
import { llamaCpp } from '../helpers/llama-cpp.js';
import { REPO_ROOT } from '../helpers/shared.js';
import { pino } from 'pino';
import { loadConfig } from '../../src/config/load.js';
import { DEFAULT_SERVER_OPTIONS } from '../../src/controlplane/app.js';
import { startServer } from '../../src/controlplane/http-server.js';
import { createMetrics } from '../../src/metrics/registry.js';
import { MODEL, MODEL_NAME, postJson, startHarness, type Harness } from './harness.js';

const TEXTS = ['To be, or not to be: that is the question.', 'ROMEO: But, soft! what light through yonder window breaks?', 'Now is the winter of our discontent'];

/** llama.cpp's embedding of `tokens` on `file` (its pooling as the file says; none: the last token), as float64s. */
async function llamaEmbeddings(file: string, inputs: number[][]): Promise<number[][]> {
  const llama = await llamaCpp();
  const model = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
  try {
    const ctx = await model.createEmbeddingContext({ contextSize: 256, threads: 1 });
    try {
      const out: number[][] = [];
      for (const tokens of inputs) {
        // The oracle must see exactly these tokens: node-llama-cpp adds BOS / EOS only where the vocabulary asks, as
        // engine.tokenize does; this checks it added nothing.
        expect(ctx.calculateInputLength(tokens as never)).toBe(tokens.length);
        out.push([...(await ctx.getEmbeddingFor(tokens as never)).vector]);
      }
      return out;
    } finally {
      await ctx.dispose();
    }
  } finally {
    await model.dispose();
  }
}

/** Both unit length (ours) after normalising the oracle; cosine and elementwise closeness. f16 weights and llama.cpp's
 *  f16 KV cache and rounded activations leave ~1e-4 differences; a wrong pooling or a missed norm is far off. */
function expectClose(ours: ArrayLike<number>, oracle: number[]): void {
  const ref = l2Normalize(Float32Array.from(oracle));
  expect(ours.length).toBe(ref.length);
  let dot = 0,
    maxDiff = 0,
    n2 = 0;
  for (let i = 0; i < ref.length; i++) {
    dot += ours[i]! * ref[i]!;
    n2 += ours[i]! * ours[i]!;
    maxDiff = Math.max(maxDiff, Math.abs(ours[i]! - ref[i]!));
  }
  expect(Math.abs(Math.sqrt(n2) - 1)).toBeLessThan(1e-5);
  expect(dot).toBeGreaterThan(0.9999);
  expect(maxDiff).toBeLessThan(2e-3);
}

interface ErrBody {
  error: { message: string; type: string; param: string | null; code: string };
}

describe('POST /v1/embeddings (openai SDK) on the shipped model', () => {
  let h: Harness;
  let client: OpenAI;
  beforeAll(async () => {
    h = await startHarness();
    client = new OpenAI({ baseURL: `${h.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });
  afterAll(async () => {
    await h?.stop();
  });

  it('a decoder model without pooling metadata pools its last token, as llama.cpp computes it; unit length', async () => {
    expect(h.engine.info.poolingType).toBe(-1);
    const tokens = TEXTS.map((t) => h.engine.tokenize(t));
    const oracle = await llamaEmbeddings(MODEL, tokens);
    const r = await client.embeddings.create({ model: MODEL_NAME, input: TEXTS, encoding_format: 'float' });
    expect(r.object).toBe('list');
    expect(r.model).toBe(MODEL_NAME);
    expect(r.data.map((d) => [d.object, d.index])).toEqual(TEXTS.map((_t, i) => ['embedding', i]));
    const total = tokens.reduce((s, t) => s + t.length, 0);
    expect(r.usage).toEqual({ prompt_tokens: total, total_tokens: total });
    for (let i = 0; i < TEXTS.length; i++) {
      expect(r.data[i]!.embedding).toHaveLength(h.engine.info.dim);
      expectClose(r.data[i]!.embedding, oracle[i]!);
      // Exactly the engine's vector (float32 values survive JSON as doubles).
      expect(Float32Array.from(r.data[i]!.embedding)).toEqual(await h.engine.embed(tokens[i]!));
    }
    // The pooling is the last token's: the hidden state of the last row, normalised.
    const hidden = await h.engine.hiddenStates(tokens[0]!);
    const dim = h.engine.info.dim;
    expect(Float32Array.from(r.data[0]!.embedding)).toEqual(l2Normalize(hidden.slice((tokens[0]!.length - 1) * dim)));
  });

  it('base64 (the SDK default, decoded by the SDK) carries the same float32 values; a batch equals its inputs alone', async () => {
    const plain = await client.embeddings.create({ model: MODEL_NAME, input: TEXTS[1]!, encoding_format: 'float' });
    const viaDefault = await client.embeddings.create({ model: MODEL_NAME, input: TEXTS[1]! }); // SDK asks base64
    expect(viaDefault.data[0]!.embedding).toEqual(plain.data[0]!.embedding);
    // On the wire: little-endian float32s, base64.
    const raw = await postJson(`${h.url}/v1/embeddings`, { model: MODEL_NAME, input: TEXTS[1], encoding_format: 'base64' });
    const j = (await raw.json()) as { data: { embedding: string }[] };
    const bytes = Buffer.from(j.data[0]!.embedding, 'base64');
    expect(bytes.length).toBe(4 * h.engine.info.dim);
    const decoded = Array.from({ length: h.engine.info.dim }, (_v, i) => bytes.readFloatLE(4 * i));
    expect(decoded).toEqual(plain.data[0]!.embedding);
    // Asked for explicitly, the SDK hands the base64 string through undecoded.
    const batch = await client.embeddings.create({ model: MODEL_NAME, input: [TEXTS[2]!, TEXTS[1]!], encoding_format: 'base64' });
    expect(batch.data[1]!.embedding as unknown as string).toBe(j.data[0]!.embedding);
  });

  it('token ids and arrays of token ids as input; dimensions equal to the width and user are accepted', async () => {
    const ids = h.engine.tokenize(TEXTS[0]!);
    const byText = await client.embeddings.create({ model: MODEL_NAME, input: TEXTS[0]!, encoding_format: 'float' });
    const byIds = await client.embeddings.create({ model: MODEL_NAME, input: ids, encoding_format: 'float', dimensions: h.engine.info.dim, user: 'u-1' });
    expect(byIds.data[0]!.embedding).toEqual(byText.data[0]!.embedding);
    const two = await client.embeddings.create({ model: MODEL_NAME, input: [ids, ids.slice(0, 3)], encoding_format: 'float' });
    expect(two.data).toHaveLength(2);
    expect(two.data[0]!.embedding).toEqual(byText.data[0]!.embedding);
    expect(two.usage.prompt_tokens).toBe(ids.length + 3);
  });

  it.each([
    ['an empty string', { input: '' }, 'input'],
    ['an empty array', { input: [] }, 'input'],
    ['strings and ids mixed', { input: ['a', [1, 2]] }, 'input'],
    ['a negative token id', { input: [1, -2] }, 'input'],
    ['an empty token array in a batch', { input: [[1], []] }, 'input'],
    ['a token id outside the vocabulary', { input: [1, 1 << 20] }, 'input'],
    ['a number as input', { input: 5.5 }, 'input'],
    ['no input', { input: undefined }, 'input'],
    ['an encoding that is not float or base64', { input: 'x', encoding_format: 'int8' }, 'encoding_format'],
    ['dimensions other than the width', { input: 'x', dimensions: 8 }, 'dimensions'],
    ['dimensions that are not an integer', { input: 'x', dimensions: '8' }, 'dimensions'],
    ['user that is not a string', { input: 'x', user: 5 }, 'user'],
    ['an unknown field', { input: 'x', pooling: 'mean' }, 'pooling'],
  ])('400 naming the field for %s', async (_name, extra, param) => {
    const r = await postJson(`${h.url}/v1/embeddings`, { model: MODEL_NAME, ...extra });
    const j = (await r.json()) as ErrBody;
    expect(r.status, JSON.stringify(j)).toBe(400);
    expect(j.error.type).toBe('invalid_request_error');
    expect(j.error.param).toBe(param);
  });

  it('an input longer than the context is context_length_exceeded; an unknown model 404', async () => {
    const long = Array.from({ length: h.engine.info.contextLength + 1 }, () => 5);
    const r = await postJson(`${h.url}/v1/embeddings`, { model: MODEL_NAME, input: [[1], long] });
    const j = (await r.json()) as ErrBody;
    expect(r.status).toBe(400);
    expect(j.error.code).toBe('context_length_exceeded');
    expect(j.error.message).toContain('input[1]');
    const m = await postJson(`${h.url}/v1/embeddings`, { model: 'nope', input: 'x' });
    expect(m.status).toBe(404);
  });
});

describe('embeddings metrics (a server with the Prometheus registry)', () => {
  it('counts answered requests, their inputs and tokens; the HTTP family labels the route', async () => {
    const config = loadConfig({ overrides: { 'model.threads': '1', 'model.name': MODEL_NAME } });
    const engine = await Engine.load({ model: MODEL, threads: 1 });
    const metrics = createMetrics({ engine, config });
    const server = await startServer({
      engine,
      options: { ...DEFAULT_SERVER_OPTIONS, port: 0, modelName: MODEL_NAME },
      logger: pino({ level: 'silent' }),
      metricsHook: metrics,
    });
    try {
      const ok = await postJson(`${server.url}/v1/embeddings`, {
        model: MODEL_NAME,
        input: [
          [1, 2, 3],
          [4, 5],
        ],
      });
      expect(ok.status).toBe(200);
      expect((await postJson(`${server.url}/v1/embeddings`, { model: MODEL_NAME, input: '' })).status).toBe(400);
      expect((await postJson(`${server.url}/tokenize`, { content: 'hi' })).status).toBe(200);
      const text = await metrics.metricsText();
      const value = (line: RegExp): number =>
        Number(
          text
            .split('\n')
            .find((l) => line.test(l))
            ?.split(' ')
            .at(-1),
        );
      expect(value(/^tuneloop_embedding_requests_total\{/)).toBe(1);
      expect(value(/^tuneloop_embedding_inputs_total\{/)).toBe(2);
      expect(value(/^tuneloop_embedding_input_tokens_total\{/)).toBe(5);
      expect(value(/^tuneloop_requests_total\{.*endpoint="\/v1\/embeddings".*status="200"/)).toBe(1);
      expect(value(/^tuneloop_requests_total\{.*endpoint="\/v1\/embeddings".*status="400"/)).toBe(1);
      expect(value(/^tuneloop_requests_total\{.*endpoint="\/tokenize".*status="200"/)).toBe(1);
    } finally {
      await server.close();
      await engine.close();
    }
  });
});

describe('pooling from the GGUF (synthetic qwen2 files with <arch>.pooling_type), against llama.cpp', () => {
  const models = new ArchModels();
  afterAll(() => models.cleanup());

  it.each([
    [1, 'mean'],
    [2, 'cls'],
    [3, 'last'],
  ])('pooling_type %i (%s) pools as llama.cpp does', async (type) => {
    const f = models.write('qwen2', { real: false, edit: (m) => void m.metadata.push(['qwen2.pooling_type', gv.u32(type)]) });
    const engine = await Engine.load({ model: f.file, threads: 1, contextLength: 256 });
    try {
      expect(engine.info.poolingType).toBe(type);
      const inputs = [engine.tokenize('the quick brown fox jumps over the lazy dog'), engine.tokenize('hello world, hello')];
      const oracle = await llamaEmbeddings(f.file, inputs);
      for (let i = 0; i < inputs.length; i++) expectClose(await engine.embed(inputs[i]!), oracle[i]!);
    } finally {
      await engine.close();
    }
  });

  it('a model of another family (tuneloop-deepseek-tiny: MLA, MoE) pools its last token as llama.cpp does', async () => {
    const file = join(REPO_ROOT, 'models', 'tuneloop-deepseek-tiny.gguf');
    const engine = await Engine.load({ model: file, threads: 1, contextLength: 256 });
    try {
      expect(engine.info.poolingType).toBe(-1);
      const inputs = [engine.tokenize('the quick brown fox jumps over the lazy dog'), engine.tokenize('hello world, hello')];
      const oracle = await llamaEmbeddings(file, inputs);
      for (let i = 0; i < inputs.length; i++) expectClose(await engine.embed(inputs[i]!), oracle[i]!);
    } finally {
      await engine.close();
    }
  });

  it.each([
    [0, 'none'],
    [4, 'rank'],
  ])('pooling_type %i (%s) is refused with a message', async (type, name) => {
    const f = models.write('qwen2', { real: false, edit: (m) => void m.metadata.push(['qwen2.pooling_type', gv.u32(type)]) });
    const engine = await Engine.load({ model: f.file, threads: 1, contextLength: 256 });
    try {
      const err = await engine.embed([1, 2, 3]).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(EngineError);
      expect((err as EngineError).code).toBe('INVALID_ARGUMENT');
      expect((err as EngineError).message).toContain(`pooling_type is ${name}`);
    } finally {
      await engine.close();
    }
  });
});

describe('POST /tokenize and /detokenize (llama.cpp and vLLM shapes)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h?.stop();
  });
  const post = async (path: string, body: unknown): Promise<{ status: number; j: any }> => {
    const r = await postJson(`${h.url}${path}`, body);
    return { status: r.status, j: await r.json() };
  };

  it("llama.cpp's shape: content, add_special (default off), with_pieces; detokenize answers content", async () => {
    const text = TEXTS[0]!;
    const plain = await post('/tokenize', { content: text });
    expect(plain.status).toBe(200);
    expect(plain.j.tokens).toEqual(h.engine.tokenize(text, { addBos: false, parseSpecial: true }));
    const withBos = await post('/tokenize', { content: text, add_special: true });
    expect(withBos.j.tokens).toEqual(h.engine.tokenize(text, { addBos: true, parseSpecial: true }));
    expect(withBos.j.tokens[0]).toBe(h.engine.info.tokenizer.bosId);
    const pieces = await post('/tokenize', { content: text, with_pieces: true });
    expect(pieces.j.tokens.map((p: { id: number }) => p.id)).toEqual(plain.j.tokens);
    expect(pieces.j.tokens.map((p: { piece: string }) => p.piece).join('')).toBe(text);
    const back = await post('/detokenize', { tokens: plain.j.tokens });
    expect(back.status).toBe(200);
    expect(back.j.content).toBe(text);
    expect(back.j.prompt).toBe(text);
  });

  it("vLLM's shape: model, prompt, add_special_tokens (default on) → tokens, count, max_model_len; chat messages", async () => {
    const text = TEXTS[1]!;
    const r = await post('/tokenize', { model: MODEL_NAME, prompt: text });
    expect(r.status).toBe(200);
    const expected = h.engine.tokenize(text, { addBos: true, parseSpecial: true });
    expect(r.j).toEqual({ tokens: expected, count: expected.length, max_model_len: h.engine.info.contextLength });
    const off = await post('/tokenize', { model: MODEL_NAME, prompt: text, add_special_tokens: false, return_token_strs: true });
    expect(off.j.tokens).toEqual(expected.slice(1));
    expect(off.j.token_strs.join('')).toBe(text);
    expect((await post('/detokenize', { model: MODEL_NAME, tokens: off.j.tokens })).j.prompt).toBe(text);
    // Round trip through the engine for arbitrary ids.
    const ids = [5, 17, 300, 2000];
    expect((await post('/detokenize', { tokens: ids })).j.content).toBe(h.engine.detokenize(ids));
    const chat = await post('/tokenize', { model: MODEL_NAME, messages: [{ role: 'user', content: 'Hello there' }], add_generation_prompt: true });
    expect(chat.status).toBe(200);
    expect(chat.j.count).toBe(chat.j.tokens.length);
    expect(h.engine.detokenize(chat.j.tokens)).toContain('Hello there');
  });

  it.each([
    ['/tokenize', {}, 'content'],
    ['/tokenize', { content: 'a', prompt: 'b' }, 'prompt'],
    ['/tokenize', { content: 5 }, 'content'],
    ['/tokenize', { content: 'a', add_special_tokens: true }, 'add_special_tokens'],
    ['/tokenize', { prompt: 'a', add_special: true }, 'add_special'],
    ['/tokenize', { prompt: 'a', with_pieces: 'yes' }, 'with_pieces'],
    ['/tokenize', { messages: [{ role: 'user', content: 'x' }], add_generation_prompt: false }, 'add_generation_prompt'],
    ['/tokenize', { messages: [{ role: 'nobody', content: 'x' }] }, 'messages[0].role'],
    ['/tokenize', { prompt: 'a', chat_template: '{{ x }}' }, 'chat_template'],
    ['/tokenize', { prompt: 'a', frobnicate: 1 }, 'frobnicate'],
    ['/detokenize', {}, 'tokens'],
    ['/detokenize', { tokens: [1, -1] }, 'tokens'],
    ['/detokenize', { tokens: [1 << 20] }, 'tokens'],
    ['/detokenize', { tokens: 'abc' }, 'tokens'],
  ])('%s 400 naming the field for %j', async (path, body, param) => {
    const r = await post(path, body);
    expect(r.status, JSON.stringify(r.j)).toBe(400);
    expect(r.j.error.param).toBe(param);
  });

  it('a model other than the served one is 404 (vLLM names it)', async () => {
    expect((await post('/tokenize', { model: 'other', prompt: 'a' })).status).toBe(404);
    expect((await post('/detokenize', { model: 'other', tokens: [1] })).status).toBe(404);
  });
});
