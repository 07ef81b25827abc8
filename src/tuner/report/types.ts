// The weekly report's data (schema tuneloop.report/v1): what build.ts makes from the store, what render.ts
// turns into Markdown and HTML, and the JSON twin written beside them for machines. Plain JSON: numbers that have no
// value (no requests, no data) are null, never NaN; times are unix ms (`…Ms`) with the zone in `period.timezone`.
import type { BottleneckKind, ProposalState, SloTargets, Verdict } from '../types.js';

export const REPORT_SCHEMA = 'tuneloop.report/v1';

/** Below these the week has "not enough data": the report says so and ranks no bottlenecks. */
export interface ReportThresholds {
  /** Minutes of rollup windows (the sum of their lengths). */
  minRollupMinutes: number;
  /** Requests finished in those windows. */
  minRequests: number;
}

export interface TimeRange {
  fromMs: number;
  toMs: number;
}

export interface KnobChange {
  knob: string;
  from: number | string | null;
  to: number | string | null;
}

export interface Coverage {
  /** Rollup windows stored for the week. */
  windows: number;
  rollupMinutes: number;
  firstWindowMs: number | null;
  lastWindowEndMs: number | null;
  requests: number;
  /** Where the windows came from: registry (this process) and/or prometheus (a fleet). */
  sources: string[];
  thresholds: ReportThresholds;
  enough: boolean;
  /** What the data is when it is not a production week (e.g. the example report's load run); '' otherwise. */
  note: string;
}

export interface SettingsInWeek {
  version: number;
  source: string;
  actor: string;
  proposalId: number | null;
  note: string;
  createdMs: number;
  /** The part of the week it was live: [liveFromMs, liveToMs). */
  liveFromMs: number;
  liveToMs: number;
  /** Knobs that differ from the version before it (empty for the first version). */
  changes: KnobChange[];
  /** The knobs as they were: scheduler and layout flattened. */
  knobs: Record<string, number | string>;
}

export type Objective = 'ttft' | 'inter_token' | 'e2e';

/** Per-objective attainment *estimated from per-window p99s* (requests are not stored one by one). */
export interface ObjectiveAttainment {
  objective: Objective;
  targetP99S: number;
  /** Windows with a p99 for this objective. */
  windows: number;
  /** Of those, windows whose p99 was at or under the target. */
  windowsMet: number;
  /** Requests finished in the windows with a p99, and in those that met the target. */
  requests: number;
  requestsInMetWindows: number;
  /** requestsInMetWindows / requests: the share of requests served in windows that met the objective. */
  share: number | null;
  /** Request-weighted mean of the per-window p99s, and the worst window. */
  typicalP99S: number | null;
  worstP99S: number | null;
  worstWindowMs: number | null;
}

export interface SloSection {
  targets: SloTargets;
  objectives: ObjectiveAttainment[];
  /** Exact per-request figures kept by the monitor: requests that met every objective at once. */
  allObjectives: { requests: number; met: number; violating: number; attainment: number | null };
  /** Failed + refused requests against slo.errorRateBudget; burned = errorRate / budget (1 = the whole budget). */
  errorBudget: { budget: number; failed: number; refused: number; requests: number; errorRate: number | null; burned: number | null };
}

export interface Traffic {
  requests: number;
  errors: number;
  rejected: number;
  cancelled: number;
  promptTokens: number;
  generatedTokens: number;
  /** Busiest window, as requests per minute. */
  peakRequestsPerMinute: number | null;
}

export interface Throughput {
  /** Generated tokens / seconds covered by windows. */
  meanTokensPerS: number | null;
  peakTokensPerS: number | null;
  /** Tokens of requests that met every objective, per second covered (time-weighted mean of the windows). */
  meanGoodputTokensPerS: number | null;
  /** Sequences per engine step, weighted by steps. */
  meanBatchSize: number | null;
  meanUtilization: number | null;
}

export interface Cost {
  cpuSeconds: number;
  coreHours: number;
  pricePerCoreHour: number;
  total: number;
  /** total / (generated tokens / 1e6); null without generated tokens. */
  perMillionTokens: number | null;
}

export interface LinkedProposal {
  id: number;
  change: string;
  stateAtWeekEnd: ProposalState;
  verdict: Verdict | null;
}

export interface Bottleneck {
  rank: number;
  kind: BottleneckKind;
  title: string;
  /** The ranking figure: SLO-violating requests (incl. refused) in the windows where this bottleneck was active. */
  sloViolatingRequests: number;
  /** Of all the week's SLO-violating requests. */
  shareOfViolations: number | null;
  /** Tie-break: request-seconds spent in the system in those windows (Little's law: mean concurrency × seconds). */
  requestSeconds: number;
  /** The analyzer's own impact × the minutes it covered, in the kind's unit (see analyzerUnit). */
  analyzerImpact: number;
  analyzerUnit: string;
  findings: number;
  maxConfidence: number | null;
  activeMinutes: number;
  ranges: TimeRange[];
  /** The strongest finding's sentence and numbers. */
  summary: string;
  evidence: Record<string, number | string | boolean>;
  proposals: LinkedProposal[];
  /** A linked proposal was live (watching or confirmed) at the end of the week. */
  applied: boolean;
  /** Minutes the bottleneck was still active after the first apply (0 when it stopped, null when nothing applied). */
  activeMinutesAfterApply: number | null;
  /** What to do next, when nothing was applied; null when a change was applied. */
  nextAction: string | null;
}

export interface BottleneckSection {
  definition: string;
  /** Top 3 by impact; empty when the week has not enough data. */
  ranked: Bottleneck[];
  /** The rest, same order. */
  others: Bottleneck[];
  /** Findings the tuner stored in the week, by kind (shown even when there is too little data to rank them). */
  findingsByKind: { kind: BottleneckKind; count: number }[];
}

export interface VerificationSummary {
  atMs: number;
  verdict: Verdict;
  reasons: string[];
  method: string;
  mirroredRequests: number;
  meanCosine: number | null;
  minCosine: number | null;
  greedyAgreement: number | null;
  perplexityDelta: number | null;
  qualityPassed: boolean;
  latency: {
    metric: string;
    baselineMedianS: number | null;
    candidateMedianS: number | null;
    relativeChange: number | null;
    pValue: number | null;
    effectSize: number | null;
    outcome: string;
  }[];
  goodputChange: number | null;
}

export interface ChangeEntry {
  id: number;
  addresses: BottleneckKind;
  changes: KnobChange[];
  temperature: 'hot' | 'cold';
  rationale: string;
  createdMs: number;
  needsApproval: boolean;
  baseVersion: number;
  stateAtWeekEnd: ProposalState;
  /** The week's transitions, oldest first. */
  transitions: { from: ProposalState | null; to: ProposalState; atMs: number; actor: string; comment: string }[];
  verification: VerificationSummary | null;
  approvals: { decision: 'approve' | 'reject'; actor: string; role: string; atMs: number; comment: string }[];
  applied: { atMs: number; version: number } | null;
  rollback: { atMs: number; actor: string; comment: string } | null;
}

export interface WeekFigures {
  requests: number;
  generatedTokens: number;
  sloAttainment: number | null;
  ttftP99S: number | null;
  interTokenP99S: number | null;
  e2eP99S: number | null;
  meanTokensPerS: number | null;
  meanGoodputTokensPerS: number | null;
  errorRate: number | null;
  costPerMillionTokens: number | null;
  topBottleneck: BottleneckKind | null;
}

export interface WeekOverWeekRow {
  key: keyof WeekFigures;
  label: string;
  current: number | null;
  previous: number | null;
  /** (current − previous) / previous; null when either is missing or previous is 0. */
  relativeChange: number | null;
  /** Which direction is good for this figure ('neutral' for volume: more traffic is neither). */
  better: 'higher' | 'lower' | 'neutral';
}

export interface WeekOverWeek {
  previousWeek: string;
  /** Where the previous figures come from: the store's rollups, the previous report's JSON twin, or nothing. */
  source: 'store' | 'previous report' | 'none';
  rows: WeekOverWeekRow[];
  topBottleneck: { current: BottleneckKind | null; previous: BottleneckKind | null };
}

export interface AlertGroup {
  alertname: string;
  /** Webhook deliveries recorded; Alertmanager repeats a firing alert every repeat_interval. */
  notifications: number;
  /** Distinct firing episodes (fingerprint + startsAt). */
  firings: number;
  firstMs: number;
  lastMs: number;
  summary: string;
}

export interface AlertSection {
  notifications: number;
  firings: number;
  bySeverity: { severity: string; notifications: number; firings: number; alerts: AlertGroup[] }[];
}

/** One chart point: a rollup window, or a bucket of windows when the week holds too many to draw one by one. */
export interface SeriesPoint {
  startMs: number;
  endMs: number;
  requests: number;
  ttftP50S: number | null;
  ttftP90S: number | null;
  ttftP99S: number | null;
  interTokenP50S: number | null;
  interTokenP90S: number | null;
  interTokenP99S: number | null;
  e2eP50S: number | null;
  e2eP90S: number | null;
  e2eP99S: number | null;
  throughputTokensPerS: number;
  goodputTokensPerS: number;
  batchMeanSize: number | null;
  kvUsageRatio: number | null;
  preemptions: number;
  settingsVersion: number;
}

export interface Series {
  /** Width of a point: the windows' own length when they are few enough, else a bucket (e.g. 3_600_000). */
  bucketMs: number;
  /** How bucketed points combine windows; '' when each point is one window. */
  aggregation: string;
  points: SeriesPoint[];
  /** Steps by per-window mean batch size, per settings version: [fromSize, toSize) bins. */
  batchSizeBins: { fromSize: number; toSize: number; version: number; steps: number }[];
  /** Settings versions that became live in the week: where the charts mark a change. */
  changes: { atMs: number; version: number; label: string }[];
}

export interface WeeklyReport {
  schema: typeof REPORT_SCHEMA;
  week: string;
  service: string;
  model: string;
  period: { startMs: number; endMs: number; timezone: string; start: string; end: string; partial: boolean };
  coverage: Coverage;
  settings: SettingsInWeek[];
  slo: SloSection;
  traffic: Traffic;
  throughput: Throughput;
  cost: Cost;
  bottlenecks: BottleneckSection;
  changes: ChangeEntry[];
  weekOverWeek: WeekOverWeek;
  alerts: AlertSection;
  series: Series;
}
