// The write path of a `stream: true` answer: coalescing and backpressure. sse.ts says what the events hold; this file
// says how they reach the socket.
//
// Coalescing: the router takes a Generation's chunks a batch at a time (Generation.batches: every chunk delivered by
// the time the event loop gets to the stream) and sends each batch as one event, the pieces concatenated
// (coalesce), in one res.write. Nothing ever waits for more tokens: a stream whose reader and event loop keep up
// gets one event per token as before; one that fell behind (a busy loop, a slow reader) catches up in one event.
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
