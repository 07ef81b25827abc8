// The per-key limits, CORS and log hygiene of security.ts on the shipped model behind real HTTP servers: the request
// rate per key (token bucket, 429 + Retry-After, bad tokens paced by address, probes exempt), concurrent generations
// per key, prompt-token / max_tokens / stop-length limits answering 400 naming the field, CORS for listed origins
// only, and logs that hold no credential, prompt or generated text. The mechanics (bucket refill, sweeping, slots)
// are unit-tested with a fake clock.
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../../src/engine/index.js';
import { DEFAULT_SERVER_OPTIONS, type ServerOptions } from '../../src/controlplane/app.js';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { ConcurrencyLimiter, RateLimiter } from '../../src/controlplane/security.js';
import { createLogger, serverOptionsFromConfig } from '../../src/serve.js';
import { startServer, type RunningServer } from '../../src/controlplane/http-server.js';
import { MODEL, MODEL_NAME, postJson, waitFor } from './harness.js';

interface ErrBody {
  error: { message: string; type: string; param: string | null; code: string };
}

const K1 = 'sk-limits-key-one';
const K2 = 'sk-limits-key-two';
const auth = (key: string): Record<string, string> => ({ authorization: `Bearer ${key}` });

describe('RateLimiter and ConcurrencyLimiter', () => {
  it('lets a burst through, then paces at the rate, with the wait in whole seconds', () => {
    let now = 0;
    const rl = new RateLimiter(60, 3, () => now); // one request a second, three at once
    expect([rl.take('a'), rl.take('a'), rl.take('a')]).toEqual([0, 0, 0]);
    expect(rl.take('a')).toBe(1);
    expect(rl.take('b')).toBe(0); // another key, another bucket
    now += 1000;
    expect(rl.take('a')).toBe(0);
    expect(rl.take('a')).toBe(1);
    const slow = new RateLimiter(6, 1, () => now); // one every 10 s
    expect(slow.take('x')).toBe(0);
    expect(slow.take('x')).toBe(10);
  });

  it('forgets keys whose bucket has refilled, once a minute', () => {
    let now = 0;
    const rl = new RateLimiter(600, 10, () => now);
    for (let i = 0; i < 100; i++) rl.take(`ip:${i}`);
    expect(rl.size).toBe(100);
    now += 61_000;
    rl.take('fresh');
    expect(rl.size).toBe(1);
  });

  it('counts slots per key and releases each once', () => {
    const c = new ConcurrencyLimiter(2);
    const r1 = c.acquire('k')!,
      r2 = c.acquire('k')!;
    expect(c.acquire('k')).toBeUndefined();
    expect(c.acquire('other')).toBeDefined();
    r1();
    r1();
    expect(c.count('k')).toBe(1);
    expect(c.acquire('k')).toBeDefined();
    r2();
    expect(new ConcurrencyLimiter(0).acquire('k')).toBeDefined(); // 0 = no limit
  });
});

describe('config: server limits and CORS origins', () => {
  it('has the documented defaults and passes them to the HTTP layer', () => {
    const cfg = loadConfig({});
    expect(cfg.server).toMatchObject({ corsOrigins: [], rateLimitPerMinute: 6000, rateLimitBurst: 200, maxConcurrentStreamsPerKey: 64 });
    expect(cfg.server.maxPromptTokens).toBeUndefined();
    expect(cfg.server.maxTokensLimit).toBeUndefined();
    const o = serverOptionsFromConfig(loadConfig({ overrides: { 'server.corsOrigins': 'https://ops.example.com', 'server.maxTokensLimit': '64' } }));
    expect(o).toMatchObject({ corsOrigins: ['https://ops.example.com'], rateLimitPerMinute: 6000, maxConcurrentStreamsPerKey: 64, maxTokensLimit: 64 });
  });

  it('refuses an origin a browser would never send, naming the entry', () => {
    for (const bad of ['https://ops.example.com/', 'ops.example.com', 'https://ops.example.com/app', 'ftp://x.example', 'https://OPS.example.com', '*']) {
      expect(() => loadConfig({ overrides: { 'server.corsOrigins': `https://ok.example,${bad}` } }), bad).toThrow(ConfigError);
      expect(() => loadConfig({ overrides: { 'server.corsOrigins': `https://ok.example,${bad}` } }), bad).toThrow(/server\.corsOrigins\[1\].*origin/);
    }
    expect(loadConfig({ overrides: { 'server.corsOrigins': 'http://localhost:3000,https://ops.example.com' } }).server.corsOrigins).toEqual([
      'http://localhost:3000',
      'https://ops.example.com',
    ]);
  });
});

describe('limits on the HTTP server', () => {
  let engine: Engine;
  const servers: RunningServer[] = [];
  const serve = async (options: Partial<ServerOptions>, logger = pino({ level: 'silent' })): Promise<string> => {
    const s = await startServer({ engine, options: { ...DEFAULT_SERVER_OPTIONS, port: 0, modelName: MODEL_NAME, ...options }, logger });
    servers.push(s);
    return s.url;
  };
  beforeAll(async () => {
    engine = await Engine.load({ threads: 1, model: MODEL });
  });
  afterAll(async () => {
    for (const s of servers) await s.close();
    await engine?.close();
  });

  it('rate-limits per key with 429 rate_limit_exceeded and Retry-After; bad tokens count against the address; probes are exempt', async () => {
    const url = await serve({ apiKeys: [K1, K2], rateLimitPerMinute: 6, rateLimitBurst: 3 });
    const models = (key: string) => fetch(`${url}/v1/models`, { headers: auth(key) });
    for (let i = 0; i < 3; i++) expect((await models(K1)).status).toBe(200);
    const refused = await models(K1);
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    const body = (await refused.json()) as ErrBody;
    expect(body.error).toMatchObject({ type: 'rate_limit_error', code: 'rate_limit_exceeded' });
    expect(body.error.message).toContain('server.rateLimitPerMinute');
    expect((await models(K2)).status).toBe(200); // its own bucket

    // Unknown tokens share the client address's bucket: 401 while it lasts, then 429 even with a fresh random token.
    for (let i = 0; i < 3; i++) expect((await models(`sk-guess-${i}`)).status).toBe(401);
    expect((await models('sk-guess-fresh')).status).toBe(429);
    expect((await fetch(`${url}/api/nope`)).status).toBe(429); // /api counts too

    for (let i = 0; i < 10; i++) {
      expect((await fetch(`${url}/healthz`)).status).toBe(200);
      expect((await fetch(`${url}/readyz`)).status).toBe(200);
    }
  });

  it('limits concurrent generation requests per key and frees the slot when one ends', async () => {
    const url = await serve({ apiKeys: [K1, K2], maxConcurrentStreamsPerKey: 2 });
    const long = { model: MODEL_NAME, prompt: 'ROMEO:', max_tokens: 100, ignore_eos: true, stream: true };
    const ac = new AbortController();
    const open = [0, 1].map(() =>
      fetch(`${url}/v1/completions`, {
        method: 'POST',
        headers: { ...auth(K1), 'content-type': 'application/json' },
        body: JSON.stringify(long),
        signal: ac.signal,
      }),
    );
    const first = await Promise.all(open);
    expect(first.map((r) => r.status)).toEqual([200, 200]);

    const third = await postJson(`${url}/v1/completions`, { ...long, stream: false, max_tokens: 1 }, auth(K1));
    expect(third.status).toBe(429);
    expect(third.headers.get('retry-after')).toBe('1');
    const body = (await third.json()) as ErrBody;
    expect(body.error.code).toBe('rate_limit_exceeded');
    expect(body.error.message).toContain('server.maxConcurrentStreamsPerKey');
    const other = await postJson(`${url}/v1/completions`, { ...long, stream: false, max_tokens: 1 }, auth(K2));
    expect(other.status).toBe(200);

    ac.abort();
    await Promise.allSettled(first.map((r) => r.text()));
    const server = servers.at(-1)!;
    expect(await waitFor(() => server.state.active === 0, 5000)).toBe(true);
    expect((await postJson(`${url}/v1/completions`, { ...long, stream: false, max_tokens: 1 }, auth(K1))).status).toBe(200);
  });

  it('limits prompt tokens, max_tokens and stop sequences with a 400 naming the field', async () => {
    const url = await serve({ maxPromptTokens: 40, maxTokensLimit: 8 });
    const C = `${url}/v1/completions`,
      CH = `${url}/v1/chat/completions`;
    const long = 'word '.repeat(60);
    const cases: [string, string, unknown, string, string][] = [
      ['prompt tokens', C, { model: MODEL_NAME, prompt: long, max_tokens: 1 }, 'context_length_exceeded', 'prompt'],
      ['chat prompt tokens', CH, { model: MODEL_NAME, messages: [{ role: 'user', content: long }], max_tokens: 1 }, 'context_length_exceeded', 'messages'],
      ['max_tokens', C, { model: MODEL_NAME, prompt: 'hi', max_tokens: 9 }, 'invalid_request', 'max_tokens'],
      [
        'max_completion_tokens',
        CH,
        { model: MODEL_NAME, messages: [{ role: 'user', content: 'hi' }], max_completion_tokens: 9 },
        'invalid_request',
        'max_completion_tokens',
      ],
      ['stop length', C, { model: MODEL_NAME, prompt: 'hi', max_tokens: 1, stop: ['x', 's'.repeat(257)] }, 'invalid_request', 'stop'],
    ];
    for (const [name, path, body, code, param] of cases) {
      const res = await postJson(path, body);
      const err = ((await res.json()) as ErrBody).error;
      expect([res.status, err.code, err.param], name).toEqual([400, code, param]);
    }
    expect(((await (await postJson(C, { model: MODEL_NAME, prompt: 'hi', max_tokens: 9 })).json()) as ErrBody).error.message).toContain('server.maxTokensLimit');
    // At the limits: accepted. Without max_tokens, chat (which would run to the end of the context) is capped.
    expect((await postJson(C, { model: MODEL_NAME, prompt: 'hi', max_tokens: 8, stop: ['s'.repeat(256)] })).status).toBe(200);
    const capped = await postJson(CH, { model: MODEL_NAME, messages: [{ role: 'user', content: 'hi' }], ignore_eos: true });
    expect(capped.status).toBe(200);
    expect(((await capped.json()) as { usage: { completion_tokens: number } }).usage.completion_tokens).toBe(8);
  });

  it('sends CORS headers to listed origins only; preflights are 204 either way', async () => {
    const url = await serve({ corsOrigins: ['https://ops.example.com'] });
    const get = (origin: string) => fetch(`${url}/v1/models`, { headers: { origin } });
    const ok = await get('https://ops.example.com');
    expect(ok.headers.get('access-control-allow-origin')).toBe('https://ops.example.com');
    expect(ok.headers.get('vary')).toMatch(/origin/i);
    expect(ok.headers.get('access-control-allow-credentials')).toBeNull();
    const other = await get('https://evil.example');
    expect(other.status).toBe(200);
    expect(other.headers.get('access-control-allow-origin')).toBeNull();

    const preflight = (origin: string) =>
      fetch(`${url}/v1/chat/completions`, {
        method: 'OPTIONS',
        headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' },
      });
    const allowed = await preflight('https://ops.example.com');
    expect(allowed.status).toBe(204);
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://ops.example.com');
    expect(allowed.headers.get('access-control-allow-methods')).toBe('GET, POST');
    expect(allowed.headers.get('access-control-allow-headers')).toContain('authorization');
    const refused = await preflight('https://evil.example');
    expect(refused.status).toBe(204);
    expect(refused.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('never logs a credential, a query string, a prompt or generated text', async () => {
    let text = '';
    const sink = new Writable({
      write(c, _e, cb) {
        text += String(c);
        cb();
      },
    });
    const url = await serve({ apiKeys: [K1] }, createLogger('trace', sink));
    const PROMPT = 'PROMPT-MARKER-xyzzy says';
    const completion = await postJson(`${url}/v1/completions`, { model: MODEL_NAME, prompt: PROMPT, max_tokens: 12, ignore_eos: true, temperature: 0 }, auth(K1));
    const generated = ((await completion.json()) as { choices: { text: string }[] }).choices[0]!.text;
    const stream = await postJson(
      `${url}/v1/chat/completions`,
      { model: MODEL_NAME, messages: [{ role: 'user', content: PROMPT }], max_tokens: 4, stream: true },
      auth(K1),
    );
    await stream.text();
    await (await fetch(`${url}/v1/models?api_key=QUERY-SECRET-1`, { headers: auth(K1) })).text();
    await (await fetch(`${url}/v1/models`, { headers: auth('sk-WRONG-SECRET-2') })).text();
    // Malformed JSON: the parser's message quotes the body's start; the client sees it, the log must not.
    const malformed = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { ...auth(K1), 'content-type': 'application/json' }, body: `${PROMPT} not json` });
    expect(((await malformed.json()) as ErrBody).error.code).toBe('malformed_json');
    expect(await waitFor(() => (text.match(/"msg":"request"/g) ?? []).length >= 5, 2000)).toBe(true);

    expect(text).toContain('"path":"/v1/models"');
    expect(generated.trim().length).toBeGreaterThan(5);
    for (const secret of [K1, 'sk-WRONG-SECRET-2', 'QUERY-SECRET-1', 'PROMPT-MAR', generated]) expect(text, secret).not.toContain(secret);
  });

  it('the logger redacts credentials and prompts handed to it by any log call', () => {
    let text = '';
    const sink = new Writable({
      write(c, _e, cb) {
        text += String(c);
        cb();
      },
    });
    const log = createLogger('info', sink);
    log.info({ headers: { authorization: 'Bearer sk-live-1' }, prompt: 'secret plan', err: { body: '{"prompt":"secret plan 2"}' } }, 'oops');
    expect(text).toContain('oops');
    for (const s of ['sk-live-1', 'secret plan']) expect(text).not.toContain(s);
  });
});
