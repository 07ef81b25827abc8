// Coalesced streaming (sse-writer.ts): tokens delivered together go out as one event, and the events still carry
// exactly the plain answer — text, logprobs, text offsets — as the official openai SDK accumulates them. Coalescing
// is forced deterministically, not by timing: the test blocks the server's event loop (the server runs in this
// process) until the engine has finished the request, so every token waits in the Generation and the stream must
// catch up in one step. A paused reader gets everything in order once it reads again, and a full socket makes the
// writer wait for 'drain'.
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Generation } from '../../src/engine/generation.js';
import type { TokenChunk } from '../../src/engine/types.js';
import { HeldTokens, SseWriter, coalesce } from '../../src/controlplane/openai/sse-writer.js';
import { MODEL_NAME, sseData, startHarness, waitFor, type Harness } from './harness.js';

describe('coalesced SSE streams', () => {
  let h: Harness;
  let client: OpenAI;
  beforeAll(async () => {
    h = await startHarness();
    client = new OpenAI({ baseURL: `${h.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });
  afterAll(async () => {
    await h?.stop();
  });

  /** Keeps this process's event loop (the server's) busy until the engine has finished one more request, so its
   *  tokens are all delivered in a batch when the loop comes back. */
  const holdLoopUntilFinished = (finishedBefore: number): void => {
    const deadline = performance.now() + 30_000;
    while (h.engine.stats().requests.finished <= finishedBefore) {
      if (performance.now() > deadline) throw new Error('the engine did not finish the request within 30 s');
    }
  };

  it('a chat stream caught up in one step equals the plain answer (SDK stream helper, logprobs)', async () => {
    const params = {
      model: MODEL_NAME,
      messages: [{ role: 'user' as const, content: 'Who goes there?' }],
      max_tokens: 48,
      temperature: 1,
      seed: 77,
      logprobs: true,
      top_logprobs: 3,
    };
    const plain = await client.chat.completions.create(params);
    const before = h.engine.stats().requests.finished;
    const stream = client.chat.completions.stream({ ...params, stream_options: { include_usage: true } });
    let contentChunks = 0;
    stream.on('chunk', (c) => {
      if (c.choices[0]?.delta.content) contentChunks++;
    });
    // The request is submitted once the response head is out; then the loop is held until the engine is done.
    await waitFor(() => h.engine.stats().requests.running + h.engine.stats().requests.finished > before, 10_000);
    holdLoopUntilFinished(before);
    const streamed = await stream.finalChatCompletion();

    const n = plain.usage!.completion_tokens;
    expect(n).toBeGreaterThan(4);
    // Coalesced: far fewer content events than tokens (the tokens generated while the loop was held share one).
    expect(contentChunks).toBeLessThan(n);
    expect(streamed.choices[0]!.message.content).toBe(plain.choices[0]!.message.content);
    expect(streamed.choices[0]!.logprobs!.content).toEqual(plain.choices[0]!.logprobs!.content);
    expect(streamed.choices[0]!.logprobs!.content).toHaveLength(n);
    expect(streamed.choices[0]!.finish_reason).toBe(plain.choices[0]!.finish_reason);
    expect(streamed.usage).toEqual(plain.usage);
  });

  it('a completions stream caught up in one step has the plain answer’s tokens, logprobs and text offsets', async () => {
    const params = { model: MODEL_NAME, prompt: 'ROMEO:', max_tokens: 40, temperature: 0.9, seed: 5, logprobs: 2 };
    const plain = await client.completions.create(params);
    const before = h.engine.stats().requests.finished;
    const stream = await client.completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
    holdLoopUntilFinished(before);
    let text = '',
      events = 0,
      finish: string | null = null;
    const lp = { tokens: [] as string[], token_logprobs: [] as number[], top_logprobs: [] as Record<string, number>[], text_offset: [] as number[] };
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      const c = chunk.choices[0];
      if (!c) continue;
      if (c.finish_reason) finish = c.finish_reason;
      if (!c.text) continue;
      events++;
      text += c.text;
      lp.tokens.push(...c.logprobs!.tokens!);
      lp.token_logprobs.push(...c.logprobs!.token_logprobs!);
      lp.top_logprobs.push(...c.logprobs!.top_logprobs!);
      lp.text_offset.push(...c.logprobs!.text_offset!);
    }
    expect(events).toBeLessThan(plain.usage!.completion_tokens);
    expect(text).toBe(plain.choices[0]!.text);
    expect(lp).toEqual(plain.choices[0]!.logprobs);
    expect(finish).toBe(plain.choices[0]!.finish_reason);
    expect(usage).toEqual(plain.usage);
  });

  /** Streams `params` from a reader that reads not a byte until the engine has finished `generations` more requests
   *  (the whole answer), so the server's writes meet a full socket; returns the body once the reader has caught up. */
  const pausedStream = async (params: object, generations: number): Promise<string> => {
    const before = h.engine.stats().requests.finished;
    const u = new URL(`${h.url}/v1/chat/completions`);
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers: { 'content-type': 'application/json' } });
    req.end(JSON.stringify({ ...params, stream: true }));
    const [res] = (await once(req, 'response')) as [http.IncomingMessage];
    expect(res.statusCode).toBe(200);
    res.pause();
    expect(await waitFor(() => h.engine.stats().requests.finished >= before + generations, 30_000)).toBe(true);
    res.setEncoding('utf8');
    let body = '';
    res.on('data', (d: string) => (body += d));
    res.resume();
    await once(res, 'end');
    return body;
  };

  it('a paused reader gets the whole stream, in order, once it reads again', async () => {
    // Large events (20 alternatives per token) so that the paused socket fills and the writer waits for 'drain'.
    const params = {
      model: MODEL_NAME,
      messages: [{ role: 'user' as const, content: 'Speak.' }],
      max_tokens: 200,
      temperature: 1,
      seed: 9,
      ignore_eos: true,
      logprobs: true,
      top_logprobs: 20,
    };
    const plain = await client.chat.completions.create(params);
    const events = sseData(await pausedStream(params, 1));
    expect(events.at(-1)).toBe('[DONE]');
    type Chunk = OpenAI.ChatCompletionChunk;
    const chunks = events.slice(0, -1) as Chunk[];
    const content = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
    const logprobs = chunks.flatMap((c) => c.choices[0]?.logprobs?.content ?? []);
    expect(content).toBe(plain.choices[0]!.message.content);
    expect(logprobs).toEqual(plain.choices[0]!.logprobs!.content);
    expect(chunks.at(-1)!.choices[0]!.finish_reason).toBe('length');
    expect(h.server.state.active).toBe(0);
  });

  it('n = 3: a paused reader gets every choice whole, in order, and each equals the plain answer’s choice', async () => {
    // The n > 1 path (completion-choices.ts) writes through the same writer: batches per choice, drain waited out.
    const params = {
      model: MODEL_NAME,
      messages: [{ role: 'user' as const, content: 'Speak.' }],
      max_tokens: 120,
      temperature: 1,
      seed: 21,
      n: 3,
      ignore_eos: true,
      logprobs: true,
      top_logprobs: 20,
    };
    const plain = await client.chat.completions.create(params);
    const events = sseData(await pausedStream(params, 3));
    expect(events.at(-1)).toBe('[DONE]');
    const chunks = events.slice(0, -1) as OpenAI.ChatCompletionChunk[];
    for (let i = 0; i < 3; i++) {
      const mine = chunks.map((c) => c.choices[0]).filter((c) => c?.index === i);
      expect(mine.map((c) => c!.delta.content ?? '').join('')).toBe(plain.choices[i]!.message.content);
      expect(mine.flatMap((c) => c!.logprobs?.content ?? [])).toEqual(plain.choices[i]!.logprobs!.content);
      expect(mine.at(-1)!.finish_reason).toBe('length');
    }
    expect(h.server.state.active).toBe(0);
  });
});

describe('server.streamInterval', () => {
  let h: Harness;
  let client: OpenAI;
  beforeAll(async () => {
    h = await startHarness({ streamInterval: 4 });
    client = new OpenAI({ baseURL: `${h.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });
  afterAll(async () => {
    await h?.stop();
  });

  it('sends the first token at once, then events of at least 4 tokens, with the plain answer’s content', async () => {
    const params = {
      model: MODEL_NAME,
      messages: [{ role: 'user' as const, content: 'Who art thou?' }],
      max_tokens: 41,
      ignore_eos: true,
      temperature: 1,
      seed: 3,
      logprobs: true,
    };
    const plain = await client.chat.completions.create(params);
    const stream = await client.chat.completions.create({ ...params, stream: true });
    const sizes: number[] = [];
    let content = '';
    for await (const chunk of stream) {
      const c = chunk.choices[0];
      if (!c?.logprobs?.content) continue;
      sizes.push(c.logprobs.content.length);
      content += c.delta.content ?? '';
    }
    expect(content).toBe(plain.choices[0]!.message.content);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(41);
    // Every event between the first and the last holds at least the interval's worth of tokens.
    expect(sizes.length).toBeGreaterThan(2);
    for (const n of sizes.slice(1, -1)) expect(n).toBeGreaterThanOrEqual(4);
    expect(sizes.length).toBeLessThanOrEqual(2 + Math.ceil(40 / 4));
  });
});

describe('coalesce', () => {
  const lp = (text: string, logprob: number) => ({ token: 0, logprob, text, top: [] });
  it('concatenates text, token ids and logprobs in order', () => {
    const batch: TokenChunk[] = [
      { text: 'a', tokens: [1], logprobs: [lp('a', -1)] },
      { text: '', tokens: [2], logprobs: [lp('', -2)] },
      { text: 'bc', tokens: [3, 4], logprobs: [lp('b', -3), lp('c', -4)] },
    ];
    expect(coalesce(batch)).toEqual({ text: 'abc', tokens: [1, 2, 3, 4], logprobs: [lp('a', -1), lp('', -2), lp('b', -3), lp('c', -4)] });
    expect(
      coalesce([
        { text: 'x', tokens: [7] },
        { text: 'y', tokens: [8] },
      ]),
    ).toEqual({ text: 'xy', tokens: [7, 8] });
  });
});

describe('HeldTokens', () => {
  const enc = (c: TokenChunk) => (c.text.length > 0 ? c.text : undefined);
  it('interval 1: every batch goes out at once, text-only pieces too', () => {
    const h = new HeldTokens(1);
    expect(h.add([{ text: 'a', tokens: [1] }])).toBe(true);
    expect(h.take(enc)).toBe('a');
    expect(h.add([{ text: 'b', tokens: [] }])).toBe(true);
    expect(h.take(enc)).toBe('b');
  });
  it('interval 3: the first event at once (held-back text does not count), then 3 tokens or more per event', () => {
    const h = new HeldTokens(3);
    expect(h.add([{ text: '', tokens: [1] }])).toBe(true);
    expect(h.take(enc)).toBeUndefined(); // nothing sent: the first-event rule still holds
    expect(h.add([{ text: 'ab', tokens: [2] }])).toBe(true);
    expect(h.take(enc)).toBe('ab');
    expect(h.add([{ text: 'c', tokens: [3] }])).toBe(false);
    expect(h.add([{ text: 'd', tokens: [4] }])).toBe(false);
    expect(h.add([{ text: 'e', tokens: [5] }])).toBe(true);
    expect(h.take(enc)).toBe('cde');
    expect(h.add([{ text: 'f', tokens: [6] }])).toBe(false);
    expect(h.take(enc)).toBe('f'); // the end of the stream takes what is left
    expect(h.take(enc)).toBeUndefined();
  });
});

describe('Generation.batches', () => {
  it('yields everything delivered so far in one step, then waits for more', async () => {
    const g = new Generation(1, 3, () => undefined, false);
    const it = g.batches();
    g.onEvents([
      { text: 'a', tokens: [1] },
      { text: 'b', tokens: [2] },
    ]);
    expect((await it.next()).value).toEqual([
      { text: 'a', tokens: [1] },
      { text: 'b', tokens: [2] },
    ]);
    const next = it.next();
    g.onEvents([{ text: 'c', tokens: [3], final: true, finishReason: 'length', completionTokens: 3 }]);
    expect((await next).value).toEqual([{ text: 'c', tokens: [3] }]);
    expect((await it.next()).done).toBe(true);
    expect((await g.result).text).toBe('abc');
  });
});

describe('SseWriter backpressure', () => {
  it('waits for drain when the socket is full, and the reader then gets every byte in order', async () => {
    let writer: SseWriter | undefined;
    let resolveRes!: (r: http.ServerResponse) => void;
    const gotRes = new Promise<http.ServerResponse>((r) => (resolveRes = r));
    const server = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.flushHeaders();
      resolveRes(res);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const req = http.get({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, path: '/' });
      const [cres] = (await once(req, 'response')) as [http.IncomingMessage];
      cres.pause();
      const res = await gotRes;
      // The Express Response type is a ServerResponse with more methods; SseWriter uses only ServerResponse's.
      writer = new SseWriter(res as never);
      const frame = (i: number) => `data: ${String(i).padStart(8, '0')}${'x'.repeat(60_000)}\n\n`;
      let i = 0;
      // Write until the socket is full: Node's buffer first (ready() then waits), and once the kernel's buffers
      // are full too, a wait that does not end while the reader stays paused.
      let wait: Promise<void> | undefined;
      let settled = true;
      while (settled && i < 100_000) {
        while ((wait = writer.ready()) === undefined && i < 100_000) writer.write(frame(i++));
        settled = false;
        void wait?.then(() => (settled = true));
        await new Promise((r) => setTimeout(r, 20)); // lets the socket hand the kernel what it will take
      }
      expect(i).toBeLessThan(100_000);
      expect(settled).toBe(false);
      let body = '';
      cres.setEncoding('utf8');
      cres.on('data', (d: string) => (body += d));
      cres.resume();
      await wait;
      expect(settled).toBe(true);
      writer.end(frame(i++));
      await once(cres, 'end');
      const got = body.split('\n\n').filter((b) => b.length > 0);
      expect(got).toHaveLength(i);
      got.forEach((b, k) => expect(b).toBe(frame(k).slice(0, -2)));
    } finally {
      server.close();
    }
  });
});
