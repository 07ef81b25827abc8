// "Nothing silently ignored": every request field of the OpenAI-compatible routes is in exactly one of three lists,
// per route — implemented (the route's parser reads it), accepted-and-ignored (documented, with the reason; validated
// for type where that is cheap), refused (400 naming the field) — or is one of our documented extensions. A field in
// none of them is refused too, as OpenAI refuses it ("Unrecognized request argument supplied"), so a client never
// believes a setting took effect when it did not. docs/api.md ("OpenAI-compatible routes: request fields") is the
// same table in words; tests/controlplane/request-fields.test.ts checks this table against the openai SDK's request
// types and against a running server.
import { ControlPlaneError } from '../errors.js';

export type PolicyRoute = 'chat_completions' | 'completions' | 'embeddings';

export interface IgnoredField {
  /** Why accepting it and doing nothing is honest (docs/api.md repeats it). */
  reason: string;
  /** A cheap type check: the message names what was expected. */
  check?: (v: unknown) => string | undefined;
}

export interface RefusedField {
  reason: string;
  /** A value that asks for nothing beyond the default (e.g. modalities ["text"], best_of 1) passes. */
  harmless?: (v: unknown) => boolean;
}

export interface RoutePolicy {
  /** Fields of the OpenAI API the route implements (its parser validates them). */
  implemented: readonly string[];
  /** Our documented extensions (vLLM / llama.cpp names), implemented too. */
  extensions: readonly string[];
  ignored: Readonly<Record<string, IgnoredField>>;
  refused: Readonly<Record<string, RefusedField>>;
}

const isString = (v: unknown): string | undefined => (typeof v === 'string' ? undefined : 'a string');
const isBool = (v: unknown): string | undefined => (typeof v === 'boolean' ? undefined : 'a boolean');
const isStringMap = (v: unknown): string | undefined =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && Object.values(v).every((x) => typeof x === 'string') ? undefined : 'an object of string values';

const USER: IgnoredField = {
  reason: 'an end-user id for the provider’s abuse monitoring; this server keeps no per-user records',
  check: isString,
};

const SAMPLING_EXTENSIONS = ['top_k', 'min_p', 'repetition_penalty', 'ignore_eos', 'grammar'] as const;

export const FIELD_POLICY: Readonly<Record<PolicyRoute, RoutePolicy>> = {
  chat_completions: {
    implemented: [
      'model',
      'messages',
      'max_tokens',
      'max_completion_tokens',
      'temperature',
      'top_p',
      'seed',
      'stop',
      'stream',
      'stream_options',
      'logprobs',
      'top_logprobs',
      'n',
      'presence_penalty',
      'frequency_penalty',
      'logit_bias',
      'response_format',
      'tools',
      'tool_choice',
      'parallel_tool_calls',
    ],
    extensions: [...SAMPLING_EXTENSIONS, 'chat_template_name'],
    ignored: {
      user: USER,
      safety_identifier: { reason: 'like `user`: an id for the provider’s abuse monitoring', check: isString },
      store: { reason: 'nothing is stored: this server has no stored-completions API to read them back', check: isBool },
      metadata: { reason: 'tags for stored completions, and none are stored', check: isStringMap },
      service_tier: { reason: 'one tier: every request is served by the same engine and queue', check: isString },
      prompt_cache_key: {
        reason: 'the prefix cache is automatic and keyed by the prompt’s tokens; there is nothing to route by a key',
        check: isString,
      },
      prompt_cache_retention: { reason: 'cached prefixes live as long as the KV cache keeps them (LRU), not per request', check: isString },
    },
    refused: {
      audio: { reason: 'audio output: the models served here produce text only' },
      modalities: {
        reason: 'only text output is produced',
        harmless: (v) => Array.isArray(v) && v.length === 1 && v[0] === 'text',
      },
      prediction: { reason: 'predicted outputs (speculative decoding against given text) are not implemented' },
      web_search_options: { reason: 'there is no web search tool' },
      functions: { reason: 'the deprecated function-calling API: use `tools`' },
      function_call: { reason: 'the deprecated function-calling API: use `tool_choice`' },
      reasoning_effort: { reason: 'no model served here takes a reasoning budget; its chat template decides' },
      verbosity: { reason: 'no model served here takes a verbosity setting' },
    },
  },
  completions: {
    implemented: [
      'model',
      'prompt',
      'max_tokens',
      'temperature',
      'top_p',
      'seed',
      'stop',
      'stream',
      'stream_options',
      'logprobs',
      'echo',
      'n',
      'presence_penalty',
      'frequency_penalty',
      'logit_bias',
    ],
    // response_format on completions: vLLM's extension (OpenAI's completions API has no such field).
    extensions: [...SAMPLING_EXTENSIONS, 'response_format'],
    ignored: { user: USER },
    refused: {
      best_of: {
        reason: 'server-side best-of sampling is not implemented (use n and rank the choices)',
        harmless: (v) => v === 1,
      },
      suffix: { reason: 'text insertion (fill-in-the-middle) is not implemented' },
    },
  },
  embeddings: {
    implemented: ['model', 'input', 'encoding_format', 'dimensions'],
    extensions: [],
    ignored: { user: USER },
    refused: {},
  },
};

/** The route's answer to a body's fields: the first field refused (or unknown, or an ignored one of the wrong type)
 *  throws a 400 naming it. `null` counts as absent for every field, as the SDKs send nulls. */
export function checkFields(route: PolicyRoute, body: Record<string, unknown>): void {
  const p = FIELD_POLICY[route];
  for (const [key, value] of Object.entries(body)) {
    if (value === undefined || value === null) continue;
    if (p.implemented.includes(key) || p.extensions.includes(key)) continue;
    const ignored = Object.hasOwn(p.ignored, key) ? p.ignored[key] : undefined;
    if (ignored) {
      const expected = ignored.check?.(value);
      if (expected !== undefined) throw fieldError(key, `'${key}' must be ${expected}`);
      continue;
    }
    const refused = Object.hasOwn(p.refused, key) ? p.refused[key] : undefined;
    if (refused) {
      if (refused.harmless?.(value)) continue;
      throw fieldError(key, `'${key}' is not supported by this server: ${refused.reason}`);
    }
    throw fieldError(key, `Unrecognized request argument supplied: ${key.length > 64 ? key.slice(0, 64) + '…' : key} (docs/api.md lists every field)`);
  }
}

function fieldError(param: string, message: string): ControlPlaneError {
  return new ControlPlaneError('CP_ERR_INVALID_REQUEST', message, { param: param.slice(0, 64) });
}
