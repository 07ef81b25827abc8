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
//
// Mixture-of-Experts layouts (epDegree, redundantExperts). A step of an MoE model spends part of its time in the
// routed experts; with R expert-parallel ranks each layer's expert phase lasts as long as its busiest rank, and each
// MoE layer adds an all-to-all (the combine: ALLTOALLS_PER_MOE_LAYER). priceMoeChange() prices a layout against the live one from what
// the windows measured (expert-load.ts observeMoe):
//   work  W = Σ_r expertSecondsPerRank / steps       rank-seconds of routed-expert matmuls per step (layout-invariant:
//                                                    the same tokens meet the same experts wherever they run)
//   expert(L) = W · (t_live / t_L) · balance(L) / R_L  seconds per step, balance(L) = Σ_layers busiest rank's tokens ·
//                                                    R_L / all tokens (1 = even; from the routing counts and L's
//                                                    ownership and replicas, expert-load.ts layoutBalance); t the
//                                                    threads per rank
//   a2a(L)    = 0 at R_L = 1, else ops · perOp       ops per step = measured all-to-alls / steps when the live layout
//                                                    has R > 1, else ALLTOALLS_PER_MOE_LAYER per MoE layer; perOp =
//                                                    measured mean rank all-to-all seconds / all-to-alls when the live
//                                                    layout has R > 1, else ALLTOALL_PRIOR_SECONDS + alltoallDelayUs
//   Δ = expert(cand) + a2a(cand) − expert(live) − a2a(live)
// and scales the step model by (s̄ + Δ) / s̄, s̄ the observed mean step: the MoE share of a step moves, the rest stays.
// Attention and the dense parts are taken as unchanged by the expert layout (replicated or tensor-parallel as today).
import { linearRegression, mean } from 'simple-statistics';
import type { ExpertRef, SchedulerSettings } from '../engine/types.js';
import { layoutBalance, type MoeObservation } from './expert-load.js';
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

/** Seconds one all-to-all takes when none was measured (expert parallelism off now): rank threads handing tokens over
 *  through shared memory and waiting for each other, before any injected delay. A prior; verification measures. */
export const ALLTOALL_PRIOR_SECONDS = 20e-6;

/** All-to-alls per MoE layer and step when none was measured: the engine's expert parallelism shares memory between
 *  rank threads, so the dispatch is each rank reading its tokens in place and only the combine synchronizes (the
 *  operation the engine counts in MoeStats.allToAlls and delays by alltoallDelayUs). */
export const ALLTOALLS_PER_MOE_LAYER = 1;

/** The expert-parallel part of a layout. */
export interface MoeLayout {
  epDegree: number;
  redundantExperts: readonly ExpertRef[];
  threadsPerRank: number;
}

/** Per-step seconds of one layout's MoE part. */
export interface MoeStepCost {
  /** Routed-expert wall seconds per step. */
  expertS: number;
  /** All-to-all seconds per step. */
  allToAllS: number;
  /** Busiest rank over the balanced ideal (layoutBalance().factor). */
  balance: number;
}

export interface MoeChangePrice {
  from: MoeStepCost;
  to: MoeStepCost;
  /** (s̄ + Δ) / s̄: the factor on the step model. */
  ratio: number;
  model: StepCostModel;
}

/** The MoE part of a step under `layout`, from what was observed under `live` (see the design note). */
export function moeStepCost(obs: MoeObservation, live: MoeLayout, layout: MoeLayout, alltoallDelayUs = 0): MoeStepCost {
  const steps = Math.max(1, obs.steps);
  const work = obs.expertSecondsPerRank.reduce((a, b) => a + b, 0) / steps;
  const ranks = Math.max(1, layout.epDegree);
  const balance = layoutBalance(obs.moeLayers, obs.tokensPerExpert, ranks, layout.redundantExperts).factor;
  const expertS = (work * (live.threadsPerRank / Math.max(1, layout.threadsPerRank)) * (Number.isFinite(balance) ? balance : 1)) / ranks;
  let allToAllS = 0;
  if (ranks > 1) {
    const measured = live.epDegree > 1 && obs.allToAlls > 0 && obs.allToAllSeconds.length > 0;
    const ops = measured ? obs.allToAlls / steps : ALLTOALLS_PER_MOE_LAYER * obs.moeLayers.length;
    const perOp = measured ? obs.allToAllSeconds.reduce((a, b) => a + b, 0) / obs.allToAllSeconds.length / obs.allToAlls : ALLTOALL_PRIOR_SECONDS + alltoallDelayUs / 1e6;
    allToAllS = ops * perOp;
  }
  return { expertS, allToAllS, balance };
}

/** Price an expert-layout change (epDegree, redundantExperts): the step model scaled by how the MoE part of a step
 *  moves. Undefined when the windows ran no steps to anchor it. */
export function priceMoeChange(model: StepCostModel, obs: MoeObservation, live: MoeLayout, candidate: MoeLayout, alltoallDelayUs = 0): MoeChangePrice | undefined {
  if (!(obs.steps > 0) || !(obs.meanStepSeconds > 0)) return undefined;
  const from = moeStepCost(obs, live, live, alltoallDelayUs);
  const to = moeStepCost(obs, live, candidate, alltoallDelayUs);
  const delta = to.expertS + to.allToAllS - (from.expertS + from.allToAllS);
  // A step never gets faster than its non-MoE part: keep the factor above what removing all MoE time would give.
  const ratio = Math.max(0.05, (obs.meanStepSeconds + delta) / obs.meanStepSeconds);
  return { from, to, ratio, model: { ...model, fixedS: model.fixedS * ratio, perSequenceS: model.perSequenceS * ratio } };
}
