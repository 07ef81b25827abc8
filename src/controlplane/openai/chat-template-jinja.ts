// Rendering a model's Jinja chat template (`tokenizer.chat_template` of a GGUF) with @huggingface/jinja, set up the
// way Hugging Face's `apply_chat_template` sets up Python's Jinja2, so a template renders here byte for byte as it
// renders for the model's authors (tests/controlplane/chat-templates-reference.test.ts compares against Jinja2):
//
//   render(messages, tools (or none), documents = none, add_generation_prompt, bos_token, eos_token)
//   globals: raise_exception(message) (→ TemplateRaise), strftime_now(format) (the server's local clock)
//   filters: tojson as json.dumps(x, ensure_ascii=False, indent, separators, sort_keys) — @huggingface/jinja's
//   own tojson already has these semantics; trim_blocks and lstrip_blocks are on in its lexer.
//
// This module is pure and synchronous: it runs inside the template worker (template-worker.ts), which bounds its time
// and memory. Nothing here should be called on the server's event loop with a model's template.
import * as jinja from '@huggingface/jinja';

// The library's typings re-export Environment and Interpreter from extensionless paths that NodeNext resolution does
// not follow, so they arrive untyped: these are the parts used here.
type RuntimeValue = { type: string; value: unknown };
interface JinjaEnvironment {
  set(name: string, value: unknown): RuntimeValue;
}
type FilterNode = { type: string; value?: string; callee?: { value?: string } };
type ApplyFilter = (this: unknown, operand: RuntimeValue, filter: FilterNode, env: JinjaEnvironment) => RuntimeValue;
interface InterpreterClass {
  new (env: JinjaEnvironment): { run(program: unknown): RuntimeValue };
}
const Environment = (jinja as unknown as { Environment: new () => JinjaEnvironment }).Environment;
const Interpreter = (jinja as unknown as { Interpreter: InterpreterClass }).Interpreter;
const Template = jinja.Template;

/** `raise_exception(message)` called by the template: the conversation is one the template refuses. */
export class TemplateRaise extends Error {
  override readonly name = 'TemplateRaise';
}

/** The template does not parse. */
export class TemplateSyntaxError extends Error {
  override readonly name = 'TemplateSyntaxError';
}

export interface ChatTemplateContext {
  /** The conversation as the template sees it: role, content, and any other fields (tool_calls, name, ...). */
  messages: readonly Record<string, unknown>[];
  /** Tool definitions (OpenAI's `tools`), or null: Hugging Face passes None when there are none. */
  tools?: readonly unknown[] | null;
  addGenerationPrompt: boolean;
  /** The texts of the vocabulary's BOS and EOS tokens ('' when the vocabulary has none). */
  bosToken: string;
  eosToken: string;
  /** strftime_now's clock; default: now. */
  now?: Date;
}

export interface CompiledChatTemplate {
  render(ctx: ChatTemplateContext): string;
}

/** Parse a template once; TemplateSyntaxError when it does not parse. */
export function compileChatTemplate(source: string): CompiledChatTemplate {
  let template: jinja.Template;
  try {
    template = new Template(source);
  } catch (e) {
    throw new TemplateSyntaxError((e as Error).message);
  }
  return {
    render(ctx) {
      const now = ctx.now ?? new Date();
      // Our own global scope instead of Template.render's: its setupGlobals declares raise_exception and
      // strftime_now, and a scope refuses a second declaration of a name.
      const env = new Environment();
      const globals: Record<string, unknown> = {
        true: true,
        false: false,
        none: null,
        True: true,
        False: false,
        None: null,
        range: pythonRange,
        raise_exception: (message?: unknown) => {
          throw new TemplateRaise(typeof message === 'string' ? message : JSON.stringify(message ?? 'raise_exception() called by the chat template'));
        },
        strftime_now: (format: unknown) => {
          if (typeof format !== 'string') throw new Error('strftime_now expects a format string');
          return strftime(now, format);
        },
        messages: ctx.messages,
        tools: ctx.tools ?? null,
        documents: null,
        add_generation_prompt: ctx.addGenerationPrompt,
        bos_token: ctx.bosToken,
        eos_token: ctx.eosToken,
      };
      for (const [k, v] of Object.entries(globals)) env.set(k, v);
      return new Jinja2CompatInterpreter(env).run(template.parsed).value as string;
    },
  };
}

// Where @huggingface/jinja refuses what Jinja2 accepts, and real templates rely on it (the reference test shows which):
//  - a filter over an undefined value: Jinja2's Undefined prints as '' (Hermes' `param_fields.description|trim`);
//  - select/reject/selectattr/rejectattr/map over none or undefined: Jinja2's implementations start with
//    `if seq:` and yield nothing (functionary v3.1's `tools | selectattr(...)` when tools is none);
//  - `{% for a, b in [("x", "y"), ...] %}`: the library unpacks only values typed ArrayValue in a for loop, and its
//    tuples (a subclass) carry the type name TupleValue; nothing else reads that name, so a tuple literal's value is
//    relabelled (functionary v3.2's parameter descriptions).
// applyFilter is private in the library's typings, so the override goes on the prototype of a subclass.
const SEQUENCE_FILTERS = new Set(['select', 'reject', 'selectattr', 'rejectattr', 'map']);
class Jinja2CompatInterpreter extends Interpreter {}
type Evaluate = (this: unknown, node: { type: string } | undefined, env: JinjaEnvironment) => RuntimeValue;
const baseEvaluate = (Interpreter.prototype as unknown as { evaluate: Evaluate }).evaluate;
(Jinja2CompatInterpreter.prototype as unknown as { evaluate: Evaluate }).evaluate = function (node, env) {
  const v = baseEvaluate.call(this, node, env);
  if (node?.type === 'TupleLiteral' && v.type === 'TupleValue') v.type = 'ArrayValue';
  return v;
};
const baseApplyFilter = (Interpreter.prototype as unknown as { applyFilter: ApplyFilter }).applyFilter;
(Jinja2CompatInterpreter.prototype as unknown as { applyFilter: ApplyFilter }).applyFilter = function (operand, filter, env) {
  const name = filter.type === 'Identifier' ? filter.value : filter.callee?.value;
  const absent = operand.type === 'UndefinedValue' || operand.type === 'NullValue';
  // A fresh runtime value of the library's own classes (they are not exported): Environment.set converts.
  const value = (v: unknown): RuntimeValue => new Environment().set('v', v);
  if (absent && name !== undefined && SEQUENCE_FILTERS.has(name)) return value([]);
  if (operand.type === 'UndefinedValue' && name !== undefined && !['default', 'd', 'length', 'count', 'tojson'].includes(name)) {
    return baseApplyFilter.call(this, value(''), filter, env);
  }
  return baseApplyFilter.call(this, operand, filter, env);
};

/** Python's range(stop) / range(start, stop[, step]). */
function pythonRange(...args: unknown[]): number[] {
  if (!args.every((a) => Number.isInteger(a))) throw new Error('range() expects integers');
  const [a, b, c] = args as number[];
  const [start, stop, step] = b === undefined ? [0, a ?? 0, 1] : [a!, b, c ?? 1];
  if (step === 0) throw new Error('range() step must not be zero');
  const out: number[] = [];
  for (let i = start; step > 0 ? i < stop : i > stop; i += step) out.push(i);
  return out;
}

const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];

/** Python's datetime.strftime in the C locale, for the codes templates use (%d %b %Y for Llama 3.x's date line).
 *  @huggingface/jinja's own strftime_now names months through Intl in the host's locale, which is not what Python
 *  prints. A code not listed stays as written, as glibc leaves an unknown conversion. */
export function strftime(d: Date, format: string): string {
  const p2 = (n: number): string => String(n).padStart(2, '0');
  const hour12 = d.getHours() % 12 === 0 ? 12 : d.getHours() % 12;
  const start = new Date(d.getFullYear(), 0, 1);
  const dayOfYear = Math.floor((Date.UTC(d.getFullYear(), d.getMonth(), d.getDate()) - Date.UTC(start.getFullYear(), 0, 1)) / 86_400_000) + 1;
  const codes: Record<string, () => string> = {
    a: () => DAYS[d.getDay()]!.slice(0, 3),
    A: () => DAYS[d.getDay()]!,
    b: () => MONTHS[d.getMonth()]!.slice(0, 3),
    B: () => MONTHS[d.getMonth()]!,
    d: () => p2(d.getDate()),
    e: () => String(d.getDate()).padStart(2, ' '),
    '-d': () => String(d.getDate()),
    '-m': () => String(d.getMonth() + 1),
    H: () => p2(d.getHours()),
    I: () => p2(hour12),
    j: () => String(dayOfYear).padStart(3, '0'),
    m: () => p2(d.getMonth() + 1),
    M: () => p2(d.getMinutes()),
    p: () => (d.getHours() < 12 ? 'AM' : 'PM'),
    S: () => p2(d.getSeconds()),
    y: () => p2(d.getFullYear() % 100),
    Y: () => String(d.getFullYear()),
    '%': () => '%',
  };
  return format.replace(/%(-?[a-zA-Z%])/g, (whole, code: string) => codes[code]?.() ?? whole);
}
