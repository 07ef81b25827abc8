// The parsed answer in OpenAI's wire shapes: the plain message (content, tool_calls, reasoning_content) and the
// streamed deltas. A call is streamed as two deltas of its index — the first with id, type and name (arguments ''),
// the second with the arguments — which is what the openai SDK's stream helpers accumulate (they append argument
// fragments per index).
import type { FinishReason, GenerationResult } from '../../../engine/types.js';
import type { TextLogprob } from '../responses.js';
import {
  AssistantOutputParser,
  collectOutput,
  parseAssistantOutput,
  type AssistantOutput,
  type OutputEvent,
  type OutputParserOptions,
  type ParsedToolCall,
} from './output-parser.js';

export interface WireToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

export const wireToolCall = (c: ParsedToolCall): WireToolCall => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.arguments } });

/** The message of a plain answer. */
export function assistantMessage(o: AssistantOutput): {
  role: 'assistant';
  content: string | null;
  refusal: null;
  tool_calls?: WireToolCall[];
  reasoning_content?: string;
} {
  return {
    role: 'assistant',
    content: o.content,
    refusal: null,
    ...(o.toolCalls.length > 0 ? { tool_calls: o.toolCalls.map(wireToolCall) } : {}),
    ...(o.reasoning !== null ? { reasoning_content: o.reasoning } : {}),
  };
}

/** "tool_calls" when the answer called tools and ended on its own; otherwise the usual mapping. */
export function toolFinishReason(r: FinishReason, calls: number): 'stop' | 'length' | 'tool_calls' {
  if (r === 'length') return 'length';
  return calls > 0 ? 'tool_calls' : 'stop';
}

/** One streamed delta (the `delta` of a chat.completion.chunk). */
export type WireDelta =
  | { content: string }
  | { reasoning_content: string }
  | { tool_calls: [{ index: number; id: string; type: 'function'; function: { name: string; arguments: string } }] }
  | { tool_calls: [{ index: number; function: { arguments: string } }] };

/** A stream's parser and its deltas; `output()` is what the plain answer would have been. */
export class StreamedAnswer {
  private readonly parser: AssistantOutputParser;
  private readonly events: OutputEvent[] = [];
  private index = 0;

  constructor(options: OutputParserOptions) {
    this.parser = new AssistantOutputParser(options);
  }

  push(text: string): WireDelta[] {
    return this.deltas(this.parser.push(text));
  }

  finish(): WireDelta[] {
    return this.deltas(this.parser.finish());
  }

  get callCount(): number {
    return this.parser.callCount;
  }

  output(): AssistantOutput {
    return collectOutput(this.events, this.parser.failures);
  }

  private deltas(events: OutputEvent[]): WireDelta[] {
    this.events.push(...events);
    const out: WireDelta[] = [];
    for (const e of events) {
      if (e.kind === 'content') out.push({ content: e.text });
      else if (e.kind === 'reasoning') out.push({ reasoning_content: e.text });
      else {
        const index = this.index++;
        out.push({ tool_calls: [{ index, id: e.call.id, type: 'function', function: { name: e.call.name, arguments: '' } }] });
        out.push({ tool_calls: [{ index, function: { arguments: e.call.arguments } }] });
      }
    }
    return out;
  }
}

/** A plain body's choice, rewritten from the parsed text: its message and finish_reason. */
export function parsedChoice(choice: { message: unknown; finish_reason: string }, r: GenerationResult, options: OutputParserOptions): AssistantOutput {
  const o = parseAssistantOutput(r.text, options);
  choice.message = assistantMessage(o);
  choice.finish_reason = toolFinishReason(r.finishReason, o.toolCalls.length);
  return o;
}

/** The chunks of a batch of deltas; the engine chunk's logprobs ride on the first (or on an empty delta when the
 *  text was held back, so that no logprob asked for is lost). */
export function streamedChunks(
  enc: { chatDelta(delta: object, logprobs?: readonly TextLogprob[]): unknown },
  deltas: readonly WireDelta[],
  logprobs?: readonly TextLogprob[],
): unknown[] {
  if (deltas.length === 0) return logprobs?.length ? [enc.chatDelta({}, logprobs)] : [];
  return deltas.map((d, i) => enc.chatDelta(d, i === 0 ? logprobs : undefined));
}
