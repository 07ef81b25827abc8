// Structured output through the official openai SDK: `client.chat.completions.parse` with `zodResponseFormat`
// over a suite of zod schemas, on the shipped model and on a synthetic llama3.1 model with the real 128k Llama-3
// vocabulary, greedy and sampled — every answer must parse and validate (100%). Also response_format json_object,
// the raw `grammar` field (chat and completions, streamed and not), and the 400s.
//
// Random-weight models never end an unbounded string on their own (any character is as likely as the closing
// quote), so the schemas bound their strings and arrays with .max(), and max_tokens covers the longest answer the
// grammar allows them. Once the grammar is complete the engine ends the answer ('stop').
import OpenAI from 'openai';
import { zodResponseFormat } from 'openai/helpers/zod';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { z } from 'zod';

import { loadConfig } from '../../src/config/load.js';
import { DEFAULT_SERVER_OPTIONS } from '../../src/controlplane/app.js';
import { createMetrics, type Metrics } from '../../src/metrics/registry.js';
import { startServer, type RunningServer } from '../../src/controlplane/http-server.js';
import { Engine } from '../../src/engine/index.js';
import { validateJson } from '../../src/structured/json-validate.js';
import { ArchModels } from '../helpers/arch-models.js';
import { MODEL, postJson, sseData } from './harness.js';
import { pino } from 'pino';

const str = (n: number): z.ZodString => z.string().max(n);
const int = (lo: number, hi: number): z.ZodNumber => z.number().int().min(lo).max(hi);

interface Item {
  name: string;
  schema: z.ZodType;
}

// Each schema bounds what a random model could otherwise write forever (strings, arrays, recursion through arrays).
const SUITE: Item[] = [
  { name: 'flat', schema: z.object({ name: str(12), age: int(0, 120) }) },
  { name: 'booleans and null', schema: z.object({ ok: z.boolean(), nothing: z.null() }) },
  { name: 'enum', schema: z.object({ color: z.enum(['red', 'green', 'blue']) }) },
  { name: 'literals', schema: z.object({ kind: z.literal('point'), v: z.literal(3) }) },
  { name: 'nullable string', schema: z.object({ nick: str(8).nullable() }) },
  { name: 'number in [0, 1]', schema: z.object({ score: z.number().min(0).max(1) }) },
  { name: 'safe integer', schema: z.object({ id: z.number().int() }) },
  { name: 'negative integers', schema: z.object({ t: int(-40, 50) }) },
  { name: 'unbounded number', schema: z.object({ x: z.number() }) },
  { name: 'array with min/max', schema: z.object({ tags: z.array(str(5)).min(1).max(3) }) },
  { name: 'array of objects', schema: z.object({ points: z.array(z.object({ x: int(-9, 9), y: int(-9, 9) })).max(3) }) },
  { name: 'nested objects', schema: z.object({ a: z.object({ b: z.object({ c: str(4) }) }) }) },
  { name: 'union', schema: z.object({ v: z.union([str(5), int(0, 9)]) }) },
  {
    name: 'discriminated union',
    schema: z.object({
      shape: z.discriminatedUnion('type', [z.object({ type: z.literal('a'), a: str(3) }), z.object({ type: z.literal('b'), b: z.boolean() })]),
    }),
  },
  { name: 'union of literals', schema: z.object({ n: z.union([z.literal(1), z.literal(2), z.literal('three')]) }) },
  { name: 'nullable object', schema: z.object({ meta: z.object({ note: str(6) }).nullable() }) },
  {
    name: 'fixed-length enum array',
    schema: z.object({
      pair: z
        .array(z.enum(['x', 'y']))
        .min(2)
        .max(2),
    }),
  },
  { name: 'boolean array', schema: z.object({ flags: z.array(z.boolean()).max(4) }) },
  { name: 'string with min and max', schema: z.object({ code: z.string().min(2).max(6) }) },
  {
    name: 'many fields',
    schema: z.object({
      id: int(1, 999),
      title: str(10),
      done: z.boolean(),
      score: z.number().min(-1).max(1),
      tags: z.array(z.enum(['a', 'b', 'c'])).max(2),
      owner: z.object({ name: str(6), admin: z.boolean() }).nullable(),
      kind: z.literal('task'),
      note: str(4).nullable(),
    }),
  },
  {
    name: 'array of arrays',
    schema: z.object({ grid: z.array(z.array(int(0, 9)).max(2)).max(2) }),
  },
  { name: 'top-level array field of nullable numbers', schema: z.object({ xs: z.array(z.number().min(0).max(100).nullable()).max(3) }) },
];

/** zod's recursive shape (a getter: z.lazy's zod-4 form) → `$ref: "#"`; nesting is bounded by the token budget only,
 *  so it runs on its own with a check that a complete answer validates. */
interface TreeNode {
  v: number;
  children: TreeNode[];
}
const Tree: z.ZodType<TreeNode> = z.object({
  v: int(0, 9),
  get children(): z.ZodArray<z.ZodType<TreeNode>> {
    return z.array(Tree).max(2);
  },
});

/** The whole context after a short prompt: the shipped model's window is 256 tokens. */
const budget = (s: Served): number => Math.min(400, s.engine.info.contextLength - 48);

interface Served {
  name: string;
  metrics: Metrics;
  engine: Engine;
  server: RunningServer;
  client: OpenAI;
  model: string;
}

async function serve(label: string, file: string): Promise<Served> {
  const engine = await Engine.load({ threads: 1, model: file });
  const metrics = createMetrics({ engine, config: loadConfig({ overrides: { 'model.threads': '1', 'model.name': label } }) });
  const server = await startServer({
    engine,
    options: { ...DEFAULT_SERVER_OPTIONS, port: 0, modelName: label },
    logger: pino({ level: 'silent' }),
    metricsHook: metrics,
  });
  return { name: label, metrics, engine, server, client: new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 }), model: label };
}

const models = new ArchModels();
const served: Served[] = [];

beforeAll(async () => {
  served.push(await serve('tuneloop-shakespeare', MODEL));
  const llama = models.write('llama3.1', { real: true });
  served.push(await serve('llama3.1-real-vocab', llama.file));
}, 300_000);

afterAll(async () => {
  for (const s of served) {
    await s.server.close();
    await s.engine.close();
  }
  models.cleanup();
});

const MODES = [
  { mode: 'greedy', sampling: { temperature: 0 } },
  { mode: 'sampled', sampling: { temperature: 1, top_p: 1, seed: 11 } },
] as const;

describe.each([0, 1])('chat.completions.parse with zod schemas (model %i)', (which) => {
  for (const { mode, sampling } of MODES) {
    test(`${SUITE.length} schemas, ${mode}: every answer parses and validates`, { timeout: 900_000 }, async () => {
      const s = served[which]!;
      // All at once: the engine batches them, and the test machine's cores are shared.
      const results = await Promise.all(
        SUITE.map(async (item) => {
          const format = zodResponseFormat(item.schema, item.name.replace(/[^A-Za-z0-9_-]/g, '_'));
          const r = await s.client.chat.completions.parse({
            model: s.model,
            messages: [{ role: 'user', content: `Answer with a JSON object for: ${item.name}` }],
            response_format: format,
            max_tokens: budget(s),
            ...sampling,
          });
          return { item, format, r };
        }),
      );
      const failures: string[] = [];
      for (const { item, format, r } of results) {
        const c = r.choices[0]!;
        const where = `${s.name} ${mode} '${item.name}': ${JSON.stringify(c.message.content)}`;
        if (c.finish_reason !== 'stop') failures.push(`${where} finished with ${c.finish_reason}`);
        else if (c.message.parsed == null) failures.push(`${where} did not parse`);
        else {
          const zr = item.schema.safeParse(c.message.parsed);
          if (!zr.success) failures.push(`${where} fails zod: ${zr.error.message}`);
          const errs = validateJson(format.json_schema.schema, c.message.parsed);
          if (errs.length > 0) failures.push(`${where} fails the JSON schema: ${errs.join('; ')}`);
        }
      }
      expect(failures).toEqual([]);
    });
  }

  test('streamed (the SDK chat.completions.stream helper): the final answer parses and validates', { timeout: 300_000 }, async () => {
    const s = served[which]!;
    const picked = SUITE.filter((_, i) => i % 4 === 0);
    const failures: string[] = [];
    await Promise.all(
      picked.map(async (item) => {
        const stream = s.client.chat.completions.stream({
          model: s.model,
          messages: [{ role: 'user', content: `Stream a JSON object for: ${item.name}` }],
          response_format: zodResponseFormat(item.schema, 'streamed'),
          max_tokens: budget(s),
          temperature: 1,
          seed: 5,
        });
        let deltas = '';
        stream.on('content.delta', (e: { delta: string }) => (deltas += e.delta));
        const final = await stream.finalChatCompletion();
        const c = final.choices[0]!;
        if (c.finish_reason !== 'stop' || c.message.parsed == null || !item.schema.safeParse(c.message.parsed).success) {
          failures.push(`${s.name} '${item.name}': ${c.finish_reason} ${JSON.stringify(c.message.content)}`);
        }
        if (deltas !== c.message.content) failures.push(`${s.name} '${item.name}': the deltas do not add up to the content`);
      }),
    );
    expect(failures).toEqual([]);
  });

  test('recursive schema (zod getter → $ref "#"): a complete answer validates', { timeout: 300_000 }, async () => {
    const s = served[which]!;
    const r = await s.client.chat.completions.parse({
      model: s.model,
      messages: [{ role: 'user', content: 'A tree, please.' }],
      response_format: zodResponseFormat(Tree, 'tree'),
      max_tokens: budget(s),
      temperature: 0,
    });
    const c = r.choices[0]!;
    // Depth is unbounded in the schema; a random model may nest past the budget, which is a 'length' finish with
    // text that is a prefix of valid JSON. A 'stop' answer must be complete and valid.
    if (c.finish_reason === 'stop') expect(Tree.safeParse(c.message.parsed).success).toBe(true);
    else expect(c.finish_reason).toBe('length');
  });
});

describe('json_object, raw grammar, streaming (shipped model)', () => {
  const s = (): Served => served[0]!;

  test('response_format json_object: a JSON object, plain and streamed', async () => {
    const body = { model: s().model, messages: [{ role: 'user' as const, content: 'JSON please' }], response_format: { type: 'json_object' as const }, max_tokens: 200 };
    const r = await s().client.chat.completions.create({ ...body, temperature: 0 });
    const text = r.choices[0]!.message.content ?? '';
    if (r.choices[0]!.finish_reason === 'stop') expect(typeof JSON.parse(text)).toBe('object');
    else expect(text.startsWith('{')).toBe(true);
    const stream = await s().client.chat.completions.create({ ...body, temperature: 0, stream: true });
    let streamed = '';
    for await (const chunk of stream) streamed += chunk.choices[0]?.delta.content ?? '';
    expect(streamed).toBe(text);
  });

  const GRAMMAR = 'root ::= "yes" | "no" | "maybe " [0-9]';

  test('raw grammar on completions and chat, plain and streamed', async () => {
    const c = await postJson(`${s().server.url}/v1/completions`, { model: s().model, prompt: 'ROMEO:', grammar: GRAMMAR, max_tokens: 10, temperature: 0 });
    expect(c.status).toBe(200);
    const cj = (await c.json()) as { choices: { text: string; finish_reason: string }[] };
    expect(cj.choices[0]!.text).toMatch(/^(yes|no|maybe [0-9])$/);
    expect(cj.choices[0]!.finish_reason).toBe('stop');

    const ch = await postJson(`${s().server.url}/v1/chat/completions`, {
      model: s().model,
      messages: [{ role: 'user', content: 'well?' }],
      grammar: GRAMMAR,
      max_tokens: 10,
      temperature: 1,
      seed: 3,
      stream: true,
    });
    expect(ch.status).toBe(200);
    const events = sseData(await ch.text());
    const text = events
      .filter((e): e is { choices: { delta: { content?: string } }[] } => typeof e === 'object')
      .map((e) => e.choices[0]?.delta.content ?? '')
      .join('');
    expect(text).toMatch(/^(yes|no|maybe [0-9])$/);
  });

  test('json_schema on /v1/completions too', async () => {
    const schema = { type: 'object', properties: { a: { type: 'integer', minimum: 0, maximum: 9 } }, required: ['a'], additionalProperties: false };
    const r = await postJson(`${s().server.url}/v1/completions`, {
      model: s().model,
      prompt: 'JSON:',
      response_format: { type: 'json_schema', json_schema: { name: 'a', schema } },
      max_tokens: 60,
      temperature: 0,
    });
    expect(r.status).toBe(200);
    const j = (await r.json()) as { choices: { text: string }[] };
    expect(validateJson(schema, JSON.parse(j.choices[0]!.text))).toEqual([]);
  });
});

describe('structured-output refusals are 400s naming the field', () => {
  const s = (): Served => served[0]!;
  const chat = (extra: Record<string, unknown>): Promise<Response> =>
    postJson(`${s().server.url}/v1/chat/completions`, { model: s().model, messages: [{ role: 'user', content: 'x' }], max_tokens: 5, ...extra });
  const cases: [string, Record<string, unknown>, string, RegExp][] = [
    [
      'an unsupported keyword (pattern), with its path',
      { response_format: { type: 'json_schema', json_schema: { name: 'p', schema: { type: 'object', properties: { e: { type: 'string', pattern: '^a' } } } } } },
      'response_format',
      /'pattern'.*schema#\/properties\/e\/pattern/,
    ],
    [
      'a contradiction',
      { response_format: { type: 'json_schema', json_schema: { name: 'c', schema: { type: 'array', minItems: 2, maxItems: 1 } } } },
      'response_format',
      /minItems 2/,
    ],
    ['recursion without end', { response_format: { type: 'json_schema', json_schema: { name: 'r', schema: { $ref: '#' } } } }, 'response_format', /recursive/],
    ['response_format with grammar', { response_format: { type: 'json_object' }, grammar: 'root ::= "a"' }, 'response_format', /together/],
    ['an unknown response_format type', { response_format: { type: 'xml' } }, 'response_format', /json_schema/],
    ['json_schema without a name', { response_format: { type: 'json_schema', json_schema: { schema: {} } } }, 'response_format', /name/],
    ['a grammar that is not a string', { grammar: 42 }, 'grammar', /GBNF/],
    ['a grammar the engine cannot parse', { grammar: 'root ::= ("a"' }, 'grammar', /line \d+, column \d+/],
    ['a grammar with an undefined rule', { grammar: 'root ::= nothing' }, 'grammar', /nothing/],
  ];
  for (const [what, extra, param, message] of cases) {
    test(what, async () => {
      const r = await chat(extra);
      expect(r.status).toBe(400);
      const j = (await r.json()) as { error: { param: string; message: string; type: string } };
      expect(j.error.param).toBe(param);
      expect(j.error.type).toBe('invalid_request_error');
      expect(j.error.message).toMatch(message);
    });
  }

  test('the SDK surfaces a refused zod schema as BadRequestError naming the keyword', async () => {
    const Dated = z.object({ at: z.string().datetime() });
    await expect(
      s().client.chat.completions.parse({
        model: s().model,
        messages: [{ role: 'user', content: 'when?' }],
        response_format: zodResponseFormat(Dated, 'dated'),
        max_tokens: 5,
      }),
    ).rejects.toThrow(/format/);
  });
});

describe('structured-output metrics', () => {
  const value = async (m: Metrics, name: string, labels: Record<string, string>): Promise<number> => {
    const text = await m.metricsText();
    const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
    const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && want.every((w) => l.includes(w)));
    return line === undefined ? NaN : Number(line.slice(line.lastIndexOf(' ') + 1));
  };

  test('requests by mode, and an answer cut by max_tokens counted as a parse failure', async () => {
    const s = served[0]!;
    const before = await value(s.metrics, 'tuneloop_structured_requests_total', { mode: 'json_object' });
    const failsBefore = await value(s.metrics, 'tuneloop_structured_parse_failures_total', { mode: 'json_object', reason: 'invalid_json' });
    const gBefore = await value(s.metrics, 'tuneloop_structured_requests_total', { mode: 'grammar' });
    // Two tokens cannot hold a complete object with a key: '{' and a bit of a key.
    const r = await postJson(`${s.server.url}/v1/chat/completions`, {
      model: s.model,
      messages: [{ role: 'user', content: 'x' }],
      response_format: { type: 'json_schema', json_schema: { name: 'k', schema: { type: 'object', properties: { key: { type: 'string' } }, required: ['key'] } } },
      max_tokens: 2,
    });
    expect(r.status).toBe(200);
    const j = (await r.json()) as { choices: { finish_reason: string }[] };
    expect(j.choices[0]!.finish_reason).toBe('length');
    const r2 = await postJson(`${s.server.url}/v1/chat/completions`, {
      model: s.model,
      messages: [{ role: 'user', content: 'x' }],
      response_format: { type: 'json_object' },
      max_tokens: 1,
    });
    expect(r2.status).toBe(200);
    await postJson(`${s.server.url}/v1/completions`, { model: s.model, prompt: 'a', grammar: 'root ::= "b"', max_tokens: 4 });
    // The FinishedRequest fan-out runs once the response has ended: poll briefly for it.
    for (let i = 0; i < 100 && (await value(s.metrics, 'tuneloop_structured_requests_total', { mode: 'grammar' })) === gBefore; i++)
      await new Promise((res) => setTimeout(res, 20));
    expect(await value(s.metrics, 'tuneloop_structured_requests_total', { mode: 'json_object' })).toBe(before + 1);
    expect(await value(s.metrics, 'tuneloop_structured_parse_failures_total', { mode: 'json_object', reason: 'invalid_json' })).toBe(failsBefore + 1);
    expect(await value(s.metrics, 'tuneloop_structured_parse_failures_total', { mode: 'json_schema', reason: 'invalid_json' })).toBeGreaterThanOrEqual(1);
    expect(await value(s.metrics, 'tuneloop_structured_requests_total', { mode: 'grammar' })).toBe(gBefore + 1);
  });
});
