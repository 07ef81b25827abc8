// The engine's tunable settings, split by how a change reaches a running engine: hot knobs through
// engine.reconfigure() at the next step, cold knobs through engine.reload() (a new instance beside the old one).
// This is an engine fact, so it lives here; the config schema, the tuner and the reports read it from here.
import type { KvDtype, SchedulerSettings, WeightsPolicy } from './types.js';

/** Batching knobs: change live through engine.reconfigure(). */
export type HotKnob = keyof SchedulerSettings;
export const HOT_KNOBS: readonly HotKnob[] = ['maxBatchSize', 'maxBatchTokens', 'maxQueueDelayMs', 'queueGrowThreshold', 'maxQueueLength'];

/** Model-layout knobs the tuner may change: need engine.reload(). */
export interface LayoutSettings {
  weights: WeightsPolicy;
  kvDtype: KvDtype;
  tpDegree: number;
  threadsPerRank: number;
}
export type ColdKnob = keyof LayoutSettings;
export const COLD_KNOBS: readonly ColdKnob[] = ['weights', 'kvDtype', 'tpDegree', 'threadsPerRank'];
