// The weekly report's figures from the week's rollup windows: coverage, SLO attainment, traffic, throughput, cost and
// the chart series. Pure functions over WindowSummary[]; every figure is a sum or a weighted mean of stored fields,
// so a reader (and the tests) can recompute it from the store with the rule written beside it.
//
// Per-objective SLO attainment is an estimate, and says so: the store keeps per-window latency summaries, not each
// request, so "share within the TTFT target" is the share of requests served in windows whose p99 TTFT met the
// target (weighted by requests). The all-objectives attainment is exact: the monitor judged every request of a window
// against every target at once and stored the share (sloAttainment), so met = round(finished × sloAttainment).
import type { SloTargets, WindowSummary } from '../types.js';
import type { Coverage, Cost, ObjectiveAttainment, Objective, ReportThresholds, Series, SeriesPoint, SloSection, Throughput, Traffic } from './types.js';

export const DEFAULT_REPORT_THRESHOLDS: ReportThresholds = { minRollupMinutes: 30, minRequests: 100 };
/** Most points a chart draws; a week of one-minute windows (10 080) is bucketed down to this. */
export const MAX_CHART_POINTS = 400;
const BUCKETS_MS = [60_000, 300_000, 900_000, 1_800_000, 3_600_000, 7_200_000, 10_800_000, 21_600_000];

/** A finite number, or null (JSON has no NaN). */
export function fin(x: number): number | null {
  return Number.isFinite(x) ? x : null;
}

const sum = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0);
/** Σ x·w / Σ w over the pairs whose x is finite and w > 0; null when none. */
function weightedMean(pairs: readonly [number, number][]): number | null {
  let num = 0,
    den = 0;
  for (const [x, w] of pairs) {
    if (Number.isFinite(x) && w > 0) {
      num += x * w;
      den += w;
    }
  }
  return den > 0 ? num / den : null;
}
function maxOf(xs: readonly number[]): number | null {
  const f = xs.filter(Number.isFinite);
  return f.length ? Math.max(...f) : null;
}

export const windowSeconds = (w: WindowSummary): number => Math.max(0, w.endMs - w.startMs) / 1000;
export const finite0 = (x: number): number => (Number.isFinite(x) ? x : 0);

/** Requests of the window that met every objective (the monitor's exact share, rounded to whole requests). */
export function metIn(w: WindowSummary): number {
  return w.requests.finished > 0 && Number.isFinite(w.sloAttainment) ? Math.round(w.requests.finished * w.sloAttainment) : 0;
}

/** Requests that missed an objective, failed, or were refused at admission. */
export function violatingIn(w: WindowSummary): number {
  return w.requests.finished - metIn(w) + w.requests.rejected;
}

/** Request-seconds in the system (Little's law: mean concurrency × window length). */
export function requestSecondsIn(w: WindowSummary): number {
  return finite0(w.requests.meanConcurrency) * windowSeconds(w);
}

export function coverageOf(windows: readonly WindowSummary[], thresholds: ReportThresholds, note: string): Coverage {
  const rollupMinutes = sum(windows.map(windowSeconds)) / 60;
  const requests = sum(windows.map((w) => w.requests.finished));
  return {
    windows: windows.length,
    rollupMinutes,
    firstWindowMs: windows.length ? Math.min(...windows.map((w) => w.startMs)) : null,
    lastWindowEndMs: windows.length ? Math.max(...windows.map((w) => w.endMs)) : null,
    requests,
    sources: [...new Set(windows.map((w) => w.source))].sort(),
    thresholds,
    enough: rollupMinutes >= thresholds.minRollupMinutes && requests >= thresholds.minRequests,
    note,
  };
}

const OBJECTIVES: { objective: Objective; pick: (w: WindowSummary) => number; target: (s: SloTargets) => number }[] = [
  { objective: 'ttft', pick: (w) => w.latency.ttft.p99, target: (s) => s.ttftP99Seconds },
  { objective: 'inter_token', pick: (w) => w.latency.interToken.p99, target: (s) => s.interTokenP99Seconds },
  { objective: 'e2e', pick: (w) => w.latency.e2e.p99, target: (s) => s.e2eP99Seconds },
];

function objectiveOf(windows: readonly WindowSummary[], o: (typeof OBJECTIVES)[number], slo: SloTargets): ObjectiveAttainment {
  const target = o.target(slo);
  const judged = windows.filter((w) => Number.isFinite(o.pick(w)) && w.requests.finished > 0);
  const met = judged.filter((w) => o.pick(w) <= target);
  const requests = sum(judged.map((w) => w.requests.finished));
  const requestsInMetWindows = sum(met.map((w) => w.requests.finished));
  let worst: WindowSummary | undefined;
  for (const w of judged) if (!worst || o.pick(w) > o.pick(worst)) worst = w;
  return {
    objective: o.objective,
    targetP99S: target,
    windows: judged.length,
    windowsMet: met.length,
    requests,
    requestsInMetWindows,
    share: requests > 0 ? requestsInMetWindows / requests : null,
    typicalP99S: weightedMean(judged.map((w) => [o.pick(w), w.requests.finished])),
    worstP99S: worst ? o.pick(worst) : null,
    worstWindowMs: worst ? worst.startMs : null,
  };
}

export function sloOf(windows: readonly WindowSummary[], slo: SloTargets): SloSection {
  const requests = sum(windows.map((w) => w.requests.finished));
  const met = sum(windows.map(metIn));
  const failed = sum(windows.map((w) => w.requests.errors));
  const refused = sum(windows.map((w) => w.requests.rejected));
  const ended = requests + refused;
  const errorRate = ended > 0 ? (failed + refused) / ended : null;
  return {
    targets: { ...slo },
    objectives: OBJECTIVES.map((o) => objectiveOf(windows, o, slo)),
    allObjectives: { requests, met, violating: requests - met, attainment: requests > 0 ? met / requests : null },
    errorBudget: {
      budget: slo.errorRateBudget,
      failed,
      refused,
      requests: ended,
      errorRate,
      burned: errorRate === null || slo.errorRateBudget <= 0 ? null : errorRate / slo.errorRateBudget,
    },
  };
}

export function trafficOf(windows: readonly WindowSummary[]): Traffic {
  return {
    requests: sum(windows.map((w) => w.requests.finished)),
    errors: sum(windows.map((w) => w.requests.errors)),
    rejected: sum(windows.map((w) => w.requests.rejected)),
    cancelled: sum(windows.map((w) => w.requests.cancelled)),
    promptTokens: sum(windows.map((w) => w.tokens.prompt)),
    generatedTokens: sum(windows.map((w) => w.tokens.generated)),
    peakRequestsPerMinute: maxOf(windows.filter((w) => windowSeconds(w) > 0).map((w) => (w.requests.finished * 60) / windowSeconds(w))),
  };
}

export function throughputOf(windows: readonly WindowSummary[]): Throughput {
  const seconds = sum(windows.map(windowSeconds));
  return {
    meanTokensPerS: seconds > 0 ? sum(windows.map((w) => w.tokens.generated)) / seconds : null,
    peakTokensPerS: maxOf(windows.map((w) => w.throughputTokensPerS)),
    meanGoodputTokensPerS: weightedMean(windows.map((w) => [w.goodputTokensPerS, windowSeconds(w)])),
    meanBatchSize: weightedMean(windows.map((w) => [w.batch.meanSize, w.batch.steps])),
    meanUtilization: weightedMean(windows.map((w) => [w.utilization, windowSeconds(w)])),
  };
}

/** CPU-seconds × price: cost = Σ cpuSeconds / 3600 × pricePerCoreHour; per million generated tokens. */
export function costOf(windows: readonly WindowSummary[], pricePerCoreHour: number): Cost {
  const cpuSeconds = sum(windows.map((w) => finite0(w.cpuSeconds)));
  const coreHours = cpuSeconds / 3600;
  const total = coreHours * pricePerCoreHour;
  const generated = sum(windows.map((w) => w.tokens.generated));
  return { cpuSeconds, coreHours, pricePerCoreHour, total, perMillionTokens: generated > 0 ? total / (generated / 1e6) : null };
}

// ---- chart series --------------------------------------------------------------------------------------------

/** Four significant digits: the charts need no more, and the JSON twin stays small. */
function sig4(x: number | null): number | null {
  return x === null || !Number.isFinite(x) ? null : Number(x.toPrecision(4));
}

function pointOf(ws: readonly WindowSummary[]): SeriesPoint {
  const seconds = sum(ws.map(windowSeconds));
  const reqWeighted = (pick: (w: WindowSummary) => number): number | null => sig4(weightedMean(ws.map((w) => [pick(w), w.requests.finished])));
  // p50/p90: request-weighted mean of the windows' values; p99: the worst window (a mean would hide a spike).
  const worst = (pick: (w: WindowSummary) => number): number | null => sig4(maxOf(ws.filter((w) => w.requests.finished > 0).map(pick)));
  const last = ws[ws.length - 1]!;
  return {
    startMs: ws[0]!.startMs,
    endMs: last.endMs,
    requests: sum(ws.map((w) => w.requests.finished)),
    ttftP50S: reqWeighted((w) => w.latency.ttft.p50),
    ttftP90S: reqWeighted((w) => w.latency.ttft.p90),
    ttftP99S: worst((w) => w.latency.ttft.p99),
    interTokenP50S: reqWeighted((w) => w.latency.interToken.p50),
    interTokenP90S: reqWeighted((w) => w.latency.interToken.p90),
    interTokenP99S: worst((w) => w.latency.interToken.p99),
    e2eP50S: reqWeighted((w) => w.latency.e2e.p50),
    e2eP90S: reqWeighted((w) => w.latency.e2e.p90),
    e2eP99S: worst((w) => w.latency.e2e.p99),
    throughputTokensPerS: sig4(seconds > 0 ? sum(ws.map((w) => w.tokens.generated)) / seconds : 0) ?? 0,
    goodputTokensPerS: sig4(weightedMean(ws.map((w) => [w.goodputTokensPerS, windowSeconds(w)]))) ?? 0,
    batchMeanSize: sig4(weightedMean(ws.map((w) => [w.batch.meanSize, w.batch.steps]))),
    kvUsageRatio: sig4(maxOf(ws.map((w) => w.kv.usageRatio))),
    preemptions: sum(ws.map((w) => finite0(w.kv.preemptions))),
    settingsVersion: last.settingsVersion,
  };
}

/** Bins of per-window mean batch size (steps in each), split by settings version so a change shows its effect. */
function batchSizeBinsOf(windows: readonly WindowSummary[]): Series['batchSizeBins'] {
  const withSteps = windows.filter((w) => w.batch.steps > 0 && Number.isFinite(w.batch.meanSize));
  if (withSteps.length === 0) return [];
  const largest = Math.max(...withSteps.map((w) => w.batch.meanSize));
  const width = largest <= 24 ? 1 : Math.ceil(largest / 24);
  const bins = new Map<string, { fromSize: number; toSize: number; version: number; steps: number }>();
  for (const w of withSteps) {
    // Integer sizes sit in the middle of their bin: [0.5, 1.5) holds batches of one.
    const fromSize = width === 1 ? Math.floor(w.batch.meanSize + 0.5) - 0.5 : Math.floor(w.batch.meanSize / width) * width;
    const key = `${fromSize}|${w.settingsVersion}`;
    const bin = bins.get(key) ?? { fromSize, toSize: fromSize + width, version: w.settingsVersion, steps: 0 };
    bin.steps += w.batch.steps;
    bins.set(key, bin);
  }
  return [...bins.values()].sort((a, b) => a.fromSize - b.fromSize || a.version - b.version);
}

export function seriesOf(windows: readonly WindowSummary[], changes: Series['changes']): Series {
  const sorted = [...windows].sort((a, b) => a.startMs - b.startMs);
  const batchSizeBins = batchSizeBinsOf(sorted);
  if (sorted.length <= MAX_CHART_POINTS) {
    const own = sorted.length ? Math.round(sum(sorted.map((w) => w.endMs - w.startMs)) / sorted.length) : 60_000;
    return { bucketMs: own, aggregation: '', points: sorted.map((w) => pointOf([w])), batchSizeBins, changes };
  }
  const span = sorted[sorted.length - 1]!.endMs - sorted[0]!.startMs;
  const bucketMs = BUCKETS_MS.find((b) => span / b <= MAX_CHART_POINTS) ?? BUCKETS_MS[BUCKETS_MS.length - 1]!;
  const groups = new Map<number, WindowSummary[]>();
  for (const w of sorted) {
    const k = Math.floor(w.startMs / bucketMs) * bucketMs;
    const g = groups.get(k);
    if (g) g.push(w);
    else groups.set(k, [w]);
  }
  return {
    bucketMs,
    aggregation:
      'p50 and p90: request-weighted mean of the windows in each bucket; p99: the worst window; ' + 'throughput: tokens / seconds covered; KV usage: the highest window',
    points: [...groups.values()].map(pointOf),
    batchSizeBins,
    changes,
  };
}
