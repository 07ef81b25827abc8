// The arguments of tokenize(), checked once for Engine and VocabTokenizer: (text, addBos?, options?) — the native
// handle's order — or (text, { addBos, parseSpecial, plainRanges }).
import { EngineError } from './errors.js';
import type { TokenizeOptions } from './types.js';

const OPTION_KEYS = new Set(['addBos', 'parseSpecial', 'plainRanges']);

export function normalizeTokenizeArgs(
  text: unknown,
  addBosOrOptions: boolean | ({ addBos?: boolean } & TokenizeOptions) | undefined,
  options: TokenizeOptions | undefined,
): { addBos: boolean | undefined; options: { parseSpecial?: boolean; plainRanges?: Int32Array } | undefined } {
  if (typeof text !== 'string') throw new EngineError('INVALID_ARGUMENT', `Expected a string for text but received ${typeof text}`);
  let addBos: boolean | undefined;
  let opts: ({ addBos?: boolean } & TokenizeOptions) | undefined;
  if (typeof addBosOrOptions === 'boolean' || addBosOrOptions === undefined) {
    addBos = addBosOrOptions;
    opts = options;
  } else if (typeof addBosOrOptions === 'object' && addBosOrOptions !== null) {
    if (options !== undefined) throw new EngineError('INVALID_ARGUMENT', 'Expected tokenize(text, addBos, options) or tokenize(text, options), not both objects');
    opts = addBosOrOptions;
    addBos = addBosOrOptions.addBos;
  } else {
    throw new EngineError('INVALID_ARGUMENT', 'Expected a boolean addBos or an options object');
  }
  if (opts === undefined) return { addBos, options: undefined };
  if (typeof opts !== 'object' || opts === null) throw new EngineError('INVALID_ARGUMENT', 'Expected an object for tokenize options');
  for (const k of Object.keys(opts)) {
    if (!OPTION_KEYS.has(k) || (k === 'addBos' && opts === options))
      throw new EngineError('INVALID_ARGUMENT', `Unknown tokenize option '${k}' (known: parseSpecial, plainRanges)`);
  }
  if (addBos !== undefined && typeof addBos !== 'boolean') throw new EngineError('INVALID_ARGUMENT', 'Expected a boolean for addBos');
  if (opts.parseSpecial !== undefined && typeof opts.parseSpecial !== 'boolean') throw new EngineError('INVALID_ARGUMENT', 'Expected a boolean for parseSpecial');
  let plainRanges: Int32Array | undefined;
  if (opts.plainRanges !== undefined) {
    const pr: unknown = opts.plainRanges;
    if (pr instanceof Int32Array) plainRanges = pr;
    else if (Array.isArray(pr) && pr.every((v) => Number.isInteger(v) && v >= 0 && v <= 0x7fffffff)) plainRanges = Int32Array.from(pr as number[]);
    else throw new EngineError('INVALID_ARGUMENT', 'Expected an Int32Array or an array of non-negative integers for plainRanges');
    if (plainRanges.length % 2 !== 0) throw new EngineError('INVALID_ARGUMENT', 'Expected [start, end) pairs in plainRanges (an even number of offsets)');
  }
  const out: { parseSpecial?: boolean; plainRanges?: Int32Array } = {};
  if (opts.parseSpecial !== undefined) out.parseSpecial = opts.parseSpecial;
  if (plainRanges !== undefined) out.plainRanges = plainRanges;
  return { addBos, options: out };
}
