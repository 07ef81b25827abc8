// The structured-output request fields: OpenAI's `response_format` (text | json_object | json_schema) and the raw
// `grammar` extension (llama.cpp server's field: a GBNF string, start rule `root`), on both /v1/completions and
// /v1/chat/completions. Parsing here (schema.ts calls parseStructuredOutput); the JSON-schema compile happens when the
// engine request is built (request-builder.ts calls structuredGrammar), so a refused schema is a 400 with param
// `response_format` naming the keyword and its JSON pointer. docs/api.md "Structured output".
import { JSON_OBJECT_GRAMMAR, SchemaUnsupportedError, compileJsonSchema } from '../../structured/json-schema-grammar.js';
import { isEngineError } from '../../engine/errors.js';
import type { GenerationResult } from '../../engine/types.js';
import { validateJson } from '../../structured/json-validate.js';
import { type ControlPlaneError } from '../errors.js';
import { bad } from './request-errors.js';

export type StructuredMode = 'json_object' | 'json_schema' | 'grammar';

export interface StructuredOutput {
  mode: StructuredMode;
  /** json_schema: the schema (true when the request gave none: any JSON value). */
  schema?: unknown;
  /** json_schema.name / strict (strict changes nothing: the output is always constrained; docs/api.md). */
  name?: string;
  strict?: boolean;
  /** grammar: the client's GBNF text. */
  grammar?: string;
}

/** Longest raw grammar accepted here; the engine has its own (larger) limit. */
export const MAX_GRAMMAR_CHARS = 256 * 1024;
const NAME_RE = /^[A-Za-z0-9_-]{1,64}$/;

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const present = (body: Record<string, unknown>, k: string): boolean => body[k] !== undefined && body[k] !== null;

/** `response_format` and `grammar` from a request body; undefined for plain text (absent, or type "text"). */
export function parseStructuredOutput(body: Record<string, unknown>): StructuredOutput | undefined {
  const hasFormat = present(body, 'response_format');
  const hasGrammar = present(body, 'grammar');
  if (hasGrammar) {
    const g = body.grammar;
    if (typeof g !== 'string' || g.trim().length === 0) throw bad('grammar', "'grammar' must be a non-empty GBNF string (start rule root)");
    if (g.length > MAX_GRAMMAR_CHARS) throw bad('grammar', `'grammar' may be at most ${MAX_GRAMMAR_CHARS} characters long, got ${g.length}`);
    if (hasFormat) {
      const t = isObj(body.response_format) ? body.response_format.type : undefined;
      if (t !== 'text') throw bad('response_format', "'response_format' and 'grammar' cannot be used together: give one constraint");
    }
    return { mode: 'grammar', grammar: g };
  }
  if (!hasFormat) return undefined;
  const rf = body.response_format;
  if (!isObj(rf)) throw bad('response_format', '\'response_format\' must be an object like {type: "json_object"}');
  switch (rf.type) {
    case 'text':
      return undefined;
    case 'json_object':
      return { mode: 'json_object' };
    case 'json_schema': {
      const js = rf.json_schema;
      if (!isObj(js)) throw bad('response_format', "'response_format.json_schema' must be an object {name, schema, strict?, description?}");
      if (typeof js.name !== 'string' || !NAME_RE.test(js.name)) {
        throw bad('response_format', "'response_format.json_schema.name' must be 1 to 64 characters of a-z, A-Z, 0-9, _ and -");
      }
      if (present(js, 'strict') && typeof js.strict !== 'boolean') throw bad('response_format', "'response_format.json_schema.strict' must be a boolean");
      if (present(js, 'description') && typeof js.description !== 'string') throw bad('response_format', "'response_format.json_schema.description' must be a string");
      let schema: unknown = true;
      if (present(js, 'schema')) {
        if (!isObj(js.schema) && typeof js.schema !== 'boolean') throw bad('response_format', "'response_format.json_schema.schema' must be a JSON Schema object");
        schema = js.schema;
      }
      const out: StructuredOutput = { mode: 'json_schema', schema, name: js.name };
      if (typeof js.strict === 'boolean') out.strict = js.strict;
      return out;
    }
    default:
      throw bad('response_format', `'response_format.type' must be one of text, json_object, json_schema, got ${JSON.stringify(rf.type)?.slice(0, 40) ?? 'nothing'}`);
  }
}

/** The GBNF for a structured request; a schema the compiler refuses is a 400 naming the keyword and where it is. */
export function structuredGrammar(s: StructuredOutput): string {
  if (s.mode === 'grammar') return s.grammar!;
  if (s.mode === 'json_object') return JSON_OBJECT_GRAMMAR;
  try {
    return compileJsonSchema(s.schema, s.strict === undefined ? {} : { strict: s.strict }).grammar;
  } catch (e) {
    if (e instanceof SchemaUnsupportedError) {
      // The pointer is into json_schema.schema: say so, so the client finds it.
      throw bad('response_format', `response_format.json_schema.schema: ${e.message.replace(/\(at #/, '(at schema#')}`);
    }
    throw e;
  }
}

/** The param an engine refusal of this request's grammar points at: a raw grammar is the client's text ('grammar');
 *  a compiled one came from response_format. The engine's grammar errors start with "grammar:" (docs/structured-output.md). */
export function grammarRefusal(err: unknown, s: StructuredOutput | undefined): ControlPlaneError | undefined {
  if (!s || !isEngineError(err) || err.code !== 'INVALID_ARGUMENT' || !/^grammar\b/.test(err.message)) return undefined;
  return bad(
    s.mode === 'grammar' ? 'grammar' : 'response_format',
    s.mode === 'grammar' ? `'grammar' was refused: ${err.message}` : `the response_format grammar was refused: ${err.message}`,
  );
}

/** Run the engine's submit, re-throwing its refusal of the grammar as a 400 on the right param (grammarRefusal). */
export function withGrammarParam<T>(submit: () => T, s: StructuredOutput | undefined): T {
  try {
    return submit();
  } catch (err) {
    throw grammarRefusal(err, s) ?? err;
  }
}

/** Whether a finished structured answer is what was asked for (metrics: tuneloop_structured_parse_failures_total).
 *  A raw grammar need not be JSON, and a request without an answer (failed, cancelled) has nothing to check. */
export function structuredOutcome(s: StructuredOutput, r: GenerationResult | undefined): 'valid' | 'invalid_json' | 'schema_mismatch' | 'unchecked' {
  if (s.mode === 'grammar' || !r || r.finishReason === 'cancelled') return 'unchecked';
  let value: unknown;
  try {
    value = JSON.parse(r.text);
  } catch {
    return 'invalid_json';
  }
  if (s.mode === 'json_object') return typeof value === 'object' && value !== null && !Array.isArray(value) ? 'valid' : 'schema_mismatch';
  return validateJson(s.schema, value).length === 0 ? 'valid' : 'schema_mismatch';
}
