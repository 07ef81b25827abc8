// The tool-call syntax of each family (families.ts), as block scanners over generated text. A "block" is one stretch
// of calls: a Hermes <tool_call>…</tool_call>, a Mistral [TOOL_CALLS][…] array, a DeepSeek
// <｜tool▁calls▁begin｜>…<｜tool▁calls▁end｜>, a Llama-3 JSON object at the start of the answer. The scanners only
// find a block's extent and its raw calls; checking the calls against the request's tools, and what becomes of a bad
// block, is the stream parser's (output-parser.ts).
import { DEEPSEEK, type ToolFamily } from './families.js';

/** One call as written by the model: a name and its arguments (a parsed JSON value, or the raw JSON text). */
export interface RawCall {
  name: unknown;
  arguments: unknown;
}

export type BlockScan =
  /** More text is needed to know where the block ends (never returned when `final`). */
  | { kind: 'incomplete' }
  /** [at, end) is a block of calls (still to be checked against the tools). */
  | { kind: 'calls'; end: number; calls: RawCall[] }
  /** [at, end) opened like a block but is not one the family's syntax allows: it goes back as content. */
  | { kind: 'invalid'; end: number; reason: string }
  /** Not a call at all (a JSON answer that is no call object): content, and no failure. */
  | { kind: 'not-a-call' };

export interface CallSyntax {
  /** Markers that open a block anywhere in the text. */
  openers: readonly string[];
  /** A block may also open with JSON as the first thing in the answer (after whitespace): the characters it may
   *  start with (none: only openers open blocks). */
  jsonAtStart: readonly string[];
  /** The block opening at `at` (an opener, or `{` for jsonAtStart). With `final`, the text is all there is. */
  scan(text: string, at: number, final: boolean): BlockScan;
}

/** End (exclusive) of the JSON object or array starting at `at`, or -1 when the text ends first. Strings and their
 *  escapes are skipped; only bracket balance is tracked (JSON.parse judges the rest). */
export function jsonExtent(text: string, at: number): number {
  let depth = 0;
  let inString = false;
  for (let i = at; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') {
      depth--;
      if (depth === 0) return i + 1;
      if (depth < 0) return i + 1; // unbalanced: let JSON.parse say so
    }
  }
  return -1;
}

function parseJson(text: string): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch {
    return { ok: false };
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** {"name": …, "arguments" | "parameters": …} (also wrapped as {"function": {…}}) → a RawCall; undefined otherwise. */
function callOf(v: unknown): RawCall | undefined {
  if (!isObject(v)) return undefined;
  const fn = isObject(v.function) ? v.function : v;
  if (!('name' in fn)) return undefined;
  return { name: fn.name, arguments: 'arguments' in fn ? fn.arguments : fn.parameters };
}

/** The first index at or after `from` that is not JSON whitespace. */
function skipWs(text: string, from: number): number {
  let i = from;
  while (i < text.length && (text[i] === ' ' || text[i] === '\n' || text[i] === '\t' || text[i] === '\r')) i++;
  return i;
}

/** A block delimited by an opener and a closer, its body parsed by `body`. Unclosed at the end of the text: the rest
 *  is the body (a call cut off by the end-of-generation token right after its JSON still counts). */
function delimited(opener: string, closer: string, body: (inner: string) => RawCall[] | string, text: string, at: number, final: boolean): BlockScan {
  const close = text.indexOf(closer, at + opener.length);
  if (close < 0 && !final) return { kind: 'incomplete' };
  const end = close < 0 ? text.length : close + closer.length;
  const calls = body(text.slice(at + opener.length, close < 0 ? text.length : close));
  return typeof calls === 'string' ? { kind: 'invalid', end, reason: calls } : { kind: 'calls', end, calls };
}

function jsonCallBody(inner: string): RawCall[] | string {
  const j = parseJson(inner.trim());
  if (!j.ok) return 'the call is not valid JSON';
  const call = callOf(j.value);
  return call ? [call] : 'the call has no "name"';
}

const hermes: CallSyntax = {
  openers: ['<tool_call>'],
  jsonAtStart: [],
  scan: (text, at, final) => delimited('<tool_call>', '</tool_call>', jsonCallBody, text, at, final),
};

/** [TOOL_CALLS] then a JSON array of calls (or one call object); Mistral-Small-3.2's `[TOOL_CALLS]name[ARGS]{…}` too.
 *  In Mistral's own vocabularies [TOOL_CALLS] is a control token, which the engine's detokenizer drops from the text
 *  (as it drops every control token): what is left is the call array opening the answer, so that is a block too. */
const mistral: CallSyntax = {
  openers: ['[TOOL_CALLS]'],
  jsonAtStart: ['['],
  scan(text, at, final) {
    if (!text.startsWith('[TOOL_CALLS]', at)) {
      const end = jsonExtent(text, at);
      if (end < 0) return final ? { kind: 'not-a-call' } : { kind: 'incomplete' };
      const j = parseJson(text.slice(at, end));
      const list = j.ok && Array.isArray(j.value) ? j.value : undefined;
      if (list === undefined || list.length === 0) return { kind: 'not-a-call' };
      const calls = list.map(callOf);
      if (calls.every((c) => c !== undefined)) return { kind: 'calls', end, calls: calls };
      return list.some((v) => looksLikeCall('', { ok: true, value: v })) ? { kind: 'invalid', end, reason: 'an entry is not a call object' } : { kind: 'not-a-call' };
    }
    const start = skipWs(text, at + '[TOOL_CALLS]'.length);
    if (start >= text.length) return final ? { kind: 'invalid', end: text.length, reason: 'nothing follows [TOOL_CALLS]' } : { kind: 'incomplete' };
    if (text[start] !== '[' && text[start] !== '{') {
      const args = text.indexOf('[ARGS]', start);
      const nameEnd = args < 0 ? -1 : args;
      if (nameEnd < 0) {
        // A name still being written (maybe with the start of [ARGS]) may become a call; anything else is not one:
        // the opener alone goes back as content (the same cut whether the text is final or not).
        if (!final && /^[A-Za-z0-9_.-]*(\[(A(R(G(S)?)?)?)?)?$/.test(text.slice(start))) return { kind: 'incomplete' };
        return { kind: 'invalid', end: start, reason: 'no JSON after [TOOL_CALLS]' };
      }
      const name = text.slice(start, nameEnd);
      if (!/^[A-Za-z0-9_.-]+$/.test(name)) return { kind: 'invalid', end: start, reason: 'no JSON after [TOOL_CALLS]' };
      const objAt = skipWs(text, nameEnd + '[ARGS]'.length);
      const end = objAt < text.length ? jsonExtent(text, objAt) : -1;
      if (end < 0) return final ? { kind: 'invalid', end: text.length, reason: 'the arguments are cut off' } : { kind: 'incomplete' };
      const j = parseJson(text.slice(objAt, end));
      return j.ok ? { kind: 'calls', end, calls: [{ name, arguments: j.value }] } : { kind: 'invalid', end, reason: 'the arguments are not valid JSON' };
    }
    const end = jsonExtent(text, start);
    if (end < 0) return final ? { kind: 'invalid', end: text.length, reason: 'the call list is cut off' } : { kind: 'incomplete' };
    const j = parseJson(text.slice(start, end));
    if (!j.ok) return { kind: 'invalid', end, reason: 'the call list is not valid JSON' };
    const list = Array.isArray(j.value) ? j.value : [j.value];
    const calls = list.map(callOf);
    if (list.length === 0 || calls.some((c) => c === undefined)) return { kind: 'invalid', end, reason: 'an entry is not a call object' };
    return { kind: 'calls', end, calls: calls as RawCall[] };
  },
};

// One DeepSeek call: TYPE<｜tool▁sep｜>NAME\n```json\nARGS\n```; the fence is optional (R1 sometimes drops it).
const DEEPSEEK_CALL = /^\s*([A-Za-z_]*)<｜tool▁sep｜>([^\n]+)\n(?:```(?:json)?\n([\s\S]*?)\n?```|([\s\S]*?))\s*$/;

function deepseekCalls(inner: string): RawCall[] | string {
  const calls: RawCall[] = [];
  const parts = inner.split(DEEPSEEK.callBegin);
  if (parts[0]!.trim() !== '') return 'text before the first call';
  for (const part of parts.slice(1)) {
    const endAt = part.indexOf(DEEPSEEK.callEnd);
    const body = endAt < 0 ? part : part.slice(0, endAt);
    if (endAt >= 0 && part.slice(endAt + DEEPSEEK.callEnd.length).trim() !== '') return 'text between calls';
    const m = DEEPSEEK_CALL.exec(body);
    if (!m) return 'a call is not TYPE<｜tool▁sep｜>NAME then its JSON arguments';
    const j = parseJson((m[3] ?? m[4] ?? '').trim());
    if (!j.ok) return 'the arguments are not valid JSON';
    calls.push({ name: m[2]!.trim(), arguments: j.value });
  }
  return calls.length > 0 ? calls : 'no call in the block';
}

const deepseek: CallSyntax = {
  openers: [DEEPSEEK.callsBegin, DEEPSEEK.callBegin],
  jsonAtStart: [],
  scan(text, at, final) {
    if (text.startsWith(DEEPSEEK.callsBegin, at)) return delimited(DEEPSEEK.callsBegin, DEEPSEEK.callsEnd, deepseekCalls, text, at, final);
    // A lone call without the outer markers.
    return delimited(DEEPSEEK.callBegin, DEEPSEEK.callEnd, (inner) => deepseekCalls(DEEPSEEK.callBegin + inner), text, at, final);
  },
};

/**
 * JSON objects at `at`, separated by whitespace or `;` (Llama 3.x writes one; some fine-tunes chain several): the
 * block ends before the first text that is not another object. `shape` reads the calls of one parsed object.
 */
function jsonObjects(text: string, at: number, final: boolean, shape: (v: unknown) => RawCall[] | undefined): BlockScan {
  const calls: RawCall[] = [];
  let pos = at;
  let blockEnd = at;
  for (;;) {
    const end = jsonExtent(text, pos);
    if (end < 0) {
      if (!final) return { kind: 'incomplete' };
      return calls.length === 0 ? { kind: 'invalid', end: text.length, reason: 'the call is cut off' } : { kind: 'calls', end: blockEnd, calls };
    }
    const j = parseJson(text.slice(pos, end));
    const got = j.ok ? shape(j.value) : undefined;
    if (got === undefined) {
      if (calls.length > 0) return { kind: 'calls', end: blockEnd, calls };
      // A first value that is not JSON, or JSON without a name, is the model's answer, not a call; an object
      // that names a function but is malformed otherwise is a failed call.
      return looksLikeCall(text.slice(pos, end), j) ? { kind: 'invalid', end, reason: 'the call object is malformed' } : { kind: 'not-a-call' };
    }
    calls.push(...got);
    blockEnd = end;
    let next = skipWs(text, end);
    if (text[next] === ';') next = skipWs(text, next + 1);
    if (next >= text.length) {
      if (!final) return { kind: 'incomplete' };
      return { kind: 'calls', end: blockEnd, calls };
    }
    if (text[next] !== '{') return { kind: 'calls', end: blockEnd, calls };
    pos = next;
  }
}

/** Whether a JSON value that is no well-formed call was meant as one: it opens with (or has) a call's keys. */
function looksLikeCall(raw: string, j: { ok: true; value: unknown } | { ok: false }): boolean {
  if (j.ok) return isObject(j.value) && ['name', 'function', 'tool_calls', 'tool_call'].some((k) => k in (j.value as object));
  return /^\{\s*"(name|function|tool_calls|tool_call)"\s*:/.test(raw);
}

const llamaCall = (v: unknown): RawCall[] | undefined => {
  const c = callOf(v);
  return c && typeof c.name === 'string' ? [c] : undefined;
};

const llama3: CallSyntax = {
  // <|python_tag|> is a control token in Llama 3's vocabulary, so the engine's detokenizer drops it: it is only
  // seen in text when a converter typed it otherwise. The JSON object at the start is what is seen.
  openers: ['<|python_tag|>'],
  jsonAtStart: ['{'],
  scan(text, at, final) {
    if (text.startsWith('<|python_tag|>', at)) {
      const start = skipWs(text, at + '<|python_tag|>'.length);
      if (start >= text.length) return final ? { kind: 'invalid', end: text.length, reason: 'nothing follows <|python_tag|>' } : { kind: 'incomplete' };
      if (text[start] !== '{') return { kind: 'invalid', end: start, reason: 'only JSON calls are parsed after <|python_tag|>' };
      const s = jsonObjects(text, start, final, llamaCall);
      return s.kind === 'not-a-call' ? { kind: 'invalid', end: text.length, reason: 'no call object after <|python_tag|>' } : s;
    }
    return jsonObjects(text, at, final, llamaCall);
  },
};

/** {"tool_calls": [call, …]}, {"tool_call": call}, or one call object. */
const genericShape = (v: unknown): RawCall[] | undefined => {
  if (!isObject(v)) return undefined;
  if (Array.isArray(v.tool_calls)) {
    const calls = v.tool_calls.map(callOf);
    return calls.length > 0 && calls.every((c) => c !== undefined) ? calls : undefined;
  }
  if (v.tool_call !== undefined) {
    const c = callOf(v.tool_call);
    return c ? [c] : undefined;
  }
  const c = callOf(v);
  return c && typeof c.name === 'string' ? [c] : undefined;
};

const generic: CallSyntax = {
  openers: [],
  jsonAtStart: ['{'],
  scan: (text, at, final) => jsonObjects(text, at, final, genericShape),
};

export const CALL_SYNTAX: Readonly<Record<ToolFamily, CallSyntax>> = { hermes, mistral, deepseek, llama3, generic };
