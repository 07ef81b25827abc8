// parseSamplingExtensions over arbitrary JSON: it either returns values inside the documented ranges (so the engine's
// own validation never sees a bad one) or refuses with a 400 whose param is the field at fault — never another error.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ControlPlaneError } from '../../src/controlplane/errors.js';
import { parseEcho, parseSamplingExtensions } from '../../src/controlplane/openai/schema-sampling.js';
import { MAX_CHOICES, MAX_LOGIT_BIAS } from '../../src/engine/validate.js';

const FIELDS = ['n', 'presence_penalty', 'frequency_penalty', 'repetition_penalty', 'min_p', 'logit_bias'] as const;
const runs = (n: number): number => Number(process.env.TL_PROPERTY_RUNS) || n;

const value = fc.oneof(
  fc.jsonValue(),
  fc.double({ noNaN: false }),
  fc.integer({ min: -20, max: 20 }),
  fc.dictionary(
    fc.oneof(fc.integer({ min: -3, max: 5_000_000_000 }).map(String), fc.string({ maxLength: 4 }), fc.constantFrom('01', '1e3', ' 1', '1.0')),
    fc.oneof(fc.double(), fc.jsonValue()),
    { maxKeys: 6 },
  ),
);

describe('parseSamplingExtensions', () => {
  it('returns in-range values or a 400 naming the field', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.constantFrom(...FIELDS), value), (body) => {
        let out;
        try {
          out = parseSamplingExtensions(body);
        } catch (e) {
          expect(e).toBeInstanceOf(ControlPlaneError);
          const param = (e as ControlPlaneError).param;
          expect(FIELDS as readonly string[]).toContain(param);
          expect(body[param as keyof typeof body]).not.toBeUndefined();
          return;
        }
        expect(Number.isInteger(out.n) && out.n >= 1 && out.n <= MAX_CHOICES).toBe(true);
        for (const [v, lo, hi] of [
          [out.presencePenalty, -2, 2],
          [out.frequencyPenalty, -2, 2],
          [out.minP, 0, 1],
        ] as const) {
          if (v !== undefined) expect(v >= lo && v <= hi).toBe(true);
        }
        if (out.repetitionPenalty !== undefined) expect(out.repetitionPenalty > 0 && out.repetitionPenalty <= 10).toBe(true);
        if (out.logitBias !== undefined) {
          const entries = Object.entries(out.logitBias);
          expect(entries.length).toBeLessThanOrEqual(MAX_LOGIT_BIAS);
          for (const [k, v] of entries) {
            expect(String(Number(k))).toBe(k); // a canonical decimal id
            expect(Number(k)).toBeGreaterThanOrEqual(0);
            expect(Number.isFinite(v) && v >= -100 && v <= 100).toBe(true);
          }
        }
      }),
      { numRuns: runs(2000) },
    );
  });

  it('echo is a boolean or a 400 naming it', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        try {
          expect(parseEcho({ echo: v })).toBe(v === true);
        } catch (e) {
          expect((e as ControlPlaneError).param).toBe('echo');
        }
      }),
      { numRuns: runs(300) },
    );
  });
});
