// Apply: make settings live on the engine, and judge the watch window that follows.
//
// Hot knobs go through engine.reconfigure (next step boundary); cold ones through engine.reload, which builds the
// new model beside the old one and moves traffic over without failing a request. The store is written by the caller
// *after* the engine accepted the change, in one transaction with the proposal's move to `watching`, so a crash at
// any point leaves the last committed version as the truth: on restart the engine is built from it.
import type { Engine } from '../engine/engine.js';
import type { SchedulerSettings } from '../engine/types.js';
import type { LayoutSettings, LiveSettings, RequestSample, SloTargets } from './types.js';
import { HOT_KNOBS, COLD_KNOBS, LAYOUT_DEFAULTS, sameLayoutValue } from '../engine/knobs.js';

const LAYOUT_DEFAULTS_OF: Readonly<Partial<Record<string, unknown>>> = LAYOUT_DEFAULTS;
import { meetsSlo } from './monitor.js';

export interface SettingsDiff {
  scheduler: Partial<SchedulerSettings>;
  layout: Partial<LayoutSettings>;
  knobs: string[];
}

export function diffSettings(from: LiveSettings, to: LiveSettings): SettingsDiff {
  const scheduler: Partial<SchedulerSettings> = {};
  const layout: Partial<LayoutSettings> = {};
  for (const k of HOT_KNOBS) if (from.scheduler[k] !== to.scheduler[k]) scheduler[k] = to.scheduler[k];
  // MoE knobs absent from a layout stand for their defaults (epDegree 1, no replicas); the expert set compares as a set.
  for (const k of COLD_KNOBS) if (!sameLayoutValue(from.layout, to.layout, k)) (layout as Record<string, unknown>)[k] = to.layout[k] ?? LAYOUT_DEFAULTS_OF[k];
  return { scheduler, layout, knobs: [...Object.keys(scheduler), ...Object.keys(layout)] };
}

/** The live settings as the engine reports them. */
export function engineSettings(engine: Engine): LiveSettings {
  const s = engine.stats().settings;
  return {
    scheduler: {
      maxBatchSize: s.maxBatchSize,
      maxBatchTokens: s.maxBatchTokens,
      maxQueueDelayMs: s.maxQueueDelayMs,
      queueGrowThreshold: s.queueGrowThreshold,
      maxQueueLength: s.maxQueueLength,
    },
    layout: {
      weights: s.weights,
      kvDtype: s.kvDtype,
      tpDegree: s.tpDegree,
      threadsPerRank: s.threadsPerRank,
      // MoE knobs only where the engine reports them (an MoE model); diffSettings reads absent as the default.
      ...(s.epDegree !== undefined ? { epDegree: s.epDegree } : {}),
      ...(s.redundantExperts !== undefined ? { redundantExperts: s.redundantExperts } : {}),
    },
  };
}

/** Make `to` live. Cold part first (a reload keeps the scheduler settings), then the hot part. Throws EngineError
 *  when the engine refuses; a failed reload leaves the old model serving, so the caller only has to undo the hot part. */
export async function applySettings(engine: Engine, from: LiveSettings, to: LiveSettings): Promise<SettingsDiff> {
  const d = diffSettings(from, to);
  if (Object.keys(d.layout).length > 0) {
    const layout = { ...d.layout };
    // tpDegree (or epDegree) without threadsPerRank would let the engine re-split the threads; pin what the target says.
    if ((layout.tpDegree !== undefined || layout.epDegree !== undefined) && layout.threadsPerRank === undefined) layout.threadsPerRank = to.layout.threadsPerRank;
    await engine.reload(layout);
  }
  if (Object.keys(d.scheduler).length > 0) engine.reconfigure(d.scheduler);
  return d;
}

export interface WatchBaseline {
  /** Share of requests meeting every SLO before the change (NaN: unknown). */
  sloAttainment: number;
  errorRate: number;
}

export interface WatchCheck {
  /** true = healthy, false = failed, null = not enough requests to judge. */
  ok: boolean | null;
  requests: number;
  sloAttainment: number;
  errorRate: number;
  reason: string;
}

/**
 * One check of the watch window (Flagger's analysis step): the requests finished since the last check must keep the
 * SLO attainment within `maxDrop` of what it was before the change, and the error rate within the budget.
 */
export function judgeWatchCheck(samples: readonly RequestSample[], before: WatchBaseline, slo: SloTargets, maxDrop: number, minRequests = 5): WatchCheck {
  const n = samples.length;
  const errors = samples.filter((s) => !s.ok).length;
  const good = samples.filter((s) => meetsSlo(s, slo)).length;
  const attainment = n ? good / n : NaN;
  const errorRate = n ? errors / n : NaN;
  if (n < minRequests) return { ok: null, requests: n, sloAttainment: attainment, errorRate, reason: `${n} requests: too few to judge` };
  if (errorRate > Math.max(slo.errorRateBudget, before.errorRate)) {
    return {
      ok: false,
      requests: n,
      sloAttainment: attainment,
      errorRate,
      reason: `error rate ${(errorRate * 100).toFixed(1)}% over the budget ${(slo.errorRateBudget * 100).toFixed(1)}%`,
    };
  }
  if (Number.isFinite(before.sloAttainment) && attainment < before.sloAttainment - maxDrop) {
    return {
      ok: false,
      requests: n,
      sloAttainment: attainment,
      errorRate,
      reason: `SLO attainment ${(attainment * 100).toFixed(1)}% fell more than ${(maxDrop * 100).toFixed(0)} points below ${(before.sloAttainment * 100).toFixed(1)}%`,
    };
  }
  return {
    ok: true,
    requests: n,
    sloAttainment: attainment,
    errorRate,
    reason: `SLO attainment ${(attainment * 100).toFixed(1)}%, errors ${(errorRate * 100).toFixed(1)}%`,
  };
}
