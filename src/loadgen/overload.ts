// Overload: measure what a server sustains (closed loop), then offer `factor` times that as open-loop Poisson
// arrivals, and watch what a well-behaved server must do: refuse the excess at once (429 with Retry-After) rather than
// queue it into timeouts, keep admitted requests' latency bounded, keep answering its liveness probe, and give back
// the memory the burst took. The server is anything at `url` that exposes /healthz and /metrics (`tuneloop serve`).
import { setTimeout as sleep } from 'node:timers/promises';
import { firstModel } from './client.js';
import { metricSamples, metricSum, scrapeMetrics, startLatencyProbe, type ProbeSummary } from './probe.js';
import type { Distribution, LoadReport } from './report.js';
import { runLoad } from './run.js';

export interface OverloadOptions {
  url: string;
  model?: string;
  /** Offered rate as a multiple of the measured capacity; default 5. */
  factor?: number;
  /** Seconds of overload; default 60. */
  durationS?: number;
  /** Closed-loop clients and seconds of the capacity measurement; default 16 clients for 8 s. */
  capacityClients?: number;
  capacityS?: number;
  /** Tokens per request (EOS ignored, so every request costs the same); default 32. */
  tokens?: number;
  /** Liveness poll period; default 150 ms. */
  probeEveryMs?: number;
  /** Quiet seconds before the baseline and the final memory reading; default 5. */
  settleS?: number;
  seed?: number;
  progress?: boolean;
  signal?: AbortSignal;
}

export interface OverloadReport {
  capacity: { clients: number; requestsPerS: number; outputTokensPerS: number; e2eP99S: number };
  offeredRate: number;
  durationS: number;
  requests: {
    sent: number;
    /** Sent minus refused with 429: what the server took on. */
    admitted: number;
    completed: number;
    /** Refused with 429. */
    shed: number;
    /** Failures other than a 429 (timeouts, resets, 5xx, stream errors). */
    failed: number;
  };
  shedShare: number;
  /** 429 answers without a Retry-After header. */
  shedWithoutRetryAfter: number;
  /** Client-side failure kinds (http_429, network, ...), as the load report counts them. */
  errors: Record<string, number>;
  /** Completed (admitted) requests, seconds. */
  admittedE2e: Distribution;
  admittedTtft: Distribution;
  healthz: ProbeSummary;
  /** The server's largest event-loop delay during the overload (prom-client's nodejs_eventloop_lag_max_seconds). */
  serverLoopLagMaxS: number;
  /** Cores the server process used during the overload (its CPU seconds over the wall time): near the machine's core
   *  count, its threads were waiting for a CPU as often as not. */
  serverCpuCores: number;
  /** The server's own count of /v1/completions answers by status during the overload. */
  serverStatuses: Record<string, number>;
  /** The server's resident memory, and the V8 heap's share of it (nodejs_heap_size_total_bytes): after a burst V8
   *  may keep its grown heap until a major collection, which an idle server runs late; the rest (the engine, buffers,
   *  sockets) is what must come back. */
  rss: { beforeBytes: number; peakBytes: number; afterBytes: number; v8HeapBeforeBytes: number; v8HeapAfterBytes: number };
  load: LoadReport;
}

/** What the server says of itself in one scrape: memory, CPU time, and /v1/completions answers by status. */
async function snapshot(url: string): Promise<{ atMs: number; rss: number; v8Heap: number; cpuS: number; statuses: Record<string, number> }> {
  const text = await scrapeMetrics(url);
  const statuses: Record<string, number> = {};
  for (const s of metricSamples(text, 'tuneloop_requests_total')) {
    if (s.labels.endpoint === '/v1/completions') statuses[s.labels.status!] = (statuses[s.labels.status!] ?? 0) + s.value;
  }
  return {
    atMs: performance.now(),
    rss: metricSum(text, 'process_resident_memory_bytes'),
    v8Heap: metricSum(text, 'nodejs_heap_size_total_bytes'),
    cpuS: metricSum(text, 'process_cpu_seconds_total'),
    statuses,
  };
}

export async function runOverload(o: OverloadOptions): Promise<OverloadReport> {
  const factor = o.factor ?? 5,
    durationS = o.durationS ?? 60,
    settleS = o.settleS ?? 5;
  const clients = o.capacityClients ?? 16;
  const common = {
    url: o.url,
    model: o.model ?? (await firstModel(o.url)),
    outputLen: String(o.tokens ?? 32),
    ignoreEos: true,
    temperature: 0.8,
    seed: o.seed ?? 1,
    progress: o.progress ?? false,
    ...(o.signal ? { signal: o.signal } : {}),
  };
  const cap = await runLoad({ ...common, concurrency: clients, durationS: o.capacityS ?? 8 });
  const capacity = cap.throughput.requestsPerS;
  if (!(capacity > 0)) throw new Error(`the capacity run completed no request (errors: ${JSON.stringify(cap.errors)})`);

  await sleep(settleS * 1000);
  const before = await snapshot(o.url);
  let peakBytes = before.rss,
    loopLagMaxS = 0;
  // Once a second, from the server's own gauges: the client's memory is not the server's, and the event-loop lag
  // (the largest delay since the previous scrape) tells a slow server from a slow client when the probe is slow.
  const sampling = new AbortController();
  const sampler = (async () => {
    while (!sampling.signal.aborted) {
      const text = await scrapeMetrics(o.url).catch(() => '');
      peakBytes = Math.max(peakBytes, metricSum(text, 'process_resident_memory_bytes'));
      loopLagMaxS = Math.max(loopLagMaxS, metricSum(text, 'nodejs_eventloop_lag_max_seconds'));
      await sleep(1000, undefined, { signal: sampling.signal }).catch(() => undefined);
    }
  })();
  const probe = startLatencyProbe(o.url, { everyMs: o.probeEveryMs ?? 150 });
  let shedWithoutRetryAfter = 0;
  const offeredRate = factor * capacity;
  let load: LoadReport, healthz: ProbeSummary;
  try {
    // No cap on requests in flight: an open loop must keep offering whatever the server does with it.
    load = await runLoad({
      ...common,
      rate: offeredRate,
      durationS,
      seed: common.seed + 1,
      onRecord: (r) => {
        if (r.errorKind === 'http_429' && r.retryAfterS === undefined) shedWithoutRetryAfter++;
      },
    });
  } finally {
    sampling.abort();
    [, healthz] = await Promise.all([sampler, probe.stop()]);
  }
  const end = await snapshot(o.url);
  await sleep(settleS * 1000);
  const after = await snapshot(o.url);

  const serverStatuses: Record<string, number> = {};
  for (const [k, v] of Object.entries(end.statuses)) if (v - (before.statuses[k] ?? 0) > 0) serverStatuses[k] = v - (before.statuses[k] ?? 0);
  const shed = load.errors.http_429 ?? 0;
  return {
    capacity: { clients, requestsPerS: capacity, outputTokensPerS: cap.throughput.outputTokensPerS, e2eP99S: cap.latency.e2eSeconds.p99 },
    offeredRate,
    durationS,
    requests: { sent: load.requests.sent, admitted: load.requests.sent - shed, completed: load.requests.completed, shed, failed: load.requests.failed - shed },
    shedShare: load.requests.sent ? shed / load.requests.sent : NaN,
    shedWithoutRetryAfter,
    errors: load.errors,
    admittedE2e: load.latency.e2eSeconds,
    admittedTtft: load.latency.ttftSeconds,
    healthz,
    serverLoopLagMaxS: loopLagMaxS,
    serverCpuCores: (end.cpuS - before.cpuS) / ((end.atMs - before.atMs) / 1000),
    serverStatuses,
    rss: { beforeBytes: before.rss, peakBytes, afterBytes: after.rss, v8HeapBeforeBytes: before.v8Heap, v8HeapAfterBytes: after.v8Heap },
    load,
  };
}

const MiB = 1024 * 1024;
const ms = (s: number): string => (Number.isFinite(s) ? `${(s * 1000).toFixed(1)} ms` : '-');
const mib = (b: number): string => `${(b / MiB).toFixed(1)} MiB`;
const signed = (b: number): string => `${b >= 0 ? '+' : ''}${mib(b)}`;

/** Growth of the server's memory outside the V8 heap, before → after: what the engine and sockets kept. */
export function nativeGrowth(r: OverloadReport): number {
  return r.rss.afterBytes - r.rss.v8HeapAfterBytes - (r.rss.beforeBytes - r.rss.v8HeapBeforeBytes);
}

/** The figures as a two-column table. */
export function formatOverload(r: OverloadReport): string {
  const rows: [string, string][] = [
    [
      'capacity',
      `${r.capacity.requestsPerS.toFixed(1)} req/s (${r.capacity.clients} closed-loop clients, ${r.capacity.outputTokensPerS.toFixed(0)} tok/s, e2e p99 ${ms(r.capacity.e2eP99S)})`,
    ],
    ['offered', `${r.offeredRate.toFixed(1)} req/s Poisson for ${r.durationS} s`],
    [
      'requests',
      `${r.requests.sent} sent, ${r.requests.admitted} admitted, ${r.requests.completed} completed, ${r.requests.shed} shed (429), ${r.requests.failed} other failures`,
    ],
    ['shed share', `${(r.shedShare * 100).toFixed(1)}% (${r.shedWithoutRetryAfter} without Retry-After)`],
    ['admitted e2e', `p50 ${ms(r.admittedE2e.p50)}, p99 ${ms(r.admittedE2e.p99)}, max ${ms(r.admittedE2e.max)}`],
    ['admitted TTFT', `p50 ${ms(r.admittedTtft.p50)}, p99 ${ms(r.admittedTtft.p99)}`],
    ['healthz', `${r.healthz.count} polls, ${r.healthz.failures} failed; p50 ${ms(r.healthz.p50S)}, p99 ${ms(r.healthz.p99S)}, max ${ms(r.healthz.maxS)}`],
    ['server', `event-loop lag max ${ms(r.serverLoopLagMaxS)}; ${r.serverCpuCores.toFixed(2)} cores busy`],
    [
      'server statuses',
      Object.entries(r.serverStatuses)
        .map(([k, v]) => `${k}: ${v}`)
        .join(', ') || '-',
    ],
    ['RSS', `before ${mib(r.rss.beforeBytes)}, peak ${mib(r.rss.peakBytes)}, after ${mib(r.rss.afterBytes)} (${signed(r.rss.afterBytes - r.rss.beforeBytes)})`],
    ['of which V8 heap', `before ${mib(r.rss.v8HeapBeforeBytes)}, after ${mib(r.rss.v8HeapAfterBytes)}; the rest ${signed(nativeGrowth(r))}`],
    [
      'client errors',
      Object.entries(r.errors)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ') || 'none',
    ],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n');
}
