// What the HTTP layer tells the rest of the process, and the one place it does so for generation requests.
//
// Each /v1 generation request ends in exactly one `FinishedRequest`, produced by its `ServingRequest`
// (openai/serving-request.ts) once both its response has ended and its handler has settled. `fanOutFinished` turns
// that one record into what each listener wants: the request-level metrics record (`MetricsHook.onRequest`) and, for a
// request that reached the engine, the tuner's `GenerationEvent` (AppDeps.onGeneration: its request log and shadow
// mirror). Listeners' exceptions are logged and never affect the response or each other.
import type { Logger } from 'pino';
import type { FinishReason, GenerateRequest, GenerationResult } from '../engine/types.js';
import type { ControlPlaneErrorCode } from './errors.js';
import { structuredOutcome, type StructuredOutput } from './openai/schema-structured.js';

export type GenerationEndpoint = 'completions' | 'chat_completions';

/** One /v1 generation request, finished: produced once per request, whatever its fate. */
export interface FinishedRequest {
  endpoint: GenerationEndpoint;
  /** How it ended: answered in full, answered with an error (status or in-band), or the client went away first. */
  outcome: 'finished' | 'failed' | 'cancelled';
  /** The response's status code (200 for a stream that failed mid-way: the status line was gone). */
  status: number;
  stream: boolean;
  /** From the request's arrival to the end of its response, seconds. */
  durationS: number;
  /** True when the client went away before the response finished. */
  clientDisconnected: boolean;
  /** CP_ERR_* code when the handler failed (also after the client went away). */
  errorCode?: ControlPlaneErrorCode;
  /** Prompt tokens, once the request was built. */
  promptTokens?: number;
  /** What was submitted to the engine; absent when it was refused before (validation, limits, a full queue). */
  request?: GenerateRequest;
  /** The engine's result; absent when the generation failed or never ran. */
  result?: GenerationResult;
  /** response_format / grammar, when the request asked for structured output. */
  structured?: StructuredOutput;
  /** Tools and reasoning of a chat request that had either (openai/tools/). */
  tools?: ToolOutcome;
}

/** What a chat request's tools and reasoning came to (src/metrics/tool-families.ts). */
export interface ToolOutcome {
  /** The tool-call family of the template (openai/tools/families.ts). */
  family: string;
  /** tool_choice's mode; absent when the request had no tools. */
  toolChoice?: 'none' | 'auto' | 'required' | 'named';
  /** Calls parsed out of the answer. */
  calls: number;
  /** Blocks that opened like calls and were not valid ones. */
  failures: number;
  /** The answer carried reasoning_content. */
  reasoning: boolean;
}

/** One finished HTTP generation request, for request-level metrics (`MetricsHook.onRequest`). */
export interface RequestRecord {
  endpoint: GenerationEndpoint;
  status: number;
  stream: boolean;
  durationS: number;
  /** CP_ERR_* code when the request failed. */
  errorCode?: string;
  finishReason?: FinishReason;
  promptTokens?: number;
  completionTokens?: number;
  /** True when the client went away before the response finished. */
  clientDisconnected: boolean;
  tools?: ToolOutcome;
}

/** One finished generation request as the engine ran it: what the tuner records (request log, shadow mirror). */
export interface GenerationEvent {
  /** What was submitted to the engine; `request.tokens` holds the prompt token ids. */
  request: GenerateRequest;
  /** The prompt token ids (the same array as request.tokens). */
  promptTokens: number[];
  /** Absent when the generation failed before producing a result (ok false). */
  result?: GenerationResult;
  /** From the request's arrival to the end of its response, seconds. */
  durationS: number;
  /** False when it failed with an error; a client that went away is not an error (result.finishReason 'cancelled'). */
  ok: boolean;
}

/** What the app drives in src/metrics's `Metrics` (structural, so tests can pass a stub or nothing). */
export interface MetricsHook {
  /** Every answered HTTP request, by route template (/v1/completions) and status. */
  observeRequest?(endpoint: string, status: number): void;
  /** Every error answer, by its stable wire code (invalid_request, queue_full, …). */
  observeError?(reason: string): void;
  /** One answered POST /v1/embeddings: its inputs and their tokens. */
  observeEmbeddings?(inputs: number, tokens: number): void;
  /** Generation requests, with tokens and finish reason, once they have finished (fanOutFinished). */
  onRequest?(record: RequestRecord): void;
  /** Structured-output requests that reached the engine, and whether the answer is what was asked (parse failures). */
  observeStructured?(mode: StructuredOutput['mode'], outcome: 'valid' | 'invalid_json' | 'schema_mismatch' | 'unchecked'): void;
  /** GET /metrics exposition. */
  metricsText?(): Promise<string>;
  contentType?: string;
}

/** Called once per generation request that reached the engine, when it has finished (not for requests refused
 *  before: validation, context overflow, a full queue). Runs on the response path: keep it cheap. */
export type GenerationHook = (e: GenerationEvent) => void;

export function toRequestRecord(f: FinishedRequest): RequestRecord {
  const r: RequestRecord = { endpoint: f.endpoint, status: f.status, stream: f.stream, durationS: f.durationS, clientDisconnected: f.clientDisconnected };
  if (f.errorCode !== undefined) r.errorCode = f.errorCode;
  if (f.promptTokens !== undefined) r.promptTokens = f.promptTokens;
  if (f.tools) r.tools = f.tools;
  if (f.result) {
    r.finishReason = f.result.finishReason;
    r.completionTokens = f.result.usage.completionTokens;
  }
  return r;
}

/** The tuner's view of a finished request; undefined for one that never reached the engine. */
export function toGenerationEvent(f: FinishedRequest): GenerationEvent | undefined {
  if (!f.request) return undefined;
  const e: GenerationEvent = { request: f.request, promptTokens: f.request.tokens ?? [], durationS: f.durationS, ok: f.errorCode === undefined };
  if (f.result) e.result = f.result;
  return e;
}

/** The single fan-out of finished requests: metrics first, then the tuner's hook. */
export function fanOutFinished(listeners: { metrics?: MetricsHook | undefined; onGeneration?: GenerationHook | undefined }): (f: FinishedRequest, log?: Logger) => void {
  const { metrics, onGeneration } = listeners;
  const guarded = (what: string, log: Logger | undefined, call: () => unknown): void => {
    try {
      const r = call();
      if (r instanceof Promise) r.catch((err: unknown) => log?.error({ err }, `${what} hook failed`));
    } catch (err) {
      log?.error({ err }, `${what} hook failed`);
    }
  };
  return (f, log) => {
    if (metrics?.onRequest) guarded('onRequest', log, () => metrics.onRequest!(toRequestRecord(f)));
    const s = f.structured;
    if (s && f.request && metrics?.observeStructured) guarded('observeStructured', log, () => metrics.observeStructured!(s.mode, structuredOutcome(s, f.result)));
    if (!onGeneration) return;
    const e = toGenerationEvent(f);
    if (e) guarded('onGeneration', log, () => onGeneration(e));
  };
}
