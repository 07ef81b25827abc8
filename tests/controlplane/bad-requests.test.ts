// Malformed, unauthorised, oversized and overloading requests: each gets its status and an OpenAI-shaped error
// naming the field, and overload never turns into a 5xx.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { DEFAULT_SERVER_OPTIONS } from '../../src/controlplane/app.js';
import { startServer } from '../../src/controlplane/http-server.js';
import { MODEL_NAME, postJson, sseData, startHarness, type Harness } from './harness.js';

interface ErrBody {
  error: { message: string; type: string; param: string | null; code: string };
}

const KEY = 'sk-test-key';
const AUTH = { authorization: `Bearer ${KEY}` };
// A second key configured the recommended way, as its digest: the config never holds it.
const HASHED_KEY = 'sk-hashed-key';
const HASHED_ENTRY = `sha256:${createHash('sha256').update(HASHED_KEY).digest('hex')}`;
const OK_CHAT = { model: MODEL_NAME, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 };
const OK_COMP = { model: MODEL_NAME, prompt: 'hi', max_tokens: 2 };

/** [name, path, body, status, error.type, error.param, a word the message mentions] */
type Case = [string, string, unknown, number, string, string | null, string];
const C = '/v1/completions',
  CH = '/v1/chat/completions';
const CASES: Case[] = [
  ['missing model', C, { prompt: 'x' }, 400, 'invalid_request_error', 'model', 'required'],
  ['model not a string', C, { model: 3, prompt: 'x' }, 400, 'invalid_request_error', 'model', 'string'],
  ['unknown model', C, { ...OK_COMP, model: 'gpt-4' }, 404, 'invalid_request_error', 'model', 'gpt-4'],
  ['unknown model (chat)', CH, { ...OK_CHAT, model: 'nope' }, 404, 'invalid_request_error', 'model', 'nope'],
  ['missing prompt', C, { model: MODEL_NAME }, 400, 'invalid_request_error', 'prompt', 'required'],
  ['prompt object', C, { ...OK_COMP, prompt: { a: 1 } }, 400, 'invalid_request_error', 'prompt', 'string'],
  ['batched prompts', C, { ...OK_COMP, prompt: ['a', 'b'] }, 400, 'invalid_request_error', 'prompt', 'batched'],
  ['max_tokens negative', C, { ...OK_COMP, max_tokens: -1 }, 400, 'invalid_request_error', 'max_tokens', 'between'],
  ['max_tokens float', C, { ...OK_COMP, max_tokens: 1.5 }, 400, 'invalid_request_error', 'max_tokens', 'integer'],
  ['max_tokens over context', C, { ...OK_COMP, max_tokens: 5000 }, 400, 'invalid_request_error', 'max_tokens', 'context length'],
  ['prompt over context', C, { ...OK_COMP, prompt: 'word '.repeat(400) }, 400, 'invalid_request_error', 'prompt', 'context length'],
  ['messages over context', CH, { ...OK_CHAT, messages: [{ role: 'user', content: 'word '.repeat(400) }] }, 400, 'invalid_request_error', 'messages', 'context length'],
  ['temperature too high', C, { ...OK_COMP, temperature: 3 }, 400, 'invalid_request_error', 'temperature', 'between'],
  ['temperature string', C, { ...OK_COMP, temperature: 'hot' }, 400, 'invalid_request_error', 'temperature', 'number'],
  ['top_p zero', C, { ...OK_COMP, top_p: 0 }, 400, 'invalid_request_error', 'top_p', 'greater than 0'],
  ['top_p > 1', C, { ...OK_COMP, top_p: 1.5 }, 400, 'invalid_request_error', 'top_p', 'between'],
  ['stop number', C, { ...OK_COMP, stop: 5 }, 400, 'invalid_request_error', 'stop', 'string'],
  ['stop too many', C, { ...OK_COMP, stop: ['a', 'b', 'c', 'd', 'e'] }, 400, 'invalid_request_error', 'stop', 'at most 4'],
  ['stop empty string', C, { ...OK_COMP, stop: [''] }, 400, 'invalid_request_error', 'stop', 'non-empty'],
  ['seed negative', C, { ...OK_COMP, seed: -5 }, 400, 'invalid_request_error', 'seed', 'between'],
  ['n = 17', C, { ...OK_COMP, n: 17 }, 400, 'invalid_request_error', 'n', 'between 1 and 16'],
  ['logprobs 6', C, { ...OK_COMP, logprobs: 6 }, 400, 'invalid_request_error', 'logprobs', 'between'],
  ['chat logprobs not boolean', CH, { ...OK_CHAT, logprobs: 3 }, 400, 'invalid_request_error', 'logprobs', 'boolean'],
  ['top_logprobs without logprobs', CH, { ...OK_CHAT, top_logprobs: 2 }, 400, 'invalid_request_error', 'top_logprobs', 'requires'],
  ['stream not boolean', C, { ...OK_COMP, stream: 'yes' }, 400, 'invalid_request_error', 'stream', 'boolean'],
  ['stream_options without stream', C, { ...OK_COMP, stream_options: { include_usage: true } }, 400, 'invalid_request_error', 'stream_options', 'stream'],
  [
    'include_usage not boolean',
    C,
    { ...OK_COMP, stream: true, stream_options: { include_usage: 1 } },
    400,
    'invalid_request_error',
    'stream_options.include_usage',
    'boolean',
  ],
  ['missing messages', CH, { model: MODEL_NAME }, 400, 'invalid_request_error', 'messages', 'required'],
  ['empty messages', CH, { ...OK_CHAT, messages: [] }, 400, 'invalid_request_error', 'messages', 'non-empty'],
  ['bad role', CH, { ...OK_CHAT, messages: [{ role: 'wizard', content: 'x' }] }, 400, 'invalid_request_error', 'messages[0].role', 'system, user, assistant'],
  ['content not string', CH, { ...OK_CHAT, messages: [{ role: 'user', content: 42 }] }, 400, 'invalid_request_error', 'messages[0].content', 'string'],
  ['message not object', CH, { ...OK_CHAT, messages: ['hi'] }, 400, 'invalid_request_error', 'messages[0]', 'object'],
  ['body is an array', C, [1, 2], 400, 'invalid_request_error', 'body', 'JSON object'],
];

describe('bad requests', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ apiKeys: [KEY, HASHED_ENTRY], bodyLimit: 16 * 1024 });
  });
  afterAll(async () => {
    await h?.stop();
  });

  it.each(CASES)('%s', async (_name, path, body, status, type, param, mention) => {
    const r = await postJson(h.url + path, body, AUTH);
    const j = (await r.json()) as ErrBody;
    expect(r.status, JSON.stringify(j)).toBe(status);
    expect(j.error.type).toBe(type);
    expect(j.error.param).toBe(param);
    expect(j.error.message.toLowerCase()).toContain(mention.toLowerCase());
    expect(typeof j.error.code).toBe('string');
  });

  it('accepts an empty prompt (the BOS token alone), like OpenAI', async () => {
    const r = await postJson(h.url + C, { ...OK_COMP, prompt: '' }, AUTH);
    expect(r.status).toBe(200);
  });

  it('accepts the documented accepted-and-ignored fields; refuses unknown ones naming them, like OpenAI', async () => {
    expect((await postJson(h.url + C, { ...OK_COMP, user: 'u1' }, AUTH)).status).toBe(200);
    const r = await postJson(h.url + C, { ...OK_COMP, some_future_field: { x: 1 } }, AUTH);
    const j = (await r.json()) as ErrBody;
    expect(r.status).toBe(400);
    expect(j.error.param).toBe('some_future_field');
    expect(j.error.message).toContain('Unrecognized request argument supplied: some_future_field');
  });

  it('400 for malformed JSON, in the OpenAI error shape', async () => {
    const r = await fetch(h.url + C, { method: 'POST', headers: { 'content-type': 'application/json', ...AUTH }, body: '{"model": ' });
    expect(r.status).toBe(400);
    const j = (await r.json()) as ErrBody;
    expect(j.error.type).toBe('invalid_request_error');
    expect(j.error.code).toBe('malformed_json');
    expect(j.error.message).toMatch(/not valid JSON/);
  });

  it('400 for a body that is not JSON', async () => {
    const r = await fetch(h.url + C, { method: 'POST', headers: { 'content-type': 'text/plain', ...AUTH }, body: 'hello' });
    expect(r.status).toBe(400);
    expect(((await r.json()) as ErrBody).error.message).toMatch(/application\/json/);
  });

  it('413 for a body over the limit', async () => {
    const r = await postJson(h.url + C, { ...OK_COMP, prompt: 'x'.repeat(20 * 1024) }, AUTH);
    expect(r.status).toBe(413);
    expect(((await r.json()) as ErrBody).error.code).toBe('body_too_large');
  });

  it('401 without or with a wrong API key; health stays open', async () => {
    // The configured digest is not itself a credential.
    for (const headers of [{}, { authorization: 'Bearer wrong' }, { authorization: KEY }, { authorization: `Bearer ${HASHED_ENTRY}` }] as Record<string, string>[]) {
      const r = await postJson(h.url + C, OK_COMP, headers);
      expect(r.status).toBe(401);
      const j = (await r.json()) as ErrBody;
      expect(j.error.code).toBe('invalid_api_key');
    }
    expect((await fetch(h.url + '/v1/models')).status).toBe(401);
    expect((await fetch(h.url + '/v1/models', { headers: AUTH })).status).toBe(200);
    expect((await fetch(h.url + '/v1/models', { headers: { authorization: `Bearer ${HASHED_KEY}` } })).status).toBe(200);
    expect((await fetch(h.url + '/healthz')).status).toBe(200);
    expect((await fetch(h.url + '/readyz')).status).toBe(200);
  });

  it('404 in the OpenAI shape for unknown routes', async () => {
    const r = await fetch(h.url + '/v1/images/generations', { method: 'POST', headers: AUTH });
    expect(r.status).toBe(404);
    expect(((await r.json()) as ErrBody).error.type).toBe('invalid_request_error');
  });

  it('echoes x-request-id, or makes one', async () => {
    const r = await postJson(h.url + C, OK_COMP, { ...AUTH, 'x-request-id': 'abc-123' });
    expect(r.headers.get('x-request-id')).toBe('abc-123');
    const r2 = await postJson(h.url + C, OK_COMP, AUTH);
    expect(r2.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('503 while draining (readyz too)', async () => {
    h.server.state.draining = true;
    try {
      const r = await postJson(h.url + C, OK_COMP, AUTH);
      expect(r.status).toBe(503);
      expect(r.headers.get('retry-after')).toBe('1');
      expect(((await r.json()) as ErrBody).error.code).toBe('server_draining');
      expect((await fetch(h.url + '/readyz')).status).toBe(503);
      expect((await fetch(h.url + '/healthz')).status).toBe(200);
    } finally {
      h.server.state.draining = false;
    }
  });
});

describe('overload', () => {
  let h: Harness;
  beforeAll(async () => {
    // One sequence at a time and one waiting: a burst must be refused with 429, never fail with 5xx.
    h = await startHarness({}, { scheduler: { maxBatchSize: 1, maxQueueLength: 1 } });
  });
  afterAll(async () => {
    await h?.stop();
  });

  it('429 with Retry-After under overload, and no 5xx', async () => {
    const body = { model: MODEL_NAME, prompt: 'ROMEO:', max_tokens: 40, ignore_eos: true };
    const rs = await Promise.all(Array.from({ length: 12 }, () => postJson(h.url + C, body)));
    const statuses = rs.map((r) => r.status);
    expect(statuses.filter((s) => s >= 500)).toEqual([]);
    expect(statuses).toContain(200);
    expect(statuses).toContain(429);
    for (const r of rs) {
      const j = (await r.json()) as ErrBody & { usage?: { completion_tokens: number } };
      if (r.status === 429) {
        expect(r.headers.get('retry-after')).toBe('1');
        expect(j.error.type).toBe('rate_limit_error');
        expect(j.error.code).toBe('queue_full');
      } else {
        expect(r.status).toBe(200);
        expect(j.usage!.completion_tokens).toBe(40);
      }
    }
    expect(h.engine.stats().requests.rejected.queue_full).toBeGreaterThan(0);
  });
});

describe('request metrics hook', () => {
  it('counts requests by route template and errors by code', async () => {
    const requests: [string, number][] = [];
    const errors: string[] = [];
    const h = await startHarness();
    // A second server on the harness's engine, with a recording hook (the hook is wired at app creation).
    const s = await startServer({
      engine: h.engine,
      options: { ...DEFAULT_SERVER_OPTIONS, port: 0, modelName: MODEL_NAME },
      logger: pino({ level: 'silent' }),
      metricsHook: { observeRequest: (e, st) => requests.push([e, st]), observeError: (r) => errors.push(r) },
    });
    try {
      expect((await postJson(s.url + C, OK_COMP)).status).toBe(200);
      expect((await postJson(s.url + C, { ...OK_COMP, model: 'x' })).status).toBe(404);
      expect((await fetch(s.url + '/no/such/path?secret=1')).status).toBe(404);
      expect(requests).toEqual([
        ['/v1/completions', 200],
        ['/v1/completions', 404],
        ['unmatched', 404],
      ]);
      expect(errors).toEqual(['model_not_found', 'not_found']);
    } finally {
      await s.close();
      await h.stop();
    }
  });
});

describe('request deadline', () => {
  it('504 when the engine cuts a request at its deadline', async () => {
    const h = await startHarness({ requestTimeoutMs: 20 });
    try {
      const r = await postJson(h.url + C, { model: MODEL_NAME, prompt: 'ROMEO:', max_tokens: 240, ignore_eos: true });
      expect(r.status).toBe(504);
      const j = (await r.json()) as ErrBody;
      expect(j.error.type).toBe('timeout_error');
      expect(j.error.code).toBe('timeout');
      // Streaming: headers are gone by then, so the error arrives in-band and the stream ends.
      const s = await postJson(h.url + C, { model: MODEL_NAME, prompt: 'ROMEO:', max_tokens: 240, ignore_eos: true, stream: true });
      expect(s.status).toBe(200);
      const events = sseData(await s.text());
      expect((events.at(-1) as ErrBody).error.code).toBe('timeout');
    } finally {
      await h.stop();
    }
  });
});
