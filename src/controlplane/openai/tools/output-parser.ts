// Generated text → OpenAI's assistant message parts: reasoning_content, content and tool_calls. One incremental
// parser serves both answers: a stream feeds it the engine's chunks as they come; a plain answer feeds it the whole
// text at once (parseAssistantOutput). So the streamed deltas, accumulated, always equal the plain answer for the same
// text, however the text was split (tests/controlplane/tool-parsers.test.ts checks this as a property).
//
// What it holds back: text that may be the start of a call opener (`<tool_c` might become `<tool_call>`), a whole
// call block until it is closed (a call is sent only once it is known to be valid: a half-sent call could not be
// taken back), whitespace next to a call or a think block (dropped there), and a possible `</think>`.
//
// A block that opened like a call but is not a valid one — arguments that are not JSON, a name not in the request's
// tools, arguments that are not an object, a block cut off by max_tokens — goes back to the client as content, and
// counts as a parse failure (tuneloop_tool_call_parse_failures_total); never an error.
import { randomBytes } from 'node:crypto';
import { CALL_SYNTAX, type CallSyntax, type RawCall } from './call-syntax.js';
import { THINK_CLOSE, THINK_OPEN, type ToolFamily } from './families.js';

/** One parsed call, in OpenAI's terms: `arguments` is the JSON text of an object. */
export interface ParsedToolCall {
  id: string;
  name: string;
  arguments: string;
}

/** One piece of parsed output, in order. */
export type OutputEvent = { kind: 'content'; text: string } | { kind: 'reasoning'; text: string } | { kind: 'call'; call: ParsedToolCall };

export interface OutputParserOptions {
  /** Parse tool calls of this family (absent: no tools, or tool_choice none: all text is content). */
  family?: ToolFamily | undefined;
  /** The names a call may use (the request's tools, or the one named by tool_choice). */
  toolNames?: readonly string[] | undefined;
  /** 'open': the prompt ended inside a think block; 'detect': a think block may open the answer; 'off'. */
  reasoning: 'open' | 'detect' | 'off';
  /** Call ids (default: `call_` + 24 random alphanumerics); tests pass a counter. */
  newId?: () => string;
}

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
export function newToolCallId(): string {
  const bytes = randomBytes(24);
  let s = 'call_';
  for (const b of bytes) s += ALNUM[b % ALNUM.length];
  return s;
}

const isWs = (s: string): boolean => /^\s*$/.test(s);

/** Whitespace handling of one channel: leading whitespace dropped while `dropLeading`, trailing whitespace held
 *  until something follows it (flush) or it turns out to border a call or the end of a think block (discard). */
class Trimmed {
  dropLeading: boolean;
  private pending = '';
  constructor(dropLeading: boolean) {
    this.dropLeading = dropLeading;
  }
  push(s: string): string {
    if (this.dropLeading) {
      s = s.replace(/^\s+/, '');
      if (s === '') return '';
      this.dropLeading = false;
    }
    const full = this.pending + s;
    const body = full.replace(/\s+$/, '');
    this.pending = full.slice(body.length);
    return body;
  }
  discard(): void {
    this.pending = '';
  }
  flush(): string {
    const p = this.pending;
    this.pending = '';
    return p;
  }
}

/** Length of the longest suffix of `text` (from `from` on) that is a proper prefix of one of `markers`. */
function partialMarkerSuffix(text: string, from: number, markers: readonly string[]): number {
  let best = 0;
  for (const m of markers) {
    for (let k = Math.min(m.length - 1, text.length - from); k > best; k--) {
      if (text.endsWith(m.slice(0, k))) {
        best = k;
        break;
      }
    }
  }
  return best;
}

/** Why a call is not acceptable, or its OpenAI form. */
function checkCall(raw: RawCall, names: ReadonlySet<string>, newId: () => string): ParsedToolCall | string {
  if (typeof raw.name !== 'string' || raw.name === '') return 'the call has no function name';
  if (!names.has(raw.name)) return `the call names '${raw.name.slice(0, 64)}', which is not one of the request's tools`;
  let args: unknown = raw.arguments ?? {};
  if (typeof args === 'string') {
    // Some fine-tunes write the arguments as a JSON string holding the object.
    try {
      args = JSON.parse(args) as unknown;
    } catch {
      return 'the arguments are a string that is not JSON';
    }
  }
  if (typeof args !== 'object' || args === null || Array.isArray(args)) return 'the arguments are not a JSON object';
  return { id: newId(), name: raw.name, arguments: JSON.stringify(args) };
}

/** The incremental parser (see the file's head). push() the text as it comes, then finish() once. */
export class AssistantOutputParser {
  /** Blocks that opened like calls and were not valid ones, and why (for the metric and the log). */
  readonly failures: string[] = [];
  private readonly syntax: CallSyntax | undefined;
  private readonly names: ReadonlySet<string>;
  private readonly newId: () => string;
  private buf = '';
  private pos = 0;
  /** 'think': inside a think block; 'maybe-think': the answer may still open one; 'body': the rest. */
  private stage: 'think' | 'maybe-think' | 'body';
  /** A JSON call can still open the body (jsonAtStart families, before any non-whitespace content). */
  private atStart = true;
  private readonly reasoning = new Trimmed(true);
  private readonly content: Trimmed;
  private calls = 0;
  private done = false;

  constructor(options: OutputParserOptions) {
    this.syntax = options.family !== undefined ? CALL_SYNTAX[options.family] : undefined;
    this.names = new Set(options.toolNames ?? []);
    this.newId = options.newId ?? newToolCallId;
    this.stage = options.reasoning === 'open' ? 'think' : options.reasoning === 'detect' ? 'maybe-think' : 'body';
    // With tools, leading whitespace of the content is dropped (it would sit before a call).
    this.content = new Trimmed(this.syntax !== undefined);
  }

  /** Calls parsed so far. */
  get callCount(): number {
    return this.calls;
  }

  push(text: string): OutputEvent[] {
    if (this.done) throw new Error('AssistantOutputParser: push after finish');
    this.buf += text;
    const out: OutputEvent[] = [];
    this.drain(false, out);
    return out;
  }

  finish(): OutputEvent[] {
    if (this.done) throw new Error('AssistantOutputParser: finish twice');
    const out: OutputEvent[] = [];
    this.drain(true, out);
    this.done = true;
    // A think block never closed (max_tokens): all of it was reasoning; its trailing whitespace is dropped.
    this.reasoning.discard();
    const tail = this.content.flush();
    if (tail !== '') out.push({ kind: 'content', text: tail });
    return out;
  }

  private emitContent(text: string, out: OutputEvent[]): void {
    if (text === '') return;
    if (this.atStart && !isWs(text)) this.atStart = false;
    const t = this.content.push(text);
    if (t !== '') out.push({ kind: 'content', text: t });
  }

  private drain(final: boolean, out: OutputEvent[]): void {
    if (this.stage === 'maybe-think') {
      const rest = this.buf.slice(this.pos);
      const lead = rest.length - rest.trimStart().length;
      const after = rest.slice(lead);
      if (after.startsWith(THINK_OPEN)) {
        this.pos += lead + THINK_OPEN.length;
        this.stage = 'think';
      } else if (!final && THINK_OPEN.startsWith(after)) {
        return; // only whitespace or a prefix of <think> so far
      } else {
        this.stage = 'body';
      }
    }
    if (this.stage === 'think') {
      const close = this.buf.indexOf(THINK_CLOSE, this.pos);
      if (close < 0) {
        const keep = final ? 0 : partialMarkerSuffix(this.buf, this.pos, [THINK_CLOSE]);
        const r = this.reasoning.push(this.buf.slice(this.pos, this.buf.length - keep));
        if (r !== '') out.push({ kind: 'reasoning', text: r });
        this.pos = this.buf.length - keep;
        return;
      }
      const r = this.reasoning.push(this.buf.slice(this.pos, close));
      if (r !== '') out.push({ kind: 'reasoning', text: r });
      this.reasoning.discard();
      this.pos = close + THINK_CLOSE.length;
      this.stage = 'body';
      this.content.dropLeading = true;
    }
    this.drainBody(final, out);
  }

  private drainBody(final: boolean, out: OutputEvent[]): void {
    const syntax = this.syntax;
    if (syntax === undefined) {
      this.emitContent(this.buf.slice(this.pos), out);
      this.pos = this.buf.length;
      return;
    }
    for (;;) {
      // A JSON call opening the answer (Llama 3.x, generic).
      if (syntax.jsonAtStart.length > 0 && this.atStart) {
        const first = this.buf.slice(this.pos).search(/\S/);
        if (first < 0) {
          // Whitespace only so far: held (it is dropped before a call, and kept as content otherwise).
          this.emitContent(this.buf.slice(this.pos), out);
          this.pos = this.buf.length;
          return;
        }
        const at = this.pos + first;
        if (syntax.jsonAtStart.includes(this.buf[at]!)) {
          const scan = syntax.scan(this.buf, at, final);
          if (scan.kind === 'incomplete') return;
          if (scan.kind !== 'not-a-call') {
            this.pos = at;
            this.takeBlock(scan, out);
            continue;
          }
        }
        this.atStart = false;
      }
      let at = -1;
      for (const o of syntax.openers) {
        const i = this.buf.indexOf(o, this.pos);
        if (i >= 0 && (at < 0 || i < at)) at = i;
      }
      if (at < 0) {
        const keep = final ? 0 : partialMarkerSuffix(this.buf, this.pos, syntax.openers);
        this.emitContent(this.buf.slice(this.pos, this.buf.length - keep), out);
        this.pos = this.buf.length - keep;
        return;
      }
      this.emitContent(this.buf.slice(this.pos, at), out);
      this.pos = at;
      const scan = syntax.scan(this.buf, at, final);
      if (scan.kind === 'incomplete') return;
      if (scan.kind === 'not-a-call') {
        // Only jsonAtStart scans say this; an opener always starts a block.
        throw new Error('AssistantOutputParser: an opener scanned as no call');
      }
      this.takeBlock(scan, out);
    }
  }

  /** The block at this.pos: calls when every call in it checks out; otherwise its text is content. */
  private takeBlock(scan: { kind: 'calls'; end: number; calls: RawCall[] } | { kind: 'invalid'; end: number; reason: string }, out: OutputEvent[]): void {
    const text = this.buf.slice(this.pos, scan.end);
    this.pos = scan.end;
    let problem = scan.kind === 'invalid' ? scan.reason : undefined;
    const calls: ParsedToolCall[] = [];
    if (scan.kind === 'calls') {
      for (const raw of scan.calls) {
        const c = checkCall(raw, this.names, this.newId);
        if (typeof c === 'string') {
          problem = c;
          break;
        }
        calls.push(c);
      }
    }
    if (problem !== undefined) {
      this.failures.push(problem);
      this.emitContent(text, out);
      return;
    }
    this.atStart = false;
    this.content.discard(); // whitespace before a call
    this.content.dropLeading = true; // and after it
    for (const call of calls) out.push({ kind: 'call', call });
    this.calls += calls.length;
  }
}

/** A whole answer's parts, as a plain (non-stream) response carries them. */
export interface AssistantOutput {
  content: string | null;
  reasoning: string | null;
  toolCalls: ParsedToolCall[];
  failures: string[];
}

/** Collects a parser's events into the message parts (reasoning null when there was no think block). */
export function collectOutput(events: readonly OutputEvent[], failures: readonly string[]): AssistantOutput {
  let content = '';
  let reasoning = '';
  let sawReasoning = false;
  const toolCalls: ParsedToolCall[] = [];
  for (const e of events) {
    if (e.kind === 'content') content += e.text;
    else if (e.kind === 'reasoning') {
      reasoning += e.text;
      sawReasoning = true;
    } else toolCalls.push(e.call);
  }
  // OpenAI's content is null beside tool calls when nothing else was said, and a string otherwise (even empty).
  return { content: content === '' && toolCalls.length > 0 ? null : content, reasoning: sawReasoning ? reasoning : null, toolCalls, failures: [...failures] };
}

/** The one-shot parse of a whole answer: the same parser, fed everything at once. */
export function parseAssistantOutput(text: string, options: OutputParserOptions): AssistantOutput {
  const p = new AssistantOutputParser(options);
  const events = [...p.push(text), ...p.finish()];
  return collectOutput(events, p.failures);
}
