// Analyze stage: name the bottlenecks a series of monitoring windows shows, with the numbers and the test behind each.
//
// Design note. Each window is one observation (per-window ratios, means and quantiles); requests inside a window are
// not independent enough to count one by one, except for error shares, which are binomial by nature. A finding is
// kept only when all of these hold:
//   - at least MIN_WINDOWS windows carry the signal and the series holds at least `minRequests` requests;
//   - the threshold is crossed by the median over windows (robust to one odd window);
//   - a one-sided test at 95% confidence says the crossing is not noise: a one-sample t-test of the per-window values
//     against the threshold (queueing, batch_starved, tail_latency: on log ratios), a t-test of a regression slope
//     (compute_bound), an exact binomial test (errors against the budget; kv_pressure: flagged windows against a 10%
//     background rate). `confidence` = 1 − p.
// Change detection (queueing, batch_starved, tail_latency, errors): a CUSUM change point of the per-window statistic,
// confirmed by a one-sided Welch t-test of the windows after it against those before. When the rise is significant
// and at least MIN_WINDOWS windows follow it, the rule judges only those, so a problem that began mid-series is not
// diluted by the healthy windows before it. `fromMs`/`toMs`: first to last judged window that crossed the threshold.
// `impact` ranks findings; its unit depends on the kind (both "per minute of the analysed windows"):
//   queueing, batch_starved: queue-seconds per minute (requests × mean queue time);
//   compute_bound: request-latency seconds per minute added by batching beyond one sequence (tokens × slope × (size−1));
//   tail_latency: seconds per minute by which the slowest 1% of requests exceed the median (count × 1% × (p99 − p50));
//   errors: failed or refused requests per minute;  kv_pressure: preempted requests per minute;
//   quality_drift: requests per minute served by the drifted settings;
//   expert_imbalance: rank-seconds per minute that expert-parallel ranks wait on the busiest one (measured at
//   epDegree > 1: Σ over ranks of busiest − own expert seconds; at epDegree 1, what a 2-rank layout would wait given
//   the routing counts: expert seconds × (balance factor − 1), expert-load.ts).
// The tests themselves (t, Welch, binomial, slope, CUSUM) live in statistics.ts.
import { median } from 'simple-statistics';
import { formatExperts } from '../engine/knobs.js';
import { layoutBalance, meanRoutingImbalance, routingImbalance } from './expert-load.js';
import { binomialUpperTail, changePoint, slopeTest, tTestGreater } from './statistics.js';
import type { BottleneckKind, Finding, LiveSettings, SloTargets, WindowSummary } from './types.js';

export const MIN_WINDOWS = 3;
export const DEFAULT_MIN_REQUESTS = 20;
export const ALPHA = 0.05;
/** Queue time over e2e latency above which queueing dominates. */
export const QUEUE_SHARE = 0.3;
/** Batches at or above this fill of maxBatchSize are "full at the cap". */
export const FULL_FILL = 0.9;
/** Below this fill, with requests waiting, batches are starved. */
export const STARVED_FILL = 0.5;
/** Queue share above which "requests wait" for batch_starved. */
export const STARVED_QUEUE_SHARE = 0.2;
export const BUSY_UTILIZATION = 0.8;
export const KV_HIGH_USAGE = 0.9;
/** Share of windows expected to show KV pressure by chance (a burst): the binomial test's null. */
export const KV_BACKGROUND_RATE = 0.1;
export const TAIL_RATIO = 3;
export const QUALITY_MIN_SAMPLES = 20;
/** epDegree > 1: the live layout's balance over the routing counts (Σ per-layer busiest rank's routed tokens over the
 *  even share) above which the busiest ranks hold the others up. */
export const RANK_IMBALANCE = 1.25;
/** epDegree 1: mean over layers of the per-layer routing max/mean above which an expert-parallel layout would be
 *  unbalanced (the alert's threshold, TuneloopExpertImbalanceHigh). */
export const ROUTING_IMBALANCE = 2;
/** Layers whose routing counts go into a finding's evidence (the most skewed), and experts listed as hottest. */
export const EVIDENCE_LAYERS = 4;
export const EVIDENCE_HOT_EXPERTS = 8;

export interface QualityInput {
  meanCosine: number;
  bar: number;
  samples: number;
}

export interface AnalyzeInput {
  /** Oldest first, e.g. the last 15 one-minute windows. */
  windows: readonly WindowSummary[];
  settings: LiveSettings;
  slo: SloTargets;
  /** Requests the series must hold before any request-based finding; default 20. */
  minRequests?: number;
  /** Shadow-check similarity of the live settings' outputs to the reference (fed by verification). */
  quality?: QualityInput;
}

// ---- helpers ---------------------------------------------------------------------------------------------------

const finite = (x: number): boolean => Number.isFinite(x);
/** Four significant digits: evidence is read by people; the raw windows stay in the store. */
const sig = (x: number, digits = 4): number => (Number.isFinite(x) ? Number(x.toPrecision(digits)) : x);
const pct = (x: number): string => `${Math.round(x * 100)}%`;
const ms = (s: number): string => `${sig(s * 1000, 3)} ms`;
const total = (rows: readonly WindowSummary[], pick: (w: WindowSummary) => number): number => rows.reduce((a, w) => a + pick(w), 0);
const minutesOf = (rows: readonly WindowSummary[]): number => total(rows, (w) => Math.max(0, w.endMs - w.startMs)) / 60_000;
const requestsIn = (rows: readonly WindowSummary[]): number => total(rows, (w) => w.requests.finished);

interface Ctx {
  windows: readonly WindowSummary[];
  settings: LiveSettings;
  slo: SloTargets;
  minRequests: number;
}

/** Where the per-window statistic shifts up significantly (CUSUM change point, Welch-confirmed) and at least
 *  MIN_WINDOWS windows follow, a rule judges only those: a problem that began mid-series is not diluted by the healthy
 *  windows before it. Returns the rows and values to judge, and the change-detection evidence. */
function focused(rows: readonly WindowSummary[], values: readonly number[]): { rows: WindowSummary[]; values: number[]; evidence: Record<string, number | boolean> } {
  const cp = changePoint(values);
  if (!cp) return { rows: [...rows], values: [...values], evidence: {} };
  const shifted = cp.pValue < ALPHA && values.length - cp.index >= MIN_WINDOWS;
  const evidence: Record<string, number | boolean> = {
    changeDetected: shifted,
    changeBefore: sig(cp.before),
    changeAfter: sig(cp.after),
    changePValue: sig(cp.pValue, 3),
  };
  if (!shifted) return { rows: [...rows], values: [...values], evidence };
  evidence['changeAtMs'] = rows[cp.index]!.startMs;
  return { rows: rows.slice(cp.index), values: values.slice(cp.index), evidence };
}

/** From the first to the last window that crossed the threshold (all of them when none did on its own). */
function spanOf(rows: readonly WindowSummary[], flagged: readonly boolean[]): { fromMs: number; toMs: number } {
  const first = flagged.indexOf(true),
    last = flagged.lastIndexOf(true);
  return { fromMs: rows[first >= 0 ? first : 0]!.startMs, toMs: rows[last >= 0 ? last : rows.length - 1]!.endMs };
}

const queueShareOf = (w: WindowSummary): number => w.latency.queue.mean / w.latency.e2e.mean;
/** Queue-seconds per minute: requests × mean queue time, over the windows' minutes. */
const queueSecondsPerMinute = (rows: readonly WindowSummary[]): number =>
  total(rows, (w) => (finite(w.latency.queue.mean) ? w.latency.queue.mean * w.latency.queue.count : 0)) / minutesOf(rows);
/** Windows whose queue share can be computed (some requests, e2e > 0). */
const queueRows = (c: Ctx): WindowSummary[] => c.windows.filter((w) => w.requests.finished > 0 && finite(w.latency.queue.mean) && w.latency.e2e.mean > 0);

// ---- the kinds ---------------------------------------------------------------------------------------------------

function queueing(c: Ctx): Finding | undefined {
  const all = queueRows(c).filter((w) => finite(w.batch.fillRatio));
  const { rows, values: shares, evidence: change } = focused(all, all.map(queueShareOf));
  if (rows.length < MIN_WINDOWS || requestsIn(rows) < c.minRequests) return undefined;
  const share = median(shares),
    fill = median(rows.map((w) => w.batch.fillRatio));
  const concurrency = median(rows.map((w) => (finite(w.requests.meanConcurrency) ? w.requests.meanConcurrency : 0)));
  const cap = c.settings.scheduler.maxBatchSize;
  // Queue time dominates, batches run full, and more requests are in the system than a batch holds: the cap binds.
  if (!(share > QUEUE_SHARE && fill >= FULL_FILL && concurrency > cap)) return undefined;
  const test = tTestGreater(shares, QUEUE_SHARE);
  if (!(test.pValue < ALPHA)) return undefined;
  return {
    kind: 'queueing',
    confidence: sig(1 - test.pValue),
    impact: sig(queueSecondsPerMinute(rows)),
    summary:
      `Queue time is ${pct(share)} of e2e latency (median of ${rows.length} windows) while batches run full at ` +
      `maxBatchSize=${cap} (fill ${pct(fill)}) with ${sig(concurrency, 3)} requests in the system: the batch cap is too low.`,
    evidence: {
      queueShare: sig(share),
      threshold: QUEUE_SHARE,
      fillRatio: sig(fill),
      maxBatchSize: cap,
      meanConcurrency: sig(concurrency),
      waiting: sig(median(rows.map((w) => w.requests.waiting))),
      queueMeanS: sig(median(rows.map((w) => w.latency.queue.mean))),
      e2eMeanS: sig(median(rows.map((w) => w.latency.e2e.mean))),
      windows: rows.length,
      requests: requestsIn(rows),
      tStatistic: sig(test.statistic),
      pValue: sig(test.pValue, 3),
      ...change,
    },
    ...spanOf(
      rows,
      rows.map((w, i) => shares[i]! > QUEUE_SHARE && w.batch.fillRatio >= FULL_FILL),
    ),
  };
}

function batchStarved(c: Ctx): Finding | undefined {
  const all = queueRows(c).filter((w) => finite(w.batch.fillRatio) && finite(w.batch.meanSize) && finite(w.requests.meanConcurrency));
  // Requests in the system that the batches did not take, per window.
  const {
    rows,
    values: gaps,
    evidence: change,
  } = focused(
    all,
    all.map((w) => w.requests.meanConcurrency - w.batch.meanSize),
  );
  if (rows.length < MIN_WINDOWS || requestsIn(rows) < c.minRequests) return undefined;
  const share = median(rows.map(queueShareOf)),
    fill = median(rows.map((w) => w.batch.fillRatio));
  if (!(fill < STARVED_FILL && share > STARVED_QUEUE_SHARE && median(gaps) >= 1)) return undefined;
  const test = tTestGreater(gaps, 0);
  if (!(test.pValue < ALPHA)) return undefined;
  const s = c.settings.scheduler;
  const meanSize = median(rows.map((w) => w.batch.meanSize)),
    concurrency = median(rows.map((w) => w.requests.meanConcurrency));
  const meanTokens = median(rows.map((w) => (finite(w.batch.meanTokens) ? w.batch.meanTokens : 0)));
  const timeoutFlushes = total(rows, (w) => w.batch.flushes.timeout);
  const flushes = total(rows, (w) => w.batch.flushes.full + w.batch.flushes.timeout + w.batch.flushes.queue_threshold);
  const tokenBound = meanTokens >= 0.9 * s.maxBatchTokens;
  return {
    kind: 'batch_starved',
    confidence: sig(1 - test.pValue),
    impact: sig(queueSecondsPerMinute(rows)),
    summary:
      `Batches hold ${sig(meanSize, 3)} sequences (${pct(fill)} of maxBatchSize=${s.maxBatchSize}) while ${sig(concurrency, 3)} requests ` +
      `are in the system and queue time is ${pct(share)} of e2e latency: batches are starved` +
      (tokenBound
        ? ` by maxBatchTokens=${s.maxBatchTokens} (${sig(meanTokens, 3)} tokens per step).`
        : ` (maxBatchTokens=${s.maxBatchTokens}, maxQueueDelayMs=${s.maxQueueDelayMs}, queueGrowThreshold=${s.queueGrowThreshold}).`),
    evidence: {
      fillRatio: sig(fill),
      meanSize: sig(meanSize),
      meanConcurrency: sig(concurrency),
      unbatchedRequests: sig(median(gaps)),
      queueShare: sig(share),
      maxBatchSize: s.maxBatchSize,
      maxBatchTokens: s.maxBatchTokens,
      meanTokensPerStep: sig(meanTokens),
      tokenBudgetBinds: tokenBound,
      maxQueueDelayMs: s.maxQueueDelayMs,
      queueGrowThreshold: s.queueGrowThreshold,
      timeoutFlushShare: flushes > 0 ? sig(timeoutFlushes / flushes) : NaN,
      windows: rows.length,
      requests: requestsIn(rows),
      tStatistic: sig(test.statistic),
      pValue: sig(test.pValue, 3),
      ...change,
    },
    ...spanOf(
      rows,
      rows.map((w, i) => w.batch.fillRatio < STARVED_FILL && gaps[i]! >= 1),
    ),
  };
}

function computeBound(c: Ctx): Finding | undefined {
  // No change-point focus: the regression needs the whole range of batch sizes the series visited.
  if (requestsIn(c.windows) < c.minRequests) return undefined;
  const withSize = c.windows.filter((w) => w.batch.steps > 0 && finite(w.batch.meanSize));
  // Decode steps isolate the per-sequence cost; fall back to all steps where too few windows had pure decode.
  const decodeRows = withSize.filter((w) => finite(w.batch.meanDecodeStepSeconds));
  const useDecode = decodeRows.length >= MIN_WINDOWS;
  const rows = useDecode ? decodeRows : withSize.filter((w) => finite(w.batch.meanStepSeconds));
  if (rows.length < MIN_WINDOWS) return undefined;
  const xs = rows.map((w) => w.batch.meanSize);
  const ys = rows.map((w) => (useDecode ? w.batch.meanDecodeStepSeconds : w.batch.meanStepSeconds));
  const fit = slopeTest(xs, ys);
  const utils = rows.map((w) => w.utilization).filter(finite);
  const utilization = utils.length > 0 ? median(utils) : NaN;
  if (!(fit.slope > 0 && fit.pValue < ALPHA && utilization > BUSY_UTILIZATION)) return undefined;
  const added = total(rows, (w) => w.tokens.generated * fit.slope * Math.max(0, w.batch.meanSize - 1));
  return {
    kind: 'compute_bound',
    confidence: sig(1 - fit.pValue),
    impact: sig(added / minutesOf(rows)),
    summary:
      `${useDecode ? 'Decode step' : 'Step'} time grows ${ms(fit.slope)} per sequence in the batch (intercept ${ms(fit.intercept)}, ` +
      `r²=${sig(fit.rSquared, 2)}, n=${fit.n}) at ${pct(utilization)} utilization: the engine is compute-bound.`,
    evidence: {
      stepMetric: useDecode ? 'decode' : 'all',
      slopeSecondsPerSequence: sig(fit.slope),
      interceptSeconds: sig(fit.intercept),
      rSquared: sig(fit.rSquared),
      n: fit.n,
      tStatistic: sig(fit.statistic),
      pValue: sig(fit.pValue, 3),
      utilization: sig(utilization),
      meanSizeMin: sig(Math.min(...xs)),
      meanSizeMax: sig(Math.max(...xs)),
      maxBatchSize: c.settings.scheduler.maxBatchSize,
      requests: requestsIn(rows),
    },
    ...spanOf(
      rows,
      rows.map((w) => w.utilization > BUSY_UTILIZATION),
    ),
  };
}

function kvPressure(c: Ctx): Finding | undefined {
  // No focus either: the binomial test already asks whether the flagged share of windows is more than bursts.
  if (c.windows.length < MIN_WINDOWS || requestsIn(c.windows) < c.minRequests) return undefined;
  const flagged = c.windows.map((w) => w.kv.usageRatio > KV_HIGH_USAGE || w.kv.preemptions > 0);
  const k = flagged.filter(Boolean).length,
    n = flagged.length;
  const p = binomialUpperTail(k, n, KV_BACKGROUND_RATE);
  if (!(k > 0 && p < ALPHA)) return undefined;
  const preemptions = total(c.windows, (w) => w.kv.preemptions);
  const usage = c.windows.map((w) => w.kv.usageRatio).filter(finite);
  const maxUsage = usage.length ? Math.max(...usage) : NaN;
  return {
    kind: 'kv_pressure',
    confidence: sig(1 - p),
    impact: sig(preemptions / minutesOf(c.windows)),
    summary: `${k} of ${n} windows show KV-cache pressure (usage up to ${pct(maxUsage)}, ${preemptions} preemptions; ` + `kvDtype=${c.settings.layout.kvDtype}).`,
    evidence: {
      windowsFlagged: k,
      windows: n,
      maxUsageRatio: sig(maxUsage),
      medianUsageRatio: usage.length ? sig(median(usage)) : NaN,
      preemptions,
      usageThreshold: KV_HIGH_USAGE,
      backgroundRate: KV_BACKGROUND_RATE,
      pValue: sig(p, 3),
      kvDtype: c.settings.layout.kvDtype,
    },
    ...spanOf(c.windows, flagged),
  };
}

function tailLatency(c: Ctx): Finding | undefined {
  const candidates = (['e2e', 'ttft'] as const)
    .map((metric) => {
      const all = c.windows.filter((w) => w.latency[metric].count >= 2 && w.latency[metric].p50 > 0 && finite(w.latency[metric].p99));
      const {
        rows,
        values: ratios,
        evidence: change,
      } = focused(
        all,
        all.map((w) => w.latency[metric].p99 / w.latency[metric].p50),
      );
      const count = total(rows, (w) => w.latency[metric].count);
      if (rows.length < MIN_WINDOWS || count < c.minRequests) return undefined;
      const ratio = median(ratios);
      if (!(ratio > TAIL_RATIO)) return undefined;
      // Ratios are skewed: test their logs.
      const test = tTestGreater(ratios.map(Math.log), Math.log(TAIL_RATIO));
      if (!(test.pValue < ALPHA)) return undefined;
      return { metric, rows, ratios, ratio, count, test, change };
    })
    .filter((x) => x !== undefined);
  const best = candidates.sort((a, b) => b.ratio - a.ratio)[0];
  if (!best) return undefined;
  const { metric, rows, ratios, ratio, count, test, change } = best;
  const excess = total(rows, (w) => w.latency[metric].count * 0.01 * (w.latency[metric].p99 - w.latency[metric].p50));
  const p50 = median(rows.map((w) => w.latency[metric].p50)),
    p99 = median(rows.map((w) => w.latency[metric].p99));
  const target = metric === 'e2e' ? c.slo.e2eP99Seconds : c.slo.ttftP99Seconds;
  return {
    kind: 'tail_latency',
    confidence: sig(1 - test.pValue),
    impact: sig(excess / minutesOf(rows)),
    summary:
      `${metric === 'e2e' ? 'End-to-end latency' : 'Time to first token'} has a long tail: p99/p50 = ${sig(ratio, 3)} ` +
      `(p50 ${ms(p50)}, p99 ${ms(p99)}, target p99 ${ms(target)}; median of ${rows.length} windows, ${count} requests).`,
    evidence: {
      metric,
      p99OverP50: sig(ratio),
      threshold: TAIL_RATIO,
      p50Seconds: sig(p50),
      p99Seconds: sig(p99),
      targetP99Seconds: target,
      windows: rows.length,
      requests: count,
      tStatistic: sig(test.statistic),
      pValue: sig(test.pValue, 3),
      otherMetricAlso: candidates.length > 1,
      ...change,
    },
    ...spanOf(
      rows,
      ratios.map((r) => r > TAIL_RATIO),
    ),
  };
}

function errors(c: Ctx): Finding | undefined {
  // Refusals at admission (queue full) failed the client as much as engine errors (the alert rules count them too).
  const failedIn = (w: WindowSummary): number => w.requests.errors + w.requests.rejected;
  const endedIn = (w: WindowSummary): number => w.requests.finished + w.requests.rejected;
  const { rows, evidence: change } = focused(
    c.windows,
    c.windows.map((w) => (endedIn(w) > 0 ? failedIn(w) / endedIn(w) : 0)),
  );
  const failed = total(rows, failedIn),
    ended = total(rows, endedIn);
  if (rows.length < MIN_WINDOWS || ended < c.minRequests || failed === 0) return undefined;
  const share = failed / ended,
    budget = c.slo.errorRateBudget;
  // Fleet counts are extrapolated (not integers): the test takes the nearest whole numbers.
  const p = binomialUpperTail(Math.round(failed), Math.round(ended), budget);
  if (!(share > budget && p < ALPHA)) return undefined;
  const rejected = total(rows, (w) => w.requests.rejected);
  return {
    kind: 'errors',
    confidence: sig(1 - p),
    impact: sig(failed / minutesOf(rows)),
    summary:
      `${pct(share)} of requests failed (${sig(failed)} of ${sig(ended)}, ${sig(rejected)} refused as queue full), ` +
      `above the ${pct(budget)} error budget (binomial p=${sig(p, 2)}).`,
    evidence: {
      errorShare: sig(share),
      budget,
      failed: sig(failed),
      rejected: sig(rejected),
      total: sig(ended),
      pValue: sig(p, 3),
      maxQueueLength: c.settings.scheduler.maxQueueLength,
      ...change,
    },
    ...spanOf(
      rows,
      rows.map((w) => failedIn(w) > 0),
    ),
  };
}

function qualityDrift(c: Ctx, q: QualityInput | undefined): Finding | undefined {
  if (!q || !(q.samples >= QUALITY_MIN_SAMPLES) || !(q.meanCosine < q.bar)) return undefined;
  const first = c.windows[0],
    last = c.windows[c.windows.length - 1],
    minutes = minutesOf(c.windows);
  return {
    kind: 'quality_drift',
    // No variance comes with the input; the minimum sample count stands in for the test.
    confidence: 1 - ALPHA,
    impact: sig(minutes > 0 ? requestsIn(c.windows) / minutes : 0),
    summary:
      `Shadow checks find output similarity ${sig(q.meanCosine)} below the bar ${q.bar} over ${q.samples} samples ` +
      `(weights=${c.settings.layout.weights}, kvDtype=${c.settings.layout.kvDtype}).`,
    evidence: { meanCosine: q.meanCosine, bar: q.bar, samples: q.samples, weights: c.settings.layout.weights, kvDtype: c.settings.layout.kvDtype },
    fromMs: first?.startMs ?? 0,
    toMs: last?.endMs ?? 0,
  };
}

const sumOf = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0);
/** The busiest rank's expert seconds over the mean rank's (NaN without work). */
const rankImbalanceOf = (secs: readonly number[]): number => (sumOf(secs) > 0 ? Math.max(...secs) / (sumOf(secs) / secs.length) : NaN);

function expertImbalance(c: Ctx): Finding | undefined {
  const withMoe = c.windows.filter((w) => w.moe !== undefined && w.moe.tokensPerExpert.some((row) => sumOf(row) > 0));
  const last = withMoe[withMoe.length - 1]?.moe;
  if (!last) return undefined;
  // Judge only windows of the live expert-parallel degree: another degree's rank times say nothing about this one.
  const all = withMoe.filter((w) => w.moe!.epDegree === last.epDegree);
  const ep = last.epDegree;
  const byRank = ep > 1;
  // At epDegree > 1 the statistic is the live layout's balance over the window's routing counts (expert-load.ts
  // layoutBalance: Σ per-layer busiest rank's tokens × R / all tokens), not the measured per-rank expert seconds they
  // used to be. Two reasons, both seen on the shipped tiny DeepSeek model at epDegree 2 (tests/tuner/moe-closed-loop):
  // summed over layers, rank seconds hide the per-layer waits (rank 1 busiest in layers 3 and 4, rank 0 in layer 2:
  // the sums come out even while every layer waits on its busiest rank), and on a small model they are dominated by
  // per-call overhead and the box's load (a rank with 21% fewer routed tokens measured 14% more seconds), so the
  // finding never fired on a layout whose routing was 1.3× off balance. The counts are exact and are what the cost
  // model prices the candidates with; the measured seconds stay in the evidence and the impact.
  const stat = (w: WindowSummary): number =>
    byRank ? layoutBalance(w.moe!.moeLayers, w.moe!.tokensPerExpert, ep, w.moe!.redundantExperts).factor : meanRoutingImbalance(w.moe!.tokensPerExpert);
  const usable = all.filter((w) => finite(stat(w)));
  const threshold = byRank ? RANK_IMBALANCE : ROUTING_IMBALANCE;
  const { rows, values, evidence: change } = focused(usable, usable.map(stat));
  if (rows.length < MIN_WINDOWS || requestsIn(rows) < c.minRequests) return undefined;
  const ratio = median(values);
  if (!(ratio > threshold)) return undefined;
  // Ratios are skewed (bounded below by 1): test their logs, as tail_latency does.
  const test = tTestGreater(
    values.map((v) => Math.log(v)),
    Math.log(threshold),
  );
  if (!(test.pValue < ALPHA)) return undefined;

  // Evidence: the routing counts summed over the judged windows, the most skewed layers in full.
  const m = rows[rows.length - 1]!.moe!;
  const counts = m.tokensPerExpert.map((row, i) => row.map((_, e) => total(rows, (w) => w.moe!.tokensPerExpert[i]?.[e] ?? 0)));
  const rankSeconds = m.expertSecondsPerRank.map((_, r) => total(rows, (w) => w.moe!.expertSecondsPerRank[r] ?? 0));
  const perLayer = counts.map(routingImbalance);
  const skewed = perLayer
    .map((r, i) => [r, i] as const)
    .filter(([r]) => finite(r))
    .sort((a, b) => b[0] - a[0])
    .slice(0, EVIDENCE_LAYERS);
  const routing: Record<string, string> = {};
  for (const [, i] of skewed) routing[`routingLayer${m.moeLayers[i] ?? i}`] = counts[i]!.join(',');
  const hot = counts
    .flatMap((row, i) => {
      const layerTotal = sumOf(row);
      return row.map((cnt, e) => ({ layer: m.moeLayers[i] ?? i, expert: e, share: layerTotal > 0 ? cnt / layerTotal : 0 }));
    })
    .sort((a, b) => b.share - a.share)
    .slice(0, EVIDENCE_HOT_EXPERTS);
  // Rank-seconds waiting on the busiest rank (measured), or what two ranks would wait on the routing seen.
  const waited = byRank
    ? total(rows, (w) => {
        const s = w.moe!.expertSecondsPerRank;
        return s.length * Math.max(...s) - sumOf(s);
      })
    : total(rows, (w) => {
        const work = sumOf(w.moe!.expertSecondsPerRank);
        const f = layoutBalance(w.moe!.moeLayers, w.moe!.tokensPerExpert, 2, []).factor;
        return finite(f) ? work * (f - 1) : 0;
      });
  const worst = skewed[0];
  return {
    kind: 'expert_imbalance',
    confidence: sig(1 - test.pValue),
    impact: sig(waited / minutesOf(rows)),
    summary: byRank
      ? `Expert-parallel ranks wait on the busiest one: it serves ${sig(ratio, 3)}× the even share of routed tokens, layer by layer ` +
        `(epDegree=${ep}, median of ${rows.length} windows): routing is skewed onto its experts (worst layer ${worst ? (m.moeLayers[worst[1]] ?? worst[1]) : '?'} ` +
        `at ${worst ? sig(worst[0], 3) : '?'}× the mean expert load), the other ranks wait.`
      : `Routing is skewed: the hottest expert of a layer takes ${sig(ratio, 3)}× the mean expert load (mean over ${m.moeLayers.length} MoE layers, ` +
        `median of ${rows.length} windows; worst layer ${worst ? (m.moeLayers[worst[1]] ?? worst[1]) : '?'} at ${worst ? sig(worst[0], 3) : '?'}×): ` +
        `an expert-parallel layout would wait on the rank owning it.`,
    evidence: {
      metric: byRank ? 'rank_routed_tokens' : 'routing',
      imbalance: sig(ratio),
      threshold,
      epDegree: ep,
      expertCount: m.expertCount,
      expertUsed: m.expertUsed,
      redundantExperts: formatExperts(m.redundantExperts),
      rankExpertSeconds: rankSeconds.map((x) => sig(x)).join(','),
      rankImbalance: sig(rankImbalanceOf(rankSeconds)),
      meanLayerImbalance: sig(meanRoutingImbalance(counts)),
      hottestExperts: hot.map((h) => `${h.layer}:${h.expert} ${pct(h.share)}`).join(', '),
      ...routing,
      windows: rows.length,
      requests: requestsIn(rows),
      tStatistic: sig(test.statistic),
      pValue: sig(test.pValue, 3),
      ...change,
    },
    ...spanOf(
      rows,
      values.map((v) => v > threshold),
    ),
  };
}

const RULES: Record<Exclude<BottleneckKind, 'quality_drift'>, (c: Ctx) => Finding | undefined> = {
  queueing,
  batch_starved: batchStarved,
  compute_bound: computeBound,
  kv_pressure: kvPressure,
  tail_latency: tailLatency,
  errors,
  expert_imbalance: expertImbalance,
};

/** JSON has no NaN or Infinity (the store and the REST API would turn them into null): spell them out. */
function jsonSafe(f: Finding): Finding {
  const evidence = Object.fromEntries(Object.entries(f.evidence).map(([k, v]) => [k, typeof v === 'number' && !Number.isFinite(v) ? String(v) : v]));
  return { ...f, evidence };
}

/** The bottlenecks the windows show, most impact first. Pure. */
export function analyze(input: AnalyzeInput): Finding[] {
  const c: Ctx = { windows: input.windows, settings: input.settings, slo: input.slo, minRequests: input.minRequests ?? DEFAULT_MIN_REQUESTS };
  const findings: Finding[] = [];
  if (c.windows.length >= MIN_WINDOWS && minutesOf(c.windows) > 0) {
    for (const rule of Object.values(RULES)) {
      const f = rule(c);
      if (f) findings.push(f);
    }
  }
  const q = qualityDrift(c, input.quality);
  if (q) findings.push(q);
  return findings.map(jsonSafe).sort((a, b) => b.impact - a.impact || b.confidence - a.confidence);
}
