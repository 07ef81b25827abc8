// Ranking the week's bottlenecks by impact, with their evidence, the proposals they led to and what to do next.
//
// Design note. The analyzer's `impact` is per minute and in a unit that depends on the kind (queue-seconds,
// preempted requests, failed requests, …; see analyze.ts), so its sums cannot rank a queueing week against a
// KV-pressure week. The report ranks by one unit every kind shares, read from the rollups:
//   impact = SLO-violating requests (missed an objective, failed, or refused) in the rollup windows that overlap the
//            kind's active time ranges;
//   ties   = request-seconds in the system in those windows (latency-seconds: mean concurrency × window length).
// A kind's active ranges are its stored findings' [fromMs, toMs], clipped to the week and merged where they overlap
// or lie at most MERGE_GAP_MS apart (successive analyses of the same problem). Two kinds active at the same time
// share those windows, so the impacts are not additive; each is "what was violated while this was going on".
// The analyzer's own figure (impact × minutes, each minute counted once per kind) is kept beside it as evidence.
import type { WindowSummary } from '../types.js';
import { BOTTLENECK_KINDS, type BottleneckKind } from '../types.js';
import type { StoredFinding } from '../store.js';
import type { Bottleneck, ChangeEntry, KnobChange, LinkedProposal, TimeRange } from './types.js';
import { requestSecondsIn, violatingIn } from './figures.js';
import { formatLocal } from './iso-week.js';

export const MERGE_GAP_MS = 5 * 60_000;
export const TOP_BOTTLENECKS = 3;

export const IMPACT_DEFINITION =
  'Ranked by SLO-violating requests (requests that missed a latency objective, failed, or were refused) in the ' +
  'rollup windows during which the bottleneck was active; ties by request-seconds in the system in those windows. ' +
  'Bottlenecks active at the same time share those windows, so their impacts overlap and do not add up.';

export const KIND_TITLES: Record<BottleneckKind, string> = {
  queueing: 'Queueing',
  batch_starved: 'Under-filled batches',
  compute_bound: 'Compute-bound steps',
  kv_pressure: 'KV-cache pressure',
  tail_latency: 'Tail latency',
  errors: 'Errors and refusals',
  quality_drift: 'Quality drift',
  expert_imbalance: 'Expert load imbalance',
};

/** The unit of analyze.ts' impact × minutes, per kind. */
export const ANALYZER_UNITS: Record<BottleneckKind, string> = {
  queueing: 'queue-seconds',
  batch_starved: 'queue-seconds',
  compute_bound: 'latency-seconds added by batching',
  kv_pressure: 'preempted requests',
  tail_latency: 'tail latency-seconds over the median',
  errors: 'failed or refused requests',
  quality_drift: 'requests served by drifted settings',
  expert_imbalance: 'rank-seconds spent waiting on the busiest expert rank',
};

/** What helps each kind when the tuner applied nothing (mirrors what optimize.ts would try, plus what it cannot). */
const KIND_ADVICE: Record<BottleneckKind, string> = {
  queueing: 'add capacity: raise scheduler.maxBatchSize while inter-token latency has headroom, or add replicas',
  batch_starved: 'batches run under-full while requests wait: lower scheduler.queueGrowThreshold or raise scheduler.maxBatchTokens',
  compute_bound:
    'steps are compute-bound: lighter weights (model.weights q8_0 from 16/32 bits, one K-quant rung down from there; needs approval), more cores or tensor-parallel ranks',
  kv_pressure: 'raise model.kvCacheMaxBytes, or a smaller KV type (model.kvDtype f16 or int8, needs approval)',
  tail_latency: 'long prompts hold others up: lower scheduler.maxBatchTokens (chunked prefill) and scheduler.maxQueueDelayMs',
  errors: 'read the error reasons (tuneloop_request_errors_total, the logs); refusals call for a longer scheduler.maxQueueLength or more capacity',
  quality_drift: 'roll back to the last settings whose outputs matched (POST /api/config/rollback/:version)',
  expert_imbalance:
    'routing is skewed onto a few experts: replicate the hottest ones (model.redundantExperts) or change model.epDegree (both need approval); see alerts/RUNBOOK.md#tuneloopexpertimbalancehigh',
};

const LIVE_STATES = new Set(['watching', 'confirmed']);

/** Merge ranges that overlap or lie at most `gapMs` apart; input in any order. */
export function mergeRanges(ranges: readonly TimeRange[], gapMs = MERGE_GAP_MS): TimeRange[] {
  const sorted = ranges.filter((r) => r.toMs > r.fromMs).sort((a, b) => a.fromMs - b.fromMs);
  const out: TimeRange[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && r.fromMs <= last.toMs + gapMs) last.toMs = Math.max(last.toMs, r.toMs);
    else out.push({ ...r });
  }
  return out;
}

const overlaps = (w: WindowSummary, ranges: readonly TimeRange[]): boolean => ranges.some((r) => w.startMs < r.toMs && w.endMs > r.fromMs);
const minutesOf = (ranges: readonly TimeRange[]): number => ranges.reduce((a, r) => a + (r.toMs - r.fromMs), 0) / 60_000;

/** Σ impact × minutes, each minute of the kind counted once (at the rate of the first finding that covered it). */
function analyzerImpactOf(findings: readonly StoredFinding[], week: TimeRange): number {
  let coveredTo = -Infinity,
    total = 0;
  for (const f of [...findings].sort((a, b) => a.fromMs - b.fromMs || a.id - b.id)) {
    const from = Math.max(f.fromMs, coveredTo, week.fromMs),
      to = Math.min(f.toMs, week.toMs);
    if (to > from && Number.isFinite(f.impact)) total += (f.impact * (to - from)) / 60_000;
    coveredTo = Math.max(coveredTo, f.toMs);
  }
  return total;
}

export function describeChanges(changes: readonly KnobChange[]): string {
  return changes.map((c) => `${c.knob} ${c.from ?? '?'} → ${c.to ?? '?'}`).join(', ') || 'no change';
}

export interface RankInput {
  windows: readonly WindowSummary[];
  findings: readonly StoredFinding[];
  /** The week's proposals as the report lists them (state as of the week's end). */
  changes: readonly ChangeEntry[];
  week: TimeRange;
  /** The rest of the ranking is built, but only ranked when the week has enough data. */
  enough: boolean;
  verify?: { shadowShare: number; minSamples: number };
  /** The report's zone, for the times named in next actions. */
  timezone: string;
}

/** Every kind with findings in the week, most impact first (ranks 1…). */
export function rankBottlenecks(input: RankInput): Bottleneck[] {
  const weekViolating = input.windows.reduce((a, w) => a + violatingIn(w), 0);
  const out: Bottleneck[] = [];
  for (const kind of BOTTLENECK_KINDS) {
    const fs = input.findings.filter((f) => f.kind === kind);
    if (fs.length === 0) continue;
    const ranges = mergeRanges(fs.map((f) => ({ fromMs: Math.max(f.fromMs, input.week.fromMs), toMs: Math.min(f.toMs, input.week.toMs) })));
    const active = input.windows.filter((w) => overlaps(w, ranges));
    const violating = active.reduce((a, w) => a + violatingIn(w), 0);
    const strongest = [...fs].sort((a, b) => finiteDesc(a.impact, b.impact) || b.id - a.id)[0]!;
    const linked = input.changes.filter((c) => c.addresses === kind && c.createdMs >= input.week.fromMs && c.createdMs < input.week.toMs);
    const appliedAt = linked.filter((c) => c.applied && LIVE_STATES.has(c.stateAtWeekEnd)).map((c) => c.applied!.atMs);
    const firstApply = appliedAt.length ? Math.min(...appliedAt) : null;
    const confidences = fs.map((f) => f.confidence).filter(Number.isFinite);
    out.push({
      rank: 0,
      kind,
      title: KIND_TITLES[kind],
      sloViolatingRequests: violating,
      shareOfViolations: weekViolating > 0 ? violating / weekViolating : null,
      requestSeconds: active.reduce((a, w) => a + requestSecondsIn(w), 0),
      analyzerImpact: analyzerImpactOf(fs, input.week),
      analyzerUnit: ANALYZER_UNITS[kind],
      findings: fs.length,
      maxConfidence: confidences.length ? Math.max(...confidences) : null,
      activeMinutes: minutesOf(ranges),
      ranges,
      summary: strongest.summary,
      evidence: strongest.evidence,
      proposals: linked.map((c): LinkedProposal => ({
        id: c.id,
        change: describeChanges(c.changes),
        stateAtWeekEnd: c.stateAtWeekEnd,
        verdict: c.verification?.verdict ?? null,
      })),
      applied: firstApply !== null,
      activeMinutesAfterApply:
        firstApply === null ? null : minutesOf(ranges.map((r) => ({ fromMs: Math.max(r.fromMs, firstApply), toMs: r.toMs })).filter((r) => r.toMs > r.fromMs)),
      nextAction: firstApply !== null ? null : nextAction(kind, linked, input),
    });
  }
  out.sort(
    (a, b) =>
      b.sloViolatingRequests - a.sloViolatingRequests || b.requestSeconds - a.requestSeconds || BOTTLENECK_KINDS.indexOf(a.kind) - BOTTLENECK_KINDS.indexOf(b.kind),
  );
  out.forEach((b, i) => (b.rank = i + 1));
  return out;
}

function finiteDesc(a: number, b: number): number {
  return (Number.isFinite(b) ? b : -Infinity) - (Number.isFinite(a) ? a : -Infinity) || 0;
}

/** One sentence: what to do about a bottleneck nothing was applied for, from why its last proposal went nowhere. */
export function nextAction(kind: BottleneckKind, linked: readonly ChangeEntry[], input: Pick<RankInput, 'verify' | 'timezone'>): string {
  const advice = KIND_ADVICE[kind];
  const last = [...linked].sort((a, b) => b.id - a.id)[0];
  if (!last) return `No change was proposed for it: ${advice}.`;
  const ref = `#${last.id} (${describeChanges(last.changes)})`;
  const v = last.verification;
  const humanReject = last.approvals.find((a) => a.decision === 'reject');
  switch (last.stateAtWeekEnd) {
    case 'verified': {
      const since = last.transitions.find((t) => t.to === 'verified')?.atMs ?? last.createdMs;
      return (
        `${ref} passed verification and awaits approval since ${formatLocal(since, input.timezone)} ${input.timezone}: approve or reject ` +
        `it (POST /api/proposals/${last.id}/approve).`
      );
    }
    case 'proposed':
    case 'verifying':
    case 'approved':
    case 'applying':
      return `${ref} was still ${last.stateAtWeekEnd} at the end of the week; follow it in GET /api/proposals/${last.id}.`;
    case 'rolled_back': {
      const why = last.rollback?.comment ?? 'no reason recorded';
      return `${ref} was rolled back (${why}); find out why before trying again: ${advice}.`;
    }
    case 'expired':
      return `${ref} expired (${last.transitions.at(-1)?.comment || 'time to live passed'}); run the tuner again (POST /api/tuner/run) or: ${advice}.`;
    case 'rejected': {
      if (humanReject) return `${ref} was rejected by ${humanReject.actor}${humanReject.comment ? ` ("${humanReject.comment}")` : ''}: ${advice}.`;
      if (v?.verdict === 'inconclusive') {
        const share = input.verify ? ` (now ${input.verify.shadowShare})` : '';
        const min = input.verify ? ` (now ${input.verify.minSamples})` : '';
        return (
          `Verification of ${ref} was inconclusive (${v.reasons[0] ?? 'too few samples'}): raise verify.shadowShare${share} or ` +
          `lower verify.minSamples${min}, or let it verify at a busier hour.`
        );
      }
      if (v && !v.qualityPassed) {
        const keep = last.changes.map((c) => `${c.knob} at ${c.from ?? '?'}`).join(', ');
        return `${ref} failed on quality (mean cosine ${v.meanCosine?.toFixed(4) ?? '?'}): keep ${keep}; ${advice}.`;
      }
      if (v) return `${ref} failed verification on performance (${v.reasons[0] ?? 'not better than the live settings'}): ${advice}.`;
      return `${ref} was rejected (${last.transitions.at(-1)?.comment || 'no reason recorded'}): ${advice}.`;
    }
    default:
      return `${advice}.`;
  }
}
