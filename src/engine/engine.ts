// The Engine: TypeScript face of the native engine. Validates in TS, then makes one crossing per call.
import { availableParallelism } from 'node:os';
import { EngineError } from './errors.js';
import { Generation } from './generation.js';
import { native, type NativeEngineHandle } from './native.js';
import { l2Normalize, modelPooling, poolHidden, type Pooling } from './pooling.js';
import { normalizeTokenizeArgs } from './tokenize-args.js';
import { MAX_CHOICES, flattenLogitBias, validateEngineOptions, validateGenerateRequest, validateLayout, validateScheduler, validateTokens } from './validate.js';
import type { EngineOptions, EngineStats, GenerateRequest, ModelInfo, ModelInspection, ModelLayoutSettings, SchedulerSettings, TokenizeOptions } from './types.js';

export class Engine {
  private infoCache: ModelInfo;
  private closed = false;
  /** An in-flight reload: close() waits for it, since the native reload reads the engine it runs on. */
  private reloading: Promise<unknown> | undefined;

  private constructor(private readonly handle: NativeEngineHandle) {
    this.infoCache = handle.info() as unknown as ModelInfo;
  }

  /** The model and its live layout (refreshed after reload()). */
  get info(): ModelInfo {
    return this.infoCache;
  }

  /** Load a GGUF model (on a worker thread: the event loop stays free). Rejects with EngineError. */
  static async load(options: EngineOptions): Promise<Engine> {
    validateEngineOptions(options);
    const tp = options.tpDegree ?? 1;
    // Rank threads: max(tpDegree, epDegree) (expert parallelism beside replicated attention has epDegree ranks).
    const ranks = Math.max(tp, options.epDegree ?? 1);
    const threads = options.threads ?? availableParallelism();
    const handle = await native().loadEngine({
      ...options,
      weights: options.weights ?? 'native',
      tpDegree: tp,
      threadsPerRank: options.threadsPerRank ?? Math.max(1, Math.floor(threads / ranks)),
      contextLength: options.contextLength ?? 0,
    });
    return new Engine(handle);
  }

  /** Which kernel set the addon picked for this CPU (avx512, avx2, scalar) for the f32 / bf16 / q8_0 / q4_0 layouts. */
  static kernels(): string {
    return native().kernels;
  }

  /** The kernel set of the other GGUF block types (K-quants, IQ4, Q4_1, Q5_x, F16): avx512, avx2 or scalar. */
  static quantKernels(): string {
    return native().quantKernels;
  }

  /** What a GGUF file holds (architecture, shapes, tokenizer, tensor types and bytes), from its header only: cheap
   *  for any size of file. Throws EngineError (MODEL_NOT_FOUND, MODEL_CORRUPT). */
  static inspect(path: string): ModelInspection {
    if (typeof path !== 'string' || path.length === 0) throw new EngineError('INVALID_ARGUMENT', `Expected a non-empty path string for path`);
    return native().inspectModel(path);
  }

  /** Text to token ids: tokenize(text, addBos?, { parseSpecial, plainRanges }?) — the native handle's order — or
   *  tokenize(text, { addBos, parseSpecial, plainRanges }). addBos defaults to the tokenizer's add_bos_token;
   *  parseSpecial (default false) turns control-token text into the tokens, except inside plainRanges ([start, end)
   *  UTF-8 byte offsets of user content). See docs/tokenizers.md. */
  tokenize(text: string, addBosOrOptions?: boolean | ({ addBos?: boolean } & TokenizeOptions), options?: TokenizeOptions): number[] {
    this.checkOpen();
    const a = normalizeTokenizeArgs(text, addBosOrOptions, options);
    return Array.from(this.handle.tokenize(text, a.addBos, a.options));
  }

  detokenize(ids: number[]): string {
    this.checkOpen();
    validateTokens('ids', ids, this.info.nVocab);
    return this.handle.detokenize(Int32Array.from(ids));
  }

  /** Start a generation. Invalid requests throw EngineError at once; later failures reject `result`. */
  generate(request: GenerateRequest): Generation {
    return this.start(request, 1)[0]!;
  }

  /** `n` choices of one request (1..16, MAX_CHOICES). The prompt is prefilled once; every choice then starts from its
   *  KV blocks (full blocks shared by reference, the partial last one copied) and samples with its own sampler:
   *  choice i uses seed `request.seed + i` (a random base seed when none is given), so a seeded call is reproducible.
   *  Each Generation is its own request: cancelling, a deadline or preemption of one leaves the others running. */
  generateN(request: GenerateRequest, n: number): Generation[] {
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > MAX_CHOICES) {
      throw new EngineError('INVALID_ARGUMENT', `Expected an integer between 1 and ${MAX_CHOICES} for n but received ${String(n)}`);
    }
    return this.start(request, n);
  }

  private start(request: GenerateRequest, n: number): Generation[] {
    this.checkOpen();
    validateGenerateRequest(request, this.info.nVocab);
    const gens: Generation[] = [];
    const pending: [Parameters<Generation['onEvents']>[0], number][] = [];
    const { ids, id, promptTokens } = this.handle.generate(
      {
        ...request,
        tokens: request.tokens ? Int32Array.from(request.tokens) : undefined,
        maxTokens: request.maxTokens ?? 16,
        temperature: request.temperature ?? 1,
        // Choice i samples with seed + i: keep the base low enough that every choice's seed stays exact.
        seed: request.seed ?? Math.floor(Math.random() * 2 ** 32),
        logprobs: request.logprobs ?? -1,
        logitBias: undefined,
        ...flattenLogitBias(request.logitBias),
        n,
      },
      (events, choice) => {
        // Events are delivered on a later turn of the event loop, so the Generations exist by then; buffer just in case.
        const g = gens[choice ?? 0];
        if (g) g.onEvents(events);
        else pending.push([events, choice ?? 0]);
      },
    );
    (ids ?? [id]).forEach((gid, i) => {
      gens[i] = new Generation(gid, promptTokens, (cid) => this.handle.cancel(cid), request.logprobs !== undefined);
    });
    for (const [evs, choice] of pending) gens[choice]!.onEvents(evs);
    return gens;
  }

  /** Cancel a generation by id; false if it already ended. */
  cancel(id: number): boolean {
    this.checkOpen();
    return this.handle.cancel(id);
  }

  /** Let a request paused by `pauseAfterTokens` go on to its end (a resume before the pause point disarms it);
   *  false if it already ended. */
  resume(id: number): boolean {
    this.checkOpen();
    return this.handle.resume(id);
  }

  /** Logits of a forward pass over `tokens` from position 0: [tokens.length][nVocab] with allLogits, else the last row. */
  async evaluate(tokens: number[], options: { allLogits?: boolean } = {}): Promise<Float32Array> {
    this.checkOpen();
    validateTokens('tokens', tokens, this.info.nVocab);
    return this.handle.evaluate(Int32Array.from(tokens), options.allLogits ?? false);
  }

  /** The final hidden state of every token (after the output norm, before the output head) of one forward pass over
   *  `tokens` from position 0: [tokens.length][info.dim], row-major. What embed() pools. */
  async hiddenStates(tokens: number[]): Promise<Float32Array> {
    this.checkOpen();
    validateTokens('tokens', tokens, this.info.nVocab);
    return this.handle.evaluate(Int32Array.from(tokens), false, true);
  }

  /** One embedding of `tokens`: hiddenStates() pooled (default: the model's pooling, src/engine/pooling.ts) and
   *  L2-normalised unless `normalize` is false. */
  async embed(tokens: number[], options: { pooling?: Pooling; normalize?: boolean } = {}): Promise<Float32Array> {
    const pooling = options.pooling ?? modelPooling(this.info.poolingType);
    const pooled = poolHidden(await this.hiddenStates(tokens), this.info.dim, pooling);
    return options.normalize === false ? pooled : l2Normalize(pooled);
  }

  /** Mean negative log-likelihood (nats/token) and perplexity of `tokens`. Inputs longer than the context are
   *  scored in consecutive windows of `contextLength` tokens; the first token of each window is context only. */
  async perplexity(tokens: number[]): Promise<{ nll: number; perplexity: number; tokens: number }> {
    if (tokens.length < 2) throw new EngineError('INVALID_ARGUMENT', 'Expected at least 2 tokens for perplexity');
    const V = this.info.nVocab,
      window = this.info.contextLength;
    let nll = 0,
      n = 0;
    for (let start = 0; start + 1 < tokens.length; start += window) {
      const chunk = tokens.slice(start, start + window);
      if (chunk.length < 2) break;
      const logits = await this.evaluate(chunk, { allLogits: true });
      for (let i = 0; i + 1 < chunk.length; i++) {
        const row = logits.subarray(i * V, (i + 1) * V);
        let max = -Infinity;
        for (const v of row) max = Math.max(max, v);
        let sum = 0;
        for (const v of row) sum += Math.exp(v - max);
        nll += max + Math.log(sum) - row[chunk[i + 1]!]!;
        n++;
      }
    }
    return { nll: nll / n, perplexity: Math.exp(nll / n), tokens: n };
  }

  /** Change batching knobs live; applied at the next step boundary. Returns the settings now in force. */
  reconfigure(settings: Partial<SchedulerSettings>): SchedulerSettings {
    this.checkOpen();
    validateScheduler(settings);
    return this.handle.reconfigure(settings) as unknown as SchedulerSettings;
  }

  /** Change cold settings: a new model instance is built beside the old one, new and waiting requests move to it,
   *  running ones finish on the old one, which is then freed. No request fails because of a reload. */
  async reload(settings: Partial<ModelLayoutSettings> & { kvCacheBlocks?: number; allreduceDelayUs?: number; alltoallDelayUs?: number }): Promise<ModelInfo> {
    this.checkOpen();
    validateLayout(settings);
    const done = this.handle.reload({ ...settings });
    this.reloading = done.catch(() => undefined);
    try {
      await done;
    } finally {
      this.reloading = undefined;
    }
    this.infoCache = this.handle.info() as unknown as ModelInfo;
    return this.infoCache;
  }

  /** One snapshot of the engine's counters and histograms; cheap, never waits for a step. */
  stats(): EngineStats {
    this.checkOpen();
    return this.handle.stats() as unknown as EngineStats;
  }

  /** Cancel everything in flight and free the model. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.reloading;
    await this.handle.close();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private checkOpen(): void {
    if (this.closed) throw new EngineError('ENGINE_CLOSED', 'the engine is closed');
  }
}
