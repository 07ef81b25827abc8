// What a chat request's tools and the model's template mean for one request: the family, what the template is
// given (the tools unless tool_choice is "none"; earlier calls in the shape the family's templates expect), how the
// answer is parsed, and the grammar that constrains it (call-grammar.ts). The router calls toolPlan before rendering
// and outputOptions after (the reasoning mode is read off the rendered prompt).
import type { GenerateRequest } from '../../../engine/types.js';
import { ControlPlaneError } from '../../errors.js';
import type { ChatRenderOptions, ChatTemplate } from '../chat-template.js';
import type { ChatMessage, ChatRequest } from '../schema.js';
import { argumentsAsObject, detectToolFamily, familyToolCallId, promptOpensThink, templateReasons, type ToolFamily } from './families.js';
import { toolCallGrammar, type ToolGrammar } from './call-grammar.js';
import type { OutputParserOptions } from './output-parser.js';

export type ToolChoiceMode = 'none' | 'auto' | 'required' | 'named';

export interface ToolPlan {
  family: ToolFamily;
  /** Absent when the request has no tools. */
  choice?: ToolChoiceMode;
  /** The names a call may use: all tools, or the named one. */
  toolNames: string[];
  /** Parse calls out of the answer (tools present and choice not "none"). */
  parseCalls: boolean;
  /** The template speaks <think> (reasoning_content). */
  reasons: boolean;
  /** What the template renders with. */
  render: ChatRenderOptions;
  /** The messages as the template gets them. */
  messages: Record<string, unknown>[];
}

export function toolPlan(p: ChatRequest, template: ChatTemplate): ToolPlan {
  const hasTools = p.tools !== undefined && p.tools.length > 0;
  const choice: ToolChoiceMode | undefined = hasTools ? (p.toolChoice?.mode ?? 'auto') : p.toolChoice?.mode;
  // tool_choice "none": the tools are not rendered, so the model is not invited to call what it may not call.
  const render: ChatRenderOptions = { tools: choice !== 'none' ? p.tools : undefined, templateName: p.templateName };
  const source = template.sourceFor?.(render);
  const family = detectToolFamily(source);
  const named = p.toolChoice?.mode === 'named' ? p.toolChoice.name : undefined;
  const plan: ToolPlan = {
    family,
    toolNames: named !== undefined ? [named] : (p.toolDefinitions ?? []).map((d) => d.name),
    parseCalls: hasTools && choice !== 'none',
    reasons: templateReasons(source),
    render,
    messages: templateMessages(p.messages, family),
  };
  if (choice !== undefined) plan.choice = choice;
  return plan;
}

/** The parser's options once the prompt is rendered. */
export function outputOptions(plan: ToolPlan, renderedPrompt: string): OutputParserOptions {
  return {
    family: plan.parseCalls ? plan.family : undefined,
    toolNames: plan.toolNames,
    reasoning: !plan.reasons ? 'off' : promptOpensThink(renderedPrompt) ? 'open' : 'detect',
  };
}

/** Whether the answer needs the output parser at all (plain text otherwise, as before tools existed). */
export const needsParser = (o: OutputParserOptions): boolean => o.family !== undefined || o.reasoning !== 'off';

/**
 * Messages in the shape Hugging Face templates read: tool_calls' arguments parsed to objects where the family's
 * templates run them through tojson or iterate them (families.ts argumentsAsObject; text that is not a JSON object
 * stays a string), tool-call ids made acceptable to Mistral's templates; keys the client did not send stay absent.
 */
export function templateMessages(messages: readonly ChatMessage[], family: ToolFamily): Record<string, unknown>[] {
  const asObject = argumentsAsObject(family);
  return messages.map((m) => {
    const out: Record<string, unknown> = { ...m };
    // An assistant turn that only called tools: DeepSeek's templates test `content is none` to render the calls;
    // the others concatenate or test the content as a string (Qwen3: `'</think>' in message.content`), so they get ''.
    if (m.content === null && family !== 'deepseek') out.content = '';
    if (m.tool_calls) {
      out.tool_calls = m.tool_calls.map((c) => ({
        id: familyToolCallId(family, c.id),
        type: c.type,
        function: { name: c.function.name, arguments: asObject ? parsedArguments(c.function.arguments) : c.function.arguments },
      }));
    }
    if (m.tool_call_id !== undefined) out.tool_call_id = familyToolCallId(family, m.tool_call_id);
    return out;
  });
}

function parsedArguments(text: string): unknown {
  try {
    const v = JSON.parse(text) as unknown;
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? v : text;
  } catch {
    return text;
  }
}

/** The grammar of a request's tool_choice (call-grammar.ts): none for "none" or no tools; lazy for "auto". */
export function toolGrammarFor(plan: ToolPlan, p: ChatRequest, output: OutputParserOptions): ToolGrammar | undefined {
  if (!plan.parseCalls || plan.choice === undefined || plan.choice === 'none') return undefined;
  const definitions = p.toolDefinitions ?? [];
  const tools = definitions.map((definition, index) => ({ index, definition })).filter((t) => plan.toolNames.includes(t.definition.name));
  return toolCallGrammar({
    family: plan.family,
    tools,
    single: plan.choice === 'named' || p.parallelToolCalls === false,
    lazy: plan.choice === 'auto',
    thinkOpen: output.reasoning === 'open',
  });
}

/** Puts the tool grammar on the engine request; a request that already carries a grammar (response_format, the raw
 *  `grammar` field) cannot take a second one. */
export function applyToolGrammar(request: GenerateRequest, g: ToolGrammar | undefined, choice: ToolChoiceMode | undefined): void {
  if (g === undefined) return;
  if (request.grammar !== undefined) {
    throw new ControlPlaneError(
      'CP_ERR_INVALID_REQUEST',
      `'tools' with tool_choice "${choice}" constrain the answer to tool calls, which cannot be combined with 'response_format' or 'grammar'; send tool_choice "none" to use them`,
      { param: 'tool_choice' },
    );
  }
  request.grammar = g.grammar;
  if (g.triggers !== undefined) request.grammarTriggers = g.triggers;
}
