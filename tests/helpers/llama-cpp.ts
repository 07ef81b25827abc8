// The reference peer: llama.cpp through node-llama-cpp (a devDependency with prebuilt CPU binaries), as an oracle
// for tuneloop's engine (teacher-forced next-token distributions, perplexity) and as the speed peer of bench/quant.ts.
//
// Nothing is downloaded or built: getLlama() runs with gpu: false, build: 'never', skipDownload: true, so a missing
// prebuilt binary is an error here, never a compile (package.json's config.nodeLlamaCppPostinstall = 'skip' keeps
// `npm ci` from trying either).
import { getLlama, LlamaLogLevel, type Llama, type LlamaContext, type LlamaContextSequence, type LlamaModel, type Token } from 'node-llama-cpp';

let llamaPromise: Promise<Llama> | undefined;

/** The process-wide llama.cpp binding (CPU only, prebuilt binaries only). */
export function llamaCpp(): Promise<Llama> {
  llamaPromise ??= getLlama({
    gpu: false,
    build: 'never',
    usePrebuiltBinaries: true,
    skipDownload: true,
    progressLogs: false,
    logLevel: LlamaLogLevel.error,
    // No process-wide thread cap: each context says how many it uses.
    maxThreads: 0,
  });
  return llamaPromise;
}

/** A next-token distribution: dense (one probability per vocabulary id) or sparse (top-k ids and their probabilities). */
export type Distribution = Float32Array | SparseDistribution;
export interface SparseDistribution {
  ids: Int32Array;
  probs: Float32Array;
}

export interface LlamaCppOracleOptions {
  /** CPU threads for evaluation (default 2). */
  threads?: number;
  /** Context window in tokens (default: the model's trained context, at most 2048). */
  contextSize?: number;
  /** Tokens per llama_decode batch (default: min(contextSize, 512)). */
  batchSize?: number;
  /** KV-cache element type: 'F32' for an oracle (the default), 'F16' for llama.cpp's own default (benchmarks). */
  kvCacheType?: 'F32' | 'F16';
  /** Flash attention (default false: the plain softmax path, closest to tuneloop's; 'auto' is llama.cpp's default). */
  flashAttention?: boolean | 'auto';
}

export interface DecodeTiming {
  promptTokens: number;
  completionTokens: number;
  /** Prompt evaluation up to the first sampled token. */
  prefillMs: number;
  /** From the first sampled token to the last. */
  decodeMs: number;
  prefillTokensPerS: number;
  /** (completionTokens - 1) / decodeMs: the same definition as tuneloop's timings.decodeTokensPerS. */
  decodeTokensPerS: number;
  tokens: number[];
}

/** One GGUF loaded in llama.cpp with one context and one sequence. */
export class LlamaCppOracle {
  private constructor(
    readonly model: LlamaModel,
    readonly context: LlamaContext,
    private readonly sequence: LlamaContextSequence,
    readonly nVocab: number,
  ) {}

  static async load(modelPath: string, options: LlamaCppOracleOptions = {}): Promise<LlamaCppOracle> {
    const llama = await llamaCpp();
    const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
    try {
      const contextSize = options.contextSize ?? Math.min(model.trainContextSize, 2048);
      const kv = options.kvCacheType ?? 'F32';
      const context = await model.createContext({
        contextSize,
        batchSize: options.batchSize ?? Math.min(contextSize, 512),
        threads: options.threads ?? 2,
        sequences: 1,
        flashAttention: options.flashAttention ?? false,
        experimentalKvCacheKeyType: kv,
        experimentalKvCacheValueType: kv,
      });
      const tokens = model.fileInfo.metadata.tokenizer?.ggml?.tokens;
      const nVocab = Array.isArray(tokens) ? tokens.length : 0;
      return new LlamaCppOracle(model, context, context.getSequence(), nVocab);
    } catch (e) {
      await model.dispose();
      throw e;
    }
  }

  get contextSize(): number {
    return this.context.contextSize;
  }

  /** llama.cpp's tokenization of `text`; BOS first when `addBos` (default: the model's add_bos_token). */
  tokenize(text: string, options: { addBos?: boolean } = {}): number[] {
    const ids = this.model.tokenize(text, false).map(Number);
    const bos = this.model.tokens.bos;
    const addBos = options.addBos ?? this.model.tokens.shouldPrependBosToken;
    return addBos && bos !== null ? [Number(bos), ...ids] : ids;
  }

  /**
   * Teacher-forced next-token distributions: evaluates `tokens` from position 0 (a fresh sequence) and returns, for
   * each position i in `positions` (default: every position), llama.cpp's softmax over the vocabulary for the token
   * after tokens[0..i] (the raw logits' softmax: a greedy sampler, no temperature, penalties or truncation).
   * `topK` returns sparse top-k distributions instead of dense ones; `samplerTopK` has llama.cpp cut them (below).
   */
  async distributions(tokens: readonly number[], options: { positions?: readonly number[]; topK?: number; samplerTopK?: number } = {}): Promise<Distribution[]> {
    if (tokens.length === 0) return [];
    if (tokens.length > this.contextSize) throw new Error(`${tokens.length} tokens do not fit the context of ${this.contextSize}`);
    const want = new Set(options.positions ?? tokens.map((_, i) => i));
    await this.sequence.clearHistory();
    // samplerTopK: llama.cpp's own top-k sampler cuts the list to the K most likely tokens before the probabilities
    // are taken (so they are renormalized over those K). On 100k-260k-token vocabularies the full list costs ~0.5 s
    // per position (a full sort and a JS Map of every token); this is what keeps real-vocabulary tests fast. Top-p 1,
    // min-p 0 and temperature 1 leave the K logits as they are.
    const next =
      options.samplerTopK !== undefined
        ? { probabilities: true, options: { topK: options.samplerTopK, topP: 1, minP: 0, temperature: 1, seed: 1 } }
        : { probabilities: true };
    const input = tokens.map((t, i) => (want.has(i) ? ([t as Token, { generateNext: next }] as const) : (t as Token)));
    const out = await this.sequence.controlledEvaluate(input as Parameters<LlamaContextSequence['controlledEvaluate']>[0]);
    const result: Distribution[] = [];
    for (let i = 0; i < tokens.length; i++) {
      if (!want.has(i)) continue;
      const probs = out[i]?.next.probabilities;
      if (probs === undefined) throw new Error(`llama.cpp returned no probabilities at position ${i}`);
      const sparse = options.topK ?? options.samplerTopK;
      result.push(sparse !== undefined ? sparseFromMap(probs, sparse) : denseFromMap(probs, this.nVocab || probs.size));
    }
    await this.sequence.clearHistory();
    return result;
  }

  /** Mean NLL (nats/token) and perplexity of `tokens`, scored like tuneloop's Engine.perplexity: consecutive windows
   *  of `window` tokens (default: the context size), the first token of each window context only. */
  async perplexity(tokens: readonly number[], options: { window?: number } = {}): Promise<{ nll: number; perplexity: number; tokens: number }> {
    if (tokens.length < 2) throw new Error('perplexity needs at least 2 tokens');
    const window = options.window ?? this.contextSize;
    let nll = 0,
      n = 0;
    for (let start = 0; start + 1 < tokens.length; start += window) {
      const chunk = tokens.slice(start, start + window);
      if (chunk.length < 2) break;
      const positions = chunk.slice(0, -1).map((_, i) => i);
      const dists = await this.distributions(chunk, { positions });
      for (let i = 0; i + 1 < chunk.length; i++) {
        const p = probabilityOf(dists[i]!, chunk[i + 1]!);
        nll -= Math.log(Math.max(p, 1e-30));
        n++;
      }
    }
    return { nll: nll / n, perplexity: Math.exp(nll / n), tokens: n };
  }

  /** Wall time of evaluating `tokens` from an empty sequence (no sampling): prefill speed. */
  async prefill(tokens: readonly number[]): Promise<{ ms: number; tokensPerS: number }> {
    await this.sequence.clearHistory();
    const t0 = performance.now();
    await this.sequence.evaluateWithoutGeneratingNewTokens(tokens as Token[]);
    const ms = performance.now() - t0;
    await this.sequence.clearHistory();
    return { ms, tokensPerS: (tokens.length / ms) * 1000 };
  }

  /** Greedy generation of exactly `maxTokens` tokens after `prompt` (EOS does not stop it), timed like tuneloop. */
  async decode(prompt: readonly number[], maxTokens: number): Promise<DecodeTiming> {
    if (maxTokens < 1) throw new Error('maxTokens must be at least 1');
    await this.sequence.clearHistory();
    const tokens: number[] = [];
    const t0 = performance.now();
    let tFirst = t0,
      tLast = t0;
    for await (const token of this.sequence.evaluate(prompt as Token[], { temperature: 0, yieldEogToken: true })) {
      tLast = performance.now();
      if (tokens.length === 0) tFirst = tLast;
      tokens.push(Number(token));
      if (tokens.length >= maxTokens) break;
    }
    await this.sequence.clearHistory();
    const prefillMs = tFirst - t0,
      decodeMs = tLast - tFirst;
    return {
      promptTokens: prompt.length,
      completionTokens: tokens.length,
      prefillMs,
      decodeMs,
      prefillTokensPerS: prefillMs > 0 ? (prompt.length / prefillMs) * 1000 : 0,
      decodeTokensPerS: decodeMs > 0 && tokens.length > 1 ? ((tokens.length - 1) / decodeMs) * 1000 : 0,
      tokens,
    };
  }

  async close(): Promise<void> {
    await this.context.dispose();
    await this.model.dispose();
  }
}

function denseFromMap(probs: Map<Token, number>, nVocab: number): Float32Array {
  const d = new Float32Array(nVocab);
  for (const [id, p] of probs) if (id < nVocab) d[id] = p;
  return d;
}

function sparseFromMap(probs: Map<Token, number>, k: number): SparseDistribution {
  // The map is sorted by probability, highest first.
  const ids = new Int32Array(Math.min(k, probs.size));
  const ps = new Float32Array(ids.length);
  let i = 0;
  for (const [id, p] of probs) {
    if (i >= ids.length) break;
    ids[i] = id;
    ps[i++] = p;
  }
  return { ids, probs: ps };
}

/** Softmax of each row of a [n][nVocab] logits buffer (tuneloop's engine.evaluate with allLogits) into dense distributions. */
export function softmaxRows(logits: Float32Array, nVocab: number): Float32Array[] {
  const rows: Float32Array[] = [];
  for (let off = 0; off + nVocab <= logits.length; off += nVocab) {
    const row = logits.subarray(off, off + nVocab);
    let max = -Infinity;
    for (const v of row) if (v > max) max = v;
    const out = new Float32Array(nVocab);
    let sum = 0;
    for (let i = 0; i < nVocab; i++) sum += out[i] = Math.exp(row[i]! - max);
    for (let i = 0; i < nVocab; i++) out[i]! /= sum;
    rows.push(out);
  }
  return rows;
}

/** Probability of `id` in a distribution (0 when a sparse one does not list it). */
export function probabilityOf(d: Distribution, id: number): number {
  if (d instanceof Float32Array) return d[id] ?? 0;
  const i = d.ids.indexOf(id);
  return i < 0 ? 0 : d.probs[i]!;
}

function argmax(d: Distribution): number {
  if (d instanceof Float32Array) {
    let best = 0;
    for (let i = 1; i < d.length; i++) if (d[i]! > d[best]!) best = i;
    return best;
  }
  let best = 0;
  for (let i = 1; i < d.probs.length; i++) if (d.probs[i]! > d.probs[best]!) best = i;
  return d.ids[best] ?? -1;
}

/** Entries of a distribution as id → probability (sparse ones as listed). */
function entries(d: Distribution): Map<number, number> {
  const m = new Map<number, number>();
  if (d instanceof Float32Array) d.forEach((p, i) => m.set(i, p));
  else d.ids.forEach((id, i) => m.set(id, d.probs[i]!));
  return m;
}

export interface DistributionAgreement {
  positions: number;
  /** Mean over positions of the cosine similarity of the two probability vectors. */
  meanCosine: number;
  minCosine: number;
  /** Share of positions whose most probable token is the same. */
  top1Agreement: number;
  /** Largest |p_a - p_b| over every position and token. */
  maxAbsDiff: number;
  /** Mean over positions of KL(a || b) in nats, over the tokens both list (dense: the whole vocabulary). */
  meanKl: number;
}

/**
 * Agreement of two per-position distribution lists (dense or sparse, in any mix). For sparse ones the comparison
 * runs over the union of listed ids, an unlisted id counting as probability 0 (so compare top-k lists of equal k,
 * large enough to hold nearly all the mass).
 */
export function compareDistributions(a: readonly Distribution[], b: readonly Distribution[]): DistributionAgreement {
  if (a.length !== b.length) throw new Error(`position counts differ: ${a.length} vs ${b.length}`);
  if (a.length === 0) throw new Error('no positions to compare');
  let cosSum = 0,
    cosMin = Infinity,
    top1 = 0,
    maxAbs = 0,
    klSum = 0;
  for (let p = 0; p < a.length; p++) {
    const da = a[p]!,
      db = b[p]!;
    let dot = 0,
      na = 0,
      nb = 0,
      kl = 0;
    const visit = (x: number, y: number): void => {
      dot += x * y;
      na += x * x;
      nb += y * y;
      maxAbs = Math.max(maxAbs, Math.abs(x - y));
      if (x > 0 && y > 0) kl += x * Math.log(x / y);
    };
    if (da instanceof Float32Array && db instanceof Float32Array) {
      if (da.length !== db.length) throw new Error(`vocabulary sizes differ at position ${p}: ${da.length} vs ${db.length}`);
      for (let i = 0; i < da.length; i++) visit(da[i]!, db[i]!);
    } else {
      const ea = entries(da),
        eb = entries(db);
      for (const [id, x] of ea) visit(x, eb.get(id) ?? 0);
      for (const [id, y] of eb) if (!ea.has(id)) visit(0, y);
    }
    const cos = na > 0 && nb > 0 ? dot / Math.sqrt(na * nb) : 0;
    cosSum += cos;
    cosMin = Math.min(cosMin, cos);
    klSum += kl;
    if (argmax(da) === argmax(db)) top1++;
  }
  return { positions: a.length, meanCosine: cosSum / a.length, minCosine: cosMin, top1Agreement: top1 / a.length, maxAbsDiff: maxAbs, meanKl: klSum / a.length };
}
