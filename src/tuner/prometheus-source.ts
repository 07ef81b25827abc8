// Fleet-mode metrics source: the same WindowSummary as RegistrySource, read from a Prometheus server that scrapes
// every tuneloop instance, summed over instances.
//
// How: instant PromQL queries at the window's end over a `[windowSeconds]` range rebuild an EngineStats-shaped
// *delta* (counters from increase(), histograms from `sum by (le) (increase(x_bucket[w]))`, gauges now), which goes
// through monitor.ts's summarizeWindow with an all-zero "prev". So both sources share every formula, and quantiles
// use the same bucket interpolation as PromQL's histogram_quantile(q, sum by (le) (rate(x_bucket[w]))) — rate and
// increase differ only by the constant window length, which cancels in a quantile.
//
// Known differences from the in-process source:
//   - increase() extrapolates to the window edges, so counts are estimates (not integers) and can be off by a
//     fraction of a scrape interval's worth of traffic;
//   - there are no per-request samples: quantiles come from bucket interpolation, and goodput is approximated as
//     generated-token rate × the share of requests under the TTFT and e2e targets read from the buckets at or below
//     each target (monitor.ts approximateAttainment); the inter-token target cannot be judged per request;
//   - KV usage is the *largest* instance's (pressure and preemption happen per instance), utilization the mean one;
//   - Mixture-of-Experts: routing counts, expert and all-to-all seconds are summed over instances per layer / expert /
//     rank index (instances of one fleet run one model and layout, so their skew adds up); the replica set is not
//     exported (only its size), and a model whose labels were capped (`other`, more than 64 experts or MoE layers)
//     gives no MoE section: its per-expert counts cannot be rebuilt.
// Prometheus unreachable or answering an error: MetricsSourceError. The tuner pauses on it; this source never guesses.
import type { EngineStats, HistogramSnapshot, MoeStats } from '../engine/types.js';
import { histogramFromCumulative } from './histogram.js';
import { emptyEngineStats, summarizeWindow, type MetricsSource } from './monitor.js';
import type { SloTargets, WindowSummary } from './types.js';

export type MetricsSourceErrorCode = 'UNREACHABLE' | 'BAD_RESPONSE' | 'NO_DATA';

/** UNREACHABLE: no answer (connection refused, timeout, 502/503/504). BAD_RESPONSE: an answer that is an error or
 *  not a query result. NO_DATA: Prometheus answers, but no tuneloop engine series match the selector. */
export class MetricsSourceError extends Error {
  override readonly name = 'MetricsSourceError';
  constructor(
    readonly code: MetricsSourceErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface PrometheusSourceOptions {
  /** Prometheus base URL, e.g. http://prometheus:9090 (no trailing /api). */
  url: string;
  slo: SloTargets;
  /** Range of each window; also how far back collect() looks. */
  windowSeconds: number;
  /** Extra label matchers for every series, e.g. `job="tuneloop"`. Engine series are also limited to
   *  role="primary" (a shadow's traffic is not the fleet's) unless the selector names `role` itself. */
  selector?: string;
  fetch?: typeof fetch;
  /** Unix ms; default Date.now. */
  now?: () => number;
  settingsVersion?: () => number;
  /** Per query; default 10 s. */
  timeoutMs?: number;
}

interface PromSample {
  labels: Record<string, string>;
  value: number;
}

interface PromBody {
  status?: string;
  errorType?: string;
  error?: string;
  data?: { resultType?: string; result?: unknown };
}

/** `{a="1",b="2"}` from matchers, dropping empty ones and any braces the caller put around them. */
function braces(...matchers: (string | undefined)[]): string {
  const parts = matchers
    .map((m) =>
      (m ?? '')
        .trim()
        .replace(/^\{|\}$/g, '')
        .trim(),
    )
    .filter((m) => m.length > 0);
  return parts.length > 0 ? `{${parts.join(',')}}` : '';
}

export class PrometheusSource implements MetricsSource {
  readonly kind = 'prometheus' as const;
  private readonly base: string;
  private readonly fetchFn: typeof fetch;
  private readonly now: () => number;

  constructor(private readonly opts: PrometheusSourceOptions) {
    if (!(opts.windowSeconds > 0)) throw new RangeError(`windowSeconds must be > 0 (got ${opts.windowSeconds})`);
    this.base = opts.url.replace(/\/+$/, '');
    this.fetchFn = opts.fetch ?? fetch;
    this.now = opts.now ?? Date.now;
  }

  async collect(): Promise<WindowSummary> {
    const endMs = this.now();
    const startMs = endMs - this.opts.windowSeconds * 1000;
    const q = new Queries(this, endMs / 1000, this.opts.windowSeconds, braces(this.opts.selector));

    const presence = q.vector(`count(tuneloop_scheduler_steps_total${this.engineSelector()})`);
    const [present, cur, cpuSeconds, maxBatchSize] = await Promise.all([
      presence,
      q.stats(),
      q.counter('process_cpu_seconds_total', 'process'),
      q.gauge('avg', 'tuneloop_config_max_batch_size'),
    ]);
    if (present.length === 0) {
      throw new MetricsSourceError(
        'NO_DATA',
        `Prometheus at ${this.base} has no tuneloop engine series matching ${this.engineSelector() || '{}'} at ${new Date(endMs).toISOString()}`,
      );
    }
    const summary = summarizeWindow({
      prev: emptyEngineStats(),
      cur,
      samples: [],
      startMs,
      endMs,
      slo: this.opts.slo,
      settingsVersion: this.opts.settingsVersion?.() ?? 0,
      cpuSeconds,
      maxBatchSize,
    });
    return { ...summary, source: 'prometheus' };
  }

  /** Matchers for engine series: the caller's, plus role="primary" unless they chose a role. */
  engineSelector(...extra: string[]): string {
    const sel = this.opts.selector ?? '';
    return braces(/\brole\s*(=|!=|=~|!~)/.test(sel) ? undefined : 'role="primary"', sel, ...extra);
  }

  /** One instant query at `timeS`; its samples (a scalar answers one unlabelled sample). */
  async query(expr: string, timeS: number): Promise<PromSample[]> {
    const url = `${this.base}/api/v1/query?query=${encodeURIComponent(expr)}&time=${timeS.toFixed(3)}`;
    let res: Response;
    try {
      res = await this.fetchFn(url, { signal: AbortSignal.timeout(this.opts.timeoutMs ?? 10_000) });
    } catch (e) {
      throw new MetricsSourceError('UNREACHABLE', `Prometheus at ${this.base} is unreachable: ${(e as Error).cause ? String((e as Error).cause) : String(e)}`, {
        cause: e,
      });
    }
    const text = await res.text().catch(() => '');
    let body: PromBody | undefined;
    try {
      body = JSON.parse(text) as PromBody;
    } catch {
      body = undefined;
    }
    if (!body || typeof body !== 'object') {
      // A proxy in front of a Prometheus that is down answers 502/503/504 with an HTML page: unreachable, not wrong.
      const code = [502, 503, 504].includes(res.status) ? 'UNREACHABLE' : 'BAD_RESPONSE';
      throw new MetricsSourceError(code, `Prometheus at ${this.base} answered HTTP ${res.status} without a JSON query result: ${text.slice(0, 200)}`);
    }
    if (body.status !== 'success') {
      throw new MetricsSourceError(
        'BAD_RESPONSE',
        `Prometheus at ${this.base} refused query ${expr}: HTTP ${res.status} ${body.errorType ?? ''} ${body.error ?? '(no error message)'}`.replace(/\s+/g, ' '),
      );
    }
    const { resultType, result } = body.data ?? {};
    if (resultType === 'scalar' && Array.isArray(result)) return [{ labels: {}, value: Number(result[1]) }];
    if (resultType !== 'vector' || !Array.isArray(result)) {
      throw new MetricsSourceError('BAD_RESPONSE', `Prometheus at ${this.base} answered query ${expr} with resultType ${String(resultType)}, not a vector`);
    }
    return result.map((r: { metric?: Record<string, string>; value?: [number, string] }) => {
      if (!r || !Array.isArray(r.value)) throw new MetricsSourceError('BAD_RESPONSE', `Prometheus at ${this.base}: malformed sample in the answer to ${expr}`);
      return { labels: r.metric ?? {}, value: Number(r.value[1]) };
    });
  }
}

/** The queries of one window, all at one instant. */
class Queries {
  private readonly range: string;

  constructor(
    private readonly src: PrometheusSource,
    private readonly timeS: number,
    private readonly windowS: number,
    private readonly processSel: string,
  ) {
    // Whole milliseconds: PromQL durations take integer units.
    this.range = `[${Math.max(1, Math.round(windowS * 1000))}ms]`;
  }

  private engineSel(...extra: string[]): string {
    return this.src.engineSelector(...extra);
  }

  vector(expr: string): Promise<PromSample[]> {
    return this.src.query(expr, this.timeS);
  }

  /** Window increase of a counter over every matching series; 0 when none moved or exist. Process metrics carry no
   *  model/role labels, so they take only the caller's selector. */
  async counter(name: string, kind: 'engine' | 'process' = 'engine', ...extra: string[]): Promise<number> {
    const sel = kind === 'process' ? this.processSel : this.engineSel(...extra);
    const r = await this.vector(`sum(increase(${name}${sel}${this.range}))`);
    return r[0]?.value ?? 0;
  }

  /** Window increases by one label, e.g. flushes by reason. */
  async counterBy(name: string, label: string): Promise<Map<string, number>> {
    const r = await this.vector(`sum by (${label}) (increase(${name}${this.engineSel()}${this.range}))`);
    return new Map(r.map((s) => [s.labels[label] ?? '', s.value]));
  }

  /** A gauge now, aggregated over instances; NaN when there is none. */
  async gauge(agg: 'sum' | 'max' | 'avg', name: string): Promise<number> {
    const r = await this.vector(`${agg}(${name}${this.engineSel()})`);
    return r[0]?.value ?? NaN;
  }

  /** A latency histogram's window increase, all instances summed per bucket. */
  async histogram(name: string): Promise<HistogramSnapshot> {
    const [buckets, sum] = await Promise.all([this.vector(`sum by (le) (increase(${name}_bucket${this.engineSel()}${this.range}))`), this.counter(`${name}_sum`)]);
    return histogramFromCumulative(
      buckets.map((b) => ({ le: Number(b.labels['le'] ?? NaN), value: b.value })),
      sum,
    );
  }

  /** A histogram known only by its sum and count: enough for a mean. */
  async sumCount(name: string): Promise<HistogramSnapshot> {
    const [sum, count] = await Promise.all([this.counter(`${name}_sum`), this.counter(`${name}_count`)]);
    return { bounds: [], counts: [count], sum, count };
  }

  async stepPhases(): Promise<EngineStats['batches']['stepDurationSeconds']> {
    const [sums, counts] = await Promise.all([
      this.counterBy('tuneloop_step_duration_seconds_sum', 'phase'),
      this.counterBy('tuneloop_step_duration_seconds_count', 'phase'),
    ]);
    const phase = (p: string): HistogramSnapshot => {
      const count = counts.get(p) ?? 0;
      return { bounds: [], counts: [count], sum: sums.get(p) ?? 0, count };
    };
    return { prefill: phase('prefill'), decode: phase('decode'), mixed: phase('mixed') };
  }

  /** Per-rank window increases of a counter with a `rank` label, rank 0 first (missing ranks 0). */
  private async byRank(name: string): Promise<number[]> {
    const m = await this.counterBy(name, 'rank');
    const ranks = [...m.keys()].map(Number).filter((r) => Number.isInteger(r) && r >= 0);
    const out = new Array<number>(ranks.length ? Math.max(...ranks) + 1 : 0).fill(0);
    for (const [r, v] of m) if (Number.isInteger(Number(r)) && Number(r) >= 0) out[Number(r)] = v;
    return out;
  }

  /** The window's MoE counters, or undefined for a dense fleet (no routing series) or capped labels. */
  async moe(): Promise<MoeStats | undefined> {
    const [routed, experts, ep, expertSeconds, allToAllSeconds, allToAlls] = await Promise.all([
      this.vector(`sum by (layer, expert) (increase(tuneloop_moe_expert_tokens_total${this.engineSel()}${this.range}))`),
      this.vector(`max by (kind) (tuneloop_moe_experts${this.engineSel()})`),
      this.gauge('max', 'tuneloop_config_ep_degree'),
      this.byRank('tuneloop_moe_expert_busy_seconds_total'),
      this.byRank('tuneloop_moe_alltoall_seconds_total'),
      this.counter('tuneloop_moe_alltoalls_total'),
    ]);
    if (routed.length === 0) return undefined;
    const kinds = new Map(experts.map((e) => [e.labels['kind'] ?? '', e.value]));
    const expertCount = kinds.get('routed');
    if (expertCount === undefined || !Number.isInteger(expertCount) || expertCount <= 0) return undefined;
    const layers = new Set<number>();
    for (const r of routed) {
      const layer = Number(r.labels['layer']),
        expert = Number(r.labels['expert']);
      // `other` (capped labels) or anything else not a whole index: the per-expert counts cannot be rebuilt.
      if (!Number.isInteger(layer) || !Number.isInteger(expert) || expert < 0 || expert >= expertCount) return undefined;
      layers.add(layer);
    }
    const moeLayers = [...layers].sort((a, b) => a - b);
    const tokensPerExpert = moeLayers.map(() => new Array<number>(expertCount).fill(0));
    for (const r of routed) tokensPerExpert[moeLayers.indexOf(Number(r.labels['layer']))]![Number(r.labels['expert'])] = r.value;
    return {
      expertCount,
      expertUsed: kinds.get('used') ?? 0,
      sharedExperts: kinds.get('shared') ?? 0,
      moeLayers,
      tokensPerExpert,
      epDegree: Number.isFinite(ep) ? ep : 1,
      redundantExperts: [],
      allToAllSeconds,
      allToAlls,
      expertSecondsPerRank: expertSeconds,
    };
  }

  /** The window as an EngineStats delta (gauges as they are at the end). */
  async stats(): Promise<EngineStats> {
    const s = emptyEngineStats();
    const [
      finished,
      failed,
      timedOut,
      cancelled,
      queueFull,
      prompt,
      generated,
      steps,
      preemptions,
      prefixHits,
      prefixQueries,
      running,
      waiting,
      usage,
      fragmentation,
      utilization,
      flushes,
      queue,
      ttft,
      interToken,
      e2e,
      size,
      tokens,
      phases,
      moe,
    ] = await Promise.all([
      this.counter('tuneloop_requests_finished_total'),
      this.counter('tuneloop_requests_failed_total'),
      this.counter('tuneloop_requests_timed_out_total'),
      this.counter('tuneloop_requests_cancelled_total'),
      this.counter('tuneloop_requests_rejected_total', 'engine', 'reason="queue_full"'),
      this.counter('tuneloop_prompt_tokens_total'),
      this.counter('tuneloop_generation_tokens_total'),
      this.counter('tuneloop_scheduler_steps_total'),
      this.counter('tuneloop_preemptions_total'),
      this.counter('tuneloop_prefix_cache_hits_total'),
      this.counter('tuneloop_prefix_cache_queries_total'),
      this.gauge('sum', 'tuneloop_requests_running'),
      this.gauge('sum', 'tuneloop_requests_waiting'),
      this.gauge('max', 'tuneloop_kv_cache_usage_ratio'),
      this.gauge('max', 'tuneloop_kv_cache_fragmentation_ratio'),
      // Mean over instances of each one's busy fraction: 0..1 like one engine's.
      this.vector(`avg(rate(tuneloop_engine_busy_seconds_total${this.engineSel()}${this.range}))`).then((r) => r[0]?.value ?? NaN),
      this.counterBy('tuneloop_batch_flush_total', 'reason'),
      this.histogram('tuneloop_request_queue_time_seconds'),
      this.histogram('tuneloop_time_to_first_token_seconds'),
      this.histogram('tuneloop_inter_token_latency_seconds'),
      this.histogram('tuneloop_e2e_request_latency_seconds'),
      this.sumCount('tuneloop_batch_size'),
      this.sumCount('tuneloop_batch_tokens'),
      this.stepPhases(),
      this.moe(),
    ]);
    Object.assign(s.requests, { finished, failed, timedOut, cancelled, running, waiting });
    s.requests.rejected.queue_full = queueFull;
    Object.assign(s.tokens, { prompt, generated });
    s.latency.queueTimeSeconds = queue;
    s.latency.timeToFirstTokenSeconds = ttft;
    s.latency.interTokenSeconds = interToken;
    s.latency.e2eSeconds = e2e;
    s.batches.steps = steps;
    s.batches.size = size;
    s.batches.tokens = tokens;
    s.batches.stepDurationSeconds = phases;
    s.batches.flushes = { full: flushes.get('full') ?? 0, timeout: flushes.get('timeout') ?? 0, queue_threshold: flushes.get('queue_threshold') ?? 0 };
    s.batches.preemptions = preemptions;
    Object.assign(s.kvCache, { usageRatio: usage, fragmentationRatio: fragmentation, prefixHits, prefixQueries });
    // summarizeWindow divides busy seconds by the window: give it the busy seconds of one mean instance.
    s.busySeconds = utilization * this.windowS;
    if (moe) s.moe = moe;
    return s;
  }
}
