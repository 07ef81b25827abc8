// Validation of OpenAI completions and chat-completions bodies. Hand-written rather than a schema library: the
// subset is small, and each refusal names the field and why, in the words OpenAI's own errors use, with `param`
// set so clients can point at it. Which fields a route takes at all (implemented, accepted-and-ignored, refused,
// unknown) is field-policy.ts's table, checked first. `null` counts as absent for every optional field (the SDKs
// send nulls).
import { parseStructuredOutput, type StructuredOutput } from './schema-structured.js';
import { parseEcho, parseSamplingExtensions, type SamplingExtensions } from './schema-sampling.js';
import { checkFields } from './field-policy.js';

import { parseChatMessages, parseToolFields, type ChatMessage, type ToolChoice, type ToolDefinition } from './schema-tools.js';
import { bad, describe } from './request-errors.js';

export { CHAT_ROLES, type ChatMessage, type ChatRole } from './schema-tools.js';

/** What both endpoints share, already in engine terms (n, penalties, logit_bias, min_p: schema-sampling.ts). */
export interface SamplingParams extends SamplingExtensions {
  model: string;
  /** Absent: the endpoint's default (16 for completions, the rest of the context for chat). */
  maxTokens?: number;
  /** The field maxTokens came from (chat takes max_completion_tokens too), so errors name what the client sent. */
  maxTokensParam?: 'max_tokens' | 'max_completion_tokens';
  temperature?: number;
  topP?: number;
  /** Extension (vLLM's name): top-k sampling. */
  topK?: number;
  seed?: number;
  stop?: string[];
  /** Extension (vLLM's name): keep generating past the end-of-text token. For benchmarks with fixed lengths. */
  ignoreEos: boolean;
  stream: boolean;
  includeUsage: boolean;
  /** response_format json_object / json_schema, or the raw `grammar` extension (schema-structured.ts). */
  structured?: StructuredOutput;
}

export interface CompletionRequest extends SamplingParams {
  kind: 'completion';
  /** Text, or token ids (OpenAI allows a token array as the prompt). */
  prompt: string | number[];
  /** Top alternatives per token (0..5); absent when logprobs were not asked for. */
  logprobs?: number;
  /** The prompt prepended to each choice's text, and its tokens' logprobs to logprobs (completion-choices.ts). */
  echo?: boolean;
}

export interface ChatRequest extends SamplingParams {
  kind: 'chat';
  messages: ChatMessage[];
  /** OpenAI `tools` (function definitions) as sent, handed to the model's chat template as `tools`; the answer's
   *  calls are parsed per model family (tools/, docs/api.md "Tools and reasoning"). */
  tools?: Record<string, unknown>[];
  /** The checked definitions of `tools` (schema-tools.ts). */
  toolDefinitions?: ToolDefinition[];
  /** Absent: "auto" with tools, "none" without. */
  toolChoice?: ToolChoice;
  parallelToolCalls?: boolean;
  /** Extension: one of the model file's named chat templates (`tokenizer.chat_template.NAME`). */
  templateName?: string;
  /** Top alternatives per token (0..20); absent when logprobs is not true. */
  logprobs?: number;
}

export const MAX_STOP = 4;
/** Longest stop sequence: the engine matches every stop string against the text held back at each step. */
export const MAX_STOP_CHARS = 256;
export const MAX_COMPLETION_LOGPROBS = 5;
export const MAX_CHAT_TOP_LOGPROBS = 20;

type Body = Record<string, unknown>;

function present(body: Body, key: string): boolean {
  return body[key] !== undefined && body[key] !== null;
}

function optInt(body: Body, key: string, min: number, max: number): number | undefined {
  if (!present(body, key)) return undefined;
  const v = body[key];
  if (typeof v !== 'number' || !Number.isInteger(v)) throw bad(key, `'${key}' must be an integer, got ${describe(v)}`);
  if (v < min || v > max) throw bad(key, `'${key}' must be between ${min} and ${max}, got ${v}`);
  return v;
}

function optNumber(body: Body, key: string, min: number, max: number): number | undefined {
  if (!present(body, key)) return undefined;
  const v = body[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) throw bad(key, `'${key}' must be a number, got ${describe(v)}`);
  if (v < min || v > max) throw bad(key, `'${key}' must be between ${min} and ${max}, got ${v}`);
  return v;
}

function optBool(body: Body, key: string): boolean | undefined {
  if (!present(body, key)) return undefined;
  const v = body[key];
  if (typeof v !== 'boolean') throw bad(key, `'${key}' must be a boolean, got ${describe(v)}`);
  return v;
}

function requireObject(body: unknown): Body {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw bad('body', `The request body must be a JSON object, got ${describe(body)}`);
  }
  return body as Body;
}

function parseCommon(body: Body): SamplingParams {
  if (!present(body, 'model')) throw bad('model', "'model' is a required property");
  if (typeof body.model !== 'string' || body.model.length === 0) {
    throw bad('model', `'model' must be a non-empty string, got ${describe(body.model)}`);
  }
  const extensions = parseSamplingExtensions(body);
  const temperature = optNumber(body, 'temperature', 0, 2);
  const topP = optNumber(body, 'top_p', 0, 1);
  if (topP === 0) throw bad('top_p', "'top_p' must be greater than 0 (use temperature 0 for greedy decoding), got 0");
  const topK = optInt(body, 'top_k', 0, 1 << 20);
  // OpenAI's seed is any int64; the engine takes 0..2^53-1, so negative seeds are refused rather than remapped.
  const seed = optInt(body, 'seed', 0, Number.MAX_SAFE_INTEGER);

  let stop: string[] | undefined;
  if (present(body, 'stop')) {
    const s = body.stop;
    const list = typeof s === 'string' ? [s] : s;
    if (!Array.isArray(list)) throw bad('stop', `'stop' must be a string or an array of strings, got ${describe(s)}`);
    if (list.length > MAX_STOP) throw bad('stop', `'stop' may hold at most ${MAX_STOP} sequences, got ${list.length}`);
    list.forEach((x: unknown, i) => {
      if (typeof x !== 'string' || x.length === 0) throw bad('stop', `'stop[${i}]' must be a non-empty string, got ${describe(x)}`);
      if (x.length > MAX_STOP_CHARS) throw bad('stop', `'stop[${i}]' may be at most ${MAX_STOP_CHARS} characters long, got ${x.length}`);
    });
    stop = list.length > 0 ? (list as string[]) : undefined;
  }

  const stream = optBool(body, 'stream') ?? false;
  let includeUsage = false;
  if (present(body, 'stream_options')) {
    if (!stream) throw bad('stream_options', "'stream_options' is only allowed when 'stream' is true");
    const so = body.stream_options;
    if (typeof so !== 'object' || so === null || Array.isArray(so)) {
      throw bad('stream_options', `'stream_options' must be an object, got ${describe(so)}`);
    }
    const iu = (so as Body).include_usage;
    if (iu !== undefined && iu !== null && typeof iu !== 'boolean') {
      throw bad('stream_options.include_usage', `'stream_options.include_usage' must be a boolean, got ${describe(iu)}`);
    }
    includeUsage = iu === true;
  }
  const ignoreEos = optBool(body, 'ignore_eos') ?? false;

  const out: SamplingParams = { model: body.model, ignoreEos, stream, includeUsage, ...extensions };
  if (temperature !== undefined) out.temperature = temperature;
  if (topP !== undefined) out.topP = topP;
  if (topK !== undefined) out.topK = topK;
  if (seed !== undefined) out.seed = seed;
  if (stop !== undefined) out.stop = stop;
  const structured = parseStructuredOutput(body);
  if (structured) out.structured = structured;
  return out;
}

export function parseCompletionRequest(raw: unknown): CompletionRequest {
  const body = requireObject(raw);
  checkFields('completions', body);
  const common = parseCommon(body);
  if (!present(body, 'prompt')) throw bad('prompt', "'prompt' is a required property");
  let prompt: string | number[];
  const p = body.prompt;
  if (typeof p === 'string') {
    prompt = p;
  } else if (Array.isArray(p) && p.length > 0 && p.every((t) => typeof t === 'number' && Number.isInteger(t) && t >= 0)) {
    prompt = p as number[];
  } else if (Array.isArray(p) && p.length === 1 && typeof p[0] === 'string') {
    prompt = p[0];
  } else if (Array.isArray(p) && p.length > 1) {
    throw bad('prompt', `'prompt' must be a single string: batched prompts (${p.length}) are not supported; send one request per prompt`);
  } else {
    throw bad('prompt', `'prompt' must be a string, an array of one string, or an array of token ids, got ${describe(p)}`);
  }
  const maxTokens = optInt(body, 'max_tokens', 0, 1 << 20);
  const logprobs = optInt(body, 'logprobs', 0, MAX_COMPLETION_LOGPROBS);
  const out: CompletionRequest = { kind: 'completion', ...common, prompt };
  if (maxTokens !== undefined) out.maxTokens = maxTokens;
  if (logprobs !== undefined) out.logprobs = logprobs;
  if (parseEcho(body)) out.echo = true;
  return out;
}

export function parseChatRequest(raw: unknown): ChatRequest {
  const body = requireObject(raw);
  checkFields('chat_completions', body);
  const common = parseCommon(body);
  if (!present(body, 'messages')) throw bad('messages', "'messages' is a required property");
  const messages: ChatMessage[] = parseChatMessages(body.messages);
  // max_completion_tokens replaced max_tokens in OpenAI's chat API; honour both, the newer one first.
  const maxCompletionTokens = optInt(body, 'max_completion_tokens', 0, 1 << 20);
  const maxTokens = maxCompletionTokens ?? optInt(body, 'max_tokens', 0, 1 << 20);
  const wantLogprobs = optBool(body, 'logprobs') ?? false;
  const top = optInt(body, 'top_logprobs', 0, MAX_CHAT_TOP_LOGPROBS);
  if (top !== undefined && !wantLogprobs) throw bad('top_logprobs', "'top_logprobs' requires 'logprobs' to be true");
  const out: ChatRequest = { kind: 'chat', ...common, messages };
  const tf = parseToolFields(body);
  if (tf.tools !== undefined) out.tools = tf.tools;
  if (tf.definitions !== undefined) out.toolDefinitions = tf.definitions;
  if (tf.toolChoice !== undefined) out.toolChoice = tf.toolChoice;
  if (tf.parallelToolCalls !== undefined) out.parallelToolCalls = tf.parallelToolCalls;
  if (present(body, 'chat_template_name')) {
    const n = body.chat_template_name;
    if (typeof n !== 'string' || n.length === 0) throw bad('chat_template_name', `'chat_template_name' must be a non-empty string, got ${describe(n)}`);
    out.templateName = n;
  }
  if (maxTokens !== undefined) out.maxTokens = maxTokens;
  if (maxCompletionTokens !== undefined) out.maxTokensParam = 'max_completion_tokens';
  if (wantLogprobs) out.logprobs = top ?? 0;
  return out;
}
