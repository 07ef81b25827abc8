// The /v1 serving pieces without HTTP or an engine: the request builder (parsed body + limits → GenerateRequest),
// the response and SSE encoders, the per-request ServingRequest's states and its one FinishedRequest, and the fan-out
// of that record to the metrics and tuner hooks.
import { EventEmitter } from 'node:events';
import type { Request, Response } from 'express';
import { describe, expect, it, vi } from 'vitest';
import type { Generation } from '../../src/engine/generation.js';
import type { GenerationResult } from '../../src/engine/types.js';
import { isControlPlaneError, type ControlPlaneError } from '../../src/controlplane/errors.js';
import { fanOutFinished, toGenerationEvent, toRequestRecord, type FinishedRequest, type GenerationEvent, type RequestRecord } from '../../src/controlplane/hooks.js';
import { DEFAULT_CHAT_TEMPLATE } from '../../src/controlplane/openai/chat-template.js';
import { buildGenerateRequest, type BuildContext } from '../../src/controlplane/openai/request-builder.js';
import { chatLogprobs, completionLogprobs, finishReasonOf, responseBody, type TextLogprob } from '../../src/controlplane/openai/responses.js';
import { parseChatRequest, parseCompletionRequest } from '../../src/controlplane/openai/schema.js';
import { ServingRequest } from '../../src/controlplane/openai/serving-request.js';
import { ServerState } from '../../src/controlplane/server-state.js';
import { StreamEncoder } from '../../src/controlplane/openai/sse.js';
import { ConcurrencyLimiter } from '../../src/controlplane/security.js';

/** One token per character: easy to count. */
const ctx = (over: Partial<BuildContext> = {}): BuildContext => ({
  tokenize: (t) => [...t].map((c) => c.charCodeAt(0)),
  contextLength: 64,
  template: DEFAULT_CHAT_TEMPLATE,
  requestTimeoutMs: 0,
  ...over,
});
const completion = (body: Record<string, unknown>) => parseCompletionRequest({ model: 'm', ...body });
const chat = (body: Record<string, unknown>) => parseChatRequest({ model: 'm', messages: [{ role: 'user', content: 'hi' }], ...body });

function refusal(f: () => unknown): ControlPlaneError {
  try {
    f();
  } catch (e) {
    if (isControlPlaneError(e)) return e;
    throw e;
  }
  throw new Error('expected a refusal');
}

describe('buildGenerateRequest', () => {
  it('tokenizes a text prompt and applies the completions default of 16 tokens', () => {
    const { request, promptTokens } = buildGenerateRequest(completion({ prompt: 'abc' }), ctx());
    expect(promptTokens).toBe(3);
    expect(request).toEqual({ tokens: [97, 98, 99], maxTokens: 16, stopAtEos: true });
  });

  it('passes token-id prompts through and copies only the sampling fields that were given', () => {
    const { request } = buildGenerateRequest(
      completion({ prompt: [5, 6], max_tokens: 3, temperature: 0.5, top_p: 0.9, top_k: 4, seed: 7, stop: ['x'], logprobs: 2, ignore_eos: true }),
      ctx({ requestTimeoutMs: 250 }),
    );
    expect(request).toEqual({ tokens: [5, 6], maxTokens: 3, stopAtEos: false, temperature: 0.5, topP: 0.9, topK: 4, seed: 7, stop: ['x'], logprobs: 2, deadlineMs: 250 });
  });

  it('renders chat through the template, appends its stops, and defaults to the rest of the context', () => {
    const p = chat({ stop: 'END' });
    const { request, promptTokens } = buildGenerateRequest(p, ctx());
    const rendered = DEFAULT_CHAT_TEMPLATE.render(p.messages);
    expect(promptTokens).toBe(rendered.length);
    expect(request.stop).toEqual(['END', ...DEFAULT_CHAT_TEMPLATE.stop]);
    expect(request.maxTokens).toBe(64 - rendered.length);
  });

  it('caps the default max tokens at server.maxTokensLimit', () => {
    expect(buildGenerateRequest(chat({}), ctx({ maxTokensLimit: 5 })).request.maxTokens).toBe(5);
  });

  it('refuses, naming the field: empty prompt, operator limits, then the context window', () => {
    let e = refusal(() => buildGenerateRequest(completion({ prompt: '' }), ctx()));
    expect([e.code, e.param]).toEqual(['CP_ERR_INVALID_REQUEST', 'prompt']);
    e = refusal(() => buildGenerateRequest(completion({ prompt: 'abcdef' }), ctx({ maxPromptTokens: 5 })));
    expect([e.code, e.param]).toEqual(['CP_ERR_CONTEXT_OVERFLOW', 'prompt']);
    expect(e.message).toContain('server.maxPromptTokens');
    e = refusal(() => buildGenerateRequest(chat({ max_completion_tokens: 10 }), ctx({ maxTokensLimit: 9 })));
    expect([e.code, e.param]).toEqual(['CP_ERR_INVALID_REQUEST', 'max_completion_tokens']);
    e = refusal(() => buildGenerateRequest(chat({ messages: [{ role: 'user', content: 'x'.repeat(80) }] }), ctx()));
    expect([e.code, e.param]).toEqual(['CP_ERR_CONTEXT_OVERFLOW', 'messages']);
    e = refusal(() => buildGenerateRequest(completion({ prompt: 'abc', max_tokens: 62 }), ctx()));
    expect([e.code, e.param]).toEqual(['CP_ERR_CONTEXT_OVERFLOW', 'max_tokens']);
    expect(buildGenerateRequest(completion({ prompt: 'abc', max_tokens: 61 }), ctx()).request.maxTokens).toBe(61);
  });
});

// ---- encoders --------------------------------------------------------------------------------------------------

const LPS: TextLogprob[] = [
  {
    logprob: -0.5,
    text: 'ab',
    top: [
      { logprob: -0.5, text: 'ab' },
      { logprob: -1, text: 'é' },
    ],
  },
  { logprob: -0.25, text: 'c', top: [] },
];

function result(over: Partial<GenerationResult> = {}): GenerationResult {
  return {
    text: 'abc',
    tokens: [1, 2],
    finishReason: 'length',
    usage: { promptTokens: 0, completionTokens: 2, cachedPromptTokens: 0 },
    ...over,
  } as GenerationResult;
}

describe('encoders', () => {
  it("maps finish reasons onto OpenAI's two", () => {
    expect(finishReasonOf('length')).toBe('length');
    expect(finishReasonOf('stop')).toBe('stop');
    expect(finishReasonOf('cancelled')).toBe('stop');
  });

  it('legacy logprobs: token text, alternatives by text, offsets from where the chunk starts', () => {
    expect(completionLogprobs(LPS, 10)).toEqual({
      tokens: ['ab', 'c'],
      token_logprobs: [-0.5, -0.25],
      top_logprobs: [{ ab: -0.5, é: -1 }, {}],
      text_offset: [10, 12],
    });
  });

  it('chat logprobs carry UTF-8 bytes', () => {
    const lp = chatLogprobs(LPS);
    expect(lp.refusal).toBeNull();
    expect(lp.content[0]!.top_logprobs[1]).toEqual({ token: 'é', logprob: -1, bytes: [0xc3, 0xa9] });
  });

  it('plain bodies: usage falls back to the built prompt count; logprobs only when asked for', () => {
    const body = responseBody(completion({ prompt: 'x' }), result({ logprobs: LPS as never }), 7, 'm');
    expect(body).toMatchObject({
      object: 'text_completion',
      model: 'm',
      choices: [{ text: 'abc', logprobs: null, finish_reason: 'length' }],
      usage: { prompt_tokens: 7, completion_tokens: 2, total_tokens: 9 },
    });
    expect(body.id).toMatch(/^cmpl-/);
    const c = responseBody(
      chat({ logprobs: true }),
      result({ logprobs: LPS as never, usage: { promptTokens: 3, completionTokens: 2, cachedPromptTokens: 0 } as never }),
      7,
      'm',
    );
    expect(c).toMatchObject({
      object: 'chat.completion',
      choices: [{ message: { role: 'assistant', content: 'abc' }, logprobs: { content: [{ token: 'ab' }, { token: 'c' }] } }],
      usage: { prompt_tokens: 3 },
    });
  });

  it('SSE: chat opens with the role, skips empty pieces, closes with finish_reason then usage', () => {
    const enc = new StreamEncoder(chat({ stream: true, stream_options: { include_usage: true } }), { id: 'chatcmpl-1', created: 1, model: 'm' });
    expect(enc.opening()).toEqual([
      {
        id: 'chatcmpl-1',
        object: 'chat.completion.chunk',
        created: 1,
        model: 'm',
        choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }],
        usage: null,
      },
    ]);
    expect(enc.piece({ text: '' })).toBeUndefined();
    expect(enc.piece({ text: 'hi' })).toMatchObject({ choices: [{ delta: { content: 'hi' }, finish_reason: null }], usage: null });
    const [fin, usage, more] = enc.closing(result(), 4);
    expect(fin).toMatchObject({ choices: [{ delta: {}, finish_reason: 'length' }], usage: null });
    expect(usage).toMatchObject({ choices: [], usage: { prompt_tokens: 4, completion_tokens: 2 } });
    expect(more).toBeUndefined();
  });

  it('SSE: completions keep the text offset across pieces for logprobs, and send no usage unless asked', () => {
    const enc = new StreamEncoder(completion({ prompt: 'x', stream: true, logprobs: 1 }), { id: 'cmpl-1', created: 1, model: 'm' });
    expect(enc.opening()).toEqual([]);
    enc.piece({ text: 'hello' });
    // An empty piece that carries logprobs is sent (the text is held back, the token is not).
    const p = enc.piece({ text: '', logprobs: LPS }) as { choices: { logprobs: { text_offset: number[] } }[]; usage?: unknown };
    expect(p.choices[0]!.logprobs.text_offset).toEqual([5, 7]);
    expect('usage' in p).toBe(false);
    expect(enc.closing(result(), 1)).toHaveLength(1);
  });
});

// ---- ServingRequest --------------------------------------------------------------------------------------------

/** Just enough of express's Response: status, headers, json, write/end, and 'close' like Node's. */
class FakeResponse extends EventEmitter {
  statusCode = 200;
  headersSent = false;
  writableEnded = false;
  writableFinished = false;
  body: unknown;
  chunks: string[] = [];
  status(n: number) {
    this.statusCode = n;
    return this;
  }
  setHeader() {
    return this;
  }
  flushHeaders() {
    this.headersSent = true;
  }
  json(b: unknown) {
    this.body = b;
    this.headersSent = true;
    this.end();
    return this;
  }
  write(s: string) {
    this.headersSent = true;
    this.chunks.push(s);
    return true;
  }
  end() {
    this.writableEnded = true;
    this.writableFinished = true;
    setImmediate(() => this.emit('close'));
    return this;
  }
  /** The client goes away. */
  hangUp() {
    this.emit('close');
  }
}

function fakeGeneration(): Generation & { settle(r: GenerationResult): void; cancelled: boolean } {
  let settle!: (r: GenerationResult) => void;
  const g = {
    id: 1,
    cancelled: false,
    result: new Promise<GenerationResult>((res) => (settle = res)),
    cancel() {
      g.cancelled = true;
    },
    settle: (r: GenerationResult) => settle(r),
  };
  return g as unknown as Generation & { settle(r: GenerationResult): void; cancelled: boolean };
}

function serving(opts: { limit?: number } = {}) {
  const res = new FakeResponse();
  const server = new ServerState();
  const finished: FinishedRequest[] = [];
  const errors: string[] = [];
  const streams = new ConcurrencyLimiter(opts.limit ?? 0);
  const make = () =>
    new ServingRequest({
      endpoint: 'completions',
      req: { clientKey: 'k' } as unknown as Request,
      res: res as unknown as Response,
      server,
      streams,
      observeError: (r) => errors.push(r),
      onFinished: (f) => finished.push(f),
    });
  return { res, server, finished, errors, streams, make };
}

const BUILT = { request: { tokens: [1, 2], maxTokens: 4 }, promptTokens: 2 };

describe('ServingRequest', () => {
  it('parsing → running → finished: one FinishedRequest after the response ends, slots given back', async () => {
    const s = serving({ limit: 1 });
    const sr = s.make();
    const gen = fakeGeneration();
    expect(s.server.active).toBe(1);
    const done = sr.run(async () => {
      expect(sr.state).toBe('parsing');
      expect(s.streams.count('k')).toBe(1);
      expect(sr.submit(BUILT, () => gen)).toBe(gen);
      expect(sr.state).toBe('running');
      expect(s.server.inflight.has(gen)).toBe(true);
      gen.settle(result());
      expect(sr.resultArrived(await gen.result)).toBe(true);
      s.res.json({ ok: true });
      sr.answered();
    });
    await done;
    expect(sr.state).toBe('finished');
    expect(s.finished).toHaveLength(1);
    expect(s.finished[0]).toMatchObject({ outcome: 'finished', status: 200, clientDisconnected: false, promptTokens: 2, request: BUILT.request });
    expect(s.server.active).toBe(0);
    expect(s.server.inflight.size).toBe(0);
    expect(s.streams.count('k')).toBe(0);
  });

  it('a client that goes away cancels the generation at once; the report waits for the cancelled result', async () => {
    const s = serving();
    const sr = s.make();
    const gen = fakeGeneration();
    const done = sr.run(async () => {
      sr.submit(BUILT, () => gen);
      s.res.hangUp();
      expect(sr.state).toBe('cancelled');
      expect(gen.cancelled).toBe(true);
      expect(s.server.active).toBe(0); // drain does not wait for the engine's next step
      gen.settle(result({ finishReason: 'cancelled' }));
      expect(sr.resultArrived(await gen.result)).toBe(false);
      sr.answered(); // terminal already: the first ending wins
    });
    await done;
    expect(s.finished).toHaveLength(1);
    expect(s.finished[0]).toMatchObject({ outcome: 'cancelled', clientDisconnected: true });
    expect(s.finished[0]!.result?.finishReason).toBe('cancelled');
  });

  it('a client gone while parsing submits nothing', async () => {
    const s = serving();
    const sr = s.make();
    const generate = vi.fn();
    await sr.run(async () => {
      s.res.hangUp();
      expect(sr.submit(BUILT, generate)).toBeUndefined();
    });
    expect(generate).not.toHaveBeenCalled();
    expect(s.finished[0]).toMatchObject({ outcome: 'cancelled', promptTokens: 2 });
    expect(s.finished[0]!.request).toBeUndefined();
  });

  it("a refusal is answered in OpenAI's shape and reported failed, without a request", async () => {
    const s = serving();
    const sr = s.make();
    await sr.run(async () => {
      buildGenerateRequest(completion({ prompt: '' }), ctx());
    });
    expect(sr.state).toBe('failed');
    expect(s.res.statusCode).toBe(400);
    expect(s.res.body).toMatchObject({ error: { code: 'invalid_request', param: 'prompt' } });
    expect(s.errors).toEqual(['invalid_request']);
    expect(s.finished[0]).toMatchObject({ outcome: 'failed', status: 400, errorCode: 'CP_ERR_INVALID_REQUEST' });
  });

  it('an error mid-stream is sent in-band and ends the stream', async () => {
    const s = serving();
    const sr = s.make();
    await sr.run(async () => {
      sr.submit(BUILT, () => fakeGeneration());
      s.res.flushHeaders();
      sr.streaming();
      throw refusal(() => buildGenerateRequest(completion({ prompt: '' }), ctx()));
    });
    expect(s.res.chunks.at(-1)).toContain('"code":"invalid_request"');
    expect(s.finished[0]).toMatchObject({ outcome: 'failed', status: 200, stream: false });
  });

  it('beyond the per-key limit: 429 with Retry-After, active count still balanced', async () => {
    const s = serving({ limit: 1 });
    const first = s.streams.acquire('k');
    await s.make().run(async () => {
      throw new Error('not reached');
    });
    expect(s.res.statusCode).toBe(429);
    expect(s.res.body).toMatchObject({ error: { code: 'rate_limit_exceeded' } });
    expect(s.server.active).toBe(0);
    first?.();
  });
});

describe('fanOutFinished', () => {
  const f: FinishedRequest = {
    endpoint: 'chat_completions',
    outcome: 'finished',
    status: 200,
    stream: true,
    durationS: 0.5,
    clientDisconnected: false,
    promptTokens: 2,
    request: { tokens: [1, 2], maxTokens: 4 },
    result: result(),
  };

  it('one record feeds both: the metrics record and the tuner event', () => {
    const records: RequestRecord[] = [],
      events: GenerationEvent[] = [];
    fanOutFinished({ metrics: { onRequest: (r) => records.push(r) }, onGeneration: (e) => events.push(e) })(f);
    expect(records).toEqual([toRequestRecord(f)]);
    expect(records[0]).toMatchObject({ endpoint: 'chat_completions', finishReason: 'length', completionTokens: 2, promptTokens: 2 });
    expect(events).toEqual([toGenerationEvent(f)]);
    expect(events[0]).toMatchObject({ ok: true, durationS: 0.5, promptTokens: [1, 2] });
  });

  it('no tuner event for a request refused before the engine; a throwing hook is logged, not thrown', () => {
    const events: GenerationEvent[] = [];
    const log = { error: vi.fn() };
    const refused: FinishedRequest = { ...f, outcome: 'failed', status: 400, errorCode: 'CP_ERR_INVALID_REQUEST' };
    delete refused.request;
    delete refused.result;
    fanOutFinished({ onGeneration: (e) => events.push(e) })(refused);
    expect(events).toEqual([]);
    fanOutFinished({
      onGeneration: () => {
        throw new Error('boom');
      },
    })(f, log as never);
    expect(log.error).toHaveBeenCalledWith(expect.anything(), 'onGeneration hook failed');
  });
});
