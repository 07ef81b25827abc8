// A small GBNF builder: grammar expressions as a tree (so the compiler can check, before printing, that every rule can
// finish), rule naming with de-duplication, and the escaping of literals and character classes in llama.cpp's GBNF
// dialect (the one `GenerateRequest.grammar` takes; grammars/README.md in llama.cpp). Nothing here knows JSON Schema.
//
// Escaping is deliberately narrow: in a literal only `"` `\` and control characters are escaped; in a character class
// every ASCII character that is not a letter or digit is written as \xHH, because llama.cpp's parser has no escape for
// `-` or `^` inside brackets and a raw one there would change the class's meaning. Non-ASCII characters stay raw UTF-8
// (the parser decodes code points).

export type Expr =
  | { t: 'lit'; s: string }
  /** A character class; `neg` makes it [^...]. Items are single code points or inclusive [lo, hi] ranges. */
  | { t: 'cls'; neg: boolean; items: (string | [string, string])[] }
  | { t: 'ref'; name: string }
  | { t: 'seq'; items: Expr[] }
  | { t: 'alt'; items: Expr[] }
  /** items repeated min..max times; max undefined = unbounded. */
  | { t: 'rep'; item: Expr; min: number; max: number | undefined };

export const lit = (s: string): Expr => ({ t: 'lit', s });
export const ref = (name: string): Expr => ({ t: 'ref', name });
export const cls = (items: (string | [string, string])[], neg = false): Expr => ({ t: 'cls', neg, items });
export const EMPTY: Expr = { t: 'lit', s: '' };

export function seq(...items: Expr[]): Expr {
  const flat: Expr[] = [];
  for (const it of items) {
    if (it.t === 'seq') flat.push(...it.items);
    else if (!(it.t === 'lit' && it.s === '')) flat.push(it);
  }
  // Adjacent literals merge: shorter grammars, and the printed form reads like the JSON it produces.
  const merged: Expr[] = [];
  for (const it of flat) {
    const last = merged[merged.length - 1];
    if (it.t === 'lit' && last?.t === 'lit') merged[merged.length - 1] = lit(last.s + it.s);
    else merged.push(it);
  }
  if (merged.length === 0) return EMPTY;
  if (merged.length === 1) return merged[0]!;
  return { t: 'seq', items: merged };
}

export function alt(...items: Expr[]): Expr {
  const flat: Expr[] = [];
  for (const it of items) {
    if (it.t === 'alt') flat.push(...it.items);
    else flat.push(it);
  }
  if (flat.length === 1) return flat[0]!;
  return { t: 'alt', items: flat };
}

export const rep = (item: Expr, min: number, max?: number): Expr => ({ t: 'rep', item, min, max });
export const opt = (item: Expr): Expr => rep(item, 0, 1);

function hex2(cp: number): string {
  return cp.toString(16).toUpperCase().padStart(2, '0');
}

/** A code point as GBNF writes it inside "..." . */
function litChar(ch: string): string {
  const cp = ch.codePointAt(0)!;
  if (ch === '"') return '\\"';
  if (ch === '\\') return '\\\\';
  if (ch === '\n') return '\\n';
  if (ch === '\r') return '\\r';
  if (ch === '\t') return '\\t';
  if (cp < 0x20 || cp === 0x7f) return `\\x${hex2(cp)}`;
  // Lone surrogates cannot be written as UTF-8; they never reach here from JSON.stringify output (it escapes them).
  if (cp >= 0xd800 && cp <= 0xdfff) return `\\u${cp.toString(16).toUpperCase().padStart(4, '0')}`;
  return ch;
}

/** A code point as GBNF writes it inside [...] . */
function classChar(ch: string): string {
  const cp = ch.codePointAt(0)!;
  if (cp < 0x80 && !/[A-Za-z0-9]/.test(ch)) return `\\x${hex2(cp)}`;
  if (cp >= 0xd800 && cp <= 0xdfff) return `\\u${cp.toString(16).toUpperCase().padStart(4, '0')}`;
  return ch;
}

export function gbnfLiteral(s: string): string {
  let out = '"';
  for (const ch of s) out += litChar(ch);
  return out + '"';
}

export function gbnfClass(items: (string | [string, string])[], neg: boolean): string {
  let out = neg ? '[^' : '[';
  for (const it of items) out += typeof it === 'string' ? classChar(it) : `${classChar(it[0])}-${classChar(it[1])}`;
  return out + ']';
}

/** Precedence-aware printing: alternatives bind loosest, then sequences, then repetition suffixes. */
export function printExpr(e: Expr, ctx: 'top' | 'seq' | 'atom' = 'top'): string {
  switch (e.t) {
    case 'lit':
      return gbnfLiteral(e.s);
    case 'cls':
      return gbnfClass(e.items, e.neg);
    case 'ref':
      return e.name;
    case 'seq': {
      const s = e.items.map((x) => printExpr(x, 'seq')).join(' ');
      return ctx === 'atom' ? `(${s})` : s;
    }
    case 'alt': {
      const s = e.items.map((x) => printExpr(x, 'top')).join(' | ');
      return ctx === 'top' ? s : `(${s})`;
    }
    case 'rep': {
      const inner = printExpr(e.item, 'atom');
      let suffix: string;
      if (e.min === 0 && e.max === 1) suffix = '?';
      else if (e.min === 0 && e.max === undefined) suffix = '*';
      else if (e.min === 1 && e.max === undefined) suffix = '+';
      else if (e.max === undefined) suffix = `{${e.min},}`;
      else if (e.min === e.max && e.min === 1) return printExpr(e.item, ctx);
      else if (e.min === e.max) suffix = `{${e.min}}`;
      else suffix = `{${e.min},${e.max}}`;
      return inner + suffix;
    }
  }
}

/** Thrown when the grammar being built exceeds a size limit; the schema compiler turns it into its own error. */
export class GrammarLimitError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GrammarLimitError';
  }
}

export interface GrammarBuilderLimits {
  /** Most rules in one grammar. */
  maxRules: number;
  /** Most characters of printed grammar. */
  maxChars: number;
}

export const DEFAULT_GRAMMAR_LIMITS: GrammarBuilderLimits = { maxRules: 20_000, maxChars: 4 * 1024 * 1024 };

/**
 * Rules by name, in insertion order. Rule names are [a-zA-Z0-9-]+ (GBNF's alphabet); `name()` sanitizes a hint and
 * makes it unique, `define()` sets a body (a rule may be reserved first and defined later, which is how recursive
 * references are built), `intern()` reuses an existing rule with an identical body (common value rules like `string`).
 */
export class GrammarBuilder {
  private readonly rules = new Map<string, Expr | undefined>();
  private readonly byBody = new Map<string, string>();
  private chars = 0;

  constructor(readonly limits: GrammarBuilderLimits = DEFAULT_GRAMMAR_LIMITS) {}

  has(name: string): boolean {
    return this.rules.has(name);
  }

  /** A fresh rule name from `hint`, reserved (undefined body) until `define`. */
  name(hint: string): string {
    let base = hint.replace(/[^A-Za-z0-9-]+/g, '-').replace(/^-+|-+$/g, '');
    if (base === '') base = 'r';
    let n = base;
    for (let i = 1; this.rules.has(n); i++) n = `${base}-${i}`;
    if (this.rules.size >= this.limits.maxRules) throw new GrammarLimitError(`the grammar would need more than ${this.limits.maxRules} rules`);
    this.rules.set(n, undefined);
    return n;
  }

  define(name: string, body: Expr): string {
    const printed = printExpr(body);
    this.chars += name.length + printed.length + 6;
    if (this.chars > this.limits.maxChars) throw new GrammarLimitError(`the grammar would be longer than ${this.limits.maxChars} characters`);
    this.rules.set(name, body);
    if (!this.byBody.has(printed)) this.byBody.set(printed, name);
    return name;
  }

  /** The name of a rule with this body: an existing one if identical, else a new one named from `hint`. */
  intern(hint: string, body: Expr): string {
    const existing = this.byBody.get(printExpr(body));
    if (existing !== undefined) return existing;
    return this.define(this.name(hint), body);
  }

  /** Names of rules that can never finish (every alternative needs itself, directly or not, or an undefined rule). */
  unproductive(): string[] {
    const done = new Set<string>();
    const can = (e: Expr): boolean => {
      switch (e.t) {
        case 'lit':
        case 'cls':
          return true;
        case 'ref':
          return done.has(e.name);
        case 'seq':
          return e.items.every(can);
        case 'alt':
          return e.items.some(can);
        case 'rep':
          return e.min === 0 || can(e.item);
      }
    };
    // Least fixed point: iterate until no rule changes (at most one pass per rule).
    for (let changed = true; changed;) {
      changed = false;
      for (const [n, body] of this.rules) {
        if (!done.has(n) && body !== undefined && can(body)) {
          done.add(n);
          changed = true;
        }
      }
    }
    return [...this.rules.keys()].filter((n) => !done.has(n));
  }

  /** The grammar text, `root` first (llama.cpp does not care about order; people reading it do). */
  print(): string {
    const lines: string[] = [];
    const order = [...this.rules.keys()].sort((a, b) => (a === 'root' ? -1 : b === 'root' ? 1 : 0));
    for (const n of order) {
      const body = this.rules.get(n);
      if (body === undefined) throw new Error(`internal: grammar rule ${n} was reserved but never defined`);
      lines.push(`${n} ::= ${printExpr(body)}`);
    }
    return lines.join('\n') + '\n';
  }
}
