// The TypeScript gate on the MoE layout settings (epDegree, redundantExperts, alltoallDelayUs): shapes the native
// side is handed only after these checks. Whether each {layer, expert} names an MoE layer and an expert of the model
// is the engine's check at load (it knows the model).
import { describe, expect, it } from 'vitest';
import { EngineError } from '../../src/engine/errors.js';
import { validateEngineOptions, validateLayout } from '../../src/engine/validate.js';
import { formatExperts, layoutValue, sameLayoutValue } from '../../src/engine/knobs.js';

function refusal(f: () => void): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(EngineError);
    expect((e as EngineError).code).toBe('INVALID_ARGUMENT');
    return (e as Error).message;
  }
  throw new Error('expected a refusal');
}

describe('MoE layout validation', () => {
  it('accepts whole ranks, a set of {layer, expert} and a delay', () => {
    expect(() =>
      validateLayout({
        epDegree: 4,
        redundantExperts: [
          { layer: 3, expert: 17 },
          { layer: 4, expert: 17 },
        ],
        alltoallDelayUs: 250,
      }),
    ).not.toThrow();
    expect(() => validateEngineOptions({ model: 'm.gguf', epDegree: 2, redundantExperts: [], alltoallDelayUs: 0 })).not.toThrow();
  });

  it('refuses, naming the field: a bad degree, a malformed or repeated expert, a negative delay', () => {
    expect(refusal(() => validateLayout({ epDegree: 0 }))).toBe('Expected an integer between 1 and 64 for epDegree but received 0 of type number');
    expect(refusal(() => validateLayout({ epDegree: 1.5 }))).toMatch(/for epDegree/);
    expect(refusal(() => validateLayout({ redundantExperts: 'all' as never }))).toMatch(/for redundantExperts but received 'all'/);
    expect(refusal(() => validateLayout({ redundantExperts: [{ layer: 3 } as never] }))).toMatch(/for redundantExperts\[0\]\.expert/);
    expect(refusal(() => validateLayout({ redundantExperts: [{ layer: -1, expert: 2 }] }))).toMatch(/for redundantExperts\[0\]\.layer/);
    expect(refusal(() => validateLayout({ redundantExperts: [{ layer: 1, expert: 2, rank: 1 } as never] }))).toBe(
      "Unknown key 'rank' in redundantExperts[0] (known: layer, expert)",
    );
    expect(
      refusal(() =>
        validateLayout({
          redundantExperts: [
            { layer: 1, expert: 2 },
            { layer: 1, expert: 2 },
          ],
        }),
      ),
    ).toBe('redundantExperts[1] repeats layer 1 expert 2');
    expect(refusal(() => validateEngineOptions({ model: 'm.gguf', alltoallDelayUs: -1 }))).toMatch(/for alltoallDelayUs/);
  });

  it('compares layouts with the defaults filled in and the expert set as a set', () => {
    expect(layoutValue({}, 'epDegree')).toBe(1);
    expect(layoutValue({}, 'redundantExperts')).toEqual([]);
    const a = {
      redundantExperts: [
        { layer: 2, expert: 1 },
        { layer: 1, expert: 7 },
      ],
    };
    const b = {
      redundantExperts: [
        { layer: 1, expert: 7 },
        { layer: 2, expert: 1 },
      ],
    };
    expect(sameLayoutValue(a, b, 'redundantExperts')).toBe(true);
    expect(sameLayoutValue(a, {}, 'redundantExperts')).toBe(false);
    expect(sameLayoutValue({ epDegree: 1 }, {}, 'epDegree')).toBe(true);
    expect(formatExperts(a.redundantExperts)).toBe('1:7,2:1');
    expect(formatExperts(undefined)).toBe('none');
  });
});
