// The server-side validator of structured answers (src/structured/json-validate.ts; the parse-failure metrics) against
// ajv (draft-07) as the oracle: for schemas in the supported subset, random JSON values — and values drawn near the
// schemas' edges — get the same valid/invalid verdict from both.
import Ajv from 'ajv';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';

import { validateJson } from '../../src/structured/json-validate.js';

const SCHEMAS: Record<string, unknown>[] = [
  {
    type: 'object',
    properties: { a: { type: 'string', minLength: 1, maxLength: 3 }, b: { type: 'integer', minimum: -2, maximum: 2 } },
    required: ['a'],
    additionalProperties: false,
  },
  { type: 'array', items: { type: ['number', 'null'], exclusiveMinimum: 0, exclusiveMaximum: 1 }, minItems: 1, maxItems: 2 },
  { type: 'array', items: [{ type: 'boolean' }, { enum: ['x', 1, null] }], additionalItems: false },
  { anyOf: [{ type: 'string', maxLength: 1 }, { const: { k: [1] } }] },
  { oneOf: [{ type: 'integer' }, { type: 'number', minimum: 0 }] },
  {
    $defs: { n: { type: 'object', properties: { v: { type: 'integer' }, next: { anyOf: [{ $ref: '#/$defs/n' }, { type: 'null' }] } }, required: ['v', 'next'] } },
    $ref: '#/$defs/n',
  },
  { type: 'object', additionalProperties: { type: 'integer', nullable: true } },
  { allOf: [{ type: 'object', properties: { a: { type: 'integer' } }, required: ['a'] }, { properties: { b: { type: 'string' } } }] },
];

const near = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.constantFrom(
    '',
    'a',
    'abcd',
    'é',
    0,
    1,
    -2,
    2,
    3,
    0.5,
    1.5,
    -0,
    null,
    true,
    [],
    [null],
    [0.5, null],
    [true, 'x'],
    [true, 1, 2],
    { k: [1] },
    { a: 'x' },
    { a: 'x', b: 3 },
  ),
  fc.record({ v: fc.integer({ min: -1, max: 1 }), next: fc.oneof(fc.constant(null), fc.record({ v: fc.integer(), next: fc.constant(null) })) }),
  fc.dictionary(fc.constantFrom('a', 'b', 'c'), fc.oneof(fc.integer({ min: -3, max: 3 }), fc.constant(null), fc.string({ maxLength: 4 }))),
);

/** ajv's deep equality (const/enum) calls a.valueOf()/toString(): JSON objects with such keys make the oracle throw. */
const oracleSafe = (v: unknown): boolean =>
  Array.isArray(v)
    ? v.every(oracleSafe)
    : typeof v === 'object' && v !== null
      ? Object.entries(v).every(([k, x]) => k !== 'valueOf' && k !== 'toString' && oracleSafe(x))
      : true;

describe('validateJson agrees with ajv', () => {
  const ajv = new Ajv({ nullable: true });
  SCHEMAS.forEach((schema, i) => {
    test(`schema ${i}`, () => {
      const check = ajv.compile(schema);
      fc.assert(
        fc.property(near.filter(oracleSafe), (v) => {
          expect(validateJson(schema, v).length === 0).toBe(check(v));
        }),
        { numRuns: 500 },
      );
    });
  });
});
