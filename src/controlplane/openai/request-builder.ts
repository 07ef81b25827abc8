// A parsed OpenAI body (schema.ts) → the engine's GenerateRequest, under the server's limits. Pure: the tokenizer and
// the chat template come in as arguments, so it runs without an engine or HTTP (tests/controlplane/request-builder).
// Refusals are ControlPlaneErrors naming the field: the operator's limits first (server.maxPromptTokens,
// server.maxTokensLimit), then the model's context window.
import type { GenerateRequest } from '../../engine/types.js';
import { ControlPlaneError } from '../errors.js';
import type { ChatTemplate } from './chat-template.js';
import type { ChatRequest, CompletionRequest } from './schema.js';
import { structuredGrammar } from './schema-structured.js';

export type ParsedRequest = CompletionRequest | ChatRequest;

export interface BuildContext {
  /** Text → token ids (engine.tokenize). */
  tokenize(text: string): number[];
  /** The model's context window in tokens (engine.info.contextLength). */
  contextLength: number;
  template: ChatTemplate;
  /** A chat request's prompt, already rendered and tokenized (chat-prompt.ts: the template may render off-thread).
   *  Absent: the template is rendered here, which only a synchronous one (the built-in default) can do. */
  chatTokens?: number[] | undefined;
  /** server.maxPromptTokens; absent: the context window decides. */
  maxPromptTokens?: number | undefined;
  /** server.maxTokensLimit (the largest max_tokens, and the cap of the default); absent: the context window decides. */
  maxTokensLimit?: number | undefined;
  /** server.requestTimeoutMs, handed to the engine as deadlineMs; 0 = none. */
  requestTimeoutMs: number;
}

export interface BuiltRequest {
  request: GenerateRequest;
  promptTokens: number;
}

/** The request field that held the prompt, for errors that point at it. */
export const promptParamOf = (p: { kind: ParsedRequest['kind'] }): 'messages' | 'prompt' => (p.kind === 'chat' ? 'messages' : 'prompt');

export function buildGenerateRequest(p: ParsedRequest, ctx: BuildContext): BuiltRequest {
  const n = ctx.contextLength;
  let tokens: number[];
  let stop = p.stop;
  if (p.kind === 'chat') {
    if (ctx.chatTokens) {
      tokens = ctx.chatTokens;
    } else {
      const text = ctx.template.render(p.messages);
      if (typeof text !== 'string') throw new Error(`the ${ctx.template.name} chat template renders asynchronously: pass chatTokens (chat-prompt.ts)`);
      tokens = ctx.tokenize(text);
    }
    const extra = ctx.template.stop;
    if (extra.length > 0) stop = [...(p.stop ?? []), ...extra];
  } else if (typeof p.prompt === 'string') {
    tokens = ctx.tokenize(p.prompt);
  } else {
    tokens = p.prompt;
  }
  const promptParam = promptParamOf(p);
  if (tokens.length === 0) throw new ControlPlaneError('CP_ERR_INVALID_REQUEST', `'${promptParam}' must not be empty`, { param: promptParam });
  // The operator's limits come before the model's: context_length_exceeded is what clients trim prompts on.
  const maxPrompt = ctx.maxPromptTokens;
  if (maxPrompt !== undefined && tokens.length > maxPrompt) {
    throw new ControlPlaneError(
      'CP_ERR_CONTEXT_OVERFLOW',
      `This server accepts at most ${maxPrompt} prompt tokens (server.maxPromptTokens), but your ${promptParam} has ${tokens.length} tokens`,
      { param: promptParam },
    );
  }
  const maxTokensParam = p.maxTokensParam ?? 'max_tokens';
  const cap = ctx.maxTokensLimit ?? Infinity;
  if (p.maxTokens !== undefined && p.maxTokens > cap) {
    throw new ControlPlaneError('CP_ERR_INVALID_REQUEST', `'${maxTokensParam}' must be at most ${cap} on this server (server.maxTokensLimit), got ${p.maxTokens}`, {
      param: maxTokensParam,
    });
  }
  if (tokens.length >= n) {
    throw new ControlPlaneError(
      'CP_ERR_CONTEXT_OVERFLOW',
      `This model's maximum context length is ${n} tokens, but your ${promptParam} has ${tokens.length} tokens (at least one must be left to generate)`,
      { param: promptParam },
    );
  }
  let maxTokens: number;
  if (p.maxTokens === undefined) {
    // OpenAI's defaults: 16 for completions; chat runs until the context is full.
    maxTokens = Math.min(p.kind === 'completion' ? 16 : n, n - tokens.length, cap);
  } else {
    if (tokens.length + p.maxTokens > n) {
      throw new ControlPlaneError(
        'CP_ERR_CONTEXT_OVERFLOW',
        `This model's maximum context length is ${n} tokens. However, you requested ${tokens.length + p.maxTokens} tokens (${tokens.length} in the ${promptParam}, ${p.maxTokens} for the completion). Please reduce the ${promptParam} or ${maxTokensParam}`,
        { param: maxTokensParam },
      );
    }
    maxTokens = p.maxTokens;
  }
  const request: GenerateRequest = { tokens, maxTokens, stopAtEos: !p.ignoreEos };
  if (p.temperature !== undefined) request.temperature = p.temperature;
  if (p.topP !== undefined) request.topP = p.topP;
  if (p.topK !== undefined) request.topK = p.topK;
  if (p.seed !== undefined) request.seed = p.seed;
  if (stop !== undefined) request.stop = stop;
  if (p.logprobs !== undefined) request.logprobs = p.logprobs;
  if (ctx.requestTimeoutMs > 0) request.deadlineMs = ctx.requestTimeoutMs;
  // GenerateRequest.grammar lands with the native grammar work (wip/18-grammar); the cast goes when it is merged.
  if (p.structured) (request as GenerateRequest & { grammar?: string }).grammar = structuredGrammar(p.structured);
  return { request, promptTokens: tokens.length };
}
