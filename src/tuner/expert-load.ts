// Expert load of a Mixture-of-Experts model under an expert-parallel layout: which rank serves which routed tokens,
// how unequal the ranks are, and which experts to replicate to even them out. Pure functions over routing counts; the
// monitor, the analyzer, the cost model and the optimizer share them so they agree on every number.
//
// The layout model (what the native engine must do for these numbers to hold; docs/tuner.md "Mixture-of-Experts"):
//   - ownership: with R ranks, rank r owns the contiguous slice of experts [r·E/R, (r+1)·E/R) of every MoE layer
//     (R divides E);
//   - a redundant expert is held by its owner and by one other rank, and its tokens split evenly between the two;
//   - the replica sits on the rank with the least routed load in that layer (replicas placed hottest first), by the
//     routing counts the engine has seen: the placement that brings the layer's busiest rank down the most.
// The expert phase of a layer lasts as long as its busiest rank; layers run one after another. Expert work is taken as
// proportional to the tokens routed (a routed token costs one expert FFN of one token wherever it runs).
import type { ExpertRef, MoeStats } from '../engine/types.js';
import { routingImbalance } from '../metrics/expert-routing.js';
import type { MoeWindow, WindowSummary } from './types.js';

export { routingImbalance };

/** The rank that owns `expert` among `ranks` contiguous slices of `expertCount` experts. */
export function ownerOf(expert: number, expertCount: number, ranks: number): number {
  return Math.min(ranks - 1, Math.floor((expert * ranks) / expertCount));
}

/** Tokens each rank serves in one layer: owned experts in full, replicated ones split with the least-loaded other
 *  rank (hottest replica placed first). */
export function rankLoads(counts: readonly number[], ranks: number, replicated: ReadonlySet<number> = new Set()): number[] {
  const n = counts.length;
  const loads = new Array<number>(ranks).fill(0);
  const replicas = ranks > 1 ? [...replicated].filter((e) => e >= 0 && e < n).sort((a, b) => counts[b]! - counts[a]! || a - b) : [];
  const split = new Set(replicas);
  counts.forEach((c, e) => {
    loads[ownerOf(e, n, ranks)]! += split.has(e) ? c / 2 : c;
  });
  for (const e of replicas) {
    const owner = ownerOf(e, n, ranks);
    let best = -1;
    for (let r = 0; r < ranks; r++) if (r !== owner && (best < 0 || loads[r]! < loads[best]!)) best = r;
    loads[best]! += counts[e]! / 2;
  }
  return loads;
}

/** The replicated experts of one layer (block index `layer`). */
export function replicatedIn(redundant: readonly ExpertRef[], layer: number): Set<number> {
  return new Set(redundant.filter((r) => r.layer === layer).map((r) => r.expert));
}

export interface LayoutBalance {
  /** Σ over layers of the busiest rank's tokens, over the balanced ideal Σ tokens / R: how much longer the expert
   *  phase of a step lasts than with perfectly even ranks (1 = even; R = everything on one rank). */
  factor: number;
  /** Per MoE layer: busiest rank's tokens over the mean rank's. */
  perLayer: number[];
}

/** How evenly `ranks` ranks (with `redundant` replicas) would share the routed tokens `tokensPerExpert`. */
export function layoutBalance(
  moeLayers: readonly number[],
  tokensPerExpert: readonly (readonly number[])[],
  ranks: number,
  redundant: readonly ExpertRef[],
): LayoutBalance {
  let busiest = 0,
    total = 0;
  const perLayer = tokensPerExpert.map((counts, i) => {
    const loads = rankLoads(counts, ranks, replicatedIn(redundant, moeLayers[i] ?? i));
    const sum = loads.reduce((a, b) => a + b, 0);
    const max = Math.max(...loads);
    busiest += max;
    total += sum;
    return sum > 0 ? max / (sum / ranks) : NaN;
  });
  return { factor: total > 0 ? (busiest * ranks) / total : NaN, perLayer };
}

/** A rank's load at most this far above the mean counts as balanced when choosing replicas. */
export const REPLICA_TOLERANCE = 0.1;

/**
 * Experts of one layer to replicate (beyond `existing`) so that the busiest rank comes down toward the mean: greedy,
 * the hottest not-yet-replicated expert owned by the busiest rank each time, kept only while it lowers the busiest
 * rank's load, until that load is within REPLICA_TOLERANCE of the mean or `maxNew` are chosen.
 */
export function chooseReplicas(counts: readonly number[], ranks: number, existing: ReadonlySet<number>, maxNew: number): number[] {
  if (ranks < 2) return [];
  const chosen = new Set(existing);
  const added: number[] = [];
  const n = counts.length;
  while (added.length < maxNew) {
    const loads = rankLoads(counts, ranks, chosen);
    const mean = loads.reduce((a, b) => a + b, 0) / ranks;
    const max = Math.max(...loads);
    if (!(mean > 0) || max <= mean * (1 + REPLICA_TOLERANCE)) break;
    const busiest = loads.indexOf(max);
    const pick = counts
      .map((c, e) => [c, e] as const)
      .filter(([c, e]) => c > 0 && !chosen.has(e) && ownerOf(e, n, ranks) === busiest)
      .sort((a, b) => b[0] - a[0] || a[1] - b[1])[0];
    if (!pick) break;
    chosen.add(pick[1]);
    if (Math.max(...rankLoads(counts, ranks, chosen)) >= max - 1e-9 * max) {
      chosen.delete(pick[1]);
      break;
    }
    added.push(pick[1]);
  }
  return added;
}

/** The window's routing and expert-parallel work: `cur − prev`, or everything of `cur` when the counters restarted
 *  in between — any of them went down (a reload starts a model instance's counters from 0), the layout changed
 *  (another epDegree or replica set means a reload) or the model did (other MoE layers or expert count). Restarts are
 *  judged on the whole section, not per counter: an expert whose new count passed its old one within the window would
 *  otherwise be differenced against the dead instance. */
export function moeWindowOf(prev: MoeStats | undefined, cur: MoeStats | undefined): MoeWindow | undefined {
  if (!cur) return undefined;
  const sameArrays = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((x, i) => b[i]! >= x);
  const continued =
    prev !== undefined &&
    prev.expertCount === cur.expertCount &&
    prev.epDegree === cur.epDegree &&
    sameExperts(prev.redundantExperts, cur.redundantExperts) &&
    prev.moeLayers.length === cur.moeLayers.length &&
    prev.moeLayers.every((l, i) => l === cur.moeLayers[i]) &&
    prev.tokensPerExpert.every((row, i) => sameArrays(row, cur.tokensPerExpert[i] ?? [])) &&
    sameArrays(prev.expertSecondsPerRank, cur.expertSecondsPerRank) &&
    sameArrays(prev.allToAllSeconds, cur.allToAllSeconds) &&
    prev.allToAlls <= cur.allToAlls;
  const minus = (c: readonly number[], p: readonly number[] | undefined): number[] => c.map((v, i) => (continued && p ? v - p[i]! : v));
  return {
    expertCount: cur.expertCount,
    expertUsed: cur.expertUsed,
    moeLayers: [...cur.moeLayers],
    tokensPerExpert: cur.tokensPerExpert.map((row, i) => minus(row, prev?.tokensPerExpert[i])),
    epDegree: cur.epDegree,
    redundantExperts: cur.redundantExperts.map((r) => ({ layer: r.layer, expert: r.expert })),
    expertSecondsPerRank: minus(cur.expertSecondsPerRank, prev?.expertSecondsPerRank),
    allToAllSeconds: minus(cur.allToAllSeconds, prev?.allToAllSeconds),
    allToAlls: continued ? cur.allToAlls - prev.allToAlls : cur.allToAlls,
  };
}

function sameExperts(a: readonly ExpertRef[], b: readonly ExpertRef[]): boolean {
  const key = (xs: readonly ExpertRef[]): string =>
    xs
      .map((r) => `${r.layer}:${r.expert}`)
      .sort()
      .join(',');
  return key(a) === key(b);
}

/** Several windows of one layout summed: what the analyzer and the cost model read. */
export interface MoeObservation {
  expertCount: number;
  expertUsed: number;
  moeLayers: number[];
  tokensPerExpert: number[][];
  epDegree: number;
  redundantExperts: ExpertRef[];
  expertSecondsPerRank: number[];
  allToAllSeconds: number[];
  allToAlls: number;
  /** Engine steps in those windows, and their mean duration (all phases), seconds. */
  steps: number;
  meanStepSeconds: number;
  windows: number;
}

/** Key of a window's layout: windows of another epDegree or replica set are not summed with the last one's. */
function layoutKey(m: MoeWindow): string {
  const reps = [...m.redundantExperts].sort((a, b) => a.layer - b.layer || a.expert - b.expert);
  return `${m.epDegree}|${m.expertCount}|${m.moeLayers.join(',')}|${reps.map((r) => `${r.layer}:${r.expert}`).join(',')}`;
}

/** The windows that ran the latest window's MoE layout, summed; undefined when no window carries MoE data. */
export function observeMoe(windows: readonly WindowSummary[]): MoeObservation | undefined {
  const withMoe = windows.filter((w): w is WindowSummary & { moe: MoeWindow } => w.moe !== undefined);
  const last = withMoe[withMoe.length - 1];
  if (!last) return undefined;
  const key = layoutKey(last.moe);
  const same = withMoe.filter((w) => layoutKey(w.moe) === key && w.moe.expertSecondsPerRank.length === last.moe.expertSecondsPerRank.length);
  const add = (a: number[], b: readonly number[]): number[] => a.map((x, i) => x + (b[i] ?? 0));
  const m = last.moe;
  const obs: MoeObservation = {
    expertCount: m.expertCount,
    expertUsed: m.expertUsed,
    moeLayers: [...m.moeLayers],
    tokensPerExpert: m.tokensPerExpert.map((row) => row.map(() => 0)),
    epDegree: m.epDegree,
    redundantExperts: [...m.redundantExperts],
    expertSecondsPerRank: m.expertSecondsPerRank.map(() => 0),
    allToAllSeconds: m.allToAllSeconds.map(() => 0),
    allToAlls: 0,
    steps: 0,
    meanStepSeconds: NaN,
    windows: same.length,
  };
  let stepSeconds = 0;
  for (const w of same) {
    obs.tokensPerExpert = obs.tokensPerExpert.map((row, i) => add(row, w.moe.tokensPerExpert[i] ?? []));
    obs.expertSecondsPerRank = add(obs.expertSecondsPerRank, w.moe.expertSecondsPerRank);
    obs.allToAllSeconds = add(obs.allToAllSeconds, w.moe.allToAllSeconds);
    obs.allToAlls += w.moe.allToAlls;
    if (w.batch.steps > 0 && Number.isFinite(w.batch.meanStepSeconds)) {
      obs.steps += w.batch.steps;
      stepSeconds += w.batch.meanStepSeconds * w.batch.steps;
    }
  }
  obs.meanStepSeconds = obs.steps > 0 ? stepSeconds / obs.steps : NaN;
  return obs;
}

/** The mean over layers of each layer's max/mean expert load: the routing skew a step goes through, layer by layer. */
export function meanRoutingImbalance(tokensPerExpert: readonly (readonly number[])[]): number {
  const r = tokensPerExpert.map(routingImbalance).filter(Number.isFinite);
  return r.length > 0 ? r.reduce((a, b) => a + b, 0) / r.length : NaN;
}
