// Sampling parity over HTTP with the official openai SDK as the client: n > 1 (the prompt prefilled once, the choices
// sharing its KV blocks), presence / frequency / repetition penalties, logit_bias, min_p, completions' echo with
// prompt logprobs (what lm-evaluation-harness scores log-likelihoods with) and max_tokens 0, and 400s naming the field.
import OpenAI, { BadRequestError } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MODEL_NAME, startHarness, type Harness } from './harness.js';

let h: Harness;
let client: OpenAI;
beforeAll(async () => {
  h = await startHarness();
  client = new OpenAI({ baseURL: `${h.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});
afterAll(async () => {
  await h?.stop();
});

/** A request body with our extension fields (the SDK passes unknown fields through). */
const ext = <T>(body: T, extra: Record<string, unknown>): T => ({ ...body, ...extra });

describe('n choices', () => {
  it('n: 3 greedy completions: three identical choices, the prompt prefilled once, usage as OpenAI sums it', async () => {
    const prompt = 'KING HENRY:\nOnce more unto the breach, dear friends, once more';
    const before = h.engine.stats();
    const r = await client.completions.create({ model: MODEL_NAME, prompt, max_tokens: 12, temperature: 0, n: 3 });
    const after = h.engine.stats();
    expect(r.choices.map((c) => c.index)).toEqual([0, 1, 2]);
    expect(new Set(r.choices.map((c) => c.text)).size).toBe(1);
    const promptTokens = h.engine.tokenize(prompt).length;
    expect(r.usage).toEqual({ prompt_tokens: promptTokens, completion_tokens: 36, total_tokens: promptTokens + 36 });
    expect(after.tokens.prefillComputed - before.tokens.prefillComputed, 'prompt computed once').toBe(promptTokens);
    expect(after.tokens.promptCached - before.tokens.promptCached).toBe(2 * promptTokens);
    const solo = await client.completions.create({ model: MODEL_NAME, prompt, max_tokens: 12, temperature: 0 });
    expect(r.choices[0]!.text).toBe(solo.choices[0]!.text);
  });

  it('seeded sampled chat choices are reproducible, and streaming carries each choice index', async () => {
    const params = { model: MODEL_NAME, messages: [{ role: 'user' as const, content: 'Speak of the moon.' }], max_tokens: 16, temperature: 1, seed: 7, n: 3 };
    const a = await client.chat.completions.create(params);
    const b = await client.chat.completions.create(params);
    expect(a.choices.map((c) => c.message.content)).toEqual(b.choices.map((c) => c.message.content));
    expect(new Set(a.choices.map((c) => c.message.content)).size).toBeGreaterThan(1);
    expect(a.usage!.total_tokens).toBe(a.usage!.prompt_tokens + a.usage!.completion_tokens);
    expect(a.usage!.completion_tokens).toBeGreaterThan(16); // summed over the choices (each at most 16)

    const stream = await client.chat.completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
    const texts = ['', '', ''];
    const finish: (string | null)[] = [null, null, null];
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) {
      for (const c of chunk.choices) {
        texts[c.index] += c.delta.content ?? '';
        if (c.finish_reason) finish[c.index] = c.finish_reason;
      }
      if (chunk.usage) usage = chunk.usage;
    }
    expect(texts).toEqual(a.choices.map((c) => c.message.content));
    expect(finish).toEqual(a.choices.map((c) => c.finish_reason));
    expect(usage).toEqual(a.usage);
  });
});

describe('penalties, logit_bias, min_p', () => {
  it('logit_bias +100 on one token makes greedy output that token only; -100 keeps it out', async () => {
    const id = h.engine.tokenize('e', false)[0]!;
    const piece = h.engine.detokenize([id]);
    const r = await client.completions.create({ model: MODEL_NAME, prompt: 'ROMEO:', max_tokens: 6, temperature: 0, logit_bias: { [String(id)]: 100 } });
    expect(r.choices[0]!.text).toBe(piece.repeat(6));
    const plain = await client.completions.create({ model: MODEL_NAME, prompt: 'ROMEO:', max_tokens: 40, temperature: 0, logprobs: 0 });
    const banned = plain.choices[0]!.logprobs!.tokens![0]!;
    const bannedId = h.engine.tokenize(banned, false)[0]!;
    const r2 = await client.completions.create({
      model: MODEL_NAME,
      prompt: 'ROMEO:',
      max_tokens: 40,
      temperature: 0,
      logprobs: 0,
      logit_bias: { [String(bannedId)]: -100 },
    });
    expect(r2.choices[0]!.logprobs!.tokens).not.toContain(banned);
  });

  it('the penalties and min_p reach the engine: HTTP greedy equals engine.generate with the same fields', async () => {
    const prompt = 'JULIET:';
    const fields = { frequency_penalty: 1.2, presence_penalty: 0.8 };
    const http = await client.completions.create(ext({ model: MODEL_NAME, prompt, max_tokens: 30, temperature: 0 }, { ...fields, repetition_penalty: 1.3 }));
    const direct = await h.engine.generate({ prompt, maxTokens: 30, temperature: 0, frequencyPenalty: 1.2, presencePenalty: 0.8, repetitionPenalty: 1.3 }).result;
    const plain = await h.engine.generate({ prompt, maxTokens: 30, temperature: 0 }).result;
    expect(http.choices[0]!.text).toBe(direct.text);
    expect(direct.text).not.toBe(plain.text);
    // min_p 1 leaves only the top token: sampled at any temperature, it is greedy.
    const minP = await client.completions.create(ext({ model: MODEL_NAME, prompt, max_tokens: 20, temperature: 1.5, seed: 3 }, { min_p: 1 }));
    expect(minP.choices[0]!.text).toBe(plain.text.slice(0, minP.choices[0]!.text.length));
  });
});

describe('echo, prompt logprobs and max_tokens 0', () => {
  it('echo + logprobs + max_tokens 0: the prompt and its log-likelihoods, equal to engine.perplexity', async () => {
    const prompt = 'ROMEO:\nBut soft, what light through yonder window breaks?';
    const tokens = h.engine.tokenize(prompt);
    const r = await client.completions.create({ model: MODEL_NAME, prompt, max_tokens: 0, echo: true, logprobs: 1 });
    const c = r.choices[0]!;
    expect(c.text).toBe(prompt);
    expect(c.finish_reason).toBe('length');
    expect(r.usage).toEqual({ prompt_tokens: tokens.length, completion_tokens: 0, total_tokens: tokens.length });
    const lps = c.logprobs!;
    expect(lps.tokens).toEqual(tokens.map((t) => h.engine.detokenize([t])));
    expect(lps.token_logprobs![0]).toBeNull();
    expect(lps.top_logprobs![0]).toBeNull();
    const scored = lps.token_logprobs!.slice(1);
    const ppl = await h.engine.perplexity(tokens);
    expect(scored).toHaveLength(ppl.tokens);
    expect(-scored.reduce((a, b) => a + b, 0) / scored.length).toBeCloseTo(ppl.nll, 9);
    // Per token, against the log-softmax of engine.evaluate's logits (the rows perplexity sums).
    const V = h.engine.info.nVocab;
    const logits = await h.engine.evaluate(tokens, { allLogits: true });
    for (let i = 1; i < tokens.length; i++) {
      const row = logits.subarray((i - 1) * V, i * V);
      let max = -Infinity;
      for (const v of row) max = Math.max(max, v);
      let sum = 0;
      for (const v of row) sum += Math.exp(v - max);
      expect(scored[i - 1]).toBeCloseTo(row[tokens[i]!]! - max - Math.log(sum), 9);
      // The top alternative's logprob is at least the actual token's.
      expect(Math.max(...Object.values(lps.top_logprobs![i]!))).toBeGreaterThanOrEqual(scored[i - 1]! - 1e-9);
    }
  });

  it('lm-evaluation-harness style: token-id prompt, echo, max_tokens 0', async () => {
    const tokens = h.engine.tokenize('To be, or not to be');
    const r = await client.completions.create({ model: MODEL_NAME, prompt: tokens, max_tokens: 0, echo: true, logprobs: 0, temperature: 0 });
    expect(r.choices[0]!.logprobs!.token_logprobs).toHaveLength(tokens.length);
    expect(r.choices[0]!.text).toBe(h.engine.detokenize(tokens));
  });

  it('echo with generation: the prompt, then the completion, with logprobs for both', async () => {
    const prompt = 'HAMLET:';
    const plain = await client.completions.create({ model: MODEL_NAME, prompt, max_tokens: 8, temperature: 0, logprobs: 2 });
    const r = await client.completions.create({ model: MODEL_NAME, prompt, max_tokens: 8, temperature: 0, logprobs: 2, echo: true });
    const n = h.engine.tokenize(prompt).length;
    const c = r.choices[0]!;
    expect(c.text).toBe(prompt + plain.choices[0]!.text);
    expect(c.logprobs!.tokens).toHaveLength(n + 8);
    // The same tokens; the logprobs to float noise (the echo's evaluation may share the generation's batch).
    expect(c.logprobs!.tokens!.slice(n)).toEqual(plain.choices[0]!.logprobs!.tokens);
    c.logprobs!.token_logprobs!.slice(n).forEach((l, i) => expect(l).toBeCloseTo(plain.choices[0]!.logprobs!.token_logprobs![i]!, 5));
    expect(c.logprobs!.text_offset!.slice(n)).toEqual(plain.choices[0]!.logprobs!.text_offset!.map((o) => o + prompt.length));
    // Streamed: the echoed prompt comes first, then the same completion.
    const stream = await client.completions.create({ model: MODEL_NAME, prompt, max_tokens: 8, temperature: 0, echo: true, stream: true });
    let text = '';
    for await (const chunk of stream) for (const ch of chunk.choices) text += ch.text;
    expect(text).toBe(c.text);
  });

  it('max_tokens 0 without echo: an empty completion; chat too', async () => {
    const r = await client.completions.create({ model: MODEL_NAME, prompt: 'ROMEO:', max_tokens: 0 });
    expect(r.choices).toEqual([{ index: 0, text: '', logprobs: null, finish_reason: 'length' }]);
    expect(r.usage!.completion_tokens).toBe(0);
    const chat = await client.chat.completions.create({ model: MODEL_NAME, messages: [{ role: 'user', content: 'hi' }], max_completion_tokens: 0 });
    expect(chat.choices[0]!.message.content).toBe('');
    expect(chat.choices[0]!.finish_reason).toBe('length');
    expect(chat.usage!.completion_tokens).toBe(0);
  });
});

describe('bad values are 400s naming the field', () => {
  const cases: [Record<string, unknown>, string][] = [
    [{ logit_bias: { abc: 1 } }, 'logit_bias'],
    [{ logit_bias: { '-3': 1 } }, 'logit_bias'],
    [{ logit_bias: { '99999999': 1 } }, 'logit_bias'],
    [{ logit_bias: { '5': 100.5 } }, 'logit_bias'],
    [{ logit_bias: [1, 2] }, 'logit_bias'],
    [{ presence_penalty: 2.5 }, 'presence_penalty'],
    [{ frequency_penalty: -3 }, 'frequency_penalty'],
    [{ repetition_penalty: 0 }, 'repetition_penalty'],
    [{ repetition_penalty: 11 }, 'repetition_penalty'],
    [{ min_p: 1.5 }, 'min_p'],
    [{ n: 0 }, 'n'],
    [{ n: 17 }, 'n'],
    [{ n: 2.5 }, 'n'],
    [{ echo: 'yes' }, 'echo'],
  ];
  for (const [extra, param] of cases) {
    it(`${JSON.stringify(extra)} → 400 param ${param}`, async () => {
      const err = await client.completions.create(ext({ model: MODEL_NAME, prompt: 'ROMEO:', max_tokens: 2 }, extra)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BadRequestError);
      expect((err as BadRequestError).param).toBe(param);
      expect((err as BadRequestError).message).toContain(param);
    });
  }
});
