// Optimize: turn findings into at most a few candidate changes, each with a cost-model prediction of goodput
// (tokens/s of requests meeting every SLO) for the observed workload. We do not search a grid: each bottleneck kind
// maps to the knobs that can relieve it, the cost model ranks the values, and shadow verification decides.
// Candidates that policy forbids, that change nothing, or that failed verification recently are never returned.
import type { ExpertRef, KvDtype, WeightsPolicy } from '../engine/types.js';
import { formatExperts, layoutValue, ranksOf, sameLayoutValue, sortExperts } from '../engine/knobs.js';
import {
  fitStepCost,
  predict,
  priceMoeChange,
  priceWeightsChange,
  workloadOf,
  type MoeLayout,
  type Prediction,
  type StepCostModel,
  type WorkloadProfile,
} from './cost-model.js';
import { chooseReplicas, observeMoe, replicatedIn, type MoeObservation } from './expert-load.js';
import type { BottleneckKind, Candidate, Finding, LiveSettings, SettingsChange, SloTargets, WindowSummary } from './types.js';
import {
  bitsPerWeight,
  canonicalWeights,
  comparePrecision,
  describePlan,
  planWeights,
  sameWeights,
  type CanonicalWeightsPolicy,
  type TensorDesc,
  type WeightsPlan,
} from './weight-formats.js';

export interface OptimizePolicy {
  /** Knob names the tuner must never propose. */
  forbid: readonly string[];
  maxCandidates: number;
}

/** What the optimizer must know about the model and the machine. */
export interface ModelFacts {
  nKvHeads: number;
  ffnDim: number;
  /** Cores the engine may use. */
  cores: number;
  /** The weights the file holds and the engine holds now; without it, weights changes assume a 32-bit file of
   *  nominal llama proportions (NOMINAL_TENSORS) and nothing is proposed from `native`. */
  weights?: WeightFacts | undefined;
  /** Injected delay per all-to-all of the live engine (benchmarks), microseconds: priced into expert-parallel layouts
   *  that have no measured all-to-all yet. Default 0. */
  alltoallDelayUs?: number | undefined;
}

/** The model file's weights and the live ones: what a weights change is priced and vetted against. */
export interface WeightFacts {
  /** The file's tensors (ModelInspection.tensors: Engine.inspect reads them from the GGUF header). */
  tensors: readonly TensorDesc[];
  /** Bytes by GGUF type of the live weights as the engine holds them (ModelInfo.weightBytes). */
  liveBytesByType?: Readonly<Record<string, number>> | undefined;
}

export interface OptimizeInput {
  findings: readonly Finding[];
  windows: readonly WindowSummary[];
  settings: LiveSettings;
  slo: SloTargets;
  policy: OptimizePolicy;
  /** Changes whose verification failed within the cooldown. */
  recentlyFailed: readonly SettingsChange[];
  model: ModelFacts;
}

/** Bits per weight of each re-quantizing policy, from the GGUF block sizes (q8_0 34 B / 32, q6_K 210 B / 256, q5_K
 *  176 B / 256, q4_K 144 B / 256, q4_0 18 B / 32). `mixed` depends on the model's share of attention weights (bf16)
 *  against the rest (q8_0), `native` on the file: both come from planWeights() over the file's tensors. */
export const POLICY_BITS_PER_WEIGHT: Readonly<Record<Exclude<CanonicalWeightsPolicy, 'native' | 'mixed'>, number>> = {
  f32: bitsPerWeight('f32')!,
  bf16: bitsPerWeight('bf16')!,
  q8_0: bitsPerWeight('q8_0')!,
  q6_k: bitsPerWeight('q6_K')!,
  q5_k: bitsPerWeight('q5_K')!,
  q4_k: bitsPerWeight('q4_K')!,
  q4_0: bitsPerWeight('q4_0')!,
};

/** Lighter steps for a weight-bound decode, most precise first: the first the engine accepts that saves at least
 *  MIN_WEIGHT_BYTES_SAVING of the bytes a step reads is proposed. From 16/32 bits the first step is q8_0 (it halves
 *  bf16's bytes at a cosine near 1: bf16 or mixed would spend a verification and an approval on half the gain); below
 *  8.5 bits one K-quant rung at a time; q4_0 last (the bytes of q4_k, less precise: only where q4_k cannot go). */
const LIGHTER_STEPS: readonly CanonicalWeightsPolicy[] = ['q8_0', 'q6_k', 'q5_k', 'q4_k', 'q4_0'];
/** Every policy a quality step may go to; the least bytes that gains precision and loses none wins. */
const QUALITY_STEPS: readonly CanonicalWeightsPolicy[] = ['q4_0', 'q4_k', 'q5_k', 'q6_k', 'q8_0', 'mixed', 'native', 'bf16', 'f32'];
/** A lighter weights change must cut the bytes a decode step reads by at least this share: less is not worth a
 *  reload, an approval and the precision it costs. */
export const MIN_WEIGHT_BYTES_SAVING = 0.05;

/** Stand-in for the file when its tensors are unknown: one 32-bit llama-7B layer (d 4096, FFN 11008). */
export const NOMINAL_TENSORS: readonly TensorDesc[] = [
  ...['attn_q', 'attn_k', 'attn_v', 'attn_output'].map((n) => ({ name: `blk.0.${n}.weight`, type: 'f32', shape: [4096, 4096] })),
  { name: 'blk.0.ffn_gate.weight', type: 'f32', shape: [4096, 11008] },
  { name: 'blk.0.ffn_up.weight', type: 'f32', shape: [4096, 11008] },
  { name: 'blk.0.ffn_down.weight', type: 'f32', shape: [11008, 4096] },
  { name: 'blk.0.attn_norm.weight', type: 'f32', shape: [4096] },
];

/** A weights change the optimizer may propose, with the plans it was judged on. */
export interface WeightsStep {
  to: CanonicalWeightsPolicy;
  live: WeightsPlan;
  candidate: WeightsPlan;
}

function tensorsFor(facts: WeightFacts | undefined, live: WeightsPolicy): readonly TensorDesc[] | undefined {
  if (facts && facts.tensors.length > 0) return facts.tensors;
  return canonicalWeights(live) === 'native' ? undefined : NOMINAL_TENSORS;
}

/**
 * The next lighter weights for a weight-bound decode, or undefined. Never a policy the engine would refuse
 * (re-quantizing a quantized tensor into as many or more bits: q8_0 on a Q4_K_M file), never one that saves less than
 * MIN_WEIGHT_BYTES_SAVING (it would only lose precision). When the live policy holds more bytes than the file has
 * (f32 over an F16 or Q4_K file), `native` comes first: it saves bytes and loses nothing.
 */
export function lighterWeights(facts: WeightFacts | undefined, live: WeightsPolicy): WeightsStep | undefined {
  const tensors = tensorsFor(facts, live);
  if (!tensors) return undefined;
  const from = planWeights(tensors, live);
  const saves = (p: WeightsPlan) => p.refused.length === 0 && p.streamedBytes <= from.streamedBytes * (1 - MIN_WEIGHT_BYTES_SAVING);
  if (canonicalWeights(live) !== 'native' && facts) {
    const native = planWeights(tensors, 'native');
    if (saves(native) && comparePrecision(from, native).losses === 0) return { to: 'native', live: from, candidate: native };
  }
  for (const to of LIGHTER_STEPS) {
    if (sameWeights(to, live)) continue;
    const candidate = planWeights(tensors, to);
    if (saves(candidate)) return { to, live: from, candidate };
  }
  return undefined;
}

/**
 * The next weights up in precision after a quality drift, or undefined: the fewest bytes among the policies that gain
 * precision somewhere and lose it nowhere, precision being capped by the file (dequantizing a Q4_K tensor to f32 gains
 * nothing, so a Q4_K_M file run natively has nowhere to go). At equal bytes the one that gains on more weights wins
 * (native f16 over bf16 on an F16 file).
 */
export function heavierWeights(facts: WeightFacts | undefined, live: WeightsPolicy): WeightsStep | undefined {
  const tensors = tensorsFor(facts, live);
  if (!tensors) return undefined;
  const from = planWeights(tensors, live);
  let best: (WeightsStep & { gains: number }) | undefined;
  for (const to of QUALITY_STEPS) {
    if (sameWeights(to, live) || (to === 'native' && !facts)) continue;
    const candidate = planWeights(tensors, to);
    if (candidate.refused.length > 0) continue;
    const { gains, losses } = comparePrecision(from, candidate);
    if (gains === 0 || losses > 0) continue;
    const fewer = best === undefined || candidate.streamedBytes < best.candidate.streamedBytes * (1 - 1e-9);
    const tie = best !== undefined && Math.abs(candidate.streamedBytes - best.candidate.streamedBytes) <= best.candidate.streamedBytes * 1e-9;
    if (fewer || (tie && gains > best!.gains)) best = { to, live: from, candidate, gains };
  }
  return best && { to: best.to, live: best.live, candidate: best.candidate };
}

const LIGHTER_KV: Partial<Record<KvDtype, KvDtype>> = { f32: 'f16', f16: 'int8' };

/** Canonical key of a change, for "failed recently" and de-duplication. */
export function changeKey(c: SettingsChange): string {
  const sortObj = (o: object | undefined) => (o ? Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b))) : {});
  return JSON.stringify({ s: sortObj(c.scheduler), l: sortObj(c.layout) });
}

/** changeKey with the weights aliases resolved: a change to int8 that failed blocks q8_0 too. */
function sameChangeKey(c: SettingsChange): string {
  const w = c.layout?.weights;
  return changeKey(w === undefined ? c : { ...c, layout: { ...c.layout, weights: canonicalWeights(w) } });
}

/** The settings after a change. */
export function applyChange(s: LiveSettings, c: SettingsChange): LiveSettings {
  return { scheduler: { ...s.scheduler, ...c.scheduler }, layout: { ...s.layout, ...c.layout } };
}

/** Drop knobs whose value equals the live one; undefined when nothing is left. */
function effective(s: LiveSettings, c: SettingsChange): SettingsChange | undefined {
  const out: SettingsChange = {};
  for (const [k, v] of Object.entries(c.scheduler ?? {})) {
    if ((s.scheduler as unknown as Record<string, unknown>)[k] !== v) (out.scheduler ??= {})[k as keyof LiveSettings['scheduler']] = v;
  }
  for (const [k, v] of Object.entries(c.layout ?? {})) {
    // Absent MoE knobs are their defaults, and the expert set compares as a set (knobs.ts sameLayoutValue).
    const knob = k as keyof LiveSettings['layout'];
    if (!sameLayoutValue(s.layout, c.layout!, knob)) (out.layout ??= {})[knob] = v as never;
  }
  return out.scheduler || out.layout ? out : undefined;
}

function knobsOf(c: SettingsChange): string[] {
  return [...Object.keys(c.scheduler ?? {}), ...Object.keys(c.layout ?? {})];
}

interface Draft {
  change: SettingsChange;
  addresses: BottleneckKind;
  rationale: string;
  /** Prediction for the candidate; the fixed step cost scaled when the change is a weights change. */
  prediction: Prediction;
}

function fmt(x: number, digits = 3): string {
  return Number.isFinite(x) ? Number(x.toPrecision(digits)).toString() : String(x);
}

export function optimize(input: OptimizeInput): Candidate[] {
  const { settings, slo, policy } = input;
  const model = fitStepCost(input.windows);
  const load = workloadOf(input.windows);
  if (!model || !load) return [];
  const base = predict(model, load, settings.scheduler, slo);
  const drafts: Draft[] = [];
  for (const f of input.findings) drafts.push(...draftsFor(f.kind, { ...input, cost: model, load, base }));

  const failed = new Set(input.recentlyFailed.map(sameChangeKey));
  const forbidden = new Set(policy.forbid);
  const seen = new Set<string>();
  const out: Candidate[] = [];
  // Findings are ranked by impact; within that order prefer the larger predicted gain.
  const ranked = drafts.map((d, i) => ({ d, i, gain: d.prediction.goodputTokensPerS - base.goodputTokensPerS })).sort((x, y) => y.gain - x.gain || x.i - y.i);
  for (const { d } of ranked) {
    const change = effective(settings, d.change);
    if (!change) continue;
    const key = sameChangeKey(change);
    if (seen.has(key) || failed.has(key)) continue;
    if (knobsOf(change).some((k) => forbidden.has(k))) continue;
    // A change the model predicts to lose goodput is not worth a verification slot.
    if (d.prediction.goodputTokensPerS < base.goodputTokensPerS * 0.98) continue;
    seen.add(key);
    out.push({
      change,
      temperature: change.layout ? 'cold' : 'hot',
      addresses: d.addresses,
      rationale:
        `${d.rationale} (cost model ${model.source}: step = ${fmt(model.fixedS * 1000)} ms + ${fmt(model.perSequenceS * 1000)} ms × batch; ` +
        `workload ${fmt(load.concurrency)} requests in flight, ${fmt(load.generatedTokens)} tokens each)`,
      predicted: {
        goodputTokensPerS: d.prediction.goodputTokensPerS,
        baselineGoodputTokensPerS: base.goodputTokensPerS,
        interTokenS: d.prediction.interTokenS,
        meetsSlo: d.prediction.meetsSlo,
      },
    });
    if (out.length >= policy.maxCandidates) break;
  }
  return out;
}

interface Ctx extends OptimizeInput {
  cost: StepCostModel;
  load: WorkloadProfile;
  base: Prediction;
}

function pow2ceil(x: number): number {
  return 2 ** Math.ceil(Math.log2(Math.max(1, x)));
}

function batchSizeDrafts(ctx: Ctx, kind: BottleneckKind, sizes: number[], why: string): Draft[] {
  const s = ctx.settings.scheduler;
  return [...new Set(sizes.map((b) => Math.max(1, Math.min(4096, Math.round(b)))))].map((b) => {
    // Decode needs one token of step budget per sequence: raise maxBatchTokens with the batch when it would cap it.
    const tokens = Math.max(s.maxBatchTokens, b);
    const change: SettingsChange = { scheduler: { maxBatchSize: b, ...(tokens !== s.maxBatchTokens ? { maxBatchTokens: tokens } : {}) } };
    const p = predict(ctx.cost, ctx.load, { maxBatchSize: b, maxBatchTokens: tokens }, ctx.slo);
    return {
      change,
      addresses: kind,
      prediction: p,
      rationale:
        `${why}: maxBatchSize ${s.maxBatchSize} → ${b} predicts ${fmt(p.goodputTokensPerS)} tok/s goodput ` +
        `(now ${fmt(ctx.base.goodputTokensPerS)}), inter-token ${fmt(p.interTokenS * 1000)} ms`,
    };
  });
}

/** Prediction for a weights change: the fixed (weight-streaming) part of a step scales with the bytes a step reads. */
function weightsDraft(ctx: Ctx, kind: BottleneckKind, step: WeightsStep, why: string): Draft {
  const from = ctx.settings.layout.weights;
  const price = priceWeightsChange(ctx.cost, step.live, step.candidate, ctx.model.weights?.liveBytesByType);
  const p = predict(price.model, ctx.load, ctx.settings.scheduler, ctx.slo);
  const mb = (b: number) => `${fmt(b / 1e6)} MB`;
  const fourBit = step.candidate.bitsPerWeight < 5 && step.live.bitsPerWeight >= 5;
  return {
    change: { layout: { weights: step.to } },
    addresses: kind,
    prediction: p,
    rationale:
      `${why}: weights ${from} (${describePlan(step.live)}) → ${step.to} (${describePlan(step.candidate)}); a decode step reads ` +
      `${mb(price.fromBytes)} → ${mb(price.toBytes)} (${fmt(price.ratio, 2)}×), predicting ${fmt(p.goodputTokensPerS)} tok/s goodput ` +
      `(now ${fmt(ctx.base.goodputTokensPerS)})` +
      (step.candidate.fallbacks.length > 0 ? `; ${step.candidate.fallbacks.length} tensors fall back (rows not whole blocks)` : '') +
      (fourBit ? '; 4-bit weights may cost quality, verification checks the similarity bar' : ''),
  };
}

/** Same prediction as the live settings: for knobs the cost model does not price (queue policy, KV dtype). */
function unpricedDraft(ctx: Ctx, kind: BottleneckKind, change: SettingsChange, rationale: string): Draft {
  return { change, addresses: kind, rationale, prediction: ctx.base };
}

function draftsFor(kind: BottleneckKind, ctx: Ctx): Draft[] {
  const s = ctx.settings.scheduler;
  const l = ctx.settings.layout;
  const c = ctx.load.concurrency;
  const last = ctx.windows[ctx.windows.length - 1];
  switch (kind) {
    case 'queueing':
      // Batches are full at the cap while requests queue: try caps up to the observed concurrency.
      return batchSizeDrafts(
        ctx,
        kind,
        [s.maxBatchSize * 2, s.maxBatchSize * 4, pow2ceil(c)].filter((b) => b > s.maxBatchSize),
        'requests queue behind full batches',
      );
    case 'batch_starved': {
      const out: Draft[] = [];
      const meanTokens = last?.batch.meanTokens ?? 0;
      if (meanTokens >= 0.8 * s.maxBatchTokens) {
        out.push(
          unpricedDraft(
            ctx,
            kind,
            { scheduler: { maxBatchTokens: s.maxBatchTokens * 2 } },
            `steps use ${fmt(meanTokens)} of ${s.maxBatchTokens} tokens while requests wait: double maxBatchTokens`,
          ),
        );
      }
      const waiting = last?.requests.waiting ?? 0;
      if (s.queueGrowThreshold > 1 && s.queueGrowThreshold >= waiting) {
        out.push(
          unpricedDraft(
            ctx,
            kind,
            { scheduler: { queueGrowThreshold: Math.max(1, Math.floor(waiting / 2)) } },
            `batches run under-filled while ${waiting} wait below queueGrowThreshold ${s.queueGrowThreshold}`,
          ),
        );
      }
      if (s.maxBatchSize > c) out.push(...batchSizeDrafts(ctx, kind, [pow2ceil(c)], 'batch cap far above the load'));
      return out;
    }
    case 'compute_bound': {
      const out: Draft[] = [];
      if (ctx.base.interTokenS > ctx.slo.interTokenP99Seconds && s.maxBatchSize > 1) {
        // Largest batch whose step fits the inter-token objective.
        const fit = Math.floor((ctx.slo.interTokenP99Seconds - ctx.cost.fixedS) / ctx.cost.perSequenceS);
        if (fit >= 1 && fit < s.maxBatchSize) out.push(...batchSizeDrafts(ctx, kind, [fit], 'steps exceed the inter-token objective'));
      }
      const lighter = lighterWeights(ctx.model.weights, l.weights);
      if (lighter) out.push(weightsDraft(ctx, kind, lighter, 'decode steps are bound by weight traffic'));
      const used = l.tpDegree * l.threadsPerRank;
      const tp = l.tpDegree * 2;
      if (ctx.model.cores >= tp * l.threadsPerRank && used < ctx.model.cores && ctx.model.nKvHeads % tp === 0 && ctx.model.ffnDim % tp === 0) {
        // More ranks on idle cores: the per-step fixed cost splits across them (all-reduce overhead ignored here).
        const m: StepCostModel = { ...ctx.cost, fixedS: ctx.cost.fixedS / 2, perSequenceS: ctx.cost.perSequenceS / 2 };
        const p = predict(m, ctx.load, s, ctx.slo);
        out.push({
          change: { layout: { tpDegree: tp } },
          addresses: kind,
          prediction: p,
          rationale: `${ctx.model.cores - used} idle cores: tpDegree ${l.tpDegree} → ${tp} predicts ${fmt(p.goodputTokensPerS)} tok/s goodput`,
        });
      }
      return out;
    }
    case 'kv_pressure': {
      const out: Draft[] = [];
      const kv = LIGHTER_KV[l.kvDtype];
      if (kv) out.push(unpricedDraft(ctx, kind, { layout: { kvDtype: kv } }, `KV cache full or preempting: kvDtype ${l.kvDtype} → ${kv} fits more sequences`));
      if (s.maxBatchSize > 1) {
        const b = Math.max(1, Math.floor((last?.batch.meanSize ?? s.maxBatchSize) * 0.75));
        out.push(
          unpricedDraft(
            ctx,
            kind,
            { scheduler: { maxBatchSize: b } },
            `KV pressure: fewer sequences at once (maxBatchSize ${s.maxBatchSize} → ${b}) stop preemption churn`,
          ),
        );
      }
      return out;
    }
    case 'tail_latency': {
      const out: Draft[] = [];
      if (s.maxQueueDelayMs > 0)
        out.push(
          unpricedDraft(ctx, kind, { scheduler: { maxQueueDelayMs: 0 } }, `tail latency: do not hold under-full batches (maxQueueDelayMs ${s.maxQueueDelayMs} → 0)`),
        );
      if (s.maxBatchTokens > 64) {
        out.push(
          unpricedDraft(
            ctx,
            kind,
            { scheduler: { maxBatchTokens: Math.max(64, Math.floor(s.maxBatchTokens / 2)) } },
            `tail latency: smaller prefill chunks interrupt running decodes less (maxBatchTokens ${s.maxBatchTokens} → ${Math.max(64, Math.floor(s.maxBatchTokens / 2))})`,
          ),
        );
      }
      return out;
    }
    case 'errors':
      if ((last?.requests.rejected ?? 0) > 0) {
        return [
          unpricedDraft(
            ctx,
            kind,
            { scheduler: { maxQueueLength: s.maxQueueLength * 2 } },
            `requests refused at a full queue: maxQueueLength ${s.maxQueueLength} → ${s.maxQueueLength * 2}`,
          ),
        ];
      }
      return [];
    case 'expert_imbalance':
      return expertLayoutDrafts(ctx);
    case 'quality_drift': {
      const heavier = heavierWeights(ctx.model.weights, l.weights);
      if (!heavier) return [];
      return [
        unpricedDraft(
          ctx,
          kind,
          { layout: { weights: heavier.to } },
          `quality drift: weights ${l.weights} (${describePlan(heavier.live)}) → ${heavier.to} (${describePlan(heavier.candidate)})`,
        ),
      ];
    }
  }
}

/** Replicas one layer may gain in one proposal: a rank's worth of experts over two (E / 2R), at least one. More at once
 *  would be a reload's worth of memory on a guess; the next cycle can add more. */
export function maxNewReplicasPerLayer(expertCount: number, ranks: number): number {
  return Math.max(1, Math.floor(expertCount / (2 * ranks)));
}

/** Experts to replicate under `ranks` ranks: per layer, chooseReplicas from the routing counts on top of `keep`. */
export function replicasFor(obs: MoeObservation, ranks: number, keep: readonly ExpertRef[]): ExpertRef[] {
  if (ranks < 2) return [];
  const out: ExpertRef[] = keep.filter((r) => obs.moeLayers.includes(r.layer));
  obs.tokensPerExpert.forEach((counts, i) => {
    const layer = obs.moeLayers[i] ?? i;
    for (const expert of chooseReplicas(counts, ranks, replicatedIn(keep, layer), maxNewReplicasPerLayer(obs.expertCount, ranks))) out.push({ layer, expert });
  });
  return sortExperts(out);
}

/** expert_imbalance: replicate the hottest experts on the live degree, or another expert-parallel degree (with the
 *  replicas that balance it), each priced by the cost model's MoE term. */
function expertLayoutDrafts(ctx: Ctx): Draft[] {
  const obs = observeMoe(ctx.windows);
  if (!obs) return [];
  const l = ctx.settings.layout;
  const ep = layoutValue(l, 'epDegree');
  const current = layoutValue(l, 'redundantExperts');
  const live: MoeLayout = { epDegree: ep, redundantExperts: current, threadsPerRank: l.threadsPerRank };
  const delay = ctx.model.alltoallDelayUs ?? 0;
  const out: Draft[] = [];
  const draft = (epDegree: number, redundantExperts: ExpertRef[], why: string): void => {
    const cand: MoeLayout = { epDegree, redundantExperts, threadsPerRank: l.threadsPerRank };
    const price = priceMoeChange(ctx.cost, obs, live, cand, delay);
    if (!price) return;
    const p = predict(price.model, ctx.load, ctx.settings.scheduler, ctx.slo);
    const ms = (x: number): string => `${fmt(x * 1000)} ms`;
    out.push({
      change: { layout: { ...(epDegree !== ep ? { epDegree } : {}), redundantExperts } },
      addresses: 'expert_imbalance',
      prediction: p,
      rationale:
        `${why}: busiest expert rank ${fmt(price.from.balance)}× → ${fmt(price.to.balance)}× the even share, routed experts ` +
        `${ms(price.from.expertS)} → ${ms(price.to.expertS)} and all-to-all ${ms(price.from.allToAllS)} → ${ms(price.to.allToAllS)} per step ` +
        `(step ×${fmt(price.ratio)}), predicting ${fmt(p.goodputTokensPerS)} tok/s goodput (now ${fmt(ctx.base.goodputTokensPerS)})`,
    });
  };
  const fits = (ranks: number): boolean =>
    ranks >= 1 && ranks <= 64 && obs.expertCount % ranks === 0 && ranksOf({ tpDegree: l.tpDegree, epDegree: ranks }) * l.threadsPerRank <= ctx.model.cores;
  if (ep > 1) {
    const more = replicasFor(obs, ep, current);
    if (more.length > current.length) {
      draft(
        ep,
        more,
        `replicate ${more.length - current.length} hot experts on epDegree ${ep} (${formatExperts(more.filter((r) => !current.some((c) => c.layer === r.layer && c.expert === r.expert)))})`,
      );
    }
    const fewer = ep / 2;
    if (Number.isInteger(fewer) && fits(fewer)) draft(fewer, replicasFor(obs, fewer, []), `epDegree ${ep} → ${fewer} (fewer all-to-alls, ranks share the skew)`);
  }
  const wider = ep * 2;
  if (fits(wider)) draft(wider, replicasFor(obs, wider, []), `epDegree ${ep} → ${wider} on idle cores, hot experts replicated`);
  return out;
}
