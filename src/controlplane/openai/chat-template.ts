// Turning chat messages into one prompt (docs/chat-templates.md).
//
// A GGUF file that carries `tokenizer.chat_template` (and possibly named ones, `tokenizer.chat_template.NAME`) is
// served with that Jinja template, rendered as Hugging Face's apply_chat_template renders it (chat-template-jinja.ts),
// on a bounded worker thread (template-sandbox.ts). The rendered text holds the model's special tokens, so it is
// tokenized with special-token parsing, message contents excepted (chat-prompt.ts); the generation stops at the
// file's end-of-generation tokens (in the engine), so such a template adds no stop strings.
//
// A file without a template, or whose template does not parse (a load-time warning, shown in /v1/models), gets the
// simple default below. The embedded default model was trained on plain play text, where "NAME: line" is the native
// dialogue format, so the default fits it:
//
//   system: You are a poet.
//   user: Speak of love.
//   assistant:
//
// One "<role>: <content>" line per message, then "assistant:" for the model to continue. The generation stops at a
// newline followed by "user:" (DEFAULT_CHAT_STOP) so the model does not write the user's next turn. Special-token text
// is never parsed in it.
import { ControlPlaneError } from '../errors.js';
import { TemplateRaise, TemplateSyntaxError } from './chat-template-jinja.js';
import { TemplateRenderError, type TemplateSandbox } from './template-sandbox.js';
import type { ChatMessage } from './schema.js';

/** What GET /v1/models says about the template in use (`chat_template`). */
export interface ChatTemplateSummary {
  /** `gguf`: the file's default template; `tuneloop-default`: the built-in one (no template, or it did not parse). */
  source: 'gguf' | 'tuneloop-default';
  /** The file's named templates a request may pick with `chat_template_name`. */
  names: string[];
  /** Load-time problems: a template that does not parse (and what is used instead). */
  warnings: string[];
}

export interface ChatRenderOptions {
  /** OpenAI `tools`, handed to the template as `tools`. */
  tools?: readonly unknown[] | undefined;
  /** A named template of the file (`tokenizer.chat_template.NAME`). */
  templateName?: string | undefined;
}

export interface ChatTemplate {
  name: string;
  summary: ChatTemplateSummary;
  render(messages: readonly ChatMessage[], options?: ChatRenderOptions): string | Promise<string>;
  /** Stop sequences the template needs on top of the request's own. */
  stop: readonly string[];
  /** The rendered text carries the model's special tokens: tokenize it with special-token parsing (chat-prompt.ts). */
  specialTokens: boolean;
  /** The Jinja source a render with these options uses (undefined for the built-in default): the tool-call family
   *  and the reasoning convention are read off it (tools/families.ts). */
  sourceFor?(options?: ChatRenderOptions): string | undefined;
}

export const DEFAULT_CHAT_STOP: readonly string[] = ['\nuser:'];

/** The longest template source served (real ones are a few KiB; the largest in tests/fixtures is under 20 KiB). */
export const MAX_TEMPLATE_CHARS = 1024 * 1024;

function refuseOptions(source: string, options: ChatRenderOptions | undefined, names: readonly string[] = []): void {
  if (options?.templateName !== undefined) {
    throw new ControlPlaneError(
      'CP_ERR_INVALID_REQUEST',
      names.length === 0
        ? `'chat_template_name' picks one of the model file's named chat templates, but this model has none (it is served with ${source})`
        : `'chat_template_name' must be one of ${names.join(', ')}, got ${JSON.stringify(options.templateName)}`,
      { param: 'chat_template_name' },
    );
  }
  if (options?.tools !== undefined && options.tools.length > 0) {
    throw new ControlPlaneError('CP_ERR_INVALID_REQUEST', `'tools' need the model's own chat template to be rendered, and this model is served with ${source}`, {
      param: 'tools',
    });
  }
}

/** A template that renders on the spot (the built-in default). */
export interface SyncChatTemplate extends ChatTemplate {
  render(messages: readonly ChatMessage[], options?: ChatRenderOptions): string;
}

function defaultTemplate(warnings: string[] = [], names: string[] = []): SyncChatTemplate {
  return {
    name: 'tuneloop-default',
    summary: { source: 'tuneloop-default', names, warnings },
    render(messages, options) {
      refuseOptions('the built-in tuneloop-default template', options, names);
      return messages.map((m) => `${m.role}: ${m.content ?? ''}\n`).join('') + 'assistant:';
    },
    stop: DEFAULT_CHAT_STOP,
    specialTokens: false,
  };
}

export const DEFAULT_CHAT_TEMPLATE: SyncChatTemplate = defaultTemplate();

/** The parts of the engine's tokenizer description (engine.info.tokenizer) a chat template needs. */
export interface ChatTokenizerInfo {
  /** Texts of the BOS and EOS tokens ('' when the vocabulary has none). */
  bos?: string | null;
  eos?: string | null;
  /** `tokenizer.chat_template`, null when absent. */
  chatTemplate?: string | null;
  /** `tokenizer.chat_template.NAME` by NAME. */
  chatTemplates?: Record<string, string>;
}

/** Where a render of a GGUF template failed: the request's fault (400), or a template cut off by a limit (500). */
function renderFailure(e: unknown, name: string): unknown {
  if (e instanceof TemplateRaise) {
    return new ControlPlaneError('CP_ERR_INVALID_REQUEST', `The model's chat template (${name}) refused these messages: ${e.message}`, { param: 'messages' });
  }
  if (e instanceof TemplateRenderError && e.reason === 'error') {
    return new ControlPlaneError('CP_ERR_INVALID_REQUEST', `The model's chat template (${name}) failed on these messages: ${e.message}`, { param: 'messages' });
  }
  if (e instanceof TemplateRenderError || e instanceof TemplateSyntaxError) {
    return new ControlPlaneError('CP_ERR_INTERNAL', `The model's chat template (${name}) could not be rendered: ${e.message}`);
  }
  return e;
}

/** The chat template of a loaded model: the file's (its default and named ones, each parsed once in the sandbox), or
 *  the built-in default, with a warning for every template that does not parse. */
export async function loadChatTemplate(tokenizer: ChatTokenizerInfo | undefined, sandbox: TemplateSandbox): Promise<ChatTemplate> {
  const warnings: string[] = [];
  const usable = new Map<string, string>();
  const candidates: [string, string][] = [];
  if (typeof tokenizer?.chatTemplate === 'string') candidates.push(['', tokenizer.chatTemplate]);
  for (const [n, src] of Object.entries(tokenizer?.chatTemplates ?? {})) if (typeof src === 'string') candidates.push([n, src]);
  for (const [n, src] of candidates) {
    const key = n === '' ? 'tokenizer.chat_template' : `tokenizer.chat_template.${n}`;
    const instead = n === '' ? 'chat completions use the tuneloop-default template instead' : 'it cannot be picked';
    if (src.length > MAX_TEMPLATE_CHARS) {
      warnings.push(`${key} is ${src.length} characters long, more than the ${MAX_TEMPLATE_CHARS} a chat template may have; ${instead}`);
      continue;
    }
    try {
      await sandbox.compile(src);
      usable.set(n, src);
    } catch (e) {
      if (e instanceof TemplateSyntaxError) warnings.push(`${key} does not parse (${e.message}); ${instead}`);
      // Parsing is bounded like rendering: a template the parser cannot finish within the limits is not served.
      else if (e instanceof TemplateRenderError && e.reason !== 'closed') warnings.push(`${key} could not be parsed: ${e.message}; ${instead}`);
      else throw e;
    }
  }
  const names = [...usable.keys()].filter((n) => n !== '').sort();
  const main = usable.get('');
  if (main === undefined) {
    // GGUF converters write the default ("default" in a tokenizer_config.json list) as tokenizer.chat_template; named
    // ones alone are not a chat format this server can pick for a request that names none.
    if (candidates.length > 0 && !candidates.some(([n]) => n === '')) {
      warnings.push(`the file has named chat templates (${names.join(', ')}) but no tokenizer.chat_template; chat completions use the tuneloop-default template`);
    }
    return defaultTemplate(warnings);
  }
  const bosToken = tokenizer?.bos ?? '';
  const eosToken = tokenizer?.eos ?? '';
  return {
    name: 'gguf',
    summary: { source: 'gguf', names, warnings },
    specialTokens: true,
    stop: [],
    sourceFor(options) {
      if (options?.templateName !== undefined) return usable.get(options.templateName);
      if (options?.tools !== undefined && options.tools.length > 0 && usable.has('tool_use')) return usable.get('tool_use');
      return main;
    },
    async render(messages, options) {
      let name = 'gguf';
      let source: string | undefined = main;
      if (options?.templateName !== undefined) {
        source = options.templateName === '' ? undefined : usable.get(options.templateName);
        if (source === undefined) refuseOptions("the model file's chat template", options, names);
        name = `gguf:${options.templateName}`;
      } else if (options?.tools !== undefined && options.tools.length > 0 && usable.has('tool_use')) {
        // Hugging Face's rule: with tools and a template named tool_use, that one.
        source = usable.get('tool_use');
        name = 'gguf:tool_use';
      }
      try {
        return await sandbox.render(source!, {
          messages: messages as unknown as Record<string, unknown>[],
          tools: options?.tools && options.tools.length > 0 ? options.tools : null,
          addGenerationPrompt: true,
          bosToken,
          eosToken,
        });
      } catch (e) {
        throw renderFailure(e, name);
      }
    },
  };
}
