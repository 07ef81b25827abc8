// Constructed weeks for the weekly report tests: rollup windows, findings, proposals walked through their lifecycle,
// settings versions and alerts, written into a real TunerStore with a controllable clock, where the right answer
// (which bottleneck dominates, how many requests violated the SLO) is known by construction.
import type { Actor, Finding, LiveSettings, VerificationEvidence, WindowSummary, BottleneckKind, SettingsChange } from '../../src/tuner/types.js';
import type { TunerStore } from '../../src/tuner/store.js';

export const MIN = 60_000;
export const W10 = Date.UTC(2026, 2, 2); // Monday of 2026-W10 (UTC)
export const W11 = W10 + 7 * 1440 * MIN;
export const TUE = 1440 * MIN + 10 * 60 * MIN; // Tuesday 10:00 from the Monday
export const SLO = { ttftP99Seconds: 1, interTokenP99Seconds: 0.25, e2eP99Seconds: 10, errorRateBudget: 0.01 };
export const TUNER: Actor = { name: 'tuner', role: 'system' };
export const ALICE: Actor = { name: 'alice', role: 'approver' };

export const BASE_SETTINGS: LiveSettings = {
  scheduler: { maxBatchSize: 1, maxBatchTokens: 512, maxQueueDelayMs: 2, queueGrowThreshold: 32, maxQueueLength: 256 },
  layout: { weights: 'f32', kvDtype: 'f32', tpDegree: 1, threadsPerRank: 2 },
};

function latency(p99: number, count: number) {
  return count === 0 ? { count: 0, mean: NaN, p50: NaN, p90: NaN, p99: NaN } : { count, mean: p99 / 3, p50: p99 / 4, p90: p99 / 2, p99 };
}

export interface WindowSpec {
  requests: number;
  /** Share meeting every objective. */
  attainment: number;
  ttftP99?: number;
  interTokenP99?: number;
  e2eP99?: number;
  errors?: number;
  rejected?: number;
  generated?: number;
  cpuSeconds?: number;
  batchSize?: number;
  kvUsage?: number;
  preemptions?: number;
  version?: number;
}

export function window(startMs: number, s: WindowSpec): WindowSummary {
  const n = s.requests;
  const generated = s.generated ?? n * 24;
  return {
    startMs,
    endMs: startMs + MIN,
    source: 'registry',
    settingsVersion: s.version ?? 1,
    requests: { finished: n, errors: s.errors ?? 0, rejected: s.rejected ?? 0, cancelled: 0, running: 1, waiting: 2, meanConcurrency: n / 10 },
    tokens: { prompt: n * 10, generated },
    throughputTokensPerS: generated / 60,
    goodputTokensPerS: (generated * s.attainment) / 60,
    sloAttainment: n > 0 ? s.attainment : NaN,
    latency: {
      queue: latency(0.5, n),
      ttft: latency(s.ttftP99 ?? 0.5, n),
      interToken: latency(s.interTokenP99 ?? 0.05, n * 23),
      e2e: latency(s.e2eP99 ?? 3, n),
    },
    batch: {
      steps: 600,
      meanSize: s.batchSize ?? 1,
      fillRatio: 1,
      meanTokens: 8,
      meanStepSeconds: 0.1,
      meanDecodeStepSeconds: 0.09,
      flushes: { full: 1, timeout: 0, queue_threshold: 0 },
    },
    kv: { usageRatio: s.kvUsage ?? 0.3, fragmentationRatio: 1.1, preemptions: s.preemptions ?? 0, prefixHitRatio: 0 },
    utilization: 0.8,
    cpuSeconds: s.cpuSeconds ?? 90,
  };
}

/** `count` consecutive one-minute windows from `fromMs`. */
export function windows(store: TunerStore, fromMs: number, count: number, s: WindowSpec): WindowSummary[] {
  const out: WindowSummary[] = [];
  for (let i = 0; i < count; i++) {
    const w = window(fromMs + i * MIN, s);
    store.insertRollup(w);
    out.push(w);
  }
  return out;
}

export function finding(kind: BottleneckKind, fromMs: number, toMs: number, impact = 2, extra: Partial<Finding> = {}): Finding {
  return {
    kind,
    confidence: 0.99,
    impact,
    summary: `${kind} was the problem`,
    evidence: { marker: kind, windows: 5, pValue: 0.001 },
    fromMs,
    toMs,
    ...extra,
  };
}

export function evidence(verdict: VerificationEvidence['verdict'], over: Partial<VerificationEvidence['quality']> = {}): VerificationEvidence {
  return {
    verdict,
    reasons: [`${verdict}: because the numbers say so`],
    method: 'interleaved rounds (A/A control)',
    mirroredRequests: 40,
    quality: {
      positions: 64,
      meanCosine: 0.9995,
      minCosine: 0.99,
      greedyAgreement: 1,
      baselinePerplexity: 3.1,
      candidatePerplexity: 3.12,
      perplexityDelta: 0.0065,
      passed: true,
      ...over,
    },
    performance: {
      comparisons: [
        {
          metric: 'ttft',
          baselineN: 40,
          candidateN: 40,
          baselineMedianS: 2,
          candidateMedianS: 0.5,
          relativeChange: -0.75,
          u: 100,
          pValue: 0.0004,
          effectSize: -0.8,
          outcome: 'better',
        },
        {
          metric: 'e2e',
          baselineN: 40,
          candidateN: 40,
          baselineMedianS: 4,
          candidateMedianS: 2,
          relativeChange: -0.5,
          u: 200,
          pValue: 0.002,
          effectSize: -0.6,
          outcome: 'better',
        },
      ],
      baselineGoodputPerCore: 10,
      candidateGoodputPerCore: 25,
      goodputChange: 1.5,
    },
    shadowCost: { rssBytes: 1e6, cpuSeconds: 2, wallSeconds: 30 },
    startedMs: 1,
    finishedMs: 2,
  };
}

export function applyTo(s: LiveSettings, c: SettingsChange): LiveSettings {
  return { scheduler: { ...s.scheduler, ...c.scheduler }, layout: { ...s.layout, ...c.layout } };
}

export function propose(store: TunerStore, kind: BottleneckKind, change: SettingsChange, baseVersion: number, needsApproval: boolean) {
  const base = store.settingsVersion(baseVersion)!.settings;
  return store.createProposal(
    {
      candidate: {
        change,
        temperature: change.layout ? 'cold' : 'hot',
        addresses: kind,
        rationale: `because ${kind}`,
        predicted: { goodputTokensPerS: 20, baselineGoodputTokensPerS: 10, interTokenS: 0.05, meetsSlo: true },
      },
      baseVersion,
      target: applyTo(base, change),
      needsApproval,
      findingId: null,
      expiresMs: Number.MAX_SAFE_INTEGER,
    },
    TUNER,
  );
}

export function alert(receivedMs: number, alertname: string, severity: string, o: { status?: 'firing' | 'resolved'; fingerprint?: string; startsAt?: string } = {}) {
  return {
    receivedAt: new Date(receivedMs).toISOString(),
    status: o.status ?? ('firing' as const),
    labels: { alertname, severity, service: 'tuneloop' },
    annotations: { summary: `${alertname} <fired>` },
    startsAt: o.startsAt ?? new Date(receivedMs - MIN).toISOString(),
    fingerprint: o.fingerprint ?? `fp-${alertname}`,
  };
}

/** 2026-W10: queueing (40 min, 80% of requests late) then, after batching was fixed, KV pressure (40 min, 25% late),
 *  then 40 healthy minutes with a short tail-latency finding. 2026-W11: KV pressure dominates, queueing is mild. */
export function fillStore(store: TunerStore, clock: { ms: number }): void {
  clock.ms = W10 - 1440 * MIN;
  store.commitSettings(BASE_SETTINGS, 'config', 'config', null, 'initial settings from the config');
  const t0 = W10 + TUE;

  // 10:00–10:40 queueing at maxBatchSize 1.
  windows(store, t0, 40, { requests: 20, attainment: 0.2, ttftP99: 3, e2eP99: 12, batchSize: 1, version: 1 });
  for (const [a, b] of [
    [0, 15],
    [15, 30],
    [30, 40],
  ] as const) {
    clock.ms = t0 + b * MIN;
    store.insertFinding(
      finding('queueing', t0 + a * MIN, t0 + b * MIN, 2, { summary: 'queue time is 83% of e2e at maxBatchSize=1', evidence: { queueShare: 0.83, fill: 1 } }),
    );
  }
  // #1 fixes it: verified, auto-approved, applied as v2, confirmed.
  clock.ms = t0 + 41 * MIN;
  const p1 = propose(store, 'queueing', { scheduler: { maxBatchSize: 4 } }, 1, false);
  store.transition(p1.id, 'proposed', 'verifying', TUNER);
  clock.ms = t0 + 45 * MIN;
  store.transition(p1.id, 'verifying', 'verified', TUNER, { comment: 'pass', evidence: evidence('pass') });
  store.recordApproval({ proposalId: p1.id, decision: 'approve', actor: 'tuner', role: 'system', comment: 'policy: auto-apply' });
  store.transition(p1.id, 'verified', 'approved', TUNER, { comment: 'auto-approved by policy' });
  clock.ms = t0 + 46 * MIN;
  store.transition(p1.id, 'approved', 'applying', TUNER);
  const v2 = store.commitSettings(applyTo(BASE_SETTINGS, { scheduler: { maxBatchSize: 4 } }), 'tuner', 'tuner', p1.id, 'bigger batches');
  store.transition(p1.id, 'applying', 'watching', TUNER, { appliedVersion: v2.version });
  clock.ms = t0 + 50 * MIN;
  store.transition(p1.id, 'watching', 'confirmed', TUNER, { comment: '5 watch checks, 0 failed' });

  // 10:40–11:20 KV pressure (one window also refuses 2 requests).
  windows(store, t0 + 40 * MIN, 10, { requests: 20, attainment: 0.75, kvUsage: 0.97, preemptions: 3, batchSize: 4, version: 2 });
  windows(store, t0 + 50 * MIN, 1, { requests: 20, attainment: 0.75, kvUsage: 0.97, preemptions: 3, batchSize: 4, version: 2, rejected: 2 });
  windows(store, t0 + 51 * MIN, 29, { requests: 20, attainment: 0.75, kvUsage: 0.97, preemptions: 3, batchSize: 4, version: 2 });
  clock.ms = t0 + 80 * MIN;
  store.insertFinding(finding('kv_pressure', t0 + 40 * MIN, t0 + 80 * MIN, 1.5, { summary: 'KV cache 97% full with preemptions' }));
  clock.ms = t0 + 81 * MIN;
  const p2 = propose(store, 'kv_pressure', { layout: { kvDtype: 'int8' } }, 2, true);
  store.transition(p2.id, 'proposed', 'verifying', TUNER);
  clock.ms = t0 + 90 * MIN;
  store.transition(p2.id, 'verifying', 'verified', TUNER, { evidence: evidence('pass') });

  // 11:20–12:00 healthy, with a short tail-latency finding whose proposal is inconclusive.
  windows(store, t0 + 80 * MIN, 40, { requests: 20, attainment: 1, batchSize: 4, version: 2 });
  clock.ms = t0 + 100 * MIN;
  store.insertFinding(finding('tail_latency', t0 + 90 * MIN, t0 + 100 * MIN, 0.5));
  clock.ms = t0 + 101 * MIN;
  const p3 = propose(store, 'tail_latency', { scheduler: { maxQueueDelayMs: 0 } }, 2, false);
  store.transition(p3.id, 'proposed', 'verifying', TUNER);
  clock.ms = t0 + 110 * MIN;
  const inconclusive = evidence('inconclusive');
  inconclusive.reasons = ['only 9 mirrored requests (minSamples 20)'];
  store.transition(p3.id, 'verifying', 'rejected', TUNER, { comment: 'verification inconclusive', evidence: inconclusive });

  // Alerts: one warning delivered twice (same episode), one critical, one resolved (not a firing), one next week.
  for (const m of [10, 14]) store.insertAlert(alert(t0 + m * MIN, 'TuneloopQueueGrowing', 'warning', { startsAt: new Date(t0 + 9 * MIN).toISOString() }));
  store.insertAlert(alert(t0 + 20 * MIN, 'TuneloopTtftP99High', 'critical'));
  store.insertAlert(alert(t0 + 30 * MIN, 'TuneloopTtftP99High', 'critical', { status: 'resolved' }));

  // 2026-W11: KV pressure 600 late requests, queueing 80.
  const t1 = W11 + TUE;
  windows(store, t1, 40, { requests: 20, attainment: 0.25, kvUsage: 0.99, preemptions: 5, batchSize: 4, version: 2 });
  windows(store, t1 + 40 * MIN, 40, { requests: 20, attainment: 0.9, batchSize: 4, version: 2 });
  clock.ms = t1 + 80 * MIN;
  store.insertFinding(finding('kv_pressure', t1, t1 + 40 * MIN, 3));
  store.insertFinding(finding('queueing', t1 + 40 * MIN, t1 + 80 * MIN, 1));
  store.insertAlert(alert(t1 + 5 * MIN, 'TuneloopKvCacheNearlyFull', 'warning'));
}
