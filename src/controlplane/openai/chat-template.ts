// Turning chat messages into one prompt. GGUF files may carry `tokenizer.chat_template`, a Jinja2 template; this
// control plane does NOT evaluate Jinja (no template engine is bundled, and running model-supplied templates is a
// code-execution surface). Every model gets the simple documented default below instead. The embedded default
// model was trained on plain play text, where "NAME: line" is the native dialogue format, so the default fits it.
//
//   system: You are a poet.
//   user: Speak of love.
//   assistant:
//
// One "<role>: <content>" line per message, then "assistant:" for the model to continue. The generation stops at a
// newline followed by "user:" (DEFAULT_CHAT_STOP) so the model does not write the user's next turn.
import type { ChatMessage } from './schema.js';

export interface ChatTemplate {
  name: string;
  render(messages: readonly ChatMessage[]): string;
  /** Stop sequences the template needs on top of the request's own. */
  stop: readonly string[];
}

export const DEFAULT_CHAT_STOP: readonly string[] = ['\nuser:'];

export const DEFAULT_CHAT_TEMPLATE: ChatTemplate = {
  name: 'tuneloop-default',
  render(messages) {
    return messages.map((m) => `${m.role}: ${m.content}\n`).join('') + 'assistant:';
  },
  stop: DEFAULT_CHAT_STOP,
};
