// Monitor stage: turns what the serving path records into one WindowSummary per window.
//
// Two kinds of input, each used where it is the better one:
//   - engine counters and histograms (EngineStats), differenced cur − prev: authoritative for counts, tokens, steps,
//     busy time, KV; they see every request the engine ran, HTTP or not;
//   - request samples (RequestSample) recorded by the HTTP layer: exact per-request latencies, so quantiles need no
//     bucket interpolation and SLO attainment can be judged per request (all targets at once). The histograms stand in
//     for any latency the samples do not cover.
// A fleet (PrometheusSource) has only the histograms; it rebuilds an EngineStats-shaped delta from PromQL and goes
// through the same summarizeWindow, so both sources compute every field by one rule.
import { mean, quantileSorted } from 'simple-statistics';
import type { EngineStats, GenerationResult, HistogramSnapshot } from '../engine/types.js';
import { moeWindowOf } from './expert-load.js';
import { EMPTY_LATENCY, diffHistogram, emptyHistogram, histogramMean, latencyFromHistogram, shareAtOrBelow } from './histogram.js';
import type { LatencySummary, RequestSample, SloTargets, WindowSummary } from './types.js';

/** Where the tuner reads its windows from: this process's engine, or a Prometheus server over a fleet. */
export interface MetricsSource {
  readonly kind: 'registry' | 'prometheus';
  /** The summary of the window that ends now. Rejects with MetricsSourceError when the data cannot be had. */
  collect(): Promise<WindowSummary>;
}

export interface WindowInput {
  prev: EngineStats;
  cur: EngineStats;
  /** Requests that finished in the window (may be empty: latencies then come from the histograms). */
  samples: readonly RequestSample[];
  startMs: number;
  endMs: number;
  slo: SloTargets;
  settingsVersion: number;
  cpuSeconds: number;
  maxBatchSize: number;
}

/** Does a request meet every SLO target? Inter-token latency is NaN for single-token answers: nothing to miss. */
export function meetsSlo(s: RequestSample, slo: SloTargets): boolean {
  return s.ok && s.ttftS <= slo.ttftP99Seconds && s.e2eS <= slo.e2eP99Seconds && (Number.isNaN(s.interTokenS) || s.interTokenS <= slo.interTokenP99Seconds);
}

/** Exact summary of observed values (simple-statistics' quantile rule); NaN fields when there are none. */
export function latencyFromValues(values: readonly number[]): LatencySummary {
  if (values.length === 0) return { ...EMPTY_LATENCY };
  const sorted = [...values].sort((a, b) => a - b);
  return {
    count: sorted.length,
    mean: mean(sorted),
    p50: quantileSorted(sorted, 0.5),
    p90: quantileSorted(sorted, 0.9),
    p99: quantileSorted(sorted, 0.99),
  };
}

/**
 * SLO attainment estimated from histograms alone (no per-request samples): the ok share of ended requests times the
 * smaller of the shares under the TTFT and e2e targets (the `le` bucket at or below each target). The two latencies
 * of one request are strongly correlated (a late first token makes a late end), so min() is nearer than a product
 * that assumes independence; it is an upper bound. Inter-token latency cannot be judged per request here (its
 * histogram counts token gaps, not requests) and is left out.
 */
export function approximateAttainment(h: { ttft: HistogramSnapshot; e2e: HistogramSnapshot }, okShare: number, slo: SloTargets): number {
  const ttft = shareAtOrBelow(h.ttft, slo.ttftP99Seconds);
  const e2e = shareAtOrBelow(h.e2e, slo.e2eP99Seconds);
  const latencyShare = Number.isNaN(ttft) ? e2e : Number.isNaN(e2e) ? ttft : Math.min(ttft, e2e);
  return okShare * latencyShare;
}

/** A sample from an engine result, as the HTTP layer (or a shadow replay) records it when a request ends. A cancelled
 *  request is not ok: its client did not get the answer, so it cannot count as served within the SLO. */
export function requestSampleFromResult(result: GenerationResult, atMs: number): RequestSample {
  const t = result.timings;
  const n = result.usage.completionTokens;
  return {
    atMs,
    ok: result.finishReason !== 'cancelled',
    queueS: t.queueMs / 1000,
    ttftS: t.timeToFirstTokenMs / 1000,
    // The first token comes from the prefill; decode time is spread over the gaps between the others.
    interTokenS: n > 1 ? t.decodeMs / (n - 1) / 1000 : NaN,
    // queue (arrival → first step) + prefill + decode = arrival → end.
    e2eS: (t.queueMs + t.prefillMs + t.decodeMs) / 1000,
    promptTokens: result.usage.promptTokens,
    completionTokens: n,
  };
}

/** An all-zero snapshot: the baseline before an engine exists, and the shape a fleet delta is built on. It has no
 *  `moe` section: that is how a dense model's stats look, and a Mixture-of-Experts engine's first window then counts
 *  its routing since load (moeWindowOf). */
export function emptyEngineStats(): EngineStats {
  const latency = (): HistogramSnapshot => emptyHistogram();
  return {
    requests: {
      submitted: 0,
      finished: 0,
      cancelled: 0,
      timedOut: 0,
      failed: 0,
      running: 0,
      waiting: 0,
      rejected: { queue_full: 0, context_overflow: 0, invalid: 0, closed: 0 },
    },
    tokens: { prompt: 0, generated: 0, prefillComputed: 0, promptCached: 0 },
    latency: {
      queueTimeSeconds: latency(),
      timeToFirstTokenSeconds: latency(),
      interTokenSeconds: latency(),
      e2eSeconds: latency(),
      promptTokens: latency(),
      generationTokens: latency(),
    },
    batches: {
      steps: 0,
      size: latency(),
      tokens: latency(),
      stepDurationSeconds: { prefill: latency(), decode: latency(), mixed: latency() },
      flushes: { full: 0, timeout: 0, queue_threshold: 0 },
      preemptions: 0,
    },
    kvCache: {
      blocksTotal: 0,
      blocksUsed: 0,
      blocksCached: 0,
      blocksFree: 0,
      blockSizeTokens: 0,
      usageRatio: NaN,
      fragmentationRatio: NaN,
      prefixQueries: 0,
      prefixHits: 0,
    },
    opSeconds: { matmul: 0, attention: 0, norm: 0, rope: 0, ffn_activation: 0, embedding: 0, output: 0, sampling: 0 },
    tensorParallel: { rankBusySeconds: [], rankAllreduceSeconds: [], allreduces: 0 },
    memoryBytes: { weights: 0, kv: 0, scratch: 0 },
    weightBytesByDtype: {},
    busySeconds: 0,
    uptimeSeconds: 0,
    reloads: 0,
    reconfigures: 0,
    settings: {
      maxBatchSize: NaN,
      maxBatchTokens: NaN,
      maxQueueDelayMs: NaN,
      queueGrowThreshold: NaN,
      maxQueueLength: NaN,
      weights: 'f32',
      kvDtype: 'f32',
      tpDegree: NaN,
      threadsPerRank: NaN,
      kvBlockSizeTokens: NaN,
      contextLength: NaN,
      kvCacheBlocks: NaN,
      allreduceDelayUs: NaN,
      epDegree: NaN,
      redundantExperts: [],
      alltoallDelayUs: NaN,
    },
  };
}

/** A new engine (restart, or another instance behind the getter) starts its counters and clock from zero. Counters
 *  survive engine.reload(), so a reload is not a reset. */
function isReset(prev: EngineStats, cur: EngineStats): boolean {
  return (
    cur.uptimeSeconds < prev.uptimeSeconds ||
    cur.requests.submitted < prev.requests.submitted ||
    cur.batches.steps < prev.batches.steps ||
    cur.busySeconds < prev.busySeconds
  );
}

const ratio = (a: number, b: number): number => (b > 0 ? a / b : NaN);

/** One window from two engine snapshots and the requests that ended between them. Pure. */
export function summarizeWindow(input: WindowInput): WindowSummary {
  const { cur, samples, slo, startMs, endMs } = input;
  const prev = isReset(input.prev, cur) ? emptyEngineStats() : input.prev;
  // Per counter as well: one that went down restarted, and all of `cur` is new.
  const d = (pick: (s: EngineStats) => number): number => {
    const c = pick(cur),
      p = pick(prev);
    return c >= p ? c - p : c;
  };
  const dh = (pick: (s: EngineStats) => HistogramSnapshot): HistogramSnapshot => diffHistogram(pick(cur), pick(prev));
  const windowS = (endMs - startMs) / 1000;
  const perS = (x: number): number => (windowS > 0 ? x / windowS : NaN);

  const failed = d((s) => s.requests.failed) + d((s) => s.requests.timedOut);
  const ended = d((s) => s.requests.finished) + failed;
  const generated = d((s) => s.tokens.generated);

  const h = {
    queue: dh((s) => s.latency.queueTimeSeconds),
    ttft: dh((s) => s.latency.timeToFirstTokenSeconds),
    interToken: dh((s) => s.latency.interTokenSeconds),
    e2e: dh((s) => s.latency.e2eSeconds),
  };
  const ok = samples.filter((s) => s.ok);
  const latency = (pick: (s: RequestSample) => number, hist: HistogramSnapshot): LatencySummary => {
    const values = ok.map(pick).filter(Number.isFinite);
    return values.length > 0 ? latencyFromValues(values) : latencyFromHistogram(hist);
  };

  let sloAttainment: number, goodput: number, inSystemS: number;
  if (samples.length > 0) {
    const good = samples.filter((s) => meetsSlo(s, slo));
    sloAttainment = good.length / samples.length;
    goodput = perS(good.reduce((a, s) => a + s.completionTokens, 0));
    inSystemS = samples.reduce((a, s) => a + (Number.isFinite(s.e2eS) ? s.e2eS : 0), 0);
  } else {
    sloAttainment = ended > 0 ? approximateAttainment(h, ratio(ended - failed, ended), slo) : NaN;
    goodput = generated === 0 ? 0 : perS(generated) * sloAttainment;
    inSystemS = h.e2e.sum;
  }

  const size = dh((s) => s.batches.size);
  const phases = cur.batches.stepDurationSeconds;
  const steps = (Object.keys(phases) as (keyof typeof phases)[]).map((p) => dh((s) => s.batches.stepDurationSeconds[p]));
  const meanSize = histogramMean(size);

  return {
    startMs,
    endMs,
    source: 'registry',
    settingsVersion: input.settingsVersion,
    requests: {
      finished: ended,
      errors: failed,
      rejected: d((s) => s.requests.rejected.queue_full),
      cancelled: d((s) => s.requests.cancelled),
      running: cur.requests.running,
      waiting: cur.requests.waiting,
      // Little's law: mean requests in the system = request-seconds spent in it / window seconds.
      meanConcurrency: perS(inSystemS),
    },
    tokens: { prompt: d((s) => s.tokens.prompt), generated },
    throughputTokensPerS: perS(generated),
    goodputTokensPerS: goodput,
    sloAttainment,
    latency: {
      queue: latency((s) => s.queueS, h.queue),
      ttft: latency((s) => s.ttftS, h.ttft),
      // Samples hold a per-request mean gap; the histogram holds every gap. Both answer "how fast do tokens come".
      interToken: latency((s) => s.interTokenS, h.interToken),
      e2e: latency((s) => s.e2eS, h.e2e),
    },
    batch: {
      steps: d((s) => s.batches.steps),
      meanSize,
      fillRatio: ratio(meanSize, input.maxBatchSize),
      meanTokens: histogramMean(dh((s) => s.batches.tokens)),
      meanStepSeconds: ratio(
        steps.reduce((a, s) => a + s.sum, 0),
        steps.reduce((a, s) => a + s.count, 0),
      ),
      meanDecodeStepSeconds: histogramMean(dh((s) => s.batches.stepDurationSeconds.decode)),
      flushes: {
        full: d((s) => s.batches.flushes.full),
        timeout: d((s) => s.batches.flushes.timeout),
        queue_threshold: d((s) => s.batches.flushes.queue_threshold),
      },
    },
    kv: {
      usageRatio: cur.kvCache.usageRatio,
      fragmentationRatio: cur.kvCache.fragmentationRatio,
      preemptions: d((s) => s.batches.preemptions),
      prefixHitRatio: ratio(
        d((s) => s.kvCache.prefixHits),
        d((s) => s.kvCache.prefixQueries),
      ),
    },
    utilization: perS(d((s) => s.busySeconds)),
    cpuSeconds: input.cpuSeconds,
    // Mixture-of-Experts models: the window's routing counts and per-rank expert / all-to-all seconds.
    ...(cur.moe ? { moe: moeWindowOf(prev.moe, cur.moe)! } : {}),
  };
}

export interface RegistrySourceOptions {
  /** The engine serving now; undefined while none is loaded. */
  engine: () => { stats(): EngineStats } | undefined;
  slo: SloTargets;
  /** Unix ms; default Date.now. */
  now?: () => number;
  /** Process CPU seconds so far (user + system); default from process.cpuUsage(). */
  cpuSeconds?: () => number;
  /** Live settings version; default 0 (unknown). */
  settingsVersion?: () => number;
  /** Samples kept (ring buffer); default 10000. */
  maxSamples?: number;
}

const processCpuSeconds = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

/** In-process source: this process's engine plus the samples the HTTP layer records. */
export class RegistrySource implements MetricsSource {
  readonly kind = 'registry' as const;
  private readonly now: () => number;
  private readonly cpu: () => number;
  private readonly buffer: RequestSample[] = [];
  private readonly capacity: number;
  /** Samples recorded so far, and how many of them earlier windows took. */
  private recorded = 0;
  private taken = 0;
  private last: { ms: number; stats: EngineStats; cpuS: number };

  constructor(private readonly opts: RegistrySourceOptions) {
    this.now = opts.now ?? Date.now;
    this.cpu = opts.cpuSeconds ?? processCpuSeconds;
    this.capacity = Math.max(1, Math.floor(opts.maxSamples ?? 10_000));
    this.last = { ms: this.now(), stats: this.readStats(), cpuS: this.cpu() };
  }

  /** One finished request (the HTTP layer calls this as each response ends). */
  record(sample: RequestSample): void {
    this.buffer[this.recorded % this.capacity] = sample;
    this.recorded++;
  }

  /** Buffered samples that finished at or after `sinceMs`, in the order recorded. */
  recentSamples(sinceMs: number): RequestSample[] {
    return this.samplesFrom(0).filter((s) => s.atMs >= sinceMs);
  }

  /** The window since the previous collect() (since construction the first time). Samples are split between windows
   *  by when they were recorded, not by their timestamps, so none is counted twice or lost at a boundary. */
  async collect(): Promise<WindowSummary> {
    return this.collectNow();
  }

  /** collect() without the promise, for callers already on a synchronous path. */
  collectNow(): WindowSummary {
    const ms = this.now(),
      stats = this.readStats(),
      cpuS = this.cpu();
    const samples = this.samplesFrom(this.taken);
    this.taken = this.recorded;
    const summary = summarizeWindow({
      prev: this.last.stats,
      cur: stats,
      samples,
      startMs: this.last.ms,
      endMs: ms,
      slo: this.opts.slo,
      settingsVersion: this.opts.settingsVersion?.() ?? 0,
      cpuSeconds: Math.max(0, cpuS - this.last.cpuS),
      maxBatchSize: stats.settings.maxBatchSize,
    });
    this.last = { ms, stats, cpuS };
    return summary;
  }

  private samplesFrom(seq: number): RequestSample[] {
    const out: RequestSample[] = [];
    for (let i = Math.max(seq, this.recorded - this.capacity); i < this.recorded; i++) out.push(this.buffer[i % this.capacity]!);
    return out;
  }

  private readStats(): EngineStats {
    try {
      return this.opts.engine()?.stats() ?? emptyEngineStats();
    } catch {
      // stats() throws ENGINE_CLOSED after close(): no engine now, as for undefined.
      return emptyEngineStats();
    }
  }
}
