// Grammars that make a model call tools validly (GenerateRequest.grammar, GBNF with start rule `root`): the family's
// call syntax (families.ts) around each tool's arguments rule, compiled from its `parameters` schema by the JSON
// schema compiler (src/structured/json-schema-grammar.ts addSchemaRule; a tool without parameters takes any object).
//
//   tool_choice "required"  root = one call, or with parallel_tool_calls (the default) one or more
//   a named function        root = exactly one call of that function
//   "auto"                  the same rule as "required", lazily: grammarTriggers = the family's call opener, so the
//                           model writes freely until it starts a call, and from the opener on must finish a valid one
//
// The calls are spelled exactly as the family's template renders them (the text a model was trained on), with no
// whitespace choices: `<tool_call>\n{"name": "f", "arguments": {…}}\n</tool_call>` for Hermes/Qwen,
// `[TOOL_CALLS][{"name": "f", "arguments": {…}}]` for Mistral, DeepSeek's token sequence with a ```json fence, Llama
// 3.x's `{"name": "f", "parameters": {…}}`, and `{"tool_calls": [{"name": "f", "arguments": {…}}]}` for the generic
// family. When the prompt already opened a think block (promptOpensThink), the grammar first lets the reasoning run
// to `</think>`.
import { ControlPlaneError } from '../../errors.js';
import { addSchemaRule, schemaGrammarBuilder, SchemaUnsupportedError } from '../../../structured/json-schema-grammar.js';
import { alt, cls, lit, opt, ref, rep, seq, type Expr, type GrammarBuilder } from '../../../structured/gbnf.js';
import { DEEPSEEK, THINK_CLOSE, type ToolFamily } from './families.js';
import type { ToolDefinition } from '../schema-tools.js';

export interface ToolGrammar {
  grammar: string;
  /** Present for a lazy grammar (tool_choice auto). */
  triggers?: string[];
}

export interface ToolGrammarOptions {
  family: ToolFamily;
  /** The tools a call may use, with their index in the request's `tools` (for errors). */
  tools: readonly { index: number; definition: ToolDefinition }[];
  /** At most one call. */
  single: boolean;
  lazy: boolean;
  /** The prompt left the model inside a think block: let it finish its reasoning first (not for lazy grammars). */
  thinkOpen: boolean;
}

/** The text that opens a call of each family: the lazy grammar's trigger, and where its root starts. */
export const CALL_OPENER: Readonly<Record<ToolFamily, string>> = {
  hermes: '<tool_call>',
  mistral: '[TOOL_CALLS]',
  deepseek: DEEPSEEK.callsBegin,
  llama3: '{"name"',
  generic: '{"tool_calls"',
};

/** One call of tool `name` whose arguments match rule `args`, spelled as the family's template spells it. */
function callExpr(family: ToolFamily, name: string, args: string): Expr {
  const nameJson = JSON.stringify(name);
  switch (family) {
    case 'hermes':
      return seq(lit(`<tool_call>\n{"name": ${nameJson}, "arguments": `), ref(args), lit('}\n</tool_call>'));
    case 'deepseek':
      return seq(lit(`${DEEPSEEK.callBegin}function${DEEPSEEK.sep}${name}\n\`\`\`json\n`), ref(args), lit(`\n\`\`\`${DEEPSEEK.callEnd}`));
    case 'llama3':
      return seq(lit(`{"name": ${nameJson}, "parameters": `), ref(args), lit('}'));
    case 'mistral':
    case 'generic':
      return seq(lit(`{"name": ${nameJson}, "arguments": `), ref(args), lit('}'));
  }
}

/** The calls (one, or one or more) wrapped as the family wraps a turn's calls. */
function callsExpr(family: ToolFamily, call: string, single: boolean): Expr {
  const more = (sep: string): Expr => (single ? lit('') : rep(seq(lit(sep), ref(call)), 0));
  switch (family) {
    case 'hermes':
      return seq(ref(call), more('\n'));
    case 'deepseek':
      return seq(lit(DEEPSEEK.callsBegin), ref(call), more('\n'), lit(DEEPSEEK.callsEnd));
    case 'llama3':
      return seq(ref(call), more('; '));
    case 'mistral':
      return seq(lit('[TOOL_CALLS]['), ref(call), more(', '), lit(']'));
    case 'generic':
      return seq(lit('{"tool_calls": ['), ref(call), more(', '), lit(']}'));
  }
}

/** Reasoning text up to `</think>`: any text in which `</` is not followed by `think>` (a close approximation: `</t`
 *  must go on to spell the close tag). */
function thinkExpr(b: GrammarBuilder): Expr {
  const ch = b.intern('think-char', alt(cls(['<'], true), seq(lit('<'), cls(['/'], true)), seq(lit('</'), cls(['t'], true))));
  return seq(rep(ref(ch), 0), lit(THINK_CLOSE), opt(lit('\n\n')));
}

/** The grammar; a tool's parameters the compiler cannot honour are a 400 naming `tools[i].function.parameters`. */
export function toolCallGrammar(o: ToolGrammarOptions): ToolGrammar {
  const b = schemaGrammarBuilder();
  const calls: Expr[] = [];
  for (const { index, definition } of o.tools) {
    const args = b.name(`args-${definition.name}`);
    try {
      // Arguments are always an object; a tool without parameters takes any object.
      addSchemaRule(b, definition.parameters ?? { type: 'object' }, args, definition.strict !== undefined ? { strict: definition.strict } : undefined);
    } catch (e) {
      if (e instanceof SchemaUnsupportedError) {
        const param = `tools[${index}].function.parameters`;
        throw new ControlPlaneError('CP_ERR_INVALID_REQUEST', `'${param}': ${e.message}${e.keyword !== undefined ? ` (keyword '${e.keyword}')` : ''}`, { param });
      }
      throw e;
    }
    calls.push(callExpr(o.family, definition.name, args));
  }
  const call = b.define(b.name('call'), alt(...calls));
  const body = callsExpr(o.family, call, o.single);
  b.define('root', o.thinkOpen && !o.lazy ? seq(thinkExpr(b), body) : body);
  const out: ToolGrammar = { grammar: b.print() };
  if (o.lazy) out.triggers = [CALL_OPENER[o.family]];
  return out;
}
