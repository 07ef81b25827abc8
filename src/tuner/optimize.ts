// Optimize: turn findings into at most a few candidate changes, each with a cost-model prediction of goodput
// (tokens/s of requests meeting every SLO) for the observed workload. We do not search a grid: each bottleneck kind
// maps to the knobs that can relieve it, the cost model ranks the values, and shadow verification decides.
// Candidates that policy forbids, that change nothing, or that failed verification recently are never returned.
import type { KvDtype, WeightsPolicy } from '../engine/types.js';
import { fitStepCost, predict, workloadOf, type Prediction, type StepCostModel, type WorkloadProfile } from './cost-model.js';
import type { BottleneckKind, Candidate, Finding, LiveSettings, SettingsChange, SloTargets, WindowSummary } from './types.js';

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

/** Bytes per weight as the engine stores them (int8/int4 in groups of 32 with an f32 scale). */
export const BYTES_PER_WEIGHT: Record<WeightsPolicy, number> = { f32: 4, bf16: 2, mixed: 1.5, int8: 1 + 4 / 32, int4: 0.5 + 4 / 32 };

/** One step down in weight precision (smaller, faster on a memory-bound decode); undefined at the bottom. */
const LIGHTER_WEIGHTS: Partial<Record<WeightsPolicy, WeightsPolicy>> = { f32: 'int8', bf16: 'int8', mixed: 'int8', int8: 'int4' };
/** One step up (quality first). */
const HEAVIER_WEIGHTS: Partial<Record<WeightsPolicy, WeightsPolicy>> = { int4: 'int8', int8: 'bf16', mixed: 'bf16', bf16: 'f32' };
const LIGHTER_KV: Partial<Record<KvDtype, KvDtype>> = { f32: 'f16', f16: 'int8' };

/** Canonical key of a change, for "failed recently" and de-duplication. */
export function changeKey(c: SettingsChange): string {
  const sortObj = (o: object | undefined) => (o ? Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b))) : {});
  return JSON.stringify({ s: sortObj(c.scheduler), l: sortObj(c.layout) });
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
    if ((s.layout as unknown as Record<string, unknown>)[k] !== v) (out.layout ??= {})[k as keyof LiveSettings['layout']] = v as never;
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

  const failed = new Set(input.recentlyFailed.map(changeKey));
  const forbidden = new Set(policy.forbid);
  const seen = new Set<string>();
  const out: Candidate[] = [];
  // Findings are ranked by impact; within that order prefer the larger predicted gain.
  const ranked = drafts.map((d, i) => ({ d, i, gain: d.prediction.goodputTokensPerS - base.goodputTokensPerS })).sort((x, y) => y.gain - x.gain || x.i - y.i);
  for (const { d } of ranked) {
    const change = effective(settings, d.change);
    if (!change) continue;
    const key = changeKey(change);
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

/** Prediction for a weights change: the fixed (weight-streaming) part of a step scales with bytes per weight. */
function weightsDraft(ctx: Ctx, kind: BottleneckKind, to: WeightsPolicy, why: string): Draft {
  const from = ctx.settings.layout.weights;
  const ratio = BYTES_PER_WEIGHT[to] / BYTES_PER_WEIGHT[from];
  const m: StepCostModel = { ...ctx.cost, fixedS: ctx.cost.fixedS * ratio };
  const p = predict(m, ctx.load, ctx.settings.scheduler, ctx.slo);
  return {
    change: { layout: { weights: to } },
    addresses: kind,
    prediction: p,
    rationale:
      `${why}: weights ${from} → ${to} moves ${fmt(ratio, 2)}× the bytes per step, predicting ` +
      `${fmt(p.goodputTokensPerS)} tok/s goodput (now ${fmt(ctx.base.goodputTokensPerS)})` +
      (to === 'int4' ? '; int4 may cost quality, verification checks the 0.98 similarity bar' : ''),
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
      const lighter = LIGHTER_WEIGHTS[l.weights];
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
    case 'quality_drift': {
      const heavier = HEAVIER_WEIGHTS[l.weights];
      return heavier ? [unpricedDraft(ctx, kind, { layout: { weights: heavier } }, `quality drift: weights ${l.weights} → ${heavier}`)] : [];
    }
  }
}
