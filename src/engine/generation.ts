// A running generation: an async iterable of text chunks, and a promise of the final result.
// Chunks are buffered, so a consumer that iterates late (or never) loses nothing and blocks nothing.
import type { NativeEvent } from './native.js';
import type { GenerationResult, TokenChunk, TokenLogprob } from './types.js';
import type { EngineError } from './errors.js';

export class Generation implements AsyncIterable<TokenChunk> {
  readonly id: number;
  readonly promptTokens: number;
  readonly result: Promise<GenerationResult>;

  private readonly chunks: TokenChunk[] = [];
  private waiter: (() => void) | undefined;
  private done = false;
  private error: EngineError | undefined;
  private readonly text: string[] = [];
  private readonly tokens: number[] = [];
  private readonly logprobs: TokenLogprob[] = [];
  private resolveResult!: (r: GenerationResult) => void;
  private rejectResult!: (e: EngineError) => void;
  private readonly startedAt = performance.now();

  constructor(
    id: number,
    promptTokens: number,
    private readonly cancelFn: (id: number) => void,
    private readonly wantLogprobs: boolean,
  ) {
    this.id = id;
    this.promptTokens = promptTokens;
    this.result = new Promise<GenerationResult>((res, rej) => {
      this.resolveResult = res;
      this.rejectResult = rej;
    });
    // The result promise may legitimately go unobserved (a caller that only iterates); avoid unhandled rejections.
    this.result.catch(() => undefined);
  }

  /** Stop generating; the result resolves with finishReason 'cancelled'. */
  cancel(): void {
    if (!this.done) this.cancelFn(this.id);
  }

  /** Called by Engine with each batch of native events. */
  onEvents(events: NativeEvent[]): void {
    for (const ev of events) {
      if (ev.text.length > 0 || ev.tokens.length > 0) {
        const chunk: TokenChunk = { text: ev.text, tokens: ev.tokens };
        if (ev.logprobs) chunk.logprobs = ev.logprobs;
        this.text.push(ev.text);
        this.tokens.push(...ev.tokens);
        if (ev.logprobs) this.logprobs.push(...ev.logprobs);
        this.chunks.push(chunk);
      }
      if (ev.final) this.finish(ev);
    }
    this.wake();
  }

  private finish(ev: NativeEvent): void {
    this.done = true;
    if (ev.error) {
      this.error = ev.error;
      this.rejectResult(ev.error);
      return;
    }
    const t = ev.timings ?? { queueMs: 0, prefillMs: 0, decodeMs: 0, timeToFirstTokenMs: 0 };
    const completion = ev.completionTokens ?? this.tokens.length;
    const prompt = ev.promptTokens ?? this.promptTokens;
    const result: GenerationResult = {
      text: this.text.join(''),
      tokens: [...this.tokens],
      finishReason: ev.finishReason ?? 'stop',
      usage: { promptTokens: prompt, cachedPromptTokens: ev.cachedPromptTokens ?? 0, completionTokens: completion, totalTokens: prompt + completion },
      timings: {
        queueMs: t.queueMs,
        prefillMs: t.prefillMs,
        decodeMs: t.decodeMs,
        timeToFirstTokenMs: t.timeToFirstTokenMs,
        prefillTokensPerS: t.prefillMs > 0 ? (prompt / t.prefillMs) * 1000 : 0,
        // The first token comes from the prefill's logits; decode steps produce the rest.
        decodeTokensPerS: t.decodeMs > 0 && completion > 1 ? ((completion - 1) / t.decodeMs) * 1000 : 0,
      },
    };
    if (this.wantLogprobs) result.logprobs = [...this.logprobs];
    this.resolveResult(result);
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<TokenChunk> {
    for (;;) {
      const chunk = this.chunks.shift();
      if (chunk) {
        yield chunk;
        continue;
      }
      if (this.done) {
        if (this.error) throw this.error;
        return;
      }
      await new Promise<void>((res) => (this.waiter = res));
    }
  }

  /**
   * The same chunks, but each step yields every chunk buffered by then, in order (at least one): a consumer that
   * fell behind the engine (a busy event loop, a slow socket) catches up in one step instead of one per token. It
   * never waits for more than is there, so the first chunk comes as soon as it is delivered. Use either this or
   * the per-chunk iterator on one Generation, not both.
   */
  async *batches(): AsyncGenerator<TokenChunk[]> {
    for (;;) {
      if (this.chunks.length > 0) {
        yield this.chunks.splice(0);
        continue;
      }
      if (this.done) {
        if (this.error) throw this.error;
        return;
      }
      await new Promise<void>((res) => (this.waiter = res));
    }
  }

  /** Milliseconds since generate() was called. */
  get ageMs(): number {
    return performance.now() - this.startedAt;
  }
}
