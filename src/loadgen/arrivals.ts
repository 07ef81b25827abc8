// When requests are sent. Open loop: Poisson arrivals at a fixed rate, whatever the server does (a slow server
// builds a queue, as real traffic would). Closed loop: C workers each send their next request as soon as the last
// one finishes (the server's speed sets the rate). Both take a `fire(index)` that runs one request.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Rng } from './workload.js';

/** Arrival offsets in seconds from the run's start, over [0, durationS): exponential gaps of mean 1/rate. */
export function poissonArrivals(rate: number, durationS: number, rng: Rng, maxRequests = Infinity): number[] {
  if (!(rate > 0) || !Number.isFinite(rate)) throw new Error(`the arrival rate must be a positive number, got ${rate}`);
  if (!(durationS > 0)) throw new Error(`the duration must be positive, got ${durationS}`);
  const out: number[] = [];
  let t = 0;
  for (;;) {
    t += -Math.log(1 - rng()) / rate;
    if (t >= durationS || out.length >= maxRequests) return out;
    out.push(t);
  }
}

export type Fire = (index: number) => Promise<void>;

/** A counting semaphore: open loop with --concurrency caps requests in flight (arrivals wait for a slot). */
class Slots {
  private free: number;
  private readonly waiters: (() => void)[] = [];
  constructor(n: number) {
    this.free = n;
  }
  async take(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return;
    }
    await new Promise<void>((res) => this.waiters.push(res));
  }
  give(): void {
    const w = this.waiters.shift();
    if (w) w();
    else this.free++;
  }
}

export interface OpenLoopOptions {
  /** Seconds from start (poissonArrivals). */
  offsets: readonly number[];
  /** Cap on requests in flight; unlimited when absent. */
  concurrency?: number;
  /** Stops new arrivals (requests already sent are the caller's to abort). */
  signal?: AbortSignal;
  fire: Fire;
  /** Called with the number of requests sent so far, each time one is sent. */
  onSent?: (sent: number) => void;
}

/** Sends each request at its offset; resolves when every sent request has settled. */
export async function driveOpenLoop(o: OpenLoopOptions): Promise<number> {
  const start = performance.now();
  const slots = o.concurrency !== undefined ? new Slots(o.concurrency) : undefined;
  const inflight = new Set<Promise<void>>();
  let sent = 0;
  for (let i = 0; i < o.offsets.length; i++) {
    if (o.signal?.aborted) break;
    const wait = start + o.offsets[i]! * 1000 - performance.now();
    // A timer per arrival rather than one per batch: arrivals drift by the timer's lateness only, never accumulate it.
    if (wait > 0) await sleep(wait, undefined, { signal: o.signal }).catch(() => undefined);
    if (o.signal?.aborted) break;
    if (slots) await slots.take();
    const p: Promise<void> = o
      .fire(i)
      .catch(() => undefined)
      .finally(() => {
        inflight.delete(p);
        slots?.give();
      });
    inflight.add(p);
    sent++;
    o.onSent?.(sent);
  }
  await Promise.all(inflight);
  return sent;
}

export interface ClosedLoopOptions {
  concurrency: number;
  /** Stop sending new requests after this many seconds. */
  durationS?: number;
  /** Stop after this many requests in all. */
  maxRequests?: number;
  signal?: AbortSignal;
  fire: Fire;
  onSent?: (sent: number) => void;
}

/** C workers back to back; resolves when every worker has finished its last request. */
export async function driveClosedLoop(o: ClosedLoopOptions): Promise<number> {
  if (!Number.isInteger(o.concurrency) || o.concurrency < 1) throw new Error(`concurrency must be a positive integer, got ${o.concurrency}`);
  if (o.durationS === undefined && o.maxRequests === undefined) throw new Error('a closed loop needs a duration or a request count');
  const deadline = o.durationS !== undefined ? performance.now() + o.durationS * 1000 : Infinity;
  const max = o.maxRequests ?? Infinity;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (!o.signal?.aborted && performance.now() < deadline && next < max) {
      const i = next++;
      o.onSent?.(next);
      await o.fire(i).catch(() => undefined);
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, worker));
  return next;
}
