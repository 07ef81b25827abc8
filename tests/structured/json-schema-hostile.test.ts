// Hostile schemas: huge, deep, recursive without end, contradictory, dangling or cyclic $refs. Each must end in a
// SchemaUnsupportedError naming why (and where) — never another exception, a stack overflow or a hang — and a
// fast-check property over random schema-like objects checks the same for whatever it finds, plus that every grammar
// the compiler does produce is one llama.cpp's parser accepts.
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';

import { compileJsonSchema, SchemaUnsupportedError, type SchemaErrorReason } from '../../src/structured/json-schema-grammar.js';
import { llamaCpp } from '../helpers/llama-cpp.js';

function refusal(schema: unknown): SchemaUnsupportedError {
  try {
    compileJsonSchema(schema);
  } catch (e) {
    if (e instanceof SchemaUnsupportedError) return e;
    throw e;
  }
  throw new Error(`compiled: ${JSON.stringify(schema).slice(0, 200)}`);
}

function nested(depth: number): unknown {
  let s: unknown = { type: 'integer' };
  for (let i = 0; i < depth; i++) s = { type: 'object', properties: { a: s }, required: ['a'] };
  return s;
}

describe('hostile schemas are refused with a reason', () => {
  const cases: [string, unknown, SchemaErrorReason, RegExp][] = [
    [
      'huge: 20000 properties',
      { type: 'object', properties: Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`p${i}`, { type: 'null' }])) },
      'limit',
      /more than 10000/,
    ],
    ['huge: an enum of 50000 values', { enum: Array.from({ length: 50_000 }, (_, i) => i) }, 'limit', /more than 10000/],
    ['deep: 10000 nested objects (no stack overflow)', nested(10_000), 'limit', /deeper than 64/],
    ['a maxLength the grammar will not spell out', { type: 'string', maxLength: 1_000_000_000 }, 'limit', /maxLength/],
    ['recursion without end: $ref "#" alone', { $ref: '#' }, 'unsatisfiable', /recursive with no way to end/],
    ['recursion without end: a required self property', { type: 'object', properties: { next: { $ref: '#' } }, required: ['next'] }, 'unsatisfiable', /recursive/],
    [
      'recursion without end: a $ref cycle through $defs',
      { $defs: { a: { $ref: '#/$defs/b' }, b: { type: 'array', items: { $ref: '#/$defs/a' }, minItems: 1 } }, $ref: '#/$defs/a' },
      'unsatisfiable',
      /recursive/,
    ],
    ['$ref to nowhere', { type: 'object', properties: { x: { $ref: '#/$defs/missing' } } }, 'invalid', /points to nothing/],
    ['$ref through an inherited name', { $ref: '#/constructor' }, 'invalid', /points to nothing/],
    ['minItems > maxItems', { type: 'array', minItems: 3, maxItems: 2 }, 'unsatisfiable', /minItems 3 is greater than maxItems 2/],
    ['minLength > maxLength', { type: 'string', minLength: 5, maxLength: 1 }, 'unsatisfiable', /minLength 5/],
    ['minimum > maximum', { type: 'number', minimum: 2, maximum: 1 }, 'unsatisfiable', /no number satisfies/],
    ['exclusive bounds that meet', { type: 'integer', exclusiveMinimum: 1, exclusiveMaximum: 2 }, 'unsatisfiable', /no integer satisfies/],
    ['empty enum', { enum: [] }, 'unsatisfiable', /'enum' is empty/],
    ['const against type', { type: 'string', const: 1 }, 'unsatisfiable', /const/],
    ['enum values all outside the bounds', { type: 'integer', enum: [5, 6], maximum: 4 }, 'unsatisfiable', /enum/],
    ['empty type array', { type: [] }, 'unsatisfiable', /empty array/],
    ['unknown type', { type: 'date' }, 'invalid', /not one of/],
    ['required property forbidden by additionalProperties false', { type: 'object', required: ['x'], additionalProperties: false }, 'unsatisfiable', /'x' is required/],
    ['schema false', false, 'unsatisfiable', /accepts nothing/],
    ['a non-schema', 42, 'invalid', /must be an object or a boolean/],
    ['tuple too short for minItems', { type: 'array', items: [{ type: 'null' }], additionalItems: false, minItems: 2 }, 'unsatisfiable', /minItems 2/],
  ];
  for (const [what, schema, reason, message] of cases) {
    test(what, () => {
      const e = refusal(schema);
      expect(e.reason).toBe(reason);
      expect(e.message).toMatch(message);
      expect(e.path.startsWith('#')).toBe(true);
    });
  }

  test('a schema whose shared definitions fan out stays linear (memoized $refs)', () => {
    // 25 levels, each an anyOf of the next level twice: 2^25 paths, a few rules per level.
    const defs: Record<string, unknown> = { l25: { type: 'null' } };
    for (let i = 0; i < 25; i++) defs[`l${i}`] = { anyOf: [{ $ref: `#/$defs/l${i + 1}` }, { type: 'array', items: { $ref: `#/$defs/l${i + 1}` }, maxItems: 1 }] };
    const { grammar } = compileJsonSchema({ $defs: defs, $ref: '#/$defs/l0' });
    expect(grammar.split('\n').length).toBeLessThan(200);
  });
});

// ---- property: random schema-like objects ------------------------------------------------------------------------

const KEYWORDS = [
  'type',
  'properties',
  'required',
  'additionalProperties',
  'items',
  'prefixItems',
  'additionalItems',
  'minItems',
  'maxItems',
  'enum',
  'const',
  'anyOf',
  'oneOf',
  'allOf',
  '$ref',
  '$defs',
  'minLength',
  'maxLength',
  'minimum',
  'maximum',
  'exclusiveMinimum',
  'exclusiveMaximum',
  'nullable',
  'pattern',
  'title',
  'not',
];

const jsonLeaf = fc.oneof(
  fc.constantFrom('object', 'array', 'string', 'number', 'integer', 'boolean', 'null', '#', '#/$defs/a', '#/properties/x', 'x', ''),
  fc.integer({ min: -5, max: 20 }),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.boolean(),
  fc.constant(null),
);

const { schema: schemaArb } = fc.letrec<{ schema: unknown; value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    jsonLeaf,
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(fc.constantFrom('a', 'x', 'b', ...KEYWORDS), tie('value'), { maxKeys: 4 }),
  ),
  schema: fc.oneof(
    { depthSize: 'small' },
    fc.boolean(),
    fc.dictionary(
      fc.constantFrom(...KEYWORDS),
      fc.oneof(
        tie('value'),
        tie('schema'),
        fc.array(tie('schema'), { maxLength: 3 }),
        fc.dictionary(fc.constantFrom('a', 'x', 'b'), tie('schema'), { maxKeys: 3 }),
        fc.array(fc.constantFrom('a', 'x', 'b', 'object', 'string', 'null'), { maxLength: 3 }),
      ),
      { maxKeys: 5 },
    ),
  ),
}));

describe('property: random schema-like objects', () => {
  test('compile to a grammar llama.cpp parses, or a SchemaUnsupportedError; nothing else', async () => {
    const llama = await llamaCpp();
    let compiled = 0;
    await fc.assert(
      fc.asyncProperty(schemaArb, async (schema) => {
        let grammar: string;
        try {
          grammar = compileJsonSchema(schema).grammar;
        } catch (e) {
          if (e instanceof SchemaUnsupportedError) return;
          throw e;
        }
        compiled++;
        const g = await llama.createGrammar({ grammar });
        // Parsing happens in the binding; an unparsable grammar throws on first use.
        const internal: unknown = g;
        (internal as { _testText(t: string): boolean })._testText('');
      }),
      { numRuns: 400 },
    );
    // The generator must reach the compiler's success paths too, or the property proves little.
    expect(compiled).toBeGreaterThan(40);
  });
});
