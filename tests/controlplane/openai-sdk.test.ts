// The official openai SDK (v6) against a real server with the shipped model: the wire shapes are OpenAI's when the
// SDK's own parsing and streaming accept them.
import OpenAI, { NotFoundError } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MODEL_NAME, startHarness, type Harness } from './harness.js';

describe('OpenAI SDK against tuneloop serve', () => {
  let h: Harness;
  let client: OpenAI;
  beforeAll(async () => {
    h = await startHarness();
    client = new OpenAI({ baseURL: `${h.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });
  afterAll(async () => {
    await h?.stop();
  });

  it('lists the model', async () => {
    const page = await client.models.list();
    expect(page.data.map((m) => m.id)).toEqual([MODEL_NAME]);
    expect(page.data[0]).toMatchObject({ object: 'model', owned_by: 'tuneloop' });
    // Our fields beside OpenAI's pass through the SDK untouched.
    expect(page.data[0]).toMatchObject({ architecture: 'llama', context_length: 256, weights: 'native' });
  });

  it('completes text with usage', async () => {
    const r = await client.completions.create({ model: MODEL_NAME, prompt: 'ROMEO:', max_tokens: 24, temperature: 0 });
    expect(r.object).toBe('text_completion');
    expect(r.model).toBe(MODEL_NAME);
    expect(r.choices).toHaveLength(1);
    expect(typeof r.choices[0]!.text).toBe('string');
    expect(r.choices[0]!.text.length).toBeGreaterThan(0);
    expect(['stop', 'length']).toContain(r.choices[0]!.finish_reason);
    expect(r.usage!.prompt_tokens).toBeGreaterThan(0);
    expect(r.usage!.completion_tokens).toBeGreaterThan(0);
    expect(r.usage!.completion_tokens).toBeLessThanOrEqual(24);
    expect(r.usage!.total_tokens).toBe(r.usage!.prompt_tokens + r.usage!.completion_tokens);
  });

  it('streams the same text as the plain call (greedy), with a final usage chunk', async () => {
    const params = { model: MODEL_NAME, prompt: 'JULIET:', max_tokens: 30, temperature: 0 };
    const plain = await client.completions.create(params);
    const stream = await client.completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | undefined | null;
    for await (const chunk of stream) {
      expect(chunk.object).toBe('text_completion');
      for (const c of chunk.choices) {
        text += c.text;
        if (c.finish_reason) finish = c.finish_reason;
      }
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toBe(plain.choices[0]!.text);
    expect(finish).toBe(plain.choices[0]!.finish_reason);
    expect(usage).toEqual(plain.usage);
  });

  it('honours stop sequences (excluded from the output)', async () => {
    const base = { model: MODEL_NAME, prompt: 'ROMEO:', max_tokens: 40, temperature: 0 };
    const full = (await client.completions.create(base)).choices[0]!.text;
    // A word from the middle of the greedy continuation: the same greedy run must stop right before it.
    const words = full.split(/\s+/).filter((w) => w.length >= 3);
    const stop = words[Math.min(3, words.length - 1)]!;
    const cut = await client.completions.create({ ...base, stop: [stop] });
    expect(cut.choices[0]!.text).toBe(full.slice(0, full.indexOf(stop)));
    expect(cut.choices[0]!.finish_reason).toBe('stop');
  });

  it('is reproducible with a seed', async () => {
    const p = { model: MODEL_NAME, prompt: 'KING HENRY:', max_tokens: 32, temperature: 1, seed: 1234 };
    const a = await client.completions.create(p);
    const b = await client.completions.create(p);
    const c = await client.completions.create({ ...p, seed: 4321 });
    expect(b.choices[0]!.text).toBe(a.choices[0]!.text);
    expect(c.choices[0]!.text).not.toBe(a.choices[0]!.text);
  });

  it('returns completion logprobs', async () => {
    const r = await client.completions.create({ model: MODEL_NAME, prompt: 'ROMEO:', max_tokens: 8, temperature: 0, logprobs: 2 });
    const lp = r.choices[0]!.logprobs!;
    expect(lp.tokens).toHaveLength(r.usage!.completion_tokens);
    expect(lp.token_logprobs).toHaveLength(r.usage!.completion_tokens);
    expect(lp.tokens!.join('')).toBe(r.choices[0]!.text);
    for (const x of lp.token_logprobs!) expect(x).toBeLessThanOrEqual(0);
    for (const top of lp.top_logprobs!) {
      const n = Object.keys(top).length;
      expect(n).toBeGreaterThanOrEqual(1);
      expect(n).toBeLessThanOrEqual(2);
    }
    expect(lp.text_offset![0]).toBe(0);
  });

  it('chats, plain and streaming', async () => {
    const params = {
      model: MODEL_NAME,
      messages: [
        { role: 'system' as const, content: 'A play.' },
        { role: 'user' as const, content: 'Who goes there?' },
      ],
      max_tokens: 24,
      temperature: 0,
    };
    const r = await client.chat.completions.create(params);
    expect(r.object).toBe('chat.completion');
    expect(r.choices[0]!.message.role).toBe('assistant');
    expect(typeof r.choices[0]!.message.content).toBe('string');
    expect(r.usage!.total_tokens).toBe(r.usage!.prompt_tokens + r.usage!.completion_tokens);

    const stream = await client.chat.completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
    let content = '';
    let role: string | undefined;
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | undefined | null;
    for await (const chunk of stream) {
      expect(chunk.object).toBe('chat.completion.chunk');
      for (const c of chunk.choices) {
        if (c.delta.role) role = c.delta.role;
        content += c.delta.content ?? '';
        if (c.finish_reason) finish = c.finish_reason;
      }
      if (chunk.usage) usage = chunk.usage;
    }
    expect(role).toBe('assistant');
    expect(content).toBe(r.choices[0]!.message.content);
    expect(finish).toBe(r.choices[0]!.finish_reason);
    expect(usage).toEqual(r.usage);
  });

  it('returns chat logprobs with top alternatives', async () => {
    const r = await client.chat.completions.create({
      model: MODEL_NAME,
      messages: [{ role: 'user', content: 'Speak.' }],
      max_tokens: 6,
      temperature: 0,
      logprobs: true,
      top_logprobs: 3,
    });
    const content = r.choices[0]!.logprobs!.content!;
    expect(content).toHaveLength(r.usage!.completion_tokens);
    for (const t of content) {
      expect(t.logprob).toBeLessThanOrEqual(0);
      expect(t.top_logprobs).toHaveLength(3);
      expect(Buffer.from(t.bytes!).toString('utf8')).toBe(t.token);
    }
  });

  it('maps errors to the SDK exception classes', async () => {
    const err = await client.completions.create({ model: 'gpt-4', prompt: 'x' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as NotFoundError).status).toBe(404);
    expect((err as NotFoundError).code).toBe('model_not_found');
  });
});
