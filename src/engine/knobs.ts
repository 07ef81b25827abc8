// The engine's tunable settings, split by how a change reaches a running engine: hot knobs through
// engine.reconfigure() at the next step, cold knobs through engine.reload() (a new instance beside the old one).
// This is an engine fact, so it lives here; the config schema, the tuner and the reports read it from here.
import type { ExpertRef, KvDtype, SchedulerSettings, WeightsPolicy } from './types.js';

/** Batching knobs: change live through engine.reconfigure(). */
export type HotKnob = keyof SchedulerSettings;
export const HOT_KNOBS: readonly HotKnob[] = ['maxBatchSize', 'maxBatchTokens', 'maxQueueDelayMs', 'queueGrowThreshold', 'maxQueueLength'];

/** Model-layout knobs the tuner may change: need engine.reload(). */
export interface LayoutSettings {
  weights: WeightsPolicy;
  kvDtype: KvDtype;
  tpDegree: number;
  threadsPerRank: number;
  /** Mixture-of-Experts models: expert-parallel ranks. Absent means 1 (LAYOUT_DEFAULTS): settings recorded before the
   *  knob existed, and dense models, carry none. */
  epDegree?: number;
  /** Mixture-of-Experts models: replicated experts. Absent means none. */
  redundantExperts?: ExpertRef[];
}
export type ColdKnob = keyof LayoutSettings;
export const COLD_KNOBS: readonly ColdKnob[] = ['weights', 'kvDtype', 'tpDegree', 'threadsPerRank', 'epDegree', 'redundantExperts'];

/** The value an absent optional layout knob stands for. */
export const LAYOUT_DEFAULTS: Readonly<Pick<Required<LayoutSettings>, 'epDegree' | 'redundantExperts'>> = { epDegree: 1, redundantExperts: [] };

/** A knob's value with its default filled in, and the expert set in one canonical order (layer, then expert), so that
 *  two settings that mean the same compare equal. */
export function layoutValue<K extends ColdKnob>(layout: Partial<LayoutSettings>, k: K): Required<LayoutSettings>[K] {
  const v = layout[k] ?? (LAYOUT_DEFAULTS as Partial<LayoutSettings>)[k];
  if (k === 'redundantExperts' && Array.isArray(v)) return sortExperts(v) as Required<LayoutSettings>[K];
  return v as Required<LayoutSettings>[K];
}

export function sortExperts(experts: readonly ExpertRef[]): ExpertRef[] {
  return [...experts].map((e) => ({ layer: e.layer, expert: e.expert })).sort((a, b) => a.layer - b.layer || a.expert - b.expert);
}

/** Whether two layouts agree on knob `k` (defaults filled in; the expert set compared as a set). */
export function sameLayoutValue(a: Partial<LayoutSettings>, b: Partial<LayoutSettings>, k: ColdKnob): boolean {
  const x = layoutValue(a, k),
    y = layoutValue(b, k);
  if (Array.isArray(x) || Array.isArray(y)) return JSON.stringify(x) === JSON.stringify(y);
  return x === y;
}

/** `3:17,3:40` for people and logs; `none` for the empty set. */
export function formatExperts(experts: readonly ExpertRef[] | undefined): string {
  const list = sortExperts(experts ?? []);
  return list.length === 0 ? 'none' : list.map((e) => `${e.layer}:${e.expert}`).join(',');
}

/** Rank threads a layout runs: expert-parallel ranks reuse the tensor-parallel rank threads (attention and dense parts
 *  split or replicated across them, routed experts sliced), so a layout has max(tpDegree, epDegree) ranks of
 *  threadsPerRank threads each. The native side must agree (see docs/tuner.md, "Mixture-of-Experts"). */
export function ranksOf(layout: Pick<LayoutSettings, 'tpDegree' | 'epDegree'>): number {
  return Math.max(layout.tpDegree, layout.epDegree ?? 1);
}
