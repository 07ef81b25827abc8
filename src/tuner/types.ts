// The tuner's shared vocabulary: what each stage takes and returns. Stages are functions over these plain,
// JSON-serialisable shapes (they are what the store persists and what the REST API shows), so each can be tested
// without a clock, a server or an engine. Times are unix milliseconds (`…Ms`) or seconds (`…S`, `…Seconds`).
import type { ExpertRef, SchedulerSettings } from '../engine/types.js';
import type { LayoutSettings } from '../engine/knobs.js';
import { PROPOSAL_STATES } from '../metrics/tuner-families.js';

export type { ColdKnob, HotKnob, LayoutSettings } from '../engine/knobs.js';

/** Everything the tuner manages, as it is live (or would be after a change). */
export interface LiveSettings {
  scheduler: SchedulerSettings;
  layout: LayoutSettings;
}

/** A change: only the knobs that differ. */
export interface SettingsChange {
  scheduler?: Partial<SchedulerSettings>;
  layout?: Partial<LayoutSettings>;
}

/** Latency distribution of one window, seconds. NaN fields when count is 0. */
export interface LatencySummary {
  count: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
}

/** One finished generation request as the tuner sees it (recorded by the HTTP layer, or by a shadow replay). */
export interface RequestSample {
  /** When it finished, unix ms. */
  atMs: number;
  ok: boolean;
  queueS: number;
  ttftS: number;
  /** Mean time between generated tokens (decode time / (completion tokens - 1)); NaN for a single token. */
  interTokenS: number;
  e2eS: number;
  promptTokens: number;
  completionTokens: number;
}

/** SLO targets (config.slo). */
export interface SloTargets {
  ttftP99Seconds: number;
  interTokenP99Seconds: number;
  e2eP99Seconds: number;
  errorRateBudget: number;
}

/** A summary of one monitoring window (the per-minute rollup the store keeps for weeks). */
export interface WindowSummary {
  startMs: number;
  endMs: number;
  source: 'registry' | 'prometheus';
  /** Version of the live settings during the window (store's settings history); 0 when unknown. */
  settingsVersion: number;
  requests: {
    /** Requests that ended in the window (ok or failed). */
    finished: number;
    errors: number;
    /** Refused at admission (queue full). */
    rejected: number;
    cancelled: number;
    /** Gauges at the end of the window. */
    running: number;
    waiting: number;
    /** Mean number of requests in the system (running + waiting) over the window: Little's law, e2e-seconds / window. */
    meanConcurrency: number;
  };
  tokens: { prompt: number; generated: number };
  /** Generated tokens / window seconds. */
  throughputTokensPerS: number;
  /** Generated tokens of requests that met every SLO / window seconds. */
  goodputTokensPerS: number;
  /** Share of finished requests that met every SLO (NaN when none finished). */
  sloAttainment: number;
  latency: { queue: LatencySummary; ttft: LatencySummary; interToken: LatencySummary; e2e: LatencySummary };
  batch: {
    steps: number;
    /** Mean sequences per step and its ratio to maxBatchSize. */
    meanSize: number;
    fillRatio: number;
    meanTokens: number;
    /** Mean step duration (all phases), seconds. */
    meanStepSeconds: number;
    /** Mean duration of decode-only steps, seconds (NaN when none). */
    meanDecodeStepSeconds: number;
    flushes: { full: number; timeout: number; queue_threshold: number };
  };
  kv: { usageRatio: number; fragmentationRatio: number; preemptions: number; prefixHitRatio: number };
  /** Engine busy seconds / window seconds (0..1 per engine). */
  utilization: number;
  /** Process CPU seconds used in the window (user + system). */
  cpuSeconds: number;
  /** Mixture-of-Experts models only: routing and expert-parallel work in the window (absent for dense models). */
  moe?: MoeWindow;
}

/** What a Mixture-of-Experts engine did in one window: the EngineStats.moe counters differenced, the layout as it is
 *  at the window's end. */
export interface MoeWindow {
  expertCount: number;
  expertUsed: number;
  /** Block indices of the MoE layers. */
  moeLayers: number[];
  /** Tokens routed in the window, [i over moeLayers][expert]. */
  tokensPerExpert: number[][];
  epDegree: number;
  redundantExperts: ExpertRef[];
  /** Per rank, seconds in routed-expert matmuls in the window. */
  expertSecondsPerRank: number[];
  /** Per rank, seconds in expert-parallel all-to-alls (combines) in the window. */
  allToAllSeconds: number[];
  allToAlls: number;
}

export type BottleneckKind = 'queueing' | 'batch_starved' | 'compute_bound' | 'kv_pressure' | 'tail_latency' | 'errors' | 'quality_drift' | 'expert_imbalance';
export const BOTTLENECK_KINDS: readonly BottleneckKind[] = [
  'queueing',
  'batch_starved',
  'compute_bound',
  'kv_pressure',
  'tail_latency',
  'errors',
  'quality_drift',
  'expert_imbalance',
];

/** A named bottleneck with the numbers behind it. */
export interface Finding {
  kind: BottleneckKind;
  /** 0..1: how sure the analysis is (from the statistical test behind it). */
  confidence: number;
  /** Impact used for ranking: SLO-violating requests or latency-seconds attributable per minute (bigger = worse). */
  impact: number;
  /** One line a human can read ("queue time is 83% of e2e while batches are full at maxBatchSize=1"). */
  summary: string;
  /** The numbers (and test statistics, p-values) that support it. */
  evidence: Record<string, number | string | boolean>;
  /** The time range the evidence covers. */
  fromMs: number;
  toMs: number;
}

/** A candidate change the optimizer thinks raises goodput within the SLO. */
export interface Candidate {
  change: SettingsChange;
  /** hot: reconfigure; cold: reload. */
  temperature: 'hot' | 'cold';
  /** Which finding it answers. */
  addresses: BottleneckKind;
  rationale: string;
  /** The cost model's prediction for the candidate and for the live settings, same workload. */
  predicted: { goodputTokensPerS: number; baselineGoodputTokensPerS: number; interTokenS: number; meetsSlo: boolean };
}

export type Verdict = 'pass' | 'fail' | 'inconclusive';

/** Result of one Mann-Whitney U comparison, candidate vs baseline. */
export interface DistributionComparison {
  metric: 'ttft' | 'inter_token' | 'e2e';
  baselineN: number;
  candidateN: number;
  baselineMedianS: number;
  candidateMedianS: number;
  /** (candidate - baseline) / baseline of the medians. */
  relativeChange: number;
  u: number;
  pValue: number;
  /** Rank-biserial correlation, -1..1 (positive: candidate slower). */
  effectSize: number;
  /** better | worse | same, after the significance and effect-size bars. */
  outcome: 'better' | 'worse' | 'same';
}

/** Everything verification found; stored with the proposal and shown by GET /api/proposals/:id. */
export interface VerificationEvidence {
  verdict: Verdict;
  reasons: string[];
  /** How CPU-sharing bias was handled, e.g. "interleaved rounds against a fresh baseline shadow (A/A control)". */
  method: string;
  mirroredRequests: number;
  quality: {
    positions: number;
    meanCosine: number;
    minCosine: number;
    greedyAgreement: number;
    baselinePerplexity: number;
    candidatePerplexity: number;
    perplexityDelta: number;
    passed: boolean;
  };
  performance: {
    comparisons: DistributionComparison[];
    baselineGoodputPerCore: number;
    candidateGoodputPerCore: number;
    goodputChange: number;
  };
  /** Cost of running the shadow(s): extra resident bytes and CPU seconds used. */
  shadowCost: { rssBytes: number; cpuSeconds: number; wallSeconds: number };
  startedMs: number;
  finishedMs: number;
}

/** Every state a proposal can be in. The one list is PROPOSAL_STATES, defined beside the gauge that pre-sets a series
 *  per state (src/metrics/tuner-families.ts: src/metrics/ may not import src/tuner/) and re-exported here; the
 *  lifecycle table (proposals.ts) and the store read it. */
export type ProposalState = (typeof PROPOSAL_STATES)[number];
export { PROPOSAL_STATES };

export interface Proposal {
  id: number;
  createdMs: number;
  updatedMs: number;
  state: ProposalState;
  candidate: Candidate;
  /** Settings version live when the proposal was made / verified (409 on approve if live moved since). */
  baseVersion: number;
  /** The settings it would make live. */
  target: LiveSettings;
  /** True when policy requires a human approval before apply. */
  needsApproval: boolean;
  findingId: number | null;
  evidence: VerificationEvidence | null;
  /** Settings version created by the apply, once applied. */
  appliedVersion: number | null;
  expiresMs: number;
}

/** An identity performing an action: a named token, or the tuner itself. */
export interface Actor {
  name: string;
  role: 'viewer' | 'approver' | 'admin' | 'system';
}
