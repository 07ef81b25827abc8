// Issue 9, Load: overload. `tuneloop serve` in a child process (the load client in this process would otherwise
// compete with the server for its event loop), its capacity measured closed-loop, then 5× that rate offered as
// open-loop Poisson arrivals for 60 s (runOverload, src/loadgen/overload.ts; `npm run bench:overload` prints the same
// figures). The server must shed the excess with 429 + Retry-After instead of queueing it into timeouts, keep the
// admitted requests' latency bounded, answer /healthz promptly throughout, never answer 5xx, and give back the
// memory the burst took.
//
// Server settings: a short waiting queue (scheduler.maxQueueLength 8), so admission control sheds early; the
// per-key rate limit and stream cap off, since every request here comes from one address and would otherwise be
// refused by those (rate_limit_exceeded) before the queue was ever full.
//
// Bounds are for a shared 2-core CI box, which may run other test files (and the server's own compute thread) beside
// this one: on an idle machine /healthz answers in a few ms; here a process can be descheduled for hundreds of ms.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { formatOverload, nativeGrowth, runOverload } from '../../src/loadgen/overload.js';
import { startServeChild, type ServeChild } from '../helpers/serve-child.js';
import { MODEL } from '../controlplane/harness.js';

const MiB = 1024 * 1024;
const QUEUE = 8;
const BATCH = 16;
const DURATION_S = 60;
const PROBE_EVERY_MS = 150;

describe('overload: 5× the measured capacity for 60 s', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tuneloop-overload-'));
  let child: ServeChild | undefined;
  afterAll(() => {
    if (child && child.child.exitCode === null) child.child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('sheds with 429 + Retry-After, keeps /healthz and admitted latency bounded, no 5xx, memory back to baseline', async () => {
    child = startServeChild([
      '--model',
      MODEL,
      '--port',
      '0',
      '--threads',
      '1',
      '--set',
      `tuner.storePath=${join(dir, 'tuner.db')}`,
      '--set',
      'tuner.enabled=false',
      '--set',
      'server.rateLimitPerMinute=0',
      '--set',
      'server.maxConcurrentStreamsPerKey=0',
      '--set',
      `scheduler.maxQueueLength=${QUEUE}`,
      '--set',
      `scheduler.maxBatchSize=${BATCH}`,
    ]);
    const url = await child.url;
    const r = await runOverload({ url, factor: 5, durationS: DURATION_S, capacityS: 5, settleS: 3, tokens: 64, probeEveryMs: PROBE_EVERY_MS });
    console.log(formatOverload(r));

    // Sheds, and only by refusing: every failure is a 429, each with Retry-After; nothing timed out or broke.
    expect(r.requests.shed).toBeGreaterThan(0);
    expect(r.shedWithoutRetryAfter).toBe(0);
    expect(Object.keys(r.errors)).toEqual(['http_429']);
    expect(r.requests.failed).toBe(0);
    expect(r.requests.completed).toBe(r.requests.admitted);
    // At 5× capacity the ideal shed share is 80%; more than half shows the excess was refused, not queued.
    expect(r.shedShare).toBeGreaterThan(0.5);
    // The server's own count agrees, and it never answered 5xx.
    expect(r.serverStatuses).toEqual({ 200: r.requests.completed, 429: r.requests.shed });
    // Refusing costs little: the admitted work went on at no less than 40% of the measured capacity (about 70-90%
    // observed; the rest goes to parsing and refusing four times as many requests on the same two cores).
    expect(r.requests.completed / DURATION_S).toBeGreaterThan(0.4 * r.capacity.requestsPerS);

    // Bounded latency of admitted requests: one shares the server with at most QUEUE + BATCH others, which it clears
    // at its capacity, so e2e is about (QUEUE + BATCH) / capacity (1.8 s at 13 req/s) with a tail of 2-3× that, as
    // in the closed-loop run; 4× plus 2 s absorbs the shared box. A server that queued instead of shedding would
    // end the minute with a backlog of ~4 × capacity × 60 requests: minutes of wait.
    const bound = (4 * (QUEUE + BATCH)) / r.capacity.requestsPerS + 2;
    expect(r.admittedE2e.p99).toBeLessThan(bound);

    // Responsive: every poll answered, at least half of them on schedule (a stall would cut the count), the median
    // well inside 100 ms; the slowest within 2 s (descheduling on a shared box, which the server's own event-loop
    // lag in the printed table shows).
    expect(r.healthz.failures).toBe(0);
    expect(r.healthz.count).toBeGreaterThan((0.5 * DURATION_S * 1000) / PROBE_EVERY_MS);
    expect(r.healthz.p50S).toBeLessThan(0.1);
    expect(r.healthz.maxS).toBeLessThan(2);

    // Memory back to baseline, 3 s after the burst. Outside the V8 heap (the engine's KV pool and weights, buffers,
    // sockets): within 16 MiB of before (observed: 12-15 MiB below it). The V8 heap may stay grown (up to +44 MiB seen)
    // until a major collection, which an idle server runs late: in trial runs RSS ended between -8 and +34 MiB of the
    // ~285 MiB before, and four overloads in a row left it in that band each time (no accumulation). In a CI run on a
    // busier box the heap stayed +69 MiB (RSS +55 MiB): garbage a major GC would free, not a leak — the bound that
    // catches leaks is the native one; the RSS bound only catches gross growth.
    expect(nativeGrowth(r)).toBeLessThan(16 * MiB);
    expect(r.rss.afterBytes - r.rss.beforeBytes).toBeLessThan(96 * MiB);

    child.child.kill('SIGTERM');
    expect(await child.exit).toBe(0);
  }, 150_000);
});
