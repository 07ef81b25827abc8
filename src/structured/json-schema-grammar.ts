// JSON Schema → GBNF (llama.cpp's dialect, start rule `root`): the grammar behind response_format json_schema /
// json_object, and (through addSchemaRule) the argument grammars of tool calls.
//
// The contract: every string the grammar accepts is JSON that validates against the schema. The grammar may accept
// fewer documents than the schema does (a subset, documented in docs/api.md "Structured output"): no whitespace
// beyond bounded slots, numbers with at most 16 integral and 16 fractional digits, no properties beyond the declared
// ones unless additionalProperties says so, object keys in declared order, no \u escapes of surrogates, and bounds on
// non-integer numbers rounded inwards to integers. Anything the compiler cannot honour is refused with a
// SchemaUnsupportedError naming the keyword and its JSON pointer — never silently dropped.
//
// Hostile schemas: the walk counts schema nodes, depth and distinct $ref targets against limits, the builder caps the
// rule count and printed size, repetition counts are capped, and a rule that can never finish (a cycle of required
// properties, `$ref: "#"` with nothing else) is found by a productivity fixed point before the grammar is returned. Every
// step is linear in the schema's size, so compile time is bounded by the limits.
import { alt, cls, EMPTY, type Expr, GrammarBuilder, GrammarLimitError, lit, opt, ref, rep, seq } from './gbnf.js';
import { signedRange, unsignedRange } from './integer-range.js';

export type SchemaErrorReason = 'unsupported' | 'invalid' | 'unsatisfiable' | 'limit';

/** A schema the compiler refuses. `path` is a JSON pointer into the schema ("#/properties/a/pattern"); `keyword` the
 *  keyword at fault when there is one. The control plane answers 400 with the message. */
export class SchemaUnsupportedError extends Error {
  constructor(
    readonly path: string,
    readonly keyword: string | undefined,
    readonly reason: SchemaErrorReason,
    detail: string,
  ) {
    super(`${detail} (at ${path})`);
    this.name = 'SchemaUnsupportedError';
  }
}

export interface SchemaLimits {
  /** Schema objects visited (every subschema, every enum value). */
  maxNodes: number;
  /** Nesting of subschemas, $ref hops included. */
  maxDepth: number;
  /** Distinct $ref targets. */
  maxRefs: number;
  /** Largest minLength/maxLength/minItems/maxItems the grammar spells out (a counted repetition is that many rules
   *  in llama.cpp's expansion). */
  maxRepeat: number;
  /** Grammar rules and printed characters. */
  maxRules: number;
  maxChars: number;
}

export const DEFAULT_SCHEMA_LIMITS: SchemaLimits = { maxNodes: 10_000, maxDepth: 64, maxRefs: 1_000, maxRepeat: 10_000, maxRules: 20_000, maxChars: 4 * 1024 * 1024 };

export interface CompileOptions {
  /** json_schema.strict. Accepted; it changes nothing: decoding is always constrained to the schema (see docs). */
  strict?: boolean;
  /** 'flexible' (default): each whitespace slot takes nothing, a space, or a newline and up to 20 spaces/tabs.
   *  'compact': no whitespace at all. */
  whitespace?: 'flexible' | 'compact';
  limits?: Partial<SchemaLimits>;
}

/** Digits a number may have before and after the point: a model must not be able to write digits forever. */
export const MAX_INT_DIGITS = 16;
export const MAX_FRAC_DIGITS = 16;
/** Exponent digits: two, so every number the grammar accepts is finite as a double (|x| < 1e116). */
export const MAX_EXP_DIGITS = 2;
/** Spaces/tabs after a newline in one whitespace slot. */
export const MAX_INDENT = 20;

const ANNOTATIONS = new Set(['title', 'description', '$schema', 'default', 'examples', '$comment', '$id', 'id', 'deprecated', 'readOnly', 'writeOnly']);
const KNOWN = new Set([
  ...ANNOTATIONS,
  'type',
  'enum',
  'const',
  'anyOf',
  'oneOf',
  'allOf',
  '$ref',
  '$defs',
  'definitions',
  'properties',
  'required',
  'additionalProperties',
  'items',
  'prefixItems',
  'additionalItems',
  'minItems',
  'maxItems',
  'uniqueItems',
  'minLength',
  'maxLength',
  'minimum',
  'maximum',
  'exclusiveMinimum',
  'exclusiveMaximum',
  'nullable',
]);
const TYPES = ['object', 'array', 'string', 'number', 'integer', 'boolean', 'null'] as const;
type JsonType = (typeof TYPES)[number];
const OBJECT_KW = ['properties', 'required', 'additionalProperties'];
const ARRAY_KW = ['items', 'prefixItems', 'additionalItems', 'minItems', 'maxItems'];
const STRING_KW = ['minLength', 'maxLength'];
const NUMBER_KW = ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum'];

type Schema = Record<string, unknown>;

const isObj = (v: unknown): v is Schema => typeof v === 'object' && v !== null && !Array.isArray(v);
const has = (s: Schema, k: string): boolean => Object.hasOwn(s, k);
const jsonTypeOf = (v: unknown): JsonType => {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v as JsonType;
};
const typeAccepts = (t: JsonType, v: unknown): boolean => {
  const vt = jsonTypeOf(v);
  return t === vt || (t === 'number' && vt === 'integer');
};

function pointerEscape(seg: string): string {
  return seg.replace(/~/g, '~0').replace(/\//g, '~1');
}

/** The shared JSON rules (any value, strings, numbers), interned so several schemas in one builder share them. */
interface Common {
  ws: Expr;
  value(): Expr;
  string(): Expr;
  char(): Expr;
  number(): Expr;
  integer(): Expr;
  object(): Expr;
}

function commonRules(b: GrammarBuilder, whitespace: 'flexible' | 'compact'): Common {
  const ws =
    whitespace === 'compact' ? EMPTY : ref(b.intern('ws', alt(EMPTY, lit(' '), seq(lit('\n'), rep(cls([' ', '\t']), 0, MAX_INDENT))))); /* bounded: see MAX_INDENT */
  const hex = cls([
    ['0', '9'],
    ['a', 'f'],
    ['A', 'F'],
  ]);
  let charName: string | undefined;
  const char = (): Expr => {
    // One JSON string character: any code point but '"', '\' and controls, or an escape. \u escapes of UTF-16
    // surrogates are left out, so every accepted character is one code point (what minLength/maxLength count).
    charName ??= b.intern(
      'char',
      alt(
        cls(['"', '\\', ['\x00', '\x1F']], true),
        seq(
          lit('\\'),
          alt(
            cls(['"', '\\', '/', 'b', 'f', 'n', 'r', 't']),
            seq(
              lit('u'),
              alt(seq(cls([['0', '9'], ['a', 'c'], ['A', 'C'], 'e', 'f', 'E', 'F']), rep(hex, 3, 3)), seq(cls(['d', 'D']), cls([['0', '7']]), rep(hex, 2, 2))),
            ),
          ),
        ),
      ),
    );
    return ref(charName);
  };
  let stringName: string | undefined;
  const string = (): Expr => ref((stringName ??= b.intern('string', seq(lit('"'), rep(char(), 0), lit('"')))));
  const intPart = (): Expr => ref(b.intern('int-part', alt(lit('0'), seq(cls([['1', '9']]), rep(cls([['0', '9']]), 0, MAX_INT_DIGITS - 1)))));
  let numberName: string | undefined;
  const number = (): Expr =>
    ref(
      (numberName ??= b.intern(
        'number',
        seq(
          opt(lit('-')),
          intPart(),
          opt(seq(lit('.'), rep(cls([['0', '9']]), 1, MAX_FRAC_DIGITS))),
          opt(seq(cls(['e', 'E']), opt(cls(['-', '+'])), rep(cls([['0', '9']]), 1, MAX_EXP_DIGITS))),
        ),
      )),
    );
  let integerName: string | undefined;
  const integer = (): Expr => ref((integerName ??= b.intern('integer', seq(opt(lit('-')), intPart()))));
  // The any-value rules refer to each other, so they are reserved first and defined after.
  let valueName: string | undefined;
  let objectName: string | undefined;
  const ensureAny = (): void => {
    if (valueName !== undefined) return;
    valueName = b.name('value');
    objectName = b.name('object');
    const arrayName = b.name('array');
    const v = ref(valueName);
    const kv = seq(string(), ws, lit(':'), ws, v, ws);
    b.define(objectName, seq(lit('{'), ws, opt(seq(kv, rep(seq(lit(','), ws, kv), 0))), lit('}')));
    const item = seq(v, ws);
    b.define(arrayName, seq(lit('['), ws, opt(seq(item, rep(seq(lit(','), ws, item), 0))), lit(']')));
    b.define(valueName, alt(ref(objectName), ref(arrayName), string(), number(), lit('true'), lit('false'), lit('null')));
  };
  return {
    ws,
    char,
    string,
    number,
    integer,
    value: () => {
      ensureAny();
      return ref(valueName!);
    },
    object: () => {
      ensureAny();
      return ref(objectName!);
    },
  };
}

interface Bound {
  v: number;
  open: boolean;
}

class SchemaCompiler {
  private nodes = 0;
  private readonly refRules = new Map<string, string>();
  /** Rule name → the schema path it came from, for the unproductive-rule error. */
  readonly ruleOrigin = new Map<string, string>();
  private readonly c: Common;

  constructor(
    private readonly b: GrammarBuilder,
    private readonly root: unknown,
    private readonly limits: SchemaLimits,
    whitespace: 'flexible' | 'compact',
  ) {
    this.c = commonRules(b, whitespace);
  }

  fail(path: string, keyword: string | undefined, reason: SchemaErrorReason, detail: string): never {
    throw new SchemaUnsupportedError(path, keyword, reason, detail);
  }

  /** Compile the whole document into rule `name` (a `$ref: "#"` refers back to it). */
  compileRoot(name: string): string {
    this.refRules.set('#', name);
    this.ruleOrigin.set(name, '#');
    this.b.define(name, this.compile(this.root, '#', 0));
    return name;
  }

  private count(path: string, n = 1): void {
    this.nodes += n;
    if (this.nodes > this.limits.maxNodes) this.fail(path, undefined, 'limit', `the schema has more than ${this.limits.maxNodes} subschemas and values`);
  }

  private nonNegInt(s: Schema, k: string, path: string): number | undefined {
    if (!has(s, k)) return undefined;
    const v = s[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) this.fail(`${path}/${k}`, k, 'invalid', `'${k}' must be a non-negative integer`);
    return v;
  }

  /** A repetition count the grammar will spell out: refused past maxRepeat. */
  private repeatCount(v: number | undefined, k: string, path: string): number | undefined {
    if (v !== undefined && v > this.limits.maxRepeat) {
      this.fail(`${path}/${k}`, k, 'limit', `'${k}' ${v} is larger than this server's grammar limit of ${this.limits.maxRepeat}`);
    }
    return v;
  }

  compile(schema: unknown, path: string, depth: number): Expr {
    this.count(path);
    if (depth > this.limits.maxDepth) this.fail(path, undefined, 'limit', `the schema nests deeper than ${this.limits.maxDepth} levels`);
    if (schema === true) return this.c.value();
    if (schema === false) this.fail(path, undefined, 'unsatisfiable', 'the schema `false` accepts nothing');
    if (!isObj(schema)) this.fail(path, undefined, 'invalid', 'a schema must be an object or a boolean');
    for (const k of Object.keys(schema)) {
      if (!KNOWN.has(k)) this.fail(`${path}/${pointerEscape(k)}`, k, 'unsupported', `the JSON Schema keyword '${k}' is not supported`);
    }
    if (has(schema, 'uniqueItems') && schema.uniqueItems !== false) {
      this.fail(`${path}/uniqueItems`, 'uniqueItems', 'unsupported', "the JSON Schema keyword 'uniqueItems' is not supported (only uniqueItems: false)");
    }
    for (const k of ['$defs', 'definitions']) if (has(schema, k) && !isObj(schema[k])) this.fail(`${path}/${k}`, k, 'invalid', `'${k}' must be an object`);

    const types = this.types(schema, path);
    const structural = ['$ref', 'anyOf', 'oneOf', 'allOf', 'enum', 'const'].filter((k) => has(schema, k));
    // Combinators stand alone beside annotations: keywords next to them would have to be intersected with each
    // branch, which the compiler does not do (refused rather than dropped).
    if (structural.length > 1 && !(structural.length === 2 && structural.includes('enum') && structural.includes('const'))) {
      this.fail(path, structural[1], 'unsupported', `'${structural[0]}' together with '${structural[1]}' in one schema is not supported`);
    }
    const nullable = schema.nullable === true;
    if (has(schema, 'nullable') && typeof schema.nullable !== 'boolean') this.fail(`${path}/nullable`, 'nullable', 'invalid', "'nullable' must be a boolean");
    const withNull = (e: Expr): Expr => (nullable && !(types?.includes('null') ?? false) ? alt(e, lit('null')) : e);
    const constraintKeys = [...OBJECT_KW, ...ARRAY_KW, ...STRING_KW, ...NUMBER_KW, 'type'].filter((k) => has(schema, k));

    if (has(schema, 'enum') || has(schema, 'const')) return withNull(this.literals(schema, path, types));
    const kw = structural[0];
    if (kw !== undefined) {
      if (constraintKeys.length > 0)
        this.fail(`${path}/${constraintKeys[0]}`, constraintKeys[0], 'unsupported', `'${constraintKeys[0]}' beside '${kw}' is not supported`);
      if (kw === '$ref') return withNull(this.ref(schema.$ref, path, depth));
      if (kw === 'allOf') return withNull(this.allOf(schema.allOf, path, depth));
      const branches = schema[kw];
      if (!Array.isArray(branches) || branches.length === 0) this.fail(`${path}/${kw}`, kw, 'invalid', `'${kw}' must be a non-empty array of schemas`);
      return withNull(alt(...branches.map((sub, i) => this.compile(sub, `${path}/${kw}/${i}`, depth + 1))));
    }
    let use: JsonType[];
    if (types) {
      use = types;
    } else {
      // No `type`: the keywords present say which kinds of value they constrain; a schema with none is any value.
      use = [];
      if (OBJECT_KW.some((k) => has(schema, k))) use.push('object');
      if (ARRAY_KW.some((k) => has(schema, k))) use.push('array');
      if (STRING_KW.some((k) => has(schema, k))) use.push('string');
      if (NUMBER_KW.some((k) => has(schema, k))) use.push('number');
      if (use.length === 0) return this.c.value();
    }
    // "number" already covers integers.
    if (use.includes('number')) use = use.filter((t) => t !== 'integer');
    return withNull(alt(...use.map((t) => this.typed(t, schema, path, depth))));
  }

  private types(schema: Schema, path: string): JsonType[] | undefined {
    if (!has(schema, 'type')) return undefined;
    const t = schema.type;
    const list = typeof t === 'string' ? [t] : t;
    if (!Array.isArray(list)) this.fail(`${path}/type`, 'type', 'invalid', "'type' must be a string or an array of strings");
    if (list.length === 0) this.fail(`${path}/type`, 'type', 'unsatisfiable', "'type' is an empty array: no value has none of the types");
    for (const x of list) {
      if (typeof x !== 'string' || !(TYPES as readonly string[]).includes(x)) {
        this.fail(`${path}/type`, 'type', 'invalid', `'type' ${JSON.stringify(x)} is not one of ${TYPES.join(', ')}`);
      }
    }
    return [...new Set(list as JsonType[])];
  }

  private typed(t: JsonType, s: Schema, path: string, depth: number): Expr {
    switch (t) {
      case 'null':
        return lit('null');
      case 'boolean':
        return alt(lit('true'), lit('false'));
      case 'string':
        return this.string(s, path);
      case 'integer':
      case 'number':
        return this.number(t, s, path);
      case 'array':
        return this.array(s, path, depth);
      case 'object':
        return this.object(s, path, depth);
    }
  }

  private string(s: Schema, path: string): Expr {
    const min = this.repeatCount(this.nonNegInt(s, 'minLength', path), 'minLength', path) ?? 0;
    const max = this.repeatCount(this.nonNegInt(s, 'maxLength', path), 'maxLength', path);
    if (max !== undefined && min > max) this.fail(path, 'minLength', 'unsatisfiable', `minLength ${min} is greater than maxLength ${max}`);
    if (min === 0 && max === undefined) return this.c.string();
    return seq(lit('"'), rep(this.c.char(), min, max), lit('"'));
  }

  private bound(s: Schema, path: string, k: 'minimum' | 'maximum'): Bound | undefined {
    const ek = k === 'minimum' ? 'exclusiveMinimum' : 'exclusiveMaximum';
    let out: Bound | undefined;
    if (has(s, k)) {
      const v = s[k];
      if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(`${path}/${k}`, k, 'invalid', `'${k}' must be a number`);
      out = { v, open: false };
    }
    if (has(s, ek)) {
      const e = s[ek];
      if (typeof e === 'boolean') {
        // Draft 4: a flag on minimum/maximum.
        if (e && out) out.open = true;
      } else if (typeof e === 'number' && Number.isFinite(e)) {
        const tighter = !out || (k === 'minimum' ? e >= out.v : e <= out.v);
        if (tighter) out = { v: e, open: true };
      } else {
        this.fail(`${path}/${ek}`, ek, 'invalid', `'${ek}' must be a number`);
      }
    }
    return out;
  }

  private number(t: 'integer' | 'number', s: Schema, path: string): Expr {
    const lo = this.bound(s, path, 'minimum');
    const hi = this.bound(s, path, 'maximum');
    if (lo && hi && (lo.v > hi.v || (lo.v === hi.v && (lo.open || hi.open)))) {
      this.fail(path, 'minimum', 'unsatisfiable', `no number satisfies the bounds (${lo.open ? '>' : '>='} ${lo.v} and ${hi.open ? '<' : '<='} ${hi.v})`);
    }
    if (!lo && !hi) return t === 'integer' ? this.c.integer() : this.c.number();
    // Bounds rounded inwards to integers: a non-integer bound becomes the nearest integer inside it, closed.
    const cap = 10n ** BigInt(MAX_INT_DIGITS) - 1n;
    const L = lo && (Number.isInteger(lo.v) ? { v: BigInt(lo.v), open: lo.open } : { v: BigInt(Math.ceil(lo.v)), open: false });
    const H = hi && (Number.isInteger(hi.v) ? { v: BigInt(hi.v), open: hi.open } : { v: BigInt(Math.floor(hi.v)), open: false });
    if (t === 'integer') {
      let a = L ? (L.open ? L.v + 1n : L.v) : undefined;
      let z = H ? (H.open ? H.v - 1n : H.v) : undefined;
      // An open side stops at 16 digits, or at as many digits as the other bound if that has more.
      if (a === undefined) a = z! < -cap ? -(10n ** BigInt((-z!).toString().length) - 1n) : -cap;
      if (z === undefined) z = a > cap ? 10n ** BigInt(a.toString().length) - 1n : cap;
      if (a > z) this.fail(path, 'minimum', 'unsatisfiable', `no integer satisfies the bounds (${lo ? lo.v : '-inf'} .. ${hi ? hi.v : 'inf'})`);
      return ref(this.b.intern('int-range', signedRange(a, z)));
    }
    const e = this.boundedNumber(L, H);
    if (!e) this.fail(path, 'minimum', 'unsupported', `the bounds ${lo?.v ?? '-inf'} .. ${hi?.v ?? 'inf'} are closer than the integers the grammar rounds them to`);
    return ref(this.b.intern('num-range', e));
  }

  /** Decimal numbers (no exponent) within integer-aligned bounds, built on their magnitude. */
  private boundedNumber(L: { v: bigint; open: boolean } | undefined, H: { v: bigint; open: boolean } | undefined): Expr | undefined {
    const limit = { v: 10n ** BigInt(MAX_INT_DIGITS), open: true };
    const digit = cls([['0', '9']]);
    const frac = seq(lit('.'), rep(digit, 1, MAX_FRAC_DIGITS));
    const nonzeroFrac = seq(lit('.'), rep(digit, 0, MAX_FRAC_DIGITS - 1), cls([['1', '9']]));
    const magnitude = (a: { v: bigint; open: boolean }, z: { v: bigint; open: boolean }): Expr | undefined => {
      const alts: Expr[] = [];
      const anyLo = a.open ? a.v + 1n : a.v;
      const anyHi = z.v - 1n;
      if (anyLo <= anyHi) alts.push(seq(unsignedRange(anyLo, anyHi), opt(frac)));
      if (a.open && a.v + 1n <= z.v) alts.push(seq(lit(a.v.toString()), nonzeroFrac));
      if (!z.open && z.v >= a.v && !(a.open && z.v === a.v)) alts.push(lit(z.v.toString()));
      return alts.length > 0 ? alt(...alts) : undefined;
    };
    const parts: Expr[] = [];
    if (!H || H.v > 0n || (H.v === 0n && !H.open)) {
      const a = !L || L.v < 0n ? { v: 0n, open: false } : L;
      const m = magnitude(a, H ?? limit);
      if (m) parts.push(m);
    }
    if (!L || L.v < 0n) {
      const a = !H || H.v >= 0n ? { v: 0n, open: true } : { v: -H.v, open: H.open };
      const z = L ? { v: -L.v, open: L.open } : limit;
      const m = magnitude(a, z);
      if (m) parts.push(seq(lit('-'), m));
    }
    return parts.length > 0 ? alt(...parts) : undefined;
  }

  private array(s: Schema, path: string, depth: number): Expr {
    const ws = this.c.ws;
    const min = this.repeatCount(this.nonNegInt(s, 'minItems', path), 'minItems', path) ?? 0;
    const max = this.repeatCount(this.nonNegInt(s, 'maxItems', path), 'maxItems', path);
    if (max !== undefined && min > max) this.fail(path, 'minItems', 'unsatisfiable', `minItems ${min} is greater than maxItems ${max}`);
    // Tuples: prefixItems (2020-12) or an items array (draft 7, with additionalItems for the rest).
    let prefix: unknown[] = [];
    let prefixKey = 'prefixItems';
    let rest: unknown;
    let restKey = 'items';
    let tuple = false;
    if (has(s, 'prefixItems')) {
      tuple = true;
      if (!Array.isArray(s.prefixItems)) this.fail(`${path}/prefixItems`, 'prefixItems', 'invalid', "'prefixItems' must be an array of schemas");
      prefix = s.prefixItems;
      if (has(s, 'additionalItems'))
        this.fail(`${path}/additionalItems`, 'additionalItems', 'unsupported', "'additionalItems' beside 'prefixItems' is not supported (use 'items')");
      rest = s.items;
    } else if (Array.isArray(s.items)) {
      tuple = true;
      prefix = s.items;
      prefixKey = 'items';
      rest = s.additionalItems;
      restKey = 'additionalItems';
    } else {
      rest = s.items;
      if (has(s, 'additionalItems')) this.fail(`${path}/additionalItems`, 'additionalItems', 'unsupported', "'additionalItems' without an 'items' array means nothing");
    }
    if (tuple) {
      // The grammar writes the tuple's items in full (as many as maxItems allows), then more from the rest schema
      // only as far as minItems needs: a subset of what the schema allows, always valid.
      const k = max === undefined ? prefix.length : Math.min(prefix.length, max);
      const items = prefix.slice(0, k).map((sub, i) => this.compile(sub, `${path}/${prefixKey}/${i}`, depth + 1));
      const more = Math.max(0, min - k);
      let extra: Expr[] = [];
      if (more > 0) {
        if (rest === false) this.fail(path, 'minItems', 'unsatisfiable', `minItems ${min} needs more items than the ${prefix.length} the tuple allows`);
        const r = rest === undefined ? this.c.value() : this.compile(rest, `${path}/${restKey}`, depth + 1);
        extra = Array.from({ length: more }, () => r);
      } else if (isObj(rest) || rest === true) {
        this.compile(rest, `${path}/${restKey}`, depth + 1); // checked for support even though no extra item is written
      }
      const all = [...items, ...extra];
      if (all.length === 0) return seq(lit('['), ws, lit(']'));
      return seq(lit('['), ws, ...all.flatMap((e, i) => (i === 0 ? [e, ws] : [lit(','), ws, e, ws])), lit(']'));
    }
    if (max === 0) return seq(lit('['), ws, lit(']'));
    const item = rest === undefined ? this.c.value() : this.compile(rest, `${path}/items`, depth + 1);
    const itemRule = ref(this.b.intern(`${this.hint(path)}-item`, seq(item, ws)));
    const tail = rep(seq(lit(','), ws, itemRule), Math.max(0, min - 1), max === undefined ? undefined : max - 1);
    const list = seq(itemRule, tail);
    return seq(lit('['), ws, min === 0 ? opt(list) : list, lit(']'));
  }

  private object(s: Schema, path: string, depth: number): Expr {
    const ws = this.c.ws;
    const props = has(s, 'properties') ? s.properties : {};
    if (!isObj(props)) this.fail(`${path}/properties`, 'properties', 'invalid', "'properties' must be an object of schemas");
    const required = has(s, 'required') ? s.required : [];
    if (!Array.isArray(required) || !required.every((r) => typeof r === 'string')) {
      this.fail(`${path}/required`, 'required', 'invalid', "'required' must be an array of property names");
    }
    const addl = s.additionalProperties;
    if (has(s, 'additionalProperties') && typeof addl !== 'boolean' && !isObj(addl)) {
      this.fail(`${path}/additionalProperties`, 'additionalProperties', 'invalid', "'additionalProperties' must be a boolean or a schema");
    }
    const names = Object.keys(props);
    // A bare {type: "object"} is any object; with declared properties and no additionalProperties, only those.
    if (names.length === 0 && required.length === 0 && (!has(s, 'additionalProperties') || addl === true)) return this.c.object();
    const req = new Set(required);
    const entries: { name: string; value: Expr; required: boolean }[] = [];
    for (const name of names) {
      const value = this.compile(props[name], `${path}/properties/${pointerEscape(name)}`, depth + 1);
      entries.push({ name, value, required: req.has(name) });
    }
    // Required names that are not declared are written with the additionalProperties schema.
    for (const name of req) {
      if (Object.hasOwn(props, name)) continue;
      if (addl === false)
        this.fail(`${path}/required`, 'required', 'unsatisfiable', `'${name}' is required but additionalProperties is false and it is not in properties`);
      const value = isObj(addl) ? this.compile(addl, `${path}/additionalProperties`, depth + 1) : this.c.value();
      entries.push({ name, value, required: true });
    }
    this.count(path, entries.length);
    const extra =
      addl === true || isObj(addl)
        ? ref(
            this.b.intern(
              `${this.hint(path)}-extra`,
              seq(
                this.keyNotIn(entries.map((e) => e.name)),
                ws,
                lit(':'),
                ws,
                addl === true ? this.c.value() : this.compile(addl, `${path}/additionalProperties`, depth + 1),
                ws,
              ),
            ),
          )
        : undefined;
    const kv = (e: { name: string; value: Expr }): Expr => seq(lit(JSON.stringify(e.name)), ws, lit(':'), ws, e.value, ws);
    const sep = seq(lit(','), ws);
    // tail(i, first): properties i.. in declared order, each optional one skippable; `first` = nothing written yet
    // (so no comma). Rules only where an optional property makes two ways on; all-required runs are inlined.
    const hint = this.hint(path);
    const memo = new Map<string, Expr>();
    const tail = (i: number, first: boolean): Expr => {
      if (i === entries.length) {
        if (!extra) return EMPTY;
        return first ? opt(seq(extra, rep(seq(sep, extra), 0))) : rep(seq(sep, extra), 0);
      }
      const key = `${i}:${first}`;
      const hit = memo.get(key);
      if (hit) return hit;
      const e = entries[i]!;
      const here = seq(first ? EMPTY : sep, kv(e), tail(i + 1, false));
      let out: Expr;
      if (e.required) out = here;
      else out = ref(this.b.define(this.b.name(`${hint}-${i}${first ? 'f' : ''}`), alt(here, tail(i + 1, first))));
      memo.set(key, out);
      return out;
    };
    return seq(lit('{'), ws, tail(0, true), lit('}'));
  }

  /** A JSON string key that is none of `names`: a trie over the names, leaving it at any character that differs.
   *  Extra keys use no escapes (so "\u0061" cannot spell a declared "a"). */
  private keyNotIn(names: string[]): Expr {
    const plain = cls(['"', '\\', ['\x00', '\x1F']], true);
    const anyTail = seq(rep(plain, 0), lit('"'));
    if (names.length === 0) return seq(lit('"'), anyTail);
    interface Node {
      end: boolean;
      kids: Map<string, Node>;
    }
    const rootNode: Node = { end: false, kids: new Map() };
    for (const n of names) {
      let node = rootNode;
      for (const ch of n) {
        let k = node.kids.get(ch);
        if (!k) node.kids.set(ch, (k = { end: false, kids: new Map() }));
        node = k;
      }
      node.end = true;
    }
    const walk = (node: Node): Expr => {
      const alts: Expr[] = [];
      const kids = [...node.kids.entries()].filter(([ch]) => ch !== '"' && ch !== '\\' && ch.codePointAt(0)! >= 0x20);
      // A character none of the names has here: from then on any key is new.
      alts.push(seq(cls(['"', '\\', ['\x00', '\x1F'], ...kids.map(([ch]) => ch)], true), anyTail));
      for (const [ch, kid] of kids) alts.push(seq(lit(ch), walk(kid)));
      if (!node.end) alts.push(lit('"'));
      return alt(...alts);
    };
    this.count(
      '#',
      names.reduce((a, n) => a + n.length, 0),
    );
    return seq(lit('"'), walk(rootNode));
  }

  private hint(path: string): string {
    const segs = path.split('/').filter((x) => x !== '#' && x !== 'properties' && x !== '$defs' && x !== 'definitions');
    return segs.slice(-2).join('-') || 'root';
  }

  private literals(s: Schema, path: string, types: JsonType[] | undefined): Expr {
    let values: unknown[];
    if (has(s, 'const')) {
      values = [s.const];
      if (has(s, 'enum')) {
        if (!Array.isArray(s.enum)) this.fail(`${path}/enum`, 'enum', 'invalid', "'enum' must be an array");
        const c = JSON.stringify(s.const);
        values = s.enum.some((v) => JSON.stringify(v) === c) ? values : [];
      }
    } else {
      if (!Array.isArray(s.enum)) this.fail(`${path}/enum`, 'enum', 'invalid', "'enum' must be an array");
      if (s.enum.length === 0) this.fail(`${path}/enum`, 'enum', 'unsatisfiable', "'enum' is empty: no value can match");
      values = s.enum;
    }
    this.count(path, values.length);
    // Keep the values the schema's other keywords accept (type, lengths, bounds); none left is a contradiction.
    const ok = values.filter((v) => this.literalFits(v, s, types));
    const kw = has(s, 'const') ? 'const' : 'enum';
    if (ok.length === 0) this.fail(`${path}/${kw}`, kw, 'unsatisfiable', `no value of '${kw}' satisfies the schema's other keywords (type, lengths, bounds)`);
    const texts = [...new Set(ok.map((v) => JSON.stringify(v)))];
    return alt(...texts.map((t) => lit(t)));
  }

  private literalFits(v: unknown, s: Schema, types: JsonType[] | undefined): boolean {
    if (types && !types.some((t) => typeAccepts(t, v))) return false;
    if (typeof v === 'string') {
      const len = [...v].length;
      if (typeof s.minLength === 'number' && len < s.minLength) return false;
      if (typeof s.maxLength === 'number' && len > s.maxLength) return false;
    }
    if (typeof v === 'number') {
      const lo = this.bound(s, '#', 'minimum');
      const hi = this.bound(s, '#', 'maximum');
      if (lo && (lo.open ? v <= lo.v : v < lo.v)) return false;
      if (hi && (hi.open ? v >= hi.v : v > hi.v)) return false;
    }
    if (Array.isArray(v)) {
      if (typeof s.minItems === 'number' && v.length < s.minItems) return false;
      if (typeof s.maxItems === 'number' && v.length > s.maxItems) return false;
    }
    // Object/array literals beside properties/items are not checked against them: refuse rather than guess.
    if (
      (isObj(v) && (has(s, 'properties') || has(s, 'additionalProperties') || has(s, 'required'))) ||
      (Array.isArray(v) && (has(s, 'items') || has(s, 'prefixItems')))
    ) {
      this.fail('#', 'enum', 'unsupported', "object or array values in 'enum'/'const' beside properties/items are not supported");
    }
    return true;
  }

  private ref(target: unknown, path: string, depth: number): Expr {
    if (typeof target !== 'string') this.fail(`${path}/$ref`, '$ref', 'invalid', "'$ref' must be a string");
    if (!target.startsWith('#'))
      this.fail(`${path}/$ref`, '$ref', 'unsupported', `only local '$ref's ("#/...") are supported, got ${JSON.stringify(target.slice(0, 80))}`);
    let pointer: string;
    try {
      pointer = decodeURIComponent(target);
    } catch {
      this.fail(`${path}/$ref`, '$ref', 'invalid', `'$ref' ${JSON.stringify(target.slice(0, 80))} is not valid percent-encoding`);
    }
    if (pointer !== '#' && !pointer.startsWith('#/'))
      this.fail(`${path}/$ref`, '$ref', 'unsupported', `only JSON-pointer '$ref's ("#/...") are supported, got ${JSON.stringify(target.slice(0, 80))}`);
    const known = this.refRules.get(pointer);
    if (known !== undefined) return ref(known);
    if (this.refRules.size >= this.limits.maxRefs) this.fail(`${path}/$ref`, '$ref', 'limit', `the schema refers to more than ${this.limits.maxRefs} definitions`);
    let node: unknown = this.root;
    for (const raw of pointer === '#' ? [] : pointer.slice(2).split('/')) {
      const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
      if (Array.isArray(node) && /^(0|[1-9][0-9]*)$/.test(seg) && Number(seg) < node.length) node = node[Number(seg)];
      else if (isObj(node) && Object.hasOwn(node, seg)) node = node[seg];
      else this.fail(`${path}/$ref`, '$ref', 'invalid', `'$ref' ${JSON.stringify(target.slice(0, 80))} points to nothing in the schema`);
    }
    const name = this.b.name(`ref-${this.hint(pointer) || 'root'}`);
    this.refRules.set(pointer, name);
    this.ruleOrigin.set(name, pointer);
    this.b.define(name, this.compile(node, pointer, depth + 1));
    return ref(name);
  }

  /** allOf of plain object schemas with disjoint properties merges into one; anything else is refused. */
  private allOf(list: unknown, path: string, depth: number): Expr {
    if (!Array.isArray(list) || list.length === 0) this.fail(`${path}/allOf`, 'allOf', 'invalid', "'allOf' must be a non-empty array of schemas");
    if (list.length === 1) return this.compile(list[0], `${path}/allOf/0`, depth + 1);
    const merged: Schema = { type: 'object', properties: {}, required: [] };
    const props = merged.properties as Schema;
    list.forEach((raw: unknown, i) => {
      let sub: unknown = raw;
      // Follow plain $refs (a common way to compose: allOf: [{$ref}, {...}]).
      for (let hops = 0; isObj(sub) && typeof sub.$ref === 'string' && Object.keys(sub).every((k) => k === '$ref' || ANNOTATIONS.has(k)); hops++) {
        if (hops > this.limits.maxDepth) this.fail(`${path}/allOf/${i}`, '$ref', 'limit', "a chain of '$ref's in 'allOf' is too long");
        sub = this.resolvePointer(sub.$ref, `${path}/allOf/${i}`);
      }
      const where = `${path}/allOf/${i}`;
      if (!isObj(sub)) this.fail(where, 'allOf', 'invalid', "an 'allOf' branch must be a schema object");
      const o = sub;
      const mergeable =
        Object.keys(o).every((k) => ANNOTATIONS.has(k) || k === 'properties' || k === 'required' || (k === 'type' && o.type === 'object')) &&
        (!has(o, 'properties') || isObj(o.properties)) &&
        (!has(o, 'required') || Array.isArray(o.required));
      if (!mergeable)
        this.fail(where, 'allOf', 'unsupported', "'allOf' is supported only as a merge of object schemas with properties/required and no additionalProperties");
      for (const [k, v] of Object.entries((o.properties as Schema | undefined) ?? {})) {
        if (Object.hasOwn(props, k)) this.fail(`${where}/properties/${pointerEscape(k)}`, 'allOf', 'unsupported', `'allOf' branches both declare the property '${k}'`);
        props[k] = v;
      }
      (merged.required as unknown[]).push(...((o.required as unknown[] | undefined) ?? []));
    });
    return this.object(merged, path, depth);
  }

  private resolvePointer(target: string, path: string): unknown {
    if (!target.startsWith('#')) this.fail(`${path}/$ref`, '$ref', 'unsupported', 'only local $refs are supported');
    let node: unknown = this.root;
    const pointer = decodeURIComponent(target);
    for (const raw of pointer === '#' ? [] : pointer.slice(2).split('/')) {
      const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
      if (isObj(node) && Object.hasOwn(node, seg)) node = node[seg];
      else this.fail(`${path}/$ref`, '$ref', 'invalid', `'$ref' ${JSON.stringify(target.slice(0, 80))} points to nothing in the schema`);
    }
    return node;
  }
}

function limitsOf(opts: CompileOptions | undefined): SchemaLimits {
  return { ...DEFAULT_SCHEMA_LIMITS, ...(opts?.limits ?? {}) };
}

/**
 * Compile `schema` into rule `name` of `builder` (and the helper rules it needs, shared with anything else in the
 * builder). For grammars that embed a JSON value in something larger: tool-call arguments inside a call envelope.
 * Throws SchemaUnsupportedError. The builder must have been made with the same limits (`schemaGrammarBuilder`).
 */
export function addSchemaRule(builder: GrammarBuilder, schema: unknown, name: string, opts?: CompileOptions): string {
  const limits = limitsOf(opts);
  const c = new SchemaCompiler(builder, schema, limits, opts?.whitespace ?? 'flexible');
  const rule = builder.has(name) ? name : builder.name(name);
  if (rule !== name) throw new Error(`internal: rule name ${JSON.stringify(name)} is not a valid, unused GBNF rule name`);
  try {
    c.compileRoot(name);
  } catch (e) {
    if (e instanceof GrammarLimitError) throw new SchemaUnsupportedError('#', undefined, 'limit', `the schema's grammar is too large: ${e.message}`);
    throw e;
  }
  const dead = builder.unproductive().filter((n) => c.ruleOrigin.has(n));
  if (dead.length > 0) {
    const where = c.ruleOrigin.get(dead[0]!)!;
    throw new SchemaUnsupportedError(
      where,
      '$ref',
      'unsatisfiable',
      'the schema is recursive with no way to end (every branch requires itself again), so no finite JSON value matches it',
    );
  }
  return name;
}

/** A builder with the compiler's rule and size limits. */
export function schemaGrammarBuilder(opts?: CompileOptions): GrammarBuilder {
  const l = limitsOf(opts);
  return new GrammarBuilder({ maxRules: l.maxRules, maxChars: l.maxChars });
}

export interface CompiledSchema {
  /** GBNF, start rule `root`. */
  grammar: string;
}

/** A JSON schema → a GBNF grammar (start rule `root`) whose every match is a JSON document valid against it. */
export function compileJsonSchema(schema: unknown, opts?: CompileOptions): CompiledSchema {
  const b = schemaGrammarBuilder(opts);
  addSchemaRule(b, schema, 'root', opts);
  return { grammar: b.print() };
}

/** response_format {type: "json_object"}: any JSON object. */
export const JSON_OBJECT_GRAMMAR: string = compileJsonSchema({ type: 'object' }).grammar;
