// Which tool-call syntax a model speaks, read off its chat template's source (docs/api.md, "Tools and reasoning").
//
// A template that teaches a model to call tools also renders earlier calls back to it, so the syntax it renders is
// the syntax the model was trained to emit. The markers are looked for in this order (the first that matches wins:
// Hermes-3-Llama-3.1 is a Llama-3 template that uses Hermes' <tool_call> blocks, so the block markers come first):
//
//   deepseek  <｜tool▁calls▁begin｜>               DeepSeek-V3 / R1 (and the R1 distills' templates that keep them)
//   mistral   [TOOL_CALLS]                         Mistral-Nemo, Mistral-Small, Mixtral-8x22B-v0.3
//   hermes    <tool_call>                          Hermes-2-Pro / Hermes-3, Qwen2.5, Qwen3, QwQ
//   llama3    <|start_header_id|> with ipython     Llama-3.1 / 3.2 / 3.3: a bare {"name": …, "parameters": …} object
//   generic   anything else                        {"tool_calls": [{"name": …, "arguments": …}]} or one call object
//
// Reasoning (`<think>…</think>` → reasoning_content) is on for templates that mention `</think>` (Qwen3, QwQ, the
// DeepSeek-R1 distills); whether the generation starts inside a think block is read off the rendered prompt's end.

export type ToolFamily = 'deepseek' | 'mistral' | 'hermes' | 'llama3' | 'generic';

export const TOOL_FAMILIES: readonly ToolFamily[] = ['deepseek', 'mistral', 'hermes', 'llama3', 'generic'];

export const DEEPSEEK = {
  callsBegin: '<｜tool▁calls▁begin｜>',
  callsEnd: '<｜tool▁calls▁end｜>',
  callBegin: '<｜tool▁call▁begin｜>',
  callEnd: '<｜tool▁call▁end｜>',
  sep: '<｜tool▁sep｜>',
} as const;

export const THINK_OPEN = '<think>';
export const THINK_CLOSE = '</think>';

/** The tool-call family of a chat template's source; `generic` for none (or no template). */
export function detectToolFamily(source: string | undefined): ToolFamily {
  if (source === undefined) return 'generic';
  if (source.includes(DEEPSEEK.callsBegin)) return 'deepseek';
  if (source.includes('[TOOL_CALLS]')) return 'mistral';
  if (source.includes('<tool_call>')) return 'hermes';
  if (source.includes('<|start_header_id|>') && source.includes('ipython')) return 'llama3';
  return 'generic';
}

/** Whether a template speaks the <think> convention. */
export function templateReasons(source: string | undefined): boolean {
  return source !== undefined && source.includes(THINK_CLOSE);
}

/** Whether the rendered prompt leaves the model inside a think block (its generation prompt ends with `<think>`). */
export function promptOpensThink(prompt: string): boolean {
  return prompt.trimEnd().endsWith(THINK_OPEN);
}

/**
 * How a family's template wants an assistant message's `tool_calls[].function.arguments`: DeepSeek's concatenates
 * them as a string (`'```json\n' + arguments`); the others run them through `tojson` or iterate them (Llama 3.1's
 * builtin-tool branch: `arguments | items`), so they get the parsed object, as Hugging Face's examples pass them.
 */
export function argumentsAsObject(family: ToolFamily): boolean {
  return family !== 'deepseek';
}

/** Mistral's templates refuse a tool-call id that is not 9 characters ("Tool call IDs should be alphanumeric
 *  strings with length 9!"): such ids are mapped to 9 alphanumerics (the same id always to the same 9), so an
 *  OpenAI-style `call_…` id round-trips and the call and its result still pair up. */
export function familyToolCallId(family: ToolFamily, id: string): string {
  if (family !== 'mistral' || /^[A-Za-z0-9]{9}$/.test(id)) return id;
  // FNV-1a, twice with different seeds, spelled in base 62: deterministic and spread well enough for pairing.
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  let out = '';
  for (let seed = 0; out.length < 9; seed++) {
    let h = (0x811c9dc5 ^ seed) >>> 0;
    for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193) >>> 0;
    for (let k = 0; k < 5 && out.length < 9; k++) {
      out += alphabet[h % 62];
      h = Math.floor(h / 62);
    }
  }
  return out;
}
