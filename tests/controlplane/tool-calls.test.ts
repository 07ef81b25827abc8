// Tools through the official openai SDK, for each tool-call family's real chat template on a synthetic model with a
// real vocabulary (tools/lib/synthetic-arch.ts): Llama 3.1 (the real 128k vocabulary, Meta's template), Qwen3 (Hermes
// <tool_call> blocks, Qwen's 151k vocabulary and template), Mistral (Mistral-Nemo's template; there is no Mistral
// vocabulary in this repository, so it is served over the Llama 3 vocabulary, where its [INST]/[TOOL_CALLS] markers
// are plain text) and DeepSeek-V3 (its 129k vocabulary and template, tool-call tokens included).
//
// The weights are random, so what the model writes is decided by the grammar (tool_choice required or named: the
// family's call syntax around the tool's argument schema) and by forceToken (tests/helpers/arch-models.ts): the
// family's end-of-turn token is made the greedy choice everywhere, so the grammar decides every token until the call
// is complete and the turn then ends; for tool_choice auto, a second model forces the family's call-opener token, and
// the lazy grammar makes the rest a valid call.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { DEFAULT_SERVER_OPTIONS } from '../../src/controlplane/app.js';
import { startServer, type RunningServer } from '../../src/controlplane/http-server.js';
import { TemplateSandbox } from '../../src/controlplane/openai/template-sandbox.js';
import { Engine, type GenerateRequest, type GenerationResult } from '../../src/engine/index.js';
import { loadConfig } from '../../src/config/load.js';
import { createMetrics, type Metrics } from '../../src/metrics/registry.js';
import { modelChatTemplate } from '../../src/serve.js';
import { writeGgufFile, type GgufValue } from '../../tools/lib/gguf-writer.js';
import { lenmlVocab } from '../../tools/lib/hf-vocab.js';
import { archPreset, buildSyntheticArch } from '../../tools/lib/synthetic-arch.js';
import type { EditableGgufModel } from '../../tools/lib/synthetic-llama.js';
import { ArchModels, forceToken } from '../helpers/arch-models.js';
import { REPO_ROOT } from '../helpers/shared.js';

const MODEL = 'tools-synthetic';

interface Family {
  name: string;
  /** The preset whose real vocabulary is used, or 'deepseek_v3' for DeepSeek-V3's (on the llama3.1 shape). */
  vocab: 'llama3.1' | 'qwen3' | 'deepseek_v3';
  /** A template file of tests/fixtures/chat-templates/templates instead of the vocabulary's own. */
  template?: string;
  /** The family's end-of-turn token. */
  turnEnd: string;
  /** The token that opens a call, when the vocabulary has one (the tool_choice auto test forces it). */
  opener?: string;
}

const FAMILIES: Family[] = [
  { name: 'llama3', vocab: 'llama3.1', template: 'meta-llama-Llama-3.1-8B-Instruct.jinja', turnEnd: '<|eot_id|>' },
  { name: 'hermes', vocab: 'qwen3', turnEnd: '<|im_end|>', opener: '<tool_call>' },
  { name: 'mistral', vocab: 'llama3.1', template: 'mistralai-Mistral-Nemo-Instruct-2407.jinja', turnEnd: '<|eot_id|>' },
  { name: 'deepseek', vocab: 'deepseek_v3', turnEnd: '<｜end▁of▁sentence｜>', opener: '<｜tool▁calls▁begin｜>' },
];

const TOOLS: OpenAI.ChatCompletionTool[] = [
  {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'The weather in a city.',
      parameters: {
        type: 'object',
        properties: { city: { type: 'string', enum: ['Paris', 'Lima', 'Oslo'] }, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] } },
        required: ['city', 'unit'],
        additionalProperties: false,
      },
    },
  },
  {
    type: 'function',
    function: {
      name: 'set_alarm',
      description: 'Sets an alarm.',
      parameters: {
        type: 'object',
        properties: { hour: { type: 'integer', minimum: 0, maximum: 23 }, loud: { type: 'boolean' } },
        required: ['hour', 'loud'],
        additionalProperties: false,
      },
    },
  },
];

const CITIES = ['Paris', 'Lima', 'Oslo'];
// Enough for a call whose every whitespace slot a random model fills to the grammar's bound (a newline and 20 tabs).
const CALL_TOKENS = 400;

/** The arguments a call of TOOLS may have, checked by hand against the schemas above. */
function checkArguments(name: string, args: string): void {
  const v = JSON.parse(args) as Record<string, unknown>;
  if (name === 'get_weather') {
    expect(Object.keys(v).sort()).toEqual(['city', 'unit']);
    expect(CITIES).toContain(v.city);
    expect(['celsius', 'fahrenheit']).toContain(v.unit);
  } else {
    expect(name).toBe('set_alarm');
    expect(Object.keys(v).sort()).toEqual(['hour', 'loud']);
    expect(Number.isInteger(v.hour) && (v.hour as number) >= 0 && (v.hour as number) <= 23).toBe(true);
    expect(typeof v.loud).toBe('boolean');
  }
}

const models = new ArchModels();
const sandbox = new TemplateSandbox();
afterAll(async () => {
  await sandbox.close();
  models.cleanup();
});

function tokenId(md: readonly (readonly [string, GgufValue])[], text: string): number {
  const list = md.find(([k]) => k === 'tokenizer.ggml.tokens')?.[1];
  const id = list?.type === 'array' ? (list.items as string[]).indexOf(text) : -1;
  if (id < 0) throw new Error(`no token ${text}`);
  return id;
}

/** A model file of the family whose greedy choice is always `force`. */
function writeModel(fam: Family, force: 'turnEnd' | 'opener' | { token: string; c: number; a: number }, template?: string): string {
  const edit = (model: EditableGgufModel): void => {
    const source = template ?? fam.template;
    if (source !== undefined) {
      const src = readFileSync(join(REPO_ROOT, 'tests', 'fixtures', 'chat-templates', 'templates', source), 'utf8');
      model.metadata = [...model.metadata.filter(([k]) => k !== 'tokenizer.chat_template'), ['tokenizer.chat_template', { type: 'string', value: src }]];
    }
    if (typeof force === 'object') forceToken(model, tokenId(model.metadata, force.token), force.c, force.a);
    else forceToken(model, tokenId(model.metadata, force === 'turnEnd' ? fam.turnEnd : fam.opener!));
  };
  if (fam.vocab !== 'deepseek_v3') return models.write(fam.vocab, { real: true, edit }).file;
  // DeepSeek-V3's vocabulary on the llama3.1 shape (the architecture does not matter to the template or the parser).
  const model = buildSyntheticArch({
    spec: archPreset('llama3.1')!.spec,
    fileType: 'f16',
    seed: 7,
    vocab: { metadata: lenmlVocab('deepseek_v3') },
    name: 'synthetic deepseek_v3 vocab',
  });
  edit(model);
  const file = join(models.dir, `deepseek_v3-${fam.name}-${typeof force === 'string' ? force : 'custom'}.gguf`);
  writeGgufFile(file, model);
  return file;
}

interface Served {
  engine: Engine;
  server: RunningServer;
  client: OpenAI;
  seen: GenerateRequest[];
  /** The engine's results, in order. */
  results: Promise<GenerationResult>[];
  metrics: Metrics;
  close(): Promise<void>;
}

async function serve(file: string): Promise<Served> {
  const engine = await Engine.load({ model: file, threads: 1 });
  const seen: GenerateRequest[] = [];
  const results: Promise<GenerationResult>[] = [];
  const generate = engine.generate.bind(engine);
  engine.generate = (r) => {
    seen.push(r);
    const g = generate(r);
    g.result.catch(() => undefined); // a failed generation is the test's to see through the HTTP answer
    results.push(g.result);
    return g;
  };
  const logger = pino({ level: 'silent' });
  const metrics = createMetrics({ engine, config: loadConfig({ overrides: { 'model.name': MODEL } }) });
  const server = await startServer({
    engine,
    options: { ...DEFAULT_SERVER_OPTIONS, port: 0, modelName: MODEL },
    logger,
    chatTemplate: await modelChatTemplate(engine, logger, sandbox),
    metricsHook: metrics,
  });
  const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  return {
    engine,
    server,
    client,
    seen,
    results,
    metrics,
    async close() {
      await server.close();
      await engine.close();
    },
  };
}

const ASK: OpenAI.ChatCompletionMessageParam[] = [
  { role: 'system', content: 'You help with the weather and alarms.' },
  { role: 'user', content: 'What is the weather in Paris?' },
];

/** A streamed answer accumulated from its deltas by hand (what the SDK's helpers do, checked separately). */
async function accumulate(stream: AsyncIterable<OpenAI.ChatCompletionChunk>) {
  let content = '';
  let reasoning: string | null = null;
  let finish: string | null = null;
  const calls: { id: string; name: string; arguments: string }[] = [];
  for await (const chunk of stream) {
    const c = chunk.choices[0];
    if (!c) continue;
    const d = c.delta as OpenAI.ChatCompletionChunk.Choice.Delta & { reasoning_content?: string };
    content += d.content ?? '';
    if (d.reasoning_content !== undefined) reasoning = (reasoning ?? '') + d.reasoning_content;
    for (const t of d.tool_calls ?? []) {
      if (t.id !== undefined) calls[t.index] = { id: t.id, name: t.function?.name ?? '', arguments: '' };
      calls[t.index]!.arguments += t.function?.arguments ?? '';
    }
    finish = c.finish_reason ?? finish;
  }
  return { content, reasoning, finish, calls };
}

/** A counter's value in the server's registry, summed over the series whose labels include `labels`. */
async function counter(m: Metrics, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = (await m.registry.getMetricsAsJSON()).find((x) => x.name === name);
  let sum = 0;
  for (const v of metric?.values ?? []) {
    if (Object.entries(labels).every(([k, want]) => String((v.labels as Record<string, unknown>)[k]) === want)) sum += v.value;
  }
  return sum;
}

const callsOf = (m: OpenAI.ChatCompletionMessage): { name: string; arguments: string }[] =>
  (m.tool_calls ?? []).map((c) => {
    expect(c.type).toBe('function');
    const f = (c as OpenAI.ChatCompletionMessageFunctionToolCall).function;
    return { name: f.name, arguments: f.arguments };
  });

describe.each(FAMILIES)('$name tool calls', (fam) => {
  let s: Served;
  beforeAll(async () => {
    s = await serve(writeModel(fam, 'turnEnd'));
  }, 180_000);
  afterAll(async () => {
    await s?.close();
  });

  it('tool_choice required: one valid call, finish_reason tool_calls, content null; the request carried the grammar', async () => {
    s.seen.length = 0;
    const r = await s.client.chat.completions.create({
      model: MODEL,
      messages: ASK,
      tools: TOOLS,
      tool_choice: 'required',
      parallel_tool_calls: false,
      max_tokens: CALL_TOKENS,
      temperature: 0,
    });
    const ch = r.choices[0]!;
    expect(ch.finish_reason).toBe('tool_calls');
    expect(ch.message.content).toBeNull();
    const calls = callsOf(ch.message);
    expect(calls).toHaveLength(1);
    checkArguments(calls[0]!.name, calls[0]!.arguments);
    expect(ch.message.tool_calls![0]!.id).toMatch(/^call_[A-Za-z0-9]{24}$/);
    const req = s.seen[0]!;
    expect(req.grammar).toContain('root ::=');
    expect(req.grammarTriggers).toBeUndefined();
    expect(await counter(s.metrics, 'tuneloop_tool_requests_total', { tool_choice: 'required', family: fam.name })).toBe(1);
    expect(await counter(s.metrics, 'tuneloop_tool_calls_total', { family: fam.name })).toBe(1);
    expect(await counter(s.metrics, 'tuneloop_tool_call_parse_failures_total')).toBe(0);
  });

  it('a named function: exactly that function', async () => {
    const r = await s.client.chat.completions.create({
      model: MODEL,
      messages: ASK,
      tools: TOOLS,
      tool_choice: { type: 'function', function: { name: 'set_alarm' } },
      max_tokens: CALL_TOKENS,
      temperature: 0,
    });
    const calls = callsOf(r.choices[0]!.message);
    expect(calls.map((c) => c.name)).toEqual(['set_alarm']);
    checkArguments('set_alarm', calls[0]!.arguments);
    expect(r.choices[0]!.finish_reason).toBe('tool_calls');
  });

  it('streamed (sampled, seeded): the accumulated deltas equal the plain answer, and the SDK stream helper agrees', async () => {
    const params = {
      model: MODEL,
      messages: ASK,
      tools: TOOLS,
      tool_choice: 'required' as const,
      parallel_tool_calls: false,
      max_tokens: CALL_TOKENS,
      temperature: 1,
      seed: 11,
    };
    const plain = await s.client.chat.completions.create(params);
    const streamed = await accumulate(await s.client.chat.completions.create({ ...params, stream: true }));
    const expected = callsOf(plain.choices[0]!.message);
    expect(expected).toHaveLength(1);
    expect(streamed.calls.map((c) => ({ name: c.name, arguments: c.arguments }))).toEqual(expected);
    expect(streamed.calls[0]!.id).toMatch(/^call_/);
    expect(streamed.finish).toBe('tool_calls');
    expect(streamed.content).toBe('');
    // The SDK's own accumulation (ChatCompletionStream) gives the same final message.
    const final = await s.client.chat.completions.stream(params).finalChatCompletion();
    expect(callsOf(final.choices[0]!.message)).toEqual(expected);
    expect(final.choices[0]!.finish_reason).toBe('tool_calls');
  });

  it('a tool message round-trips: the template renders the call and its result, and the conversation goes on', async () => {
    const first = await s.client.chat.completions.create({
      model: MODEL,
      messages: ASK,
      tools: TOOLS,
      tool_choice: 'required',
      parallel_tool_calls: false,
      max_tokens: CALL_TOKENS,
      temperature: 0,
    });
    const call = first.choices[0]!.message.tool_calls![0]!;
    s.seen.length = 0;
    const r = await s.client.chat.completions.create({
      model: MODEL,
      messages: [...ASK, first.choices[0]!.message, { role: 'tool', tool_call_id: call.id, content: 'Sunny, 21 degrees' }],
      tools: TOOLS,
      max_tokens: 8,
      temperature: 0,
    });
    expect(r.choices[0]!.message.role).toBe('assistant');
    // The prompt holds the earlier call's arguments and the tool's answer.
    const prompt = s.engine.detokenize(s.seen[0]!.tokens!);
    expect(prompt).toContain('Sunny, 21 degrees');
    const args = JSON.parse((call as OpenAI.ChatCompletionMessageFunctionToolCall).function.arguments) as Record<string, unknown>;
    for (const v of Object.values(args)) expect(prompt).toContain(String(v));
  });

  it('tool_choice none: the tools are not rendered, no grammar, the text is content', async () => {
    s.seen.length = 0;
    const r = await s.client.chat.completions.create({ model: MODEL, messages: ASK, tools: TOOLS, tool_choice: 'none', max_tokens: 4, temperature: 0 });
    expect(r.choices[0]!.message.tool_calls ?? []).toEqual([]);
    expect(typeof r.choices[0]!.message.content).toBe('string');
    const req = s.seen[0]!;
    expect(req.grammar).toBeUndefined();
    expect(s.engine.detokenize(req.tokens!)).not.toContain('Sets an alarm.');
    expect(await counter(s.metrics, 'tuneloop_tool_requests_total', { tool_choice: 'none', family: fam.name })).toBe(1);
  });

  it('refusals: a named function not in tools, an unsupported schema keyword, the deprecated functions field', async () => {
    await expect(
      s.client.chat.completions.create({ model: MODEL, messages: ASK, tools: TOOLS, tool_choice: { type: 'function', function: { name: 'nope' } } }),
    ).rejects.toMatchObject({ status: 400, param: 'tool_choice' });
    const before = await counter(s.metrics, 'tuneloop_tool_requests_total');
    const bad: OpenAI.ChatCompletionTool[] = [{ type: 'function', function: { name: 'f', parameters: { type: 'object', not: { required: ['a'] } } } }];
    const err = await s.client.chat.completions.create({ model: MODEL, messages: ASK, tools: bad, tool_choice: 'required' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 400, param: 'tools[0].function.parameters' });
    expect((err as Error).message).toContain('not');
    const body = { model: MODEL, messages: ASK, functions: [{ name: 'f' }] } as unknown as OpenAI.ChatCompletionCreateParamsNonStreaming;
    await expect(s.client.chat.completions.create(body)).rejects.toMatchObject({ status: 400, param: 'functions' });
    // Refused requests never ran: not counted.
    expect(await counter(s.metrics, 'tuneloop_tool_requests_total')).toBe(before);
  });
});

describe.each(FAMILIES.filter((f) => f.opener !== undefined))('$name tool_choice auto (the model opens a call)', (fam) => {
  let s: Served;
  beforeAll(async () => {
    s = await serve(writeModel(fam, 'opener'));
  }, 180_000);
  afterAll(async () => {
    await s?.close();
  });

  it('the lazy grammar makes the call valid once the opener is written; streamed equals plain', async () => {
    s.seen.length = 0;
    const params = { model: MODEL, messages: ASK, tools: TOOLS, parallel_tool_calls: false, max_tokens: CALL_TOKENS, temperature: 0 };
    const r = await s.client.chat.completions.create(params);
    expect(s.seen[0]!.grammarTriggers).toEqual([fam.opener]);
    const calls = callsOf(r.choices[0]!.message);
    expect(calls.length).toBeGreaterThanOrEqual(1);
    checkArguments(calls[0]!.name, calls[0]!.arguments);
    const streamed = await accumulate(await s.client.chat.completions.create({ ...params, stream: true }));
    expect(streamed.calls.map((c) => ({ name: c.name, arguments: c.arguments }))).toEqual(calls);
    expect(streamed.finish).toBe(r.choices[0]!.finish_reason);
  });

  it('a call cut off by max_tokens comes back as content, finish_reason length, and counts as a parse failure', async () => {
    const before = await counter(s.metrics, 'tuneloop_tool_call_parse_failures_total', { family: fam.name });
    const r = await s.client.chat.completions.create({ model: MODEL, messages: ASK, tools: TOOLS, max_tokens: 3, temperature: 0 });
    const raw = (await s.results.at(-1)!).text;
    // The opener is in the text: DeepSeek's tool-call tokens are control tokens that decode as their text
    // (native/src/tokenizer.cpp, as llama.cpp preserves them), else no parser could see the call.
    expect(raw.slice(0, fam.opener!.length)).toBe(fam.opener);
    expect(r.choices[0]!.message.tool_calls ?? []).toEqual([]);
    expect(r.choices[0]!.message.content).toBe(raw);
    expect(r.choices[0]!.finish_reason).toBe('length');
    expect(await counter(s.metrics, 'tuneloop_tool_call_parse_failures_total', { family: fam.name })).toBe(before + 1);
  });
});

describe.each([
  { how: 'the generation prompt opens <think> (DeepSeek-R1-Distill-Qwen)', template: 'deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja', force: 'Hmm' },
  { how: 'the answer opens <think> (Qwen3)', template: undefined, force: '<think>' },
])('reasoning: $how, on the Qwen vocabulary', ({ template, force }) => {
  // The forced token repeats until max_tokens, so the think block never closes: all of the answer is reasoning (the
  // parser tests cover closed blocks; here the point is the detection from the template and the prompt, end to end).
  let s: Served;
  const fam = FAMILIES.find((f) => f.name === 'hermes')!;
  beforeAll(async () => {
    s = await serve(writeModel(fam, { token: force, c: 10, a: 10 }, template));
  }, 180_000);
  afterAll(async () => {
    await s?.close();
  });

  it('reasoning_content holds the think block, content is empty; streamed the same', async () => {
    const params = { model: MODEL, messages: [{ role: 'user' as const, content: 'Why?' }], max_tokens: 6, temperature: 0 };
    const r = await s.client.chat.completions.create(params);
    const m = r.choices[0]!.message as OpenAI.ChatCompletionMessage & { reasoning_content?: string };
    const raw = (await s.results.at(-1)!).text;
    // Qwen3's answer opens the block itself: the first <think> is the opener, not reasoning.
    const expected = (template === undefined ? raw.slice(raw.indexOf('<think>') + '<think>'.length) : raw).trim();
    expect(expected.length).toBeGreaterThan(0);
    expect(m.reasoning_content).toBe(expected);
    expect(m.content).toBe('');
    expect(r.choices[0]!.finish_reason).toBe('length');
    const streamed = await accumulate(await s.client.chat.completions.create({ ...params, stream: true }));
    expect(streamed.reasoning).toBe(m.reasoning_content);
    expect(streamed.content).toBe('');
    expect(await counter(s.metrics, 'tuneloop_reasoning_responses_total')).toBe(2);
  });
});
