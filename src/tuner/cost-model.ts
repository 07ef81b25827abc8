// The optimizer's cost model: predicts what a batching setting would do to the workload we just observed, before
// anything is tried on shadow traffic.
//
// Design note. Decode steps dominate serving time. A decode step over B sequences costs t(B) = a + b·B seconds: `a`
// is what every step pays whatever the batch (streaming the weights from memory, launching the ranks), `b` the
// marginal cost of one more sequence (its attention over its own KV, its share of the matmul FLOPs). Both are fitted
// by least squares on the per-window points (mean batch size, mean decode step seconds). When the windows did not
// vary the batch size enough to identify `b` (a server pinned at maxBatchSize = 1 only ever shows B = 1), we fall
// back to a prior b = PRIOR_MARGINAL_SHARE · t(1): on a memory-bound decode one more sequence costs a small fraction
// of a weight sweep. The prior is deliberately conservative; verification on shadow traffic has the last word.
//
// The workload is described by what the windows saw: mean concurrency C (Little's law: requests in the system),
// mean generated tokens per request L, mean prompt tokens P and the prefill rate. For a closed population of C
// requests served at batch cap M, each step serves B = min(C, M) sequences:
//   throughput  = B / t(B)                     tokens/s
//   inter-token = t(B)                         seconds (for a running sequence)
//   e2e         = C · L / throughput           seconds (Little's law again)
//   ttft        ≈ e2e − (L − 1) · t(B)         seconds (the wait plus the prefill)
// Goodput is throughput times the share of requests expected to meet every SLO; for a prediction that share is
// 1 when the predicted latencies are within target, else it is scaled down by how far the e2e latency overshoots.
//
// Weights changes. Decode is memory-bound: the fixed part `a` is mostly one sweep over the weights, so it scales with
// the bytes a step reads, and those follow the bytes per weight of each format (weight-formats.ts: f32 4, bf16 2,
// q8_0 34/32, q6_K 210/256, q5_K 176/256, q4_K 144/256, q4_0 18/32 bytes). priceWeightsChange() scales `a` by
// candidate bytes / live bytes, both from the per-tensor plans of the file (what each tensor would be held in,
// fallbacks included), and anchors the absolute figures on the bytes by type the engine reports for the live weights
// (ModelInfo.weightBytes). The per-sequence part `b` (attention over the sequence's own KV) does not change.
import { linearRegression, mean } from 'simple-statistics';
import type { SchedulerSettings } from '../engine/types.js';
import type { SloTargets, WindowSummary } from './types.js';
import type { WeightsPlan } from './weight-formats.js';

/** Marginal cost of one more sequence in a decode step, as a share of a single-sequence step (prior). */
export const PRIOR_MARGINAL_SHARE = 0.1;

export interface StepCostModel {
  /** Seconds every decode step pays. */
  fixedS: number;
  /** Seconds per sequence in the step. */
  perSequenceS: number;
  /** 'fit' when the windows identified both terms, 'prior' when perSequenceS is the prior. */
  source: 'fit' | 'prior';
  /** Windows the fit used. */
  points: number;
}

export interface WorkloadProfile {
  /** Mean requests in the system. */
  concurrency: number;
  /** Mean generated tokens per request. */
  generatedTokens: number;
  promptTokens: number;
  /** Requests finished per second. */
  requestRate: number;
  /** Observed share of requests meeting every SLO (for the live settings). */
  sloAttainment: number;
}

export interface Prediction {
  batchSize: number;
  throughputTokensPerS: number;
  interTokenS: number;
  e2eS: number;
  ttftS: number;
  meetsSlo: boolean;
  goodputTokensPerS: number;
}

function finite(x: number): boolean {
  return Number.isFinite(x);
}

/** Fit t(B) = a + b·B on the windows that ran decode steps. Undefined when no window did. */
export function fitStepCost(windows: readonly WindowSummary[]): StepCostModel | undefined {
  const pts = windows
    .filter((w) => w.batch.steps > 0 && finite(w.batch.meanDecodeStepSeconds) && finite(w.batch.meanSize) && w.batch.meanSize > 0)
    .map((w) => [w.batch.meanSize, w.batch.meanDecodeStepSeconds] as [number, number]);
  if (pts.length === 0) return undefined;
  const sizes = pts.map((p) => p[0]);
  const spread = Math.max(...sizes) - Math.min(...sizes);
  if (pts.length >= 3 && spread >= 1) {
    const { m, b } = linearRegression(pts);
    // A negative slope or intercept is noise on a flat curve: keep the fit only when it is physically meaningful.
    if (m > 0 && b > 0) return { fixedS: b, perSequenceS: m, source: 'fit', points: pts.length };
  }
  // Not identifiable: treat the observed mean step as t(B̄) and split it with the prior.
  const bBar = mean(sizes);
  const tBar = mean(pts.map((p) => p[1]));
  const t1 = tBar / (1 + PRIOR_MARGINAL_SHARE * (bBar - 1));
  return { fixedS: t1 * (1 - PRIOR_MARGINAL_SHARE), perSequenceS: t1 * PRIOR_MARGINAL_SHARE, source: 'prior', points: pts.length };
}

/** What the windows say about the offered load (request-weighted means). */
export function workloadOf(windows: readonly WindowSummary[]): WorkloadProfile | undefined {
  const ws = windows.filter((w) => w.requests.finished > 0);
  if (ws.length === 0) return undefined;
  const n = ws.reduce((s, w) => s + w.requests.finished, 0);
  const seconds = ws.reduce((s, w) => s + (w.endMs - w.startMs) / 1000, 0);
  const attained = ws.filter((w) => finite(w.sloAttainment));
  return {
    concurrency: ws.reduce((s, w) => s + w.requests.meanConcurrency * (w.endMs - w.startMs), 0) / (seconds * 1000),
    generatedTokens: ws.reduce((s, w) => s + w.tokens.generated, 0) / n,
    promptTokens: ws.reduce((s, w) => s + w.tokens.prompt, 0) / n,
    requestRate: n / seconds,
    sloAttainment: attained.length
      ? attained.reduce((s, w) => s + w.sloAttainment * w.requests.finished, 0) / attained.reduce((s, w) => s + w.requests.finished, 0)
      : NaN,
  };
}

/** Predict the workload's latencies and goodput at batch cap `settings.maxBatchSize`. */
export function predict(model: StepCostModel, load: WorkloadProfile, settings: Pick<SchedulerSettings, 'maxBatchSize' | 'maxBatchTokens'>, slo: SloTargets): Prediction {
  const c = Math.max(1, load.concurrency);
  // A decode step needs one token of budget per sequence, so maxBatchTokens caps the batch as well.
  const batch = Math.max(1, Math.min(c, settings.maxBatchSize, settings.maxBatchTokens));
  const step = model.fixedS + model.perSequenceS * batch;
  const throughput = batch / step;
  const L = Math.max(1, load.generatedTokens);
  const e2e = (c * L) / throughput;
  const ttft = Math.max(step, e2e - (L - 1) * step);
  const meets = e2e <= slo.e2eP99Seconds && step <= slo.interTokenP99Seconds && ttft <= slo.ttftP99Seconds;
  const share = meets ? 1 : Math.max(0, Math.min(1, slo.e2eP99Seconds / e2e, slo.interTokenP99Seconds / step, slo.ttftP99Seconds / ttft));
  return { batchSize: batch, throughputTokensPerS: throughput, interTokenS: step, e2eS: e2e, ttftS: ttft, meetsSlo: meets, goodputTokensPerS: throughput * share };
}

/** A weights change priced by the bytes a decode step reads. */
export interface WeightsChangePrice {
  /** Bytes a step reads now: the engine's reported bytes (when given) less what a step does not read. */
  fromBytes: number;
  /** Bytes a step would read with the candidate's weights. */
  toBytes: number;
  /** toBytes / fromBytes: the factor on the fixed part of a step. */
  ratio: number;
  /** The step model with the candidate's weights. */
  model: StepCostModel;
}

/**
 * Price a weights change: the fixed (weight-streaming) part of a step scales with the bytes a step reads, the
 * per-sequence part stays. `reportedLiveBytes`: the engine's bytes by type for the live weights (ModelInfo.weightBytes
 * or EngineStats.weightBytesByDtype); it anchors the absolute figures (with tensor parallelism a tied embedding is held
 * twice, which only the engine knows), while the ratio comes from the two plans of the same file.
 */
export function priceWeightsChange(
  model: StepCostModel,
  live: WeightsPlan,
  candidate: WeightsPlan,
  reportedLiveBytes?: Readonly<Record<string, number>>,
): WeightsChangePrice {
  const ratio = live.streamedBytes > 0 ? candidate.streamedBytes / live.streamedBytes : 1;
  const reported = Object.values(reportedLiveBytes ?? {}).reduce((a, b) => a + b, 0);
  const fromBytes = reported > 0 && live.bytes > 0 ? reported * (live.streamedBytes / live.bytes) : live.streamedBytes;
  return { fromBytes, toBytes: fromBytes * ratio, ratio, model: { ...model, fixedS: model.fixedS * ratio } };
}
