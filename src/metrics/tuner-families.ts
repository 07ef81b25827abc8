// Tuner families, driven by the tuner (src/tuner/). Label values are pre-set here — the tuner's stages, the proposal
// states and the verdicts — so every series exists from the first scrape (rate() needs a zero to start from) and
// dashboards and alert rules can be written against them before the tuner has run.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export const TUNER_STAGES = ['monitor', 'analyze', 'optimize', 'verify', 'apply'] as const;
export const TUNER_OUTCOMES = ['ok', 'error'] as const;
/** Every state a tuning proposal can be in: the one list. It lives here because src/metrics/ may not import
 *  src/tuner/; src/tuner/types.ts re-exports it and derives the ProposalState type from it, the lifecycle table
 *  (src/tuner/proposals.ts) must cover exactly these states, and the REST layer's state filter reads it. */
export const PROPOSAL_STATES = ['proposed', 'verifying', 'verified', 'rejected', 'approved', 'applying', 'watching', 'confirmed', 'rolled_back', 'expired'] as const;
export const VERIFICATION_VERDICTS = ['pass', 'fail', 'inconclusive'] as const;

export interface TunerMetrics {
  runs: Counter<'stage' | 'outcome'>;
  proposals: Gauge<'state'>;
  shadowRequests: Counter;
  shadowSimilarity: Histogram;
  verdicts: Counter<'verdict'>;
  rollbacks: Counter;
  lastRunTimestamp: Gauge;
  bottleneck: Gauge<'kind'>;
  reportLastTimestamp: Gauge;
  /** 1 while the tuner is paused (metrics source unreachable, store unwritable, disabled); the reason is in status. */
  paused: Gauge;
}

export function defineTunerFamilies(registry: Registry): TunerMetrics {
  const registers = [registry];
  const runs = new Counter({ name: 'tuneloop_tuner_runs_total', help: 'Tuner stage runs by stage and outcome.', labelNames: ['stage', 'outcome'] as const, registers });
  for (const stage of TUNER_STAGES) for (const outcome of TUNER_OUTCOMES) runs.inc({ stage, outcome }, 0);
  const proposals = new Gauge({ name: 'tuneloop_tuner_proposals', help: 'Tuning proposals by lifecycle state.', labelNames: ['state'] as const, registers });
  for (const state of PROPOSAL_STATES) proposals.set({ state }, 0);
  const shadowRequests = new Counter({ name: 'tuneloop_shadow_requests_total', help: 'Live requests mirrored to the shadow engine during verification.', registers });
  const shadowSimilarity = new Histogram({
    name: 'tuneloop_shadow_similarity',
    help: 'Cosine similarity of next-token distributions, shadow vs primary, at the same prefixes.',
    buckets: [0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 1],
    registers,
  });
  const verdicts = new Counter({ name: 'tuneloop_verification_verdicts_total', help: 'Verification verdicts recorded.', labelNames: ['verdict'] as const, registers });
  for (const verdict of VERIFICATION_VERDICTS) verdicts.inc({ verdict }, 0);
  const rollbacks = new Counter({ name: 'tuneloop_rollbacks_total', help: 'Applied changes rolled back after a regression.', registers });
  const lastRunTimestamp = new Gauge({ name: 'tuneloop_tuner_last_run_timestamp_seconds', help: 'Unix time of the last tuner run (0 = never).', registers });
  const bottleneck = new Gauge({
    name: 'tuneloop_bottleneck_info',
    help: 'The bottleneck the last analysis named (value 1 on its kind).',
    labelNames: ['kind'] as const,
    registers,
  });
  // alerts/alerting.rules.yml (TuneloopWeeklyReportOverdue) fires when this is older than 8 days.
  const reportLastTimestamp = new Gauge({ name: 'tuneloop_report_last_timestamp_seconds', help: 'Unix time the last weekly report was written (0 = never).', registers });
  const paused = new Gauge({
    name: 'tuneloop_tuner_paused',
    help: 'Whether the tuner is paused (1): its metrics source is unreachable, its store unwritable, or it is disabled. ' + 'GET /api/tuner/status gives the reason.',
    registers,
  });
  return { runs, proposals, shadowRequests, shadowSimilarity, verdicts, rollbacks, lastRunTimestamp, bottleneck, reportLastTimestamp, paused };
}
