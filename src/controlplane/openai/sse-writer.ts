// The write path of a `stream: true` answer: coalescing and backpressure. sse.ts says what the events hold; this file
// says how they reach the socket.
//
// Coalescing: the router takes a Generation's chunks a batch at a time (Generation.batches: every chunk delivered by
// the time the event loop gets to the stream) and sends each batch as one event, the pieces concatenated
// (coalesce), in one res.write. Nothing ever waits for more tokens: a stream whose reader and event loop keep up
// gets one event per token as before; one that fell behind (a busy loop, a slow reader) catches up in one event.
// server.streamInterval (default 1) can ask for fewer, larger events: after the first event, tokens are held until that
// many have gathered (HeldTokens) — a latency cost per token for a smaller per-event cost, as in vLLM and SGLang.
// The concatenation is exact — text, token ids and logprobs in order — so a client that joins the deltas (the
// openai SDK's stream helpers, for one) sees the same answer either way.
//
// Backpressure: when res.write reports the socket's buffer full, the stream waits for 'drain' before taking the next
// batch; tokens the engine delivers meanwhile accumulate in the Generation and go out as one event once the reader
// catches up, so a slow reader costs a few bytes of text, not an unbounded queue of frames.
import type { Response } from 'express';
import type { TokenChunk } from '../../engine/types.js';

/** One chunk holding a batch's text, token ids and logprobs, in order (the batch itself when it has one chunk). */
export function coalesce(batch: readonly TokenChunk[]): TokenChunk {
  if (batch.length === 1) return batch[0]!;
  let text = '';
  const tokens: number[] = [];
  let logprobs: TokenChunk['logprobs'];
  for (const c of batch) {
    text += c.text;
    for (const t of c.tokens) tokens.push(t);
    if (c.logprobs) {
      logprobs ??= [];
      for (const lp of c.logprobs) logprobs.push(lp);
    }
  }
  return logprobs ? { text, tokens, logprobs } : { text, tokens };
}

/**
 * The chunks not yet sent, and when to send them: at once until the first event has gone out (the first token never
 * waits), then once at least `interval` tokens have gathered (server.streamInterval, as vLLM's and SGLang's
 * --stream-interval; 1 = every delivered batch), and whatever is left at the end. `take` hands the held chunks,
 * coalesced, to the encoder.
 */
export class HeldTokens {
  private chunks: TokenChunk[] = [];
  private tokens = 0;
  private sentFirst = false;

  constructor(private readonly interval: number) {}

  /** Holds a batch; true when the held chunks should be sent now. */
  add(batch: readonly TokenChunk[]): boolean {
    for (const c of batch) {
      this.chunks.push(c);
      this.tokens += c.tokens.length;
    }
    return !this.sentFirst || this.interval <= 1 || this.tokens >= this.interval;
  }

  /** The encoder's event for everything held (undefined when there is nothing, or nothing the encoder sends). */
  take<T>(encode: (chunk: TokenChunk) => T | undefined): T | undefined {
    if (this.chunks.length === 0) return undefined;
    const out = encode(coalesce(this.chunks));
    this.chunks = [];
    this.tokens = 0;
    // Only an event actually sent ends the first-token rule: text held back (a possible stop sequence) is not one.
    if (out !== undefined) this.sentFirst = true;
    return out;
  }
}

/** Writes an event stream's bytes, one res.write per call, and tells when the socket wants no more for now. */
export class SseWriter {
  private full = false;

  constructor(private readonly res: Response) {}

  /** Writes `frames` (one or more whole events) unless the response has ended (the client left, or an error ended
   *  the stream). */
  write(frames: string): void {
    if (frames.length === 0 || this.res.writableEnded || this.res.destroyed) return;
    if (!this.res.write(frames)) this.full = true;
  }

  /** Resolves at once while the socket takes writes; after a write it could not take, once it has drained (or the
   *  response has closed: the caller then sees its request cancelled). */
  ready(): Promise<void> | undefined {
    if (!this.full) return undefined;
    this.full = false;
    const res = this.res;
    if (res.destroyed || res.writableEnded || !res.writableNeedDrain) return undefined;
    return new Promise((resolve) => {
      const done = () => {
        res.off('drain', done);
        res.off('close', done);
        resolve();
      };
      res.on('drain', done);
      res.on('close', done);
    });
  }

  /** The last events and the end of the response, in one write. */
  end(frames: string): void {
    if (this.res.writableEnded || this.res.destroyed) return;
    this.res.end(frames);
  }
}
