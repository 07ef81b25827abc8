// A chat request's prompt as token ids: render the template, then tokenize so that the template's special tokens
// (<|im_start|>, <|eot_id|>, <end_of_turn>, ...) become their control ids while the same text typed by a user stays
// ordinary text (docs/chat-templates.md, "Special tokens in messages").
//
// The rule: the rendered prompt is tokenized with special-token parsing on, except inside "plain ranges": where the
// contents of the messages that hold special-token text landed (a content holds some when it tokenizes differently
// with parsing on and off; the others need no protection). Where they landed is found exactly by rendering the
// template a second time with each content replaced by a marker (sentinelSpans): when the real rendering is the
// marked one with the contents put back (as given, or trimmed), the markers' places are the contents' places. A
// template that changes contents otherwise, or renders differently around a marker, falls back to a search: a
// content found exactly once in the prompt is protected there; one found nowhere, or in several places (it could be
// mistaken for the template's own text), is refused (400) rather than let it inject control tokens. Tool definitions
// and tool-call arguments are not protected this way (they are rendered through tojson).
import type { Engine } from '../../engine/engine.js';
import { ControlPlaneError } from '../errors.js';
import type { ChatRenderOptions, ChatTemplate } from './chat-template.js';
import type { ChatMessage } from './schema.js';

export interface ChatTokenizeOptions {
  addBos?: boolean;
  parseSpecial?: boolean;
  /** Flat [start, end) UTF-8 byte offset pairs where special-token text is not parsed. */
  plainRanges?: Int32Array;
}

/** engine.tokenize and the parts of the vocabulary the prompt needs. */
export interface ChatTokenizer {
  tokenize(text: string, options?: ChatTokenizeOptions): number[];
  /** The BOS id, or null when the vocabulary has none. */
  bosId: number | null;
  /** The vocabulary's add_bos_token. */
  addBos: boolean;
}

/** [message index, start, end): UTF-16 offsets of a content in the rendered prompt. */
export type ContentSpan = [number, number, number];

// Private-use characters around a message index: what no template writes on its own.
const OPEN = '\u{F8FF}';
const CLOSE = '\u{F8FE}';
const MARKER = /\u{F8FF}(\d+)\u{F8FE}/gu;
export const contentMarker = (i: number): string => `${OPEN}${i}${CLOSE}`;

/** Where the contents sit in `text`, read off `marked` (the same template rendered with contentMarker(i) as message
 *  i's content): undefined unless `text` is exactly `marked` with each marker replaced by its content as given or
 *  trimmed (a template may render a content several times, or not at all). */
export function sentinelSpans(text: string, marked: string, contents: readonly string[]): ContentSpan[] | undefined {
  const parts = marked.split(MARKER); // template text, index, template text, index, ..., template text
  const spans: ContentSpan[] = [];
  if (!text.startsWith(parts[0]!)) return undefined;
  let pos = parts[0]!.length;
  for (let k = 1; k < parts.length; k += 2) {
    const i = Number(parts[k]);
    const content = contents[i];
    if (content === undefined) return undefined;
    const after = parts[k + 1]!;
    const forms = [...new Set([content, content.trim(), content.trimStart(), content.trimEnd()])];
    const form = forms.find((f) => text.startsWith(f, pos) && text.startsWith(after, pos + f.length));
    if (form === undefined) return undefined;
    if (form.length > 0) spans.push([i, pos, pos + form.length]);
    pos += form.length + after.length;
  }
  return pos === text.length ? spans : undefined;
}

/** The fallback: each content (of `which`) located by search, accepted only where it occurs exactly once (as given,
 *  else trimmed); the others are `missing`. */
export function searchSpans(text: string, contents: readonly string[], which: readonly number[]): { spans: ContentSpan[]; missing: number[] } {
  const spans: ContentSpan[] = [];
  const missing: number[] = [];
  for (const i of which) {
    const content = contents[i]!;
    const form = [content, content.trim()].find((f) => f.length > 0 && text.indexOf(f) >= 0);
    const at = form === undefined ? -1 : text.indexOf(form);
    if (form === undefined || text.indexOf(form, at + 1) >= 0) missing.push(i);
    else spans.push([i, at, at + form.length]);
  }
  return { spans, missing };
}

/** UTF-16 spans to the tokenizer's flat, sorted [start, end) UTF-8 byte offsets, walking the text once. */
export function byteRanges(text: string, spans: readonly ContentSpan[]): Int32Array {
  const sorted = [...spans].sort((x, y) => x[1] - y[1]);
  const out = new Int32Array(sorted.length * 2);
  let idx = 0;
  let bytes = 0;
  const toBytes = (to: number): number => {
    bytes += Buffer.byteLength(text.slice(idx, to), 'utf8');
    idx = to;
    return bytes;
  };
  sorted.forEach(([, start, end], k) => {
    out[2 * k] = toBytes(start);
    out[2 * k + 1] = toBytes(end);
  });
  return out;
}

/** The prompt's token ids and its rendered text (for logs and tests). */
export async function chatPromptTokens(
  messages: readonly ChatMessage[],
  template: ChatTemplate,
  tokenizer: ChatTokenizer,
  options: ChatRenderOptions = {},
): Promise<{ text: string; tokens: number[] }> {
  const text = await template.render(messages, options);
  if (!template.specialTokens) return { text, tokens: tokenizer.tokenize(text) };
  const contents = messages.map((m) => m.content ?? '');
  const special = contents.flatMap((c, i) => (holdsSpecialText(c, tokenizer) ? [i] : []));
  let ranges: Int32Array | undefined;
  if (special.length > 0) {
    let spans: ContentSpan[] | undefined;
    try {
      const marked = await template.render(
        // A null content (an assistant turn that only calls tools) stays null: templates branch on it.
        messages.map((m, i) => (m.content === null ? m : { ...m, content: contentMarker(i) })),
        options,
      );
      spans = sentinelSpans(text, marked, contents)?.filter(([i]) => special.includes(i));
    } catch {
      spans = undefined; // the template refuses the markers (it reads the contents): search instead
    }
    if (spans === undefined) {
      const found = searchSpans(text, contents, special);
      const i = found.missing[0];
      if (i !== undefined) {
        throw new ControlPlaneError(
          'CP_ERR_INVALID_REQUEST',
          `'messages[${i}].content' holds special-token text, and the model's chat template changes the content so it cannot be kept as plain text; remove the special-token text`,
          { param: `messages[${i}].content` },
        );
      }
      spans = found.spans;
    }
    ranges = byteRanges(text, spans);
  }
  const tokens = tokenizer.tokenize(text, ranges ? { addBos: false, parseSpecial: true, plainRanges: ranges } : { addBos: false, parseSpecial: true });
  // BOS: the template's own (Llama 3, Gemma, Mistral write {{ bos_token }}) is parsed to the BOS id above; otherwise
  // the vocabulary's add_bos_token decides, as for a plain prompt. Never two.
  if (tokenizer.addBos && tokenizer.bosId !== null && tokens[0] !== tokenizer.bosId) tokens.unshift(tokenizer.bosId);
  return { text, tokens };
}

/** Whether a text holds special-token text: it tokenizes differently with special-token parsing on. */
function holdsSpecialText(text: string, tokenizer: ChatTokenizer): boolean {
  if (text.length === 0) return false;
  const plain = tokenizer.tokenize(text, { addBos: false, parseSpecial: false });
  const parsed = tokenizer.tokenize(text, { addBos: false, parseSpecial: true });
  return plain.length !== parsed.length || plain.some((t, k) => t !== parsed[k]);
}

/** The engine's tokenizer as a ChatTokenizer: its tokenize with special-token options, its BOS id and add_bos_token
 *  (engine.info.tokenizer; read per request, so a reload is followed). */
export function engineChatTokenizer(engine: Engine): ChatTokenizer {
  const tok = engine.info.tokenizer;
  return { tokenize: (text, options) => engine.tokenize(text, options), bosId: tok.bosId, addBos: tok.addBos };
}
