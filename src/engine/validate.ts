// Validation of everything that crosses into C++: the native side trusts what it receives.
// Messages name the field, what was expected and what was received (sharp's style).
import { EngineError } from './errors.js';
import { KV_DTYPES, WEIGHTS_POLICIES, type EngineOptions, type GenerateRequest, type ModelLayoutSettings, type SchedulerSettings } from './types.js';

function describe(v: unknown): string {
  if (typeof v === 'number') return `${v} of type number`;
  if (typeof v === 'string') return `'${v.length > 40 ? v.slice(0, 40) + '…' : v}' of type string`;
  if (v === null) return 'null';
  if (Array.isArray(v)) return `an array of length ${v.length}`;
  return `a value of type ${typeof v}`;
}

function invalid(field: string, expected: string, got: unknown): EngineError {
  return new EngineError('INVALID_ARGUMENT', `Expected ${expected} for ${field} but received ${describe(got)}`);
}

function checkInt(field: string, v: unknown, min: number, max: number): void {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw invalid(field, `an integer between ${min} and ${max}`, v);
  }
}

function checkNumber(field: string, v: unknown, min: number, max: number): void {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) {
    throw invalid(field, `a finite number between ${min} and ${max}`, v);
  }
}

export function validateEngineOptions(o: EngineOptions): void {
  if (typeof o !== 'object' || o === null) throw invalid('options', 'an object', o);
  if (typeof o.model !== 'string' || o.model.length === 0) throw invalid('model', 'a non-empty path string', o.model);
  validateLayout(o);
  if (o.threads !== undefined) checkInt('threads', o.threads, 1, 256);
  if (o.kvCacheBlocks !== undefined) checkInt('kvCacheBlocks', o.kvCacheBlocks, 1, 1 << 24);
  if (o.kvCacheMaxBytes !== undefined) checkInt('kvCacheMaxBytes', o.kvCacheMaxBytes, 1 << 16, Number.MAX_SAFE_INTEGER);
  if (o.allreduceDelayUs !== undefined) checkInt('allreduceDelayUs', o.allreduceDelayUs, 0, 1_000_000);
  if (o.alltoallDelayUs !== undefined) checkInt('alltoallDelayUs', o.alltoallDelayUs, 0, 1_000_000);
  if (o.scheduler !== undefined) validateScheduler(o.scheduler);
}

/** Cold settings (load and reload). */
export function validateLayout(o: Partial<ModelLayoutSettings> & { kvCacheBlocks?: number; allreduceDelayUs?: number; alltoallDelayUs?: number }): void {
  if (typeof o !== 'object' || o === null) throw invalid('settings', 'an object', o);
  if (o.weights !== undefined && !WEIGHTS_POLICIES.includes(o.weights)) {
    throw invalid('weights', `one of ${WEIGHTS_POLICIES.join(', ')}`, o.weights);
  }
  if (o.kvDtype !== undefined && !KV_DTYPES.includes(o.kvDtype)) throw invalid('kvDtype', `one of ${KV_DTYPES.join(', ')}`, o.kvDtype);
  if (o.tpDegree !== undefined) checkInt('tpDegree', o.tpDegree, 1, 64);
  if (o.threadsPerRank !== undefined) checkInt('threadsPerRank', o.threadsPerRank, 1, 256);
  if (o.kvBlockSizeTokens !== undefined) checkInt('kvBlockSizeTokens', o.kvBlockSizeTokens, 1, 1024);
  if (o.contextLength !== undefined) checkInt('contextLength', o.contextLength, 2, 1 << 20);
  if (o.kvCacheBlocks !== undefined) checkInt('kvCacheBlocks', o.kvCacheBlocks, 1, 1 << 24);
  if (o.allreduceDelayUs !== undefined) checkInt('allreduceDelayUs', o.allreduceDelayUs, 0, 1_000_000);
  if (o.epDegree !== undefined) checkInt('epDegree', o.epDegree, 1, 64);
  if (o.redundantExperts !== undefined) validateExperts('redundantExperts', o.redundantExperts);
  if (o.alltoallDelayUs !== undefined) checkInt('alltoallDelayUs', o.alltoallDelayUs, 0, 1_000_000);
}

/** Most replicated experts one layout may name (DeepSeek-V3 serves with 32 redundant experts per layer group). */
export const MAX_REDUNDANT_EXPERTS = 4096;

/** A set of {layer, expert}: whole numbers, no repeats. Whether each names an MoE layer and an expert the model has is
 *  the engine's to check at load (it knows the model); here only the shape. */
function validateExperts(field: string, v: unknown): void {
  if (!Array.isArray(v) || v.length > MAX_REDUNDANT_EXPERTS) throw invalid(field, `an array of at most ${MAX_REDUNDANT_EXPERTS} {layer, expert} objects`, v);
  const seen = new Set<string>();
  v.forEach((e: unknown, i) => {
    if (typeof e !== 'object' || e === null || Array.isArray(e)) throw invalid(`${field}[${i}]`, 'an object {layer, expert}', e);
    const keys = Object.keys(e);
    const extra = keys.find((k) => k !== 'layer' && k !== 'expert');
    if (extra !== undefined) throw new EngineError('INVALID_ARGUMENT', `Unknown key '${extra}' in ${field}[${i}] (known: layer, expert)`);
    const { layer, expert } = e as { layer?: unknown; expert?: unknown };
    checkInt(`${field}[${i}].layer`, layer, 0, 65_535);
    checkInt(`${field}[${i}].expert`, expert, 0, 65_535);
    const key = `${String(layer)}:${String(expert)}`;
    if (seen.has(key)) throw new EngineError('INVALID_ARGUMENT', `${field}[${i}] repeats layer ${String(layer)} expert ${String(expert)}`);
    seen.add(key);
  });
}

/** Hot settings (load and reconfigure). */
export function validateScheduler(s: Partial<SchedulerSettings>): void {
  if (typeof s !== 'object' || s === null) throw invalid('scheduler', 'an object', s);
  const known = ['maxBatchSize', 'maxBatchTokens', 'maxQueueDelayMs', 'queueGrowThreshold', 'maxQueueLength'];
  for (const k of Object.keys(s)) if (!known.includes(k)) throw new EngineError('INVALID_ARGUMENT', `Unknown scheduler setting '${k}' (known: ${known.join(', ')})`);
  if (s.maxBatchSize !== undefined) checkInt('maxBatchSize', s.maxBatchSize, 1, 4096);
  if (s.maxBatchTokens !== undefined) checkInt('maxBatchTokens', s.maxBatchTokens, 1, 1 << 20);
  if (s.maxQueueDelayMs !== undefined) checkNumber('maxQueueDelayMs', s.maxQueueDelayMs, 0, 60_000);
  if (s.queueGrowThreshold !== undefined) checkInt('queueGrowThreshold', s.queueGrowThreshold, 0, 1 << 20);
  if (s.maxQueueLength !== undefined) checkInt('maxQueueLength', s.maxQueueLength, 0, 1 << 20);
}

export const MAX_STOP_SEQUENCES = 16;
/** Grammar text the engine accepts (the native parser's limit, GrammarLimits::MAX_TEXT_BYTES, counts bytes). */
export const MAX_GRAMMAR_BYTES = 1 << 20;
export const MAX_GRAMMAR_TRIGGERS = 16;
export const MAX_GRAMMAR_TRIGGER_LENGTH = 256;
export const MAX_LOGPROBS = 20;

export function validateGenerateRequest(r: GenerateRequest, nVocab: number): void {
  if (typeof r !== 'object' || r === null) throw invalid('request', 'an object', r);
  const hasPrompt = r.prompt !== undefined,
    hasTokens = r.tokens !== undefined;
  if (hasPrompt === hasTokens) {
    throw new EngineError('INVALID_ARGUMENT', 'Expected exactly one of prompt and tokens in the request');
  }
  if (hasPrompt && typeof r.prompt !== 'string') throw invalid('prompt', 'a string', r.prompt);
  if (hasTokens) validateTokens('tokens', r.tokens, nVocab);
  if (r.addBos !== undefined && typeof r.addBos !== 'boolean') throw invalid('addBos', 'a boolean', r.addBos);
  if (r.maxTokens !== undefined) checkInt('maxTokens', r.maxTokens, 0, 1 << 20);
  if (r.temperature !== undefined) checkNumber('temperature', r.temperature, 0, 100);
  if (r.topK !== undefined) checkInt('topK', r.topK, 0, nVocab);
  if (r.topP !== undefined) {
    checkNumber('topP', r.topP, 0, 1);
    if (r.topP === 0) throw invalid('topP', 'a number in (0, 1]', r.topP);
  }
  if (r.seed !== undefined) checkInt('seed', r.seed, 0, Number.MAX_SAFE_INTEGER);
  if (r.logprobs !== undefined) checkInt('logprobs', r.logprobs, 0, MAX_LOGPROBS);
  if (r.stopAtEos !== undefined && typeof r.stopAtEos !== 'boolean') throw invalid('stopAtEos', 'a boolean', r.stopAtEos);
  if (r.deadlineMs !== undefined) checkNumber('deadlineMs', r.deadlineMs, 0, 86_400_000);
  if (r.pauseAfterTokens !== undefined) checkInt('pauseAfterTokens', r.pauseAfterTokens, 0, 1 << 20);
  if (r.stop !== undefined) {
    if (!Array.isArray(r.stop) || r.stop.length > MAX_STOP_SEQUENCES) {
      throw invalid('stop', `an array of at most ${MAX_STOP_SEQUENCES} strings`, r.stop);
    }
    r.stop.forEach((s, i) => {
      if (typeof s !== 'string' || s.length === 0) throw invalid(`stop[${i}]`, 'a non-empty string', s);
    });
  }
  validateGrammarFields(r);
}

function validateGrammarFields(r: GenerateRequest): void {
  if (r.grammar !== undefined) {
    if (typeof r.grammar !== 'string' || r.grammar.length === 0) throw invalid('grammar', 'a non-empty GBNF string', r.grammar);
    if (Buffer.byteLength(r.grammar, 'utf8') > MAX_GRAMMAR_BYTES) {
      throw new EngineError('INVALID_ARGUMENT', `grammar: the text is ${Buffer.byteLength(r.grammar, 'utf8')} bytes; at most ${MAX_GRAMMAR_BYTES} are accepted`);
    }
  }
  if (r.grammarTriggers !== undefined) {
    if (r.grammar === undefined) throw new EngineError('INVALID_ARGUMENT', 'grammarTriggers requires grammar');
    if (!Array.isArray(r.grammarTriggers) || r.grammarTriggers.length === 0 || r.grammarTriggers.length > MAX_GRAMMAR_TRIGGERS) {
      throw invalid('grammarTriggers', `an array of 1 to ${MAX_GRAMMAR_TRIGGERS} strings`, r.grammarTriggers);
    }
    r.grammarTriggers.forEach((t, i) => {
      if (typeof t !== 'string' || t.length === 0 || Buffer.byteLength(t, 'utf8') > MAX_GRAMMAR_TRIGGER_LENGTH) {
        throw invalid(`grammarTriggers[${i}]`, `a non-empty string of at most ${MAX_GRAMMAR_TRIGGER_LENGTH} bytes`, t);
      }
    });
  }
}

export function validateTokens(field: string, tokens: unknown, nVocab: number): asserts tokens is number[] {
  if (!Array.isArray(tokens) || tokens.length === 0) throw invalid(field, 'a non-empty array of token ids', tokens);
  for (let i = 0; i < tokens.length; i++) {
    const t: unknown = tokens[i];
    if (typeof t !== 'number' || !Number.isInteger(t) || t < 0 || t >= nVocab) {
      throw invalid(`${field}[${i}]`, `a token id between 0 and ${nVocab - 1}`, t);
    }
  }
}
