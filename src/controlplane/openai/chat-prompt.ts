// A chat request's prompt as token ids: render the template, then tokenize so that the template's special tokens
// (<|im_start|>, <|eot_id|>, <end_of_turn>, ...) become their control ids while the same text typed by a user stays
// ordinary text (docs/chat-templates.md, "Special tokens in messages").
//
// The rule: the rendered prompt is tokenized with special-token parsing on, except inside "plain ranges", the byte
// ranges where the messages' contents landed. Each message's content is looked up in the rendered text in message
// order, from where the previous one ended (so a content repeated in the system header or elsewhere earlier is not
// mistaken for it); a template that trims contents is matched on the trimmed text. A content the template changed
// otherwise (escaped, reformatted) cannot be located: when that content holds special-token text (it tokenizes
// differently with parsing on), the request is refused rather than let it inject control tokens; otherwise nothing
// is lost. Tool definitions and tool-call arguments are not protected this way (they are rendered through tojson).
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

/** Where each message's content sits in the rendered prompt: UTF-8 byte ranges, and the messages not found. */
export function plainRangesOf(text: string, contents: readonly string[]): { ranges: Int32Array; missing: number[] } {
  const ranges: number[] = [];
  const missing: number[] = [];
  let from = 0; // UTF-16 index into text
  let fromBytes = 0; // its UTF-8 offset
  contents.forEach((content, i) => {
    if (content.length === 0) return;
    let at = text.indexOf(content, from);
    let found = content;
    if (at < 0) {
      const trimmed = content.trim();
      if (trimmed.length === 0) return; // whitespace only: no special-token text in it
      at = text.indexOf(trimmed, from);
      found = trimmed;
    }
    if (at < 0) {
      missing.push(i);
      return;
    }
    const start = fromBytes + Buffer.byteLength(text.slice(from, at), 'utf8');
    const end = start + Buffer.byteLength(found, 'utf8');
    ranges.push(start, end);
    from = at + found.length;
    fromBytes = end;
  });
  return { ranges: Int32Array.from(ranges), missing };
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
  const { ranges, missing } = plainRangesOf(
    text,
    messages.map((m) => m.content),
  );
  for (const i of missing) {
    const content = messages[i]!.content;
    const plain = tokenizer.tokenize(content, { addBos: false, parseSpecial: false });
    const parsed = tokenizer.tokenize(content, { addBos: false, parseSpecial: true });
    if (plain.length !== parsed.length || plain.some((t, k) => t !== parsed[k])) {
      throw new ControlPlaneError(
        'CP_ERR_INVALID_REQUEST',
        `'messages[${i}].content' holds special-token text, and the model's chat template changes the content so it cannot be kept as plain text; remove the special-token text`,
        { param: `messages[${i}].content` },
      );
    }
  }
  const tokens = tokenizer.tokenize(text, { addBos: false, parseSpecial: true, plainRanges: ranges });
  // BOS: the template's own (Llama 3, Gemma, Mistral write {{ bos_token }}) is parsed to the BOS id above; otherwise
  // the vocabulary's add_bos_token decides, as for a plain prompt. Never two.
  if (tokenizer.addBos && tokenizer.bosId !== null && tokens[0] !== tokenizer.bosId) tokens.unshift(tokenizer.bosId);
  return { text, tokens };
}

/** The engine's tokenizer as a ChatTokenizer: its tokenize with special-token options, its BOS id and add_bos_token
 *  (engine.info.tokenizer; read per request, so a reload is followed). */
export function engineChatTokenizer(engine: Engine): ChatTokenizer {
  const tok = engine.info.tokenizer;
  return { tokenize: (text, options) => engine.tokenize(text, options), bosId: tok.bosId, addBos: tok.addBos };
}
