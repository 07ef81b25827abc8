// The error codes the native engine can raise (errors.h, exported by the addon as `errorCodes`) are exactly the
// codes the TypeScript catalogue documents (ENGINE_ERROR_CODES in src/engine/errors.ts): a code added on one side
// only fails here.
import { describe, expect, it } from 'vitest';
import { ENGINE_ERROR_CODES, native } from '../../src/engine/index.js';

describe('engine error codes', () => {
  it('the native list equals ENGINE_ERROR_CODES', () => {
    const nativeCodes = [...native().errorCodes];
    expect(new Set(nativeCodes).size, 'no duplicates').toBe(nativeCodes.length);
    expect(nativeCodes.sort()).toEqual(Object.keys(ENGINE_ERROR_CODES).sort());
  });
});
