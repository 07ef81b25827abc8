// Server-sent events for `stream: true`: the response head, the framing, and the chunk encoder for both endpoints.
// The chunks are OpenAI's: chat opens with a role delta, every chunk carries the response's id and created, the last
// content chunk is followed by one with finish_reason, then (with stream_options.include_usage) a usage chunk with no
// choices, then `data: [DONE]`. With include_usage every other chunk carries `usage: null`, as OpenAI's do.
import type { Response } from 'express';
import type { GenerationResult } from '../../engine/types.js';
import { chatLogprobs, completionLogprobs, finishReasonOf, resultUsage, type ResponseIdentity, type TextLogprob } from './responses.js';
import type { ChatRequest, CompletionRequest } from './schema.js';

export const SSE_DONE = 'data: [DONE]\n\n';

/** One event's bytes. */
export const sseFrame = (payload: unknown): string => `data: ${JSON.stringify(payload)}\n\n`;

/** Status and headers of an event stream, sent at once so the client sees the stream open before the first token. */
export function writeSseHead(res: Response): void {
  res.status(200);
  res.setHeader('Content-Type', 'text/event-stream; charset=utf-8');
  res.setHeader('Cache-Control', 'no-cache');
  res.setHeader('X-Accel-Buffering', 'no');
  res.flushHeaders();
}

/** What the encoder reads of an engine chunk (TokenChunk). */
export interface StreamPiece {
  text: string;
  logprobs?: readonly TextLogprob[];
}

/** The chunk payloads of one stream, in order; it keeps the completion's text offset for legacy logprobs. */
export class StreamEncoder {
  private textOffset = 0;
  private readonly base: { id: string; object: string; created: number; model: string };
  private readonly usageField: { usage?: null };

  constructor(
    private readonly p: CompletionRequest | ChatRequest,
    who: ResponseIdentity,
  ) {
    this.base = { id: who.id, object: p.kind === 'chat' ? 'chat.completion.chunk' : 'text_completion', created: who.created, model: who.model };
    this.usageField = p.includeUsage ? { usage: null } : {};
  }

  /** The chunks before any token: chat's role delta; none for completions. */
  opening(): unknown[] {
    if (this.p.kind !== 'chat') return [];
    return [{ ...this.base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }], ...this.usageField }];
  }

  /** The chunk for one engine chunk; undefined for an empty one (text held back: a possible stop sequence, a partial
   *  UTF-8 character) unless it carries logprobs that were asked for. */
  piece(chunk: StreamPiece): unknown {
    const wantLogprobs = this.p.logprobs !== undefined;
    if (chunk.text.length === 0 && !(wantLogprobs && chunk.logprobs?.length)) return undefined;
    let out: unknown;
    if (this.p.kind === 'chat') {
      const lp = wantLogprobs && chunk.logprobs ? chatLogprobs(chunk.logprobs) : null;
      out = { ...this.base, choices: [{ index: 0, delta: { content: chunk.text }, logprobs: lp, finish_reason: null }], ...this.usageField };
    } else {
      const lp = wantLogprobs && chunk.logprobs ? completionLogprobs(chunk.logprobs, this.textOffset) : null;
      out = { ...this.base, choices: [{ index: 0, text: chunk.text, logprobs: lp, finish_reason: null }], ...this.usageField };
    }
    this.textOffset += chunk.text.length;
    return out;
  }

  /** A chat chunk with a given delta (tools/answer.ts: content, reasoning_content or tool_calls), with the logprobs
   *  of the engine chunk it came from when they were asked for. */
  chatDelta(delta: object, logprobs?: readonly TextLogprob[]): unknown {
    const lp = this.p.logprobs !== undefined && logprobs?.length ? chatLogprobs(logprobs) : null;
    return { ...this.base, choices: [{ index: 0, delta, logprobs: lp, finish_reason: null }], ...this.usageField };
  }

  /** The chunks after the last token: the finish_reason chunk, then the usage chunk when include_usage asked for it.
   *  `finishReason` overrides the engine's mapping (tool_calls). */
  closing(r: GenerationResult, promptTokens: number, finishReason?: string): unknown[] {
    const fr = finishReason ?? finishReasonOf(r.finishReason);
    const out: unknown[] = [
      this.p.kind === 'chat'
        ? { ...this.base, choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: fr }], ...this.usageField }
        : { ...this.base, choices: [{ index: 0, text: '', logprobs: null, finish_reason: fr }], ...this.usageField },
    ];
    if (this.p.includeUsage) out.push({ ...this.base, choices: [], usage: resultUsage(r, promptTokens) });
    return out;
  }
}
