// The verify stage's verdict: pure functions from measured evidence to pass / fail / inconclusive. The shadow
// engines and the replay that produce the evidence live in shadow.ts.
//
// Verdict rules (decideVerdict), applied in this order; the first that applies decides (the bars quoted are the
// defaults of the config's `verify` section, src/config/schema.ts):
//  1. Quality. Any measured quality figure beyond its bar → fail: mean softmax cosine < similarityBar (0.98),
//     greedy agreement < greedyAgreementBar (0.9), or probe-set perplexity up by more than perplexityDeltaBar (5%).
//     A figure that could not be measured (NaN: no positions, no probe set) is not "beyond its bar".
//  2. Evidence. Fewer than minSamples mirrored requests, or fewer than minSamples replayed requests in either arm
//     → inconclusive: too little data to call a regression or an improvement.
//  3. Regression. Any latency metric (ttft, inter_token, e2e) significantly worse (Mann-Whitney p < alpha / 3 —
//     Bonferroni over the three metrics tested together, alpha = 1 − confidence — AND |rank-biserial| ≥
//     effectSizeBar AND the median shifted by at least LATENCY_CHANGE_BAR, 10%) while goodput per core is not better (by ≥ GOODPUT_CHANGE_BAR), or goodput per core lower by
//     more than GOODPUT_NOISE_BAR (20%) on its own → fail. Goodput per core is one ratio per arm, not a distribution:
//     an A/A pair of identical shadows scattered by up to ±8% on a busy 2-core box and by 11% once on a box running a
//     benchmark beside the tests, so a drop alone must exceed that to count; a smaller real regression shows in the
//     latency distributions and fails there. A worse latency paid for with more goodput (e.g. TTFT
//     up because batches are bigger) is not a regression by itself; the SLO check inside goodput still counts it.
//  4. Improvement. When expectFaster (the candidate was proposed to raise goodput): goodput per core up by at least
//     GOODPUT_CHANGE_BAR, or e2e significantly better → pass; otherwise inconclusive (no measurable gain, so no
//     reason to change). When not expectFaster (a memory-saving change, e.g. quantization): quality held and
//     nothing regressed → pass.
// Before all of these, ShadowVerifier.finish (shadow.ts) fails a verification whose shadow engine failed to load or
// failed mid-run, with the engine's error as the first reason.
// Every reason is a sentence with the numbers behind it, for GET /api/proposals/:id.
import { median } from 'simple-statistics';
import type { DistributionComparison, RequestSample, SloTargets, Verdict, VerificationEvidence } from './types.js';
import { mannWhitneyU } from './statistics.js';
import { DEFAULT_CONFIG, type VerifyConfigSection } from '../config/schema.js';

/** The verify stage's settings: the config's `verify` section (one definition, src/config/schema.ts) minus what the
 *  tuner uses itself (deadline, sampler seed), plus two knobs that are not configuration. */
export interface VerifyConfig extends Omit<VerifyConfigSection, 'timeoutSeconds' | 'seed'> {
  /** Mirrored requests buffered at most; beyond, new ones are dropped (and counted). */
  maxMirrorQueue: number;
  /** Performance replay time at least, both arms together, seconds (deadline permitting); default
   *  DEFAULT_MIN_REPLAY_SECONDS. Short replays are at the mercy of the shared box's momentary load (shadow.ts). */
  minReplaySeconds?: number;
}

export const DEFAULT_MIN_REPLAY_SECONDS = 4;
export const DEFAULT_MAX_MIRROR_QUEUE = 256;

/** The verify stage's settings from a config's `verify` section (the tuner's deadline and sampler seed left out). */
export function verifyConfigFrom(section: Readonly<VerifyConfigSection>): VerifyConfig {
  const { timeoutSeconds: _deadline, seed: _seed, ...settings } = section;
  return { ...settings, maxMirrorQueue: DEFAULT_MAX_MIRROR_QUEUE };
}

/** The defaults: the config schema's `verify` defaults (the one copy of the bars and shares), plus the replay floor. */
export const DEFAULT_VERIFY_CONFIG: Readonly<VerifyConfig> = Object.freeze({
  ...verifyConfigFrom(DEFAULT_CONFIG.verify),
  minReplaySeconds: DEFAULT_MIN_REPLAY_SECONDS,
});

/** Relative goodput-per-core change that counts as better (≥ +5%) or as a regression (< −5%). */
export const GOODPUT_CHANGE_BAR = 0.05;
/** A goodput-per-core drop that fails a candidate without a significant latency regression beside it. */
export const GOODPUT_NOISE_BAR = 0.2;
/** Smallest relative shift of a latency median called better or worse (practical significance). */
export const LATENCY_CHANGE_BAR = 0.1;
/** The latency metrics compared together (Bonferroni correction of alpha). */
export const LATENCY_METRIC_COUNT = 3;

export type QualityEvidence = VerificationEvidence['quality'];
export type GoodputEvidence = Omit<VerificationEvidence['performance'], 'comparisons'>;
export type LatencyMetric = DistributionComparison['metric'];

/** Why the quality figures fail their bars (empty: they pass, or could not be measured). */
export function qualityFailures(q: Omit<QualityEvidence, 'passed'>, cfg: VerifyConfig): string[] {
  const out: string[] = [];
  if (q.meanCosine < cfg.similarityBar) {
    out.push(
      `Mean cosine similarity of next-token distributions is ${fmt(q.meanCosine, 4)}, below the bar of ${cfg.similarityBar} ` +
        `(minimum ${fmt(q.minCosine, 4)} over ${q.positions} positions).`,
    );
  }
  if (q.greedyAgreement < cfg.greedyAgreementBar) {
    out.push(`Greedy (argmax) agreement is ${pct(q.greedyAgreement)} over ${q.positions} positions, below the bar of ${pct(cfg.greedyAgreementBar)}.`);
  }
  if (q.perplexityDelta > cfg.perplexityDeltaBar) {
    out.push(
      `Probe-set perplexity rises ${signedPct(q.perplexityDelta)} (${fmt(q.baselinePerplexity, 3)} → ${fmt(q.candidatePerplexity, 3)}), ` +
        `beyond the ${pct(cfg.perplexityDeltaBar)} allowed.`,
    );
  }
  return out;
}

/** Quality passes when it was measured on at least one position and no measured figure fails its bar. */
export function qualityPassed(q: Omit<QualityEvidence, 'passed'>, cfg: VerifyConfig): boolean {
  return q.positions > 0 && qualityFailures(q, cfg).length === 0;
}

/** Compare one latency metric, candidate against baseline (seconds; NaN samples are ignored). */
export function compareLatency(metric: LatencyMetric, baselineS: readonly number[], candidateS: readonly number[], cfg: VerifyConfig): DistributionComparison {
  const base = baselineS.filter((v) => !Number.isNaN(v));
  const cand = candidateS.filter((v) => !Number.isNaN(v));
  const test = mannWhitneyU(cand, base);
  const baselineMedianS = base.length > 0 ? median(base) : NaN;
  const candidateMedianS = cand.length > 0 ? median(cand) : NaN;
  const alpha = (1 - cfg.confidence) / LATENCY_METRIC_COUNT;
  // Too few samples in an arm cannot call a difference, whatever the test says (rule 2 reports the shortage).
  const enough = base.length >= cfg.minSamples && cand.length >= cfg.minSamples;
  const relativeChange = (candidateMedianS - baselineMedianS) / baselineMedianS;
  let outcome: DistributionComparison['outcome'] = 'same';
  // Three bars, as Kayenta's judge: significant, a large enough rank effect, and a median shift that matters. Requests
  // replayed in one round share the box's momentary load, so with ~100 samples an A/A pair can be "significant" at
  // a 5% shift; below LATENCY_CHANGE_BAR we call it the same.
  if (enough && test.pValue < alpha && Math.abs(test.effectSize) >= cfg.effectSizeBar && Math.abs(relativeChange) >= LATENCY_CHANGE_BAR) {
    outcome = test.effectSize > 0 ? 'worse' : 'better';
  }
  return {
    metric,
    baselineN: base.length,
    candidateN: cand.length,
    baselineMedianS,
    candidateMedianS,
    relativeChange,
    u: test.uX,
    pValue: test.pValue,
    effectSize: test.effectSize,
    outcome,
  };
}

/** Whether one request met every latency SLO (a single-token request has no inter-token time to miss). */
export function meetsSlo(s: RequestSample, slo: SloTargets): boolean {
  return s.ok && s.ttftS <= slo.ttftP99Seconds && !(s.interTokenS > slo.interTokenP99Seconds) && s.e2eS <= slo.e2eP99Seconds;
}

/** Generated tokens of SLO-meeting requests per wall second per core. */
export function goodputPerCore(samples: readonly RequestSample[], wallS: number, cores: number, slo: SloTargets): number {
  if (!(wallS > 0) || !(cores > 0)) return NaN;
  let tokens = 0;
  for (const s of samples) if (meetsSlo(s, slo)) tokens += s.completionTokens;
  return tokens / (wallS * cores);
}

/** Relative change of goodput per core; +Infinity when only the candidate has any, NaN when neither has. */
export function goodputEvidence(baselineGoodputPerCore: number, candidateGoodputPerCore: number): GoodputEvidence {
  const goodputChange = baselineGoodputPerCore > 0 ? candidateGoodputPerCore / baselineGoodputPerCore - 1 : candidateGoodputPerCore > 0 ? Infinity : NaN;
  return { baselineGoodputPerCore, candidateGoodputPerCore, goodputChange };
}

/** The verdict and its reasons from the measured evidence (rules at the top of this file). */
export function decideVerdict(
  q: QualityEvidence,
  comparisons: readonly DistributionComparison[],
  goodput: GoodputEvidence,
  samples: number,
  cfg: VerifyConfig,
  expectFaster: boolean,
): { verdict: Verdict; reasons: string[] } {
  // Rule 1: quality.
  const qFail = qualityFailures(q, cfg);
  if (qFail.length > 0) return { verdict: 'fail', reasons: qFail };
  const qualityLine = describeQuality(q, cfg);

  // Rule 2: enough evidence. Every replayed request yields an e2e sample, so its counts are the per-arm counts.
  const e2e = comparisons.find((c) => c.metric === 'e2e');
  const latencyN = e2e ? Math.min(e2e.baselineN, e2e.candidateN) : 0;
  const short: string[] = [];
  if (samples < cfg.minSamples) short.push(`Only ${samples} mirrored requests were compared, fewer than the ${cfg.minSamples} required.`);
  if (latencyN < cfg.minSamples) {
    short.push(
      `Only ${latencyN} replayed requests per arm (baseline ${e2e?.baselineN ?? 0}, candidate ${e2e?.candidateN ?? 0}), ` +
        `fewer than the ${cfg.minSamples} required to compare latency.`,
    );
  }
  if (short.length > 0) return { verdict: 'inconclusive', reasons: [...short, qualityLine] };

  // Rule 3: regression.
  const change = goodput.goodputChange;
  const goodputBetter = change >= GOODPUT_CHANGE_BAR;
  const goodputLine = describeGoodput(goodput);
  const worse = comparisons.filter((c) => c.outcome === 'worse');
  const regressions: string[] = [];
  if (worse.length > 0 && !goodputBetter) {
    for (const c of worse) regressions.push(`${describeComparison(c)}, while goodput per core is not better (${signedPct(change)}).`);
  }
  if (change < -GOODPUT_NOISE_BAR) {
    regressions.push(`${goodputLine}: lower by more than ${pct(GOODPUT_NOISE_BAR)}.`);
  }
  if (regressions.length > 0) return { verdict: 'fail', reasons: regressions };

  // Rule 4: improvement.
  const perf = comparisons.map((c) => `${describeComparison(c)}.`);
  if (expectFaster) {
    const e2eBetter = e2e?.outcome === 'better';
    if (goodputBetter || e2eBetter) {
      const why = goodputBetter ? `${goodputLine}, at least +${pct(GOODPUT_CHANGE_BAR)}` : `${goodputLine}; e2e latency is significantly better`;
      return { verdict: 'pass', reasons: [`The candidate is faster: ${why}.`, qualityLine, ...perf] };
    }
    return {
      verdict: 'inconclusive',
      reasons: [`No measurable gain: ${goodputLine} (below +${pct(GOODPUT_CHANGE_BAR)}) and e2e latency is not significantly better.`, qualityLine, ...perf],
    };
  }
  return { verdict: 'pass', reasons: [`Quality held and nothing regressed: ${goodputLine}.`, qualityLine, ...perf] };
}

function describeQuality(q: QualityEvidence, cfg: VerifyConfig): string {
  const ppl = Number.isNaN(q.perplexityDelta)
    ? 'probe-set perplexity not measured'
    : `probe-set perplexity ${fmt(q.baselinePerplexity, 3)} → ${fmt(q.candidatePerplexity, 3)} (${signedPct(q.perplexityDelta)}, bar +${pct(cfg.perplexityDeltaBar)})`;
  return (
    `Quality holds over ${q.positions} positions: mean cosine ${fmt(q.meanCosine, 4)} (bar ${cfg.similarityBar}, minimum ${fmt(q.minCosine, 4)}), ` +
    `greedy agreement ${pct(q.greedyAgreement)} (bar ${pct(cfg.greedyAgreementBar)}), ${ppl}.`
  );
}

function describeComparison(c: DistributionComparison): string {
  const word = c.outcome === 'same' ? 'not significantly different' : `significantly ${c.outcome}`;
  return (
    `${c.metric} is ${word}: median ${ms(c.candidateMedianS)} vs ${ms(c.baselineMedianS)} baseline (${signedPct(c.relativeChange)}), ` +
    `U = ${fmt(c.u, 1)}, p = ${fmtP(c.pValue)}, rank-biserial ${fmt(c.effectSize, 2)}, n = ${c.candidateN}/${c.baselineN}`
  );
}

function describeGoodput(g: GoodputEvidence): string {
  return `goodput per core ${fmt(g.candidateGoodputPerCore, 1)} vs ${fmt(g.baselineGoodputPerCore, 1)} tokens/s/core baseline (${signedPct(g.goodputChange)})`;
}

function fmt(v: number, digits: number): string {
  return Number.isFinite(v) ? v.toFixed(digits) : String(v);
}

function fmtP(p: number): string {
  if (!Number.isFinite(p)) return String(p);
  return p < 0.001 ? p.toExponential(2) : p.toPrecision(3);
}

function pct(v: number): string {
  return `${fmt(v * 100, 1)}%`;
}

function signedPct(v: number): string {
  return v > 0 ? `+${pct(v)}` : pct(v);
}

function ms(seconds: number): string {
  return `${fmt(seconds * 1000, 1)} ms`;
}
