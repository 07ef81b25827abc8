// OpenAI's response shapes, as pure functions of the parsed request and the engine's output: the plain (non-stream)
// bodies of /v1/completions and /v1/chat/completions, usage, the finish_reason mapping and both logprobs shapes.
// The streamed chunks (sse.ts) reuse the same pieces. Token text comes with the engine's logprobs (`text` on each
// token and each alternative), so no encoder calls back into the engine.
import { randomUUID } from 'node:crypto';
import type { FinishReason, GenerationResult, ModelInfo, WeightsPolicy } from '../../engine/types.js';
import type { ChatRequest, CompletionRequest } from './schema.js';

/** One entry of GET /v1/models: OpenAI's four fields, then ours (the openai SDK passes unknown fields through). */
export interface ModelEntry {
  id: string;
  object: 'model';
  created: number;
  owned_by: string;
  architecture: string;
  /** Weights in the file (elements of every tensor); absent when the file's header could not be read. */
  parameters?: number;
  /** The context window served (model.contextLength, at most the trained one). */
  context_length: number;
  trained_context_length: number;
  /** The live weights policy (after any reload), as configured: `native`, `q8_0`, … (or an alias such as `int8`). */
  weights: WeightsPolicy;
  /** Bytes of weights held in memory by GGUF type (ModelInfo.weightBytes). */
  weight_bytes: Record<string, number>;
  /** 8 × the bytes held / parameters; absent with parameters. */
  bits_per_weight?: number;
}

/** The /v1/models entry of the served model: its live layout from engine.info, its size from the file's header. */
export function modelEntry(id: string, info: ModelInfo, parameters: number | undefined, created: number): ModelEntry {
  const bytes = Object.values(info.weightBytes).reduce((a, b) => a + b, 0);
  return {
    id,
    object: 'model',
    created,
    owned_by: 'tuneloop',
    architecture: info.architecture,
    ...(parameters !== undefined ? { parameters } : {}),
    context_length: info.contextLength,
    trained_context_length: info.trainedContextLength,
    weights: info.weights,
    weight_bytes: { ...info.weightBytes },
    ...(parameters ? { bits_per_weight: Math.round(((8 * bytes) / parameters) * 1000) / 1000 } : {}),
  };
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export function usageOf(promptTokens: number, completionTokens: number): Usage {
  return { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
}

/** The usage of a finished generation; `promptTokens` is the built request's count, for a result that reports 0. */
export function resultUsage(r: GenerationResult, promptTokens: number): Usage {
  return usageOf(r.usage.promptTokens || promptTokens, r.usage.completionTokens);
}

/** 'cancelled' only happens when the client left or the drain deadline passed; OpenAI has no such reason. */
export function finishReasonOf(r: FinishReason): 'stop' | 'length' {
  return r === 'length' ? 'length' : 'stop';
}

/** One generated token's logprob with its text, and its top alternatives (the engine's TokenLogprob). */
export interface TextLogprob {
  logprob: number;
  text: string;
  top: readonly { logprob: number; text: string }[];
}

export interface CompletionLogprobs {
  tokens: string[];
  token_logprobs: number[];
  top_logprobs: Record<string, number>[];
  text_offset: number[];
}

/** The legacy completions shape; `textOffset` is where these tokens start in the whole completion text. */
export function completionLogprobs(lps: readonly TextLogprob[], textOffset: number): CompletionLogprobs {
  const out: CompletionLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
  let off = textOffset;
  for (const lp of lps) {
    out.tokens.push(lp.text);
    out.token_logprobs.push(lp.logprob);
    out.top_logprobs.push(Object.fromEntries(lp.top.map((a) => [a.text, a.logprob])));
    out.text_offset.push(off);
    off += lp.text.length;
  }
  return out;
}

interface ChatTokenLogprob {
  token: string;
  logprob: number;
  bytes: number[];
}

export interface ChatLogprobs {
  content: (ChatTokenLogprob & { top_logprobs: ChatTokenLogprob[] })[];
  refusal: null;
}

const chatEntry = (text: string, logprob: number): ChatTokenLogprob => ({ token: text, logprob, bytes: [...Buffer.from(text, 'utf8')] });

/** The chat shape: each token with its UTF-8 bytes and its alternatives. */
export function chatLogprobs(lps: readonly TextLogprob[]): ChatLogprobs {
  return {
    content: lps.map((lp) => ({ ...chatEntry(lp.text, lp.logprob), top_logprobs: lp.top.map((a) => chatEntry(a.text, a.logprob)) })),
    refusal: null,
  };
}

/** id and created of one response (every chunk of a stream shares them). */
export interface ResponseIdentity {
  id: string;
  created: number;
  model: string;
}

export function newIdentity(kind: 'completion' | 'chat', model: string): ResponseIdentity {
  return { id: `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomUUID()}`, created: Math.floor(Date.now() / 1000), model };
}

/** The plain /v1/completions body. */
export function completionBody(p: CompletionRequest, r: GenerationResult, promptTokens: number, who: ResponseIdentity) {
  return {
    id: who.id,
    object: 'text_completion' as const,
    created: who.created,
    model: who.model,
    choices: [
      {
        index: 0,
        text: r.text,
        logprobs: p.logprobs !== undefined && r.logprobs ? completionLogprobs(r.logprobs, 0) : null,
        finish_reason: finishReasonOf(r.finishReason),
      },
    ],
    usage: resultUsage(r, promptTokens),
  };
}

/** The plain /v1/chat/completions body. */
export function chatCompletionBody(p: ChatRequest, r: GenerationResult, promptTokens: number, who: ResponseIdentity) {
  return {
    id: who.id,
    object: 'chat.completion' as const,
    created: who.created,
    model: who.model,
    choices: [
      {
        index: 0,
        message: { role: 'assistant' as const, content: r.text, refusal: null },
        logprobs: p.logprobs !== undefined && r.logprobs ? chatLogprobs(r.logprobs) : null,
        finish_reason: finishReasonOf(r.finishReason),
      },
    ],
    usage: resultUsage(r, promptTokens),
  };
}

/** The plain body for either endpoint. */
export function responseBody(p: CompletionRequest | ChatRequest, r: GenerationResult, promptTokens: number, model: string) {
  return p.kind === 'completion'
    ? completionBody(p, r, promptTokens, newIdentity('completion', model))
    : chatCompletionBody(p, r, promptTokens, newIdentity('chat', model));
}
