// The sampling fields of OpenAI completions and chat-completions bodies beyond temperature / top_p (schema.ts calls
// parseSamplingExtensions for both endpoints and parseEcho for completions): `n`, `presence_penalty`,
// `frequency_penalty`, `logit_bias`, and vLLM's extensions `repetition_penalty` and `min_p`. Semantics and stage
// order: docs/api.md, "Sampling". Each refusal is a 400 naming the field.
import type { GenerateRequest } from '../../engine/types.js';
import { MAX_CHOICES, MAX_LOGIT_BIAS } from '../../engine/validate.js';
import { ControlPlaneError } from '../errors.js';
import { describe } from './request-errors.js';

export interface SamplingExtensions {
  /** Choices (1..16); default 1. */
  n: number;
  presencePenalty?: number;
  frequencyPenalty?: number;
  /** Extension (vLLM's name): > 0, 1 = off. */
  repetitionPenalty?: number;
  /** Extension (vLLM's name): 0..1, 0 = off. */
  minP?: number;
  /** Token id → bias (-100..100), from OpenAI's string keys. */
  logitBias?: Record<number, number>;
}

type Body = Record<string, unknown>;

const bad = (param: string, message: string): ControlPlaneError => new ControlPlaneError('CP_ERR_INVALID_REQUEST', message, { param });

const present = (body: Body, key: string): boolean => body[key] !== undefined && body[key] !== null;

function optNumber(body: Body, key: string, min: number, max: number, minExclusive = false): number | undefined {
  if (!present(body, key)) return undefined;
  const v = body[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) throw bad(key, `'${key}' must be a number, got ${describe(v)}`);
  if (v < min || v > max || (minExclusive && v === min)) {
    throw bad(key, `'${key}' must be ${minExclusive ? 'greater than' : 'at least'} ${min} and at most ${max}, got ${v}`);
  }
  return v;
}

export function parseSamplingExtensions(body: Body): SamplingExtensions {
  const out: SamplingExtensions = { n: 1 };
  if (present(body, 'n')) {
    const n = body.n;
    if (typeof n !== 'number' || !Number.isInteger(n)) throw bad('n', `'n' must be an integer, got ${describe(n)}`);
    if (n < 1 || n > MAX_CHOICES) throw bad('n', `'n' must be between 1 and ${MAX_CHOICES} on this server, got ${n}`);
    out.n = n;
  }
  const presence = optNumber(body, 'presence_penalty', -2, 2);
  const frequency = optNumber(body, 'frequency_penalty', -2, 2);
  const repetition = optNumber(body, 'repetition_penalty', 0, 10, true);
  const minP = optNumber(body, 'min_p', 0, 1);
  // 0 and 1 are the neutral values: leave them out so the engine keeps its fast paths.
  if (presence !== undefined && presence !== 0) out.presencePenalty = presence;
  if (frequency !== undefined && frequency !== 0) out.frequencyPenalty = frequency;
  if (repetition !== undefined && repetition !== 1) out.repetitionPenalty = repetition;
  if (minP !== undefined && minP !== 0) out.minP = minP;
  if (present(body, 'logit_bias')) {
    const b = body.logit_bias;
    if (typeof b !== 'object' || b === null || Array.isArray(b)) {
      throw bad('logit_bias', `'logit_bias' must be an object mapping token ids to biases, got ${describe(b)}`);
    }
    const entries = Object.entries(b as Body);
    if (entries.length > MAX_LOGIT_BIAS) throw bad('logit_bias', `'logit_bias' may hold at most ${MAX_LOGIT_BIAS} entries, got ${entries.length}`);
    const bias: Record<number, number> = {};
    for (const [k, v] of entries) {
      if (!/^(0|[1-9][0-9]{0,9})$/.test(k)) throw bad('logit_bias', `'logit_bias' keys must be token ids (decimal integers), got ${describe(k)}`);
      if (typeof v !== 'number' || !Number.isFinite(v) || v < -100 || v > 100) {
        throw bad('logit_bias', `'logit_bias[${k}]' must be a number between -100 and 100, got ${describe(v)}`);
      }
      if (v !== 0) bias[Number(k)] = v;
    }
    if (Object.keys(bias).length > 0) out.logitBias = bias;
  }
  return out;
}

/** Completions' `echo`: the prompt is prepended to each choice's text (and its tokens to logprobs). */
export function parseEcho(body: Body): boolean {
  if (!present(body, 'echo')) return false;
  const v = body.echo;
  if (typeof v !== 'boolean') throw bad('echo', `'echo' must be a boolean, got ${describe(v)}`);
  return v;
}

/** The vocabulary check, once the model is known (request-builder.ts). */
export function checkLogitBiasVocab(bias: Record<number, number> | undefined, nVocab: number): void {
  for (const k of Object.keys(bias ?? {})) {
    if (Number(k) >= nVocab) throw bad('logit_bias', `'logit_bias' key ${k} is not a token id of this model (vocabulary of ${nVocab} tokens)`);
  }
}

/** The parsed extensions onto the engine request. */
export function applySamplingExtensions(p: SamplingExtensions, request: GenerateRequest, nVocab: number | undefined): void {
  if (nVocab !== undefined) checkLogitBiasVocab(p.logitBias, nVocab);
  if (p.presencePenalty !== undefined) request.presencePenalty = p.presencePenalty;
  if (p.frequencyPenalty !== undefined) request.frequencyPenalty = p.frequencyPenalty;
  if (p.repetitionPenalty !== undefined) request.repetitionPenalty = p.repetitionPenalty;
  if (p.minP !== undefined) request.minP = p.minP;
  if (p.logitBias !== undefined) request.logitBias = p.logitBias;
}
