// The chat request's tool fields and tool-bearing messages (OpenAI's shapes), checked here and handed on in the
// shapes the rest uses: `tools`, `tool_choice`, `parallel_tool_calls`; messages with role `tool` (tool_call_id,
// content) and assistant messages with `tool_calls` (content may then be null) and `reasoning_content`. Each refusal
// names the field (docs/api.md, "Tools and reasoning").
import { bad, describe } from './request-errors.js';

export type ChatRole = 'system' | 'user' | 'assistant' | 'tool';

/** A tool call of an earlier assistant turn, as the client sent it (arguments: JSON text). */
export interface ChatToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

/** One conversation message. Optional fields are present only when the client sent them: templates test for the
 *  keys themselves (Llama 3.1's `'tool_calls' in message`). */
export interface ChatMessage {
  role: ChatRole;
  /** null: an assistant turn that only called tools. */
  content: string | null;
  tool_calls?: ChatToolCall[];
  /** role tool: the call this message answers. */
  tool_call_id?: string;
  /** role tool (the function's name) or a participant name; handed to the template as given. */
  name?: string;
  /** An assistant turn's reasoning, handed to the template (Qwen3's renders it in a think block; others ignore it). */
  reasoning_content?: string;
}

export const CHAT_ROLES: readonly string[] = ['system', 'user', 'assistant', 'developer', 'tool'];

export interface ToolDefinition {
  name: string;
  description?: string;
  /** A JSON schema of the arguments object; absent: any object. */
  parameters?: Record<string, unknown>;
  strict?: boolean;
}

export type ToolChoice = { mode: 'none' } | { mode: 'auto' } | { mode: 'required' } | { mode: 'named'; name: string };

export interface ToolFields {
  /** The definitions as the client sent them (the template gets these). */
  tools?: Record<string, unknown>[];
  definitions?: ToolDefinition[];
  toolChoice?: ToolChoice;
  parallelToolCalls?: boolean;
}

type Body = Record<string, unknown>;

const isObject = (v: unknown): v is Body => typeof v === 'object' && v !== null && !Array.isArray(v);
const present = (v: unknown): boolean => v !== undefined && v !== null;

/** OpenAI's rule for function names; it also keeps names safe inside grammars and templates. */
const FUNCTION_NAME = /^[A-Za-z0-9_-]{1,64}$/;
export const MAX_TOOLS = 128;

/** A message's content: a string or text parts (joined); null only where `nullable`. */
function parseContent(v: unknown, i: number, nullable: boolean): string | null {
  if (typeof v === 'string') return v;
  if (nullable && !present(v)) return null;
  if (Array.isArray(v)) {
    return v
      .map((part: unknown, j) => {
        if (!isObject(part) || part.type !== 'text' || typeof part.text !== 'string') {
          throw bad(`messages[${i}].content`, `'messages[${i}].content[${j}]' must be a text part {type: "text", text: string}`);
        }
        return part.text;
      })
      .join('');
  }
  throw bad(`messages[${i}].content`, `'messages[${i}].content' must be a string, got ${describe(v)}`);
}

function parseToolCalls(v: unknown, i: number): ChatToolCall[] {
  const at = `messages[${i}].tool_calls`;
  if (!Array.isArray(v)) throw bad(at, `'${at}' must be an array, got ${describe(v)}`);
  return v.map((c: unknown, j) => {
    const p = `${at}[${j}]`;
    if (!isObject(c)) throw bad(p, `'${p}' must be an object, got ${describe(c)}`);
    if (typeof c.id !== 'string' || c.id === '') throw bad(`${p}.id`, `'${p}.id' must be a non-empty string, got ${describe(c.id)}`);
    if (present(c.type) && c.type !== 'function') throw bad(`${p}.type`, `'${p}.type' must be "function", got ${describe(c.type)}`);
    const fn = c.function;
    if (!isObject(fn)) throw bad(`${p}.function`, `'${p}.function' must be an object with name and arguments, got ${describe(fn)}`);
    if (typeof fn.name !== 'string' || fn.name === '') throw bad(`${p}.function.name`, `'${p}.function.name' must be a non-empty string, got ${describe(fn.name)}`);
    if (typeof fn.arguments !== 'string') throw bad(`${p}.function.arguments`, `'${p}.function.arguments' must be a string (JSON), got ${describe(fn.arguments)}`);
    return { id: c.id, type: 'function' as const, function: { name: fn.name, arguments: fn.arguments } };
  });
}

/** `messages`, with the tool roles and fields. */
export function parseChatMessages(m: unknown): ChatMessage[] {
  if (!Array.isArray(m) || m.length === 0) throw bad('messages', `'messages' must be a non-empty array, got ${describe(m)}`);
  return m.map((msg: unknown, i): ChatMessage => {
    if (!isObject(msg)) throw bad(`messages[${i}]`, `'messages[${i}]' must be an object with role and content, got ${describe(msg)}`);
    const role = msg.role;
    if (typeof role !== 'string' || !CHAT_ROLES.includes(role)) {
      throw bad(`messages[${i}].role`, `'messages[${i}].role' must be one of system, user, assistant, tool (or developer), got ${describe(role)}`);
    }
    const toolCalls = role === 'assistant' && present(msg.tool_calls) ? parseToolCalls(msg.tool_calls, i) : undefined;
    // OpenAI lets an assistant turn that calls tools (or any assistant turn) leave content out.
    const content = parseContent(msg.content, i, role === 'assistant');
    // OpenAI's newer 'developer' role plays the system role.
    const out: ChatMessage = { role: (role === 'developer' ? 'system' : role) as ChatRole, content };
    if (toolCalls !== undefined && toolCalls.length > 0) out.tool_calls = toolCalls;
    if (role === 'tool') {
      if (typeof msg.tool_call_id !== 'string' || msg.tool_call_id === '') {
        throw bad(
          `messages[${i}].tool_call_id`,
          `'messages[${i}].tool_call_id' must be a non-empty string (the id of the call this message answers), got ${describe(msg.tool_call_id)}`,
        );
      }
      out.tool_call_id = msg.tool_call_id;
    }
    if (present(msg.name)) {
      if (typeof msg.name !== 'string') throw bad(`messages[${i}].name`, `'messages[${i}].name' must be a string, got ${describe(msg.name)}`);
      out.name = msg.name;
    }
    if (role === 'assistant' && present(msg.reasoning_content)) {
      if (typeof msg.reasoning_content !== 'string') {
        throw bad(`messages[${i}].reasoning_content`, `'messages[${i}].reasoning_content' must be a string, got ${describe(msg.reasoning_content)}`);
      }
      out.reasoning_content = msg.reasoning_content;
    }
    return out;
  });
}

function parseTools(v: unknown): { tools: Record<string, unknown>[]; definitions: ToolDefinition[] } {
  if (!Array.isArray(v)) throw bad('tools', `'tools' must be an array of tool definitions, got ${describe(v)}`);
  if (v.length > MAX_TOOLS) throw bad('tools', `'tools' may hold at most ${MAX_TOOLS} definitions, got ${v.length}`);
  const seen = new Set<string>();
  const definitions = v.map((t: unknown, i): ToolDefinition => {
    const fn = isObject(t) ? t.function : undefined;
    if (!isObject(t) || t.type !== 'function' || !isObject(fn) || typeof fn.name !== 'string') {
      throw bad(`tools[${i}]`, `'tools[${i}]' must be {type: "function", function: {name: string, ...}}`);
    }
    if (!FUNCTION_NAME.test(fn.name)) {
      throw bad(`tools[${i}].function.name`, `'tools[${i}].function.name' must be 1 to 64 characters of a-z, A-Z, 0-9, _ and -, got ${describe(fn.name)}`);
    }
    if (seen.has(fn.name)) throw bad(`tools[${i}].function.name`, `'tools[${i}].function.name' repeats the name '${fn.name}'`);
    seen.add(fn.name);
    const d: ToolDefinition = { name: fn.name };
    if (present(fn.description)) {
      if (typeof fn.description !== 'string')
        throw bad(`tools[${i}].function.description`, `'tools[${i}].function.description' must be a string, got ${describe(fn.description)}`);
      d.description = fn.description;
    }
    if (present(fn.parameters)) {
      if (!isObject(fn.parameters))
        throw bad(`tools[${i}].function.parameters`, `'tools[${i}].function.parameters' must be a JSON schema object, got ${describe(fn.parameters)}`);
      d.parameters = fn.parameters;
    }
    if (present(fn.strict)) {
      if (typeof fn.strict !== 'boolean') throw bad(`tools[${i}].function.strict`, `'tools[${i}].function.strict' must be a boolean, got ${describe(fn.strict)}`);
      d.strict = fn.strict;
    }
    return d;
  });
  return { tools: v as Record<string, unknown>[], definitions };
}

function parseToolChoice(v: unknown, names: readonly string[]): ToolChoice {
  if (v === 'none' || v === 'auto' || v === 'required') {
    if (v === 'required' && names.length === 0) throw bad('tool_choice', "'tool_choice' \"required\" needs 'tools'");
    return { mode: v };
  }
  if (isObject(v) && v.type === 'function' && isObject(v.function) && typeof v.function.name === 'string') {
    const name = v.function.name;
    if (!names.includes(name)) {
      throw bad('tool_choice', `'tool_choice' names the function '${name.slice(0, 64)}', which is not in 'tools'${names.length ? ` (${names.join(', ')})` : ''}`);
    }
    return { mode: 'named', name };
  }
  throw bad('tool_choice', `'tool_choice' must be "none", "auto", "required" or {type: "function", function: {name: string}}, got ${describe(v)}`);
}

/** The tool fields of a chat body. */
export function parseToolFields(body: Body): ToolFields {
  const out: ToolFields = {};
  // The deprecated function-calling fields: refused rather than ignored, pointing at their replacements.
  if (present(body.functions)) throw bad('functions', "'functions' is deprecated and not supported: send 'tools' ([{type: \"function\", function: {...}}])");
  if (present(body.function_call)) throw bad('function_call', "'function_call' is deprecated and not supported: send 'tool_choice'");
  if (present(body.tools)) {
    const { tools, definitions } = parseTools(body.tools);
    if (tools.length > 0) {
      out.tools = tools;
      out.definitions = definitions;
    }
  }
  const names = (out.definitions ?? []).map((d) => d.name);
  if (present(body.tool_choice)) out.toolChoice = parseToolChoice(body.tool_choice, names);
  if (present(body.parallel_tool_calls)) {
    if (typeof body.parallel_tool_calls !== 'boolean')
      throw bad('parallel_tool_calls', `'parallel_tool_calls' must be a boolean, got ${describe(body.parallel_tool_calls)}`);
    out.parallelToolCalls = body.parallel_tool_calls;
  }
  return out;
}
