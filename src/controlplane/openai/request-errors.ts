// The request parsers' shared refusal helpers (schema.ts and its field modules, embeddings.ts, tokenize-api.ts): one
// wording for "this field is wrong", with `param` set so clients can point at it.
import { ControlPlaneError } from '../errors.js';

/** A 400 invalid_request naming the field. */
export function bad(param: string, message: string): ControlPlaneError {
  return new ControlPlaneError('CP_ERR_INVALID_REQUEST', message, { param });
}

/** A value as an error message shows it ("null", "an array", a string cut at 40 characters, a number, the type). */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)}`;
  if (typeof v === 'number') return String(v);
  return typeof v;
}
