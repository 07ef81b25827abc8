// The verify stage's shadow A/B: two in-process shadow engines on the live model file, a baseline with the live
// settings and a candidate with the proposed ones, fed a deterministic sample of live traffic.
//
// Design note.
//  * Why a fresh baseline shadow. The shadows share the box's cores with the busy primary, so comparing the candidate
//    against the primary would mix the change with the primary's load. Both arms instead run the same way (same
//    process, same thread count, same replayed requests), so shared-CPU noise hits them alike (an A/A control).
//  * Quality (teacher forcing). Each mirrored request's prompt followed by the tokens the primary generated is
//    evaluated on both shadows with all logits; from the last prompt token onward every position's two next-token
//    distributions are compared (softmax cosine, greedy agreement: logit-similarity.ts). No sampling is involved, so
//    the figures are exact for the traffic seen. A fixed probe set gives the perplexity change.
//  * Performance (interleaved replay). The mirrored prompts are replayed, greedy (temperature 0, EOS ignored, so
//    both arms generate the same number of tokens), at c = max(1, round(observedConcurrency)) requests in flight.
//    A round is a batch of REPLAY_ROUND_FACTOR × c prompts sent closed-loop (c in flight, each finished request
//    replaced by the next), so after the first c the requests queue as they would at a steady mean concurrency of c
//    (what Little's law measures on the primary), not as one synchronized burst; a burst spreads a FIFO
//    baseline's e2e evenly from T to c·T and hides a batching gain from a rank test. Round r sends its batch to
//    baseline then candidate, round r + 1 to candidate then baseline, so a drift in the box's load over time (the
//    primary's traffic) falls on both arms equally. Rounds come in such pairs and continue until each arm has
//    minSamples requests and the replay has run minReplaySeconds in all, or the deadline passes; latencies are
//    compared with Mann-Whitney U (statistics.ts, through verify.ts). Why a time floor: requests of one round share the box's momentary load, so the
//    test's real sample size is closer to the number of rounds than of requests; on a loaded 2-core box a replay
//    of just 20 requests per arm (~0.4 s) let A/A runs (identical arms) differ by 5-20% in goodput and call
//    latency shifts of 2% "significant", while 4 s of replay kept 8 of 8 A/A runs within ±4% and 'same'. An
//    unrecorded warm-up burst per arm comes first, so cold pages do not penalize whichever arm goes first.
//  * Guarding the primary. All shadow work goes through one FIFO lock: a mirrored request's quality job (baseline
//    evaluate, then candidate evaluate), the probe perplexity, or one replay round (baseline arm, then candidate
//    arm). Jobs are serialized, so between two replay rounds at most one mirrored request is processed, and at any
//    instant only one shadow engine computes: at most tpDegree × threadsPerRank cores (= shadowThreads unless a
//    layout's tpDegree exceeds it) are busy with shadow work, i.e. within 2 × shadowThreads counting both engines'
//    thread pools (a pool's workers spin ~300 µs after a job, then sleep), and none while no job is queued.
//    Mirrored requests beyond maxMirrorQueue are dropped, so a backlog costs neither memory nor CPU.
//  * Failure containment. A shadow that fails to load or whose evaluate/generate fails never throws into the live
//    path (mirror() is fire-and-forget): the error is recorded, shadow work stops, and finish() returns 'fail'
//    with the error among its reasons.
import { Engine } from '../engine/engine.js';
import { ranksOf, sameLayoutValue } from '../engine/knobs.js';
import type { EngineOptions, GenerationResult } from '../engine/types.js';
import type { DistributionComparison, LiveSettings, RequestSample, SloTargets, VerificationEvidence } from './types.js';
import { compareLogitRows } from './logit-similarity.js';
import {
  compareLatency,
  decideVerdict,
  DEFAULT_MIN_REPLAY_SECONDS,
  goodputEvidence,
  goodputPerCore,
  qualityFailures,
  qualityPassed,
  type QualityEvidence,
  type VerifyConfig,
} from './verify.js';

export interface MirroredRequest {
  /** The live request's prompt as token ids (BOS included if the primary added it). */
  tokens: number[];
  maxTokens: number;
  /** The primary's generated tokens: the candidate is teacher-forced on them. */
  primaryTokens: number[];
  /** The primary's sampling settings, for the record: quality is teacher-forced and the replay is greedy. */
  temperature?: number;
  seed?: number;
}

export type ShadowRole = 'baseline' | 'candidate';

export interface ShadowStartOptions {
  modelPath: string;
  baseline: LiveSettings;
  candidate: LiveSettings;
  config: VerifyConfig;
  slo: SloTargets;
  contextLength?: number;
  /** KV pool budget per shadow; default SHADOW_KV_CACHE_MAX_BYTES. */
  kvCacheMaxBytes?: number;
  /** Fixed probe passages (token ids) for the perplexity change. */
  probeTokens: number[][];
  /** The mirror sampler's seed (deterministic selection); default 0. */
  seed?: number;
  /** Test hook: how a shadow engine is loaded (default Engine.load). */
  loadEngine?: (opts: EngineOptions, role: ShadowRole) => Promise<Engine>;
  /** Called for each mirrored request once both shadows have evaluated it (tuneloop_shadow_requests_total). */
  onMirrored?: () => void;
  /** The mean cosine of each mirrored request (tuneloop_shadow_similarity). */
  onSimilarity?: (cosine: number) => void;
}

export interface ShadowFinishOptions {
  /** When to stop waiting and replaying: unix ms. A value below 1e12 (before 2001) is taken as a duration from now. */
  deadlineMs: number;
  /** Mean requests in flight on the primary (WindowSummary.requests.meanConcurrency): the replay's concurrency. */
  observedConcurrency: number;
  /** The candidate was proposed to raise goodput (decideVerdict rule 4). Default: inferExpectFaster(). */
  expectFaster?: boolean;
}

/** Default KV pool per shadow: replays run at the live concurrency, far below the primary's pool size. */
export const SHADOW_KV_CACHE_MAX_BYTES = 64 * 1024 * 1024;

/** Prompts per replay round, in units of the replay concurrency (see the design note). */
export const REPLAY_ROUND_FACTOR = 2;

/** Deadlines below this are durations, not unix ms (1e12 ms is September 2001). */
const ABSOLUTE_MS_FLOOR = 1e12;

/** Deterministic Bernoulli(share) draws from a seed (mulberry32): the same seed selects the same requests. */
export class MirrorSampler {
  private state: number;

  constructor(
    readonly share: number,
    seed = 0,
  ) {
    this.state = seed >>> 0;
  }

  next(): boolean {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const u = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    return u < this.share;
  }
}

/** A candidate changing batching or parallelism (tensor or expert ranks, replicated experts) is proposed for speed;
 *  one changing only storage (weights, KV dtype) saves memory, and only has to hold quality and latency. */
export function inferExpectFaster(baseline: LiveSettings, candidate: LiveSettings): boolean {
  const sched = Object.keys(candidate.scheduler) as (keyof LiveSettings['scheduler'])[];
  return (
    sched.some((k) => candidate.scheduler[k] !== baseline.scheduler[k]) ||
    (['tpDegree', 'threadsPerRank', 'epDegree', 'redundantExperts'] as const).some((k) => !sameLayoutValue(baseline.layout, candidate.layout, k))
  );
}

/** Engine options of a shadow: the settings' layout and scheduler, scaled down to shadowThreads compute threads. */
export function shadowEngineOptions(
  modelPath: string,
  settings: LiveSettings,
  cfg: VerifyConfig,
  extra: { contextLength?: number | undefined; kvCacheMaxBytes?: number | undefined },
): EngineOptions {
  const tp = settings.layout.tpDegree;
  // Rank threads: expert-parallel ranks are rank threads as tensor-parallel ones are (ranksOf, knobs.ts).
  const ranks = ranksOf(settings.layout);
  const opts: EngineOptions = {
    model: modelPath,
    threads: cfg.shadowThreads,
    weights: settings.layout.weights,
    kvDtype: settings.layout.kvDtype,
    tpDegree: tp,
    // MoE layout as the settings say (absent: the engine's defaults, as for the primary).
    ...(settings.layout.epDegree !== undefined ? { epDegree: settings.layout.epDegree } : {}),
    ...(settings.layout.redundantExperts !== undefined ? { redundantExperts: settings.layout.redundantExperts } : {}),
    // The live threadsPerRank is sized for the primary's cores; a shadow gets shadowThreads in all.
    threadsPerRank: Math.max(1, Math.floor(cfg.shadowThreads / ranks)),
    kvCacheMaxBytes: extra.kvCacheMaxBytes ?? SHADOW_KV_CACHE_MAX_BYTES,
    scheduler: { ...settings.scheduler },
  };
  if (extra.contextLength !== undefined) opts.contextLength = extra.contextLength;
  return opts;
}

/** One replayed request's measurements, plus the arm's wall time per round. */
interface ArmRecord {
  samples: RequestSample[];
  wallS: number;
}

/** A FIFO lock: jobs run one at a time, in the order they were queued. */
class SerialLock {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(job: () => Promise<T>): Promise<T> {
    const next = this.tail.then(job, job);
    this.tail = next.catch(() => undefined);
    return next;
  }

  idle(): Promise<unknown> {
    return this.tail;
  }
}

export class ShadowVerifier {
  /** The loaded shadows (absent when one failed to load), for /metrics as role="shadow". */
  readonly engines: { baseline?: Engine; candidate?: Engine };
  private readonly opts: ShadowStartOptions;
  private readonly cfg: VerifyConfig;
  private readonly sampler: MirrorSampler;
  private readonly lock = new SerialLock();
  private readonly queue: MirroredRequest[] = [];
  /** Prompts of processed mirrored requests: what the performance replay sends. */
  private readonly replayPrompts: { tokens: number[]; maxTokens: number }[] = [];
  private readonly errors: string[] = [];
  private pumping = false;
  private accepting = true;
  private closed = false;
  private closing: Promise<void> | undefined;
  private finishing: Promise<VerificationEvidence> | undefined;
  private wake: (() => void) | undefined;
  private processed = 0;
  private dropped = 0;
  private positions = 0;
  private cosineSum = 0;
  private minCosine = Infinity;
  private agreements = 0;
  private probe = { baseNll: 0, candNll: 0, tokens: 0 };
  private cpuSeconds = 0;

  private constructor(
    opts: ShadowStartOptions,
    engines: { baseline?: Engine; candidate?: Engine },
    private readonly rssBytes: number,
    private readonly startedMs: number,
  ) {
    this.opts = opts;
    this.cfg = opts.config;
    this.engines = engines;
    this.sampler = new MirrorSampler(opts.config.shadowShare, opts.seed ?? 0);
  }

  /** Load both shadows (sequentially: half the peak CPU of loading in parallel). Never rejects on an engine error:
   *  the verifier then holds the error and finish() fails with it. */
  static async start(opts: ShadowStartOptions): Promise<ShadowVerifier> {
    const startedMs = Date.now();
    const load = opts.loadEngine ?? ((o: EngineOptions) => Engine.load(o));
    const extra = { contextLength: opts.contextLength, kvCacheMaxBytes: opts.kvCacheMaxBytes };
    const rssBefore = process.memoryUsage().rss;
    const engines: { baseline?: Engine; candidate?: Engine } = {};
    let loadError: string | undefined;
    for (const role of ['baseline', 'candidate'] as const) {
      try {
        engines[role] = await load(shadowEngineOptions(opts.modelPath, opts[role], opts.config, extra), role);
      } catch (e) {
        loadError = `The ${role} shadow engine failed to load: ${describeError(e)}.`;
        break;
      }
    }
    const rssBytes = Math.max(0, process.memoryUsage().rss - rssBefore);
    if (loadError !== undefined) {
      // A half-loaded pair is of no use: free the one that loaded.
      await Promise.all([engines.baseline?.close(), engines.candidate?.close()]).catch(() => undefined);
      delete engines.baseline;
      delete engines.candidate;
    }
    const v = new ShadowVerifier(opts, engines, rssBytes, startedMs);
    if (loadError !== undefined) v.fail(loadError);
    else void v.work(() => v.probePerplexity());
    return v;
  }

  /** Mirrored requests both shadows have evaluated. */
  get mirroredCount(): number {
    return this.processed;
  }

  /** Mirrored requests dropped because the queue was full or the request was unusable. */
  get droppedCount(): number {
    return this.dropped;
  }

  /** Deterministic Bernoulli(shadowShare); call once per live request. False once the verifier no longer takes
   *  requests (the draw still advances, so the selection depends only on the call count). */
  shouldMirror(): boolean {
    const pick = this.sampler.next();
    return pick && this.accepting;
  }

  /** Queue one finished live request; returns at once. The work runs in the background, one job at a time. */
  mirror(r: MirroredRequest): void {
    if (!this.accepting) return;
    if (!this.usable(r) || this.queue.length >= this.cfg.maxMirrorQueue) {
      this.dropped++;
      return;
    }
    this.queue.push({ tokens: [...r.tokens], maxTokens: r.maxTokens, primaryTokens: [...r.primaryTokens] });
    void this.pump();
  }

  /** Wait for minSamples mirrored requests (or the deadline), replay for performance, and decide. Idempotent. */
  finish(opts: ShadowFinishOptions): Promise<VerificationEvidence> {
    this.finishing ??= this.runFinish(opts);
    return this.finishing;
  }

  /** Stop taking requests, wait for the job in progress, free both shadows. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.accepting = false;
      this.closed = true;
      this.queue.length = 0;
      this.signal();
      await this.lock.idle();
      await Promise.all([this.engines.baseline?.close(), this.engines.candidate?.close()]);
    })();
    return this.closing;
  }

  // ---- background work ----

  /** Run a shadow job under the lock, charging the process CPU it spans to the shadow (approximate: the process
   *  also serves the primary meanwhile, so this over-counts by whatever the primary used in those intervals). */
  private work<T>(job: () => Promise<T>): Promise<T | undefined> {
    return this.lock.run(async () => {
      if (this.closed || this.errors.length > 0) return undefined;
      const cpu0 = process.cpuUsage();
      try {
        return await job();
      } catch (e) {
        this.fail(`A shadow engine failed: ${describeError(e)}.`);
        return undefined;
      } finally {
        const d = process.cpuUsage(cpu0);
        this.cpuSeconds += (d.user + d.system) / 1e6;
      }
    });
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      for (let r = this.queue.shift(); r !== undefined; r = this.queue.shift()) {
        if (this.closed || this.errors.length > 0) break;
        const item = r;
        await this.work(() => this.compareQuality(item));
      }
    } finally {
      this.pumping = false;
    }
  }

  private usable(r: MirroredRequest): boolean {
    const nVocab = this.engines.baseline?.info.nVocab ?? 0;
    const ok = (ids: unknown): boolean => Array.isArray(ids) && ids.every((t) => Number.isInteger(t) && t >= 0 && t < nVocab);
    return ok(r.tokens) && r.tokens.length > 0 && ok(r.primaryTokens) && Number.isInteger(r.maxTokens) && r.maxTokens >= 1;
  }

  private contextLength(): number {
    const { baseline, candidate } = this.engines;
    return Math.min(baseline?.info.contextLength ?? 0, candidate?.info.contextLength ?? 0);
  }

  /** Teacher-forced comparison of one mirrored request on both shadows. */
  private async compareQuality(r: MirroredRequest): Promise<void> {
    const { baseline, candidate } = this.engines;
    if (!baseline || !candidate) return;
    let seq = [...r.tokens, ...r.primaryTokens];
    let firstPos = r.tokens.length - 1;
    // Too long for the window: keep the tail (both arms see the same input, so the comparison stays fair).
    const ctx = this.contextLength();
    if (seq.length > ctx) {
      const cut = seq.length - ctx;
      seq = seq.slice(cut);
      firstPos = Math.max(0, firstPos - cut);
    }
    // One engine at a time (see the design note): never both computing at once.
    const a = await baseline.evaluate(seq, { allLogits: true });
    const b = await candidate.evaluate(seq, { allLogits: true });
    const V = baseline.info.nVocab;
    let sum = 0,
      n = 0;
    for (let pos = firstPos; pos < seq.length; pos++) {
      const { cosine, greedyAgrees } = compareLogitRows(a.subarray(pos * V, (pos + 1) * V), b.subarray(pos * V, (pos + 1) * V));
      sum += cosine;
      n++;
      this.minCosine = Math.min(this.minCosine, cosine);
      if (greedyAgrees) this.agreements++;
    }
    this.positions += n;
    this.cosineSum += sum;
    this.processed++;
    if (this.replayPrompts.length < this.cfg.maxMirrorQueue) {
      this.replayPrompts.push({ tokens: r.tokens.slice(0, ctx - 1), maxTokens: r.maxTokens });
    }
    safeCall(() => this.opts.onMirrored?.());
    safeCall(() => this.opts.onSimilarity?.(sum / n));
    this.signal();
  }

  /** Perplexity of the probe set on both shadows (token-weighted over passages). */
  private async probePerplexity(): Promise<void> {
    const { baseline, candidate } = this.engines;
    if (!baseline || !candidate) return;
    for (const passage of this.opts.probeTokens) {
      if (passage.length < 2) continue;
      const a = await baseline.perplexity(passage);
      const b = await candidate.perplexity(passage);
      this.probe.baseNll += a.nll * a.tokens;
      this.probe.candNll += b.nll * b.tokens;
      this.probe.tokens += a.tokens;
    }
  }

  private fail(reason: string): void {
    this.errors.push(reason);
    this.accepting = false;
    this.queue.length = 0;
    this.signal();
  }

  /** Wake finish() when a mirrored request completes (or the verifier fails or closes). */
  private signal(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private waitForSignal(untilMs: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(
        () => {
          this.wake = undefined;
          resolve();
        },
        Math.max(0, untilMs - Date.now()),
      );
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  // ---- finish: wait, replay, decide ----

  private async runFinish(opts: ShadowFinishOptions): Promise<VerificationEvidence> {
    const deadline = opts.deadlineMs < ABSOLUTE_MS_FLOOR ? Date.now() + opts.deadlineMs : opts.deadlineMs;
    const { minSamples } = this.cfg;
    while (this.processed < minSamples && Date.now() < deadline && this.errors.length === 0 && !this.closed) {
      await this.waitForSignal(deadline);
    }
    // The probe perplexity was queued first; this also lets a mirrored job in progress finish.
    await this.lock.idle();
    const quality = this.qualityEvidence();

    const concurrency = Math.max(1, Math.round(opts.observedConcurrency));
    const base: ArmRecord = { samples: [], wallS: 0 };
    const cand: ArmRecord = { samples: [], wallS: 0 };
    let rounds = 0;
    let skipped: string | undefined;
    if (qualityFailures(quality, this.cfg).length > 0) skipped = 'skipped: quality already failed';
    else if (this.replayPrompts.length === 0) skipped = 'skipped: no mirrored prompts to replay';
    else {
      // At least one round (each arm once) even past the deadline, so the evidence always has figures.
      const minReplayS = this.cfg.minReplaySeconds ?? DEFAULT_MIN_REPLAY_SECONDS;
      // Whole AB/BA pairs of rounds, minSamples per arm, and minReplaySeconds of replay in all (see the config).
      const wantMore = (): boolean =>
        rounds < 2 || rounds % 2 === 1 || Math.min(base.samples.length, cand.samples.length) < minSamples || base.wallS + cand.wallS < minReplayS;
      // Warm-up, not recorded: the first generations on a fresh engine touch cold KV pages and code paths, and would
      // bias whichever arm goes first in round 0.
      const warmup = this.replayPrompts.slice(0, concurrency);
      await this.work(async () => {
        for (const role of ['baseline', 'candidate'] as const) await this.replayRound({ samples: [], wallS: 0 }, role, warmup, concurrency);
      });
      while ((rounds === 0 || Date.now() < deadline) && wantMore() && this.errors.length === 0 && !this.closed) {
        const size = REPLAY_ROUND_FACTOR * concurrency;
        const batch = Array.from({ length: size }, (_, i) => this.replayPrompts[(rounds * size + i) % this.replayPrompts.length]!);
        const order: [ArmRecord, ShadowRole][] =
          rounds % 2 === 0
            ? [
                [base, 'baseline'],
                [cand, 'candidate'],
              ]
            : [
                [cand, 'candidate'],
                [base, 'baseline'],
              ];
        await this.work(async () => {
          for (const [arm, role] of order) await this.replayRound(arm, role, batch, concurrency);
        });
        rounds++;
      }
    }
    // Evidence is final from here: later mirrored requests would change nothing.
    this.accepting = false;
    this.queue.length = 0;

    const comparisons: DistributionComparison[] = [
      compareLatency(
        'ttft',
        base.samples.map((s) => s.ttftS),
        cand.samples.map((s) => s.ttftS),
        this.cfg,
      ),
      compareLatency(
        'inter_token',
        base.samples.map((s) => s.interTokenS),
        cand.samples.map((s) => s.interTokenS),
        this.cfg,
      ),
      compareLatency(
        'e2e',
        base.samples.map((s) => s.e2eS),
        cand.samples.map((s) => s.e2eS),
        this.cfg,
      ),
    ];
    const goodput = goodputEvidence(
      goodputPerCore(base.samples, base.wallS, this.cores('baseline'), this.opts.slo),
      goodputPerCore(cand.samples, cand.wallS, this.cores('candidate'), this.opts.slo),
    );
    const expectFaster = opts.expectFaster ?? inferExpectFaster(this.opts.baseline, this.opts.candidate);
    let { verdict, reasons } = decideVerdict(quality, comparisons, goodput, this.processed, this.cfg, expectFaster);
    if (this.errors.length > 0) {
      verdict = 'fail';
      reasons = [...this.errors, ...reasons.filter((r) => !this.errors.includes(r))];
    }
    const finishedMs = Date.now();
    return {
      verdict,
      reasons,
      method: this.describeMethod(rounds, concurrency, base.wallS + cand.wallS, skipped),
      mirroredRequests: this.processed,
      quality,
      performance: { comparisons, ...goodput },
      shadowCost: { rssBytes: this.rssBytes, cpuSeconds: this.cpuSeconds, wallSeconds: (finishedMs - this.startedMs) / 1000 },
      startedMs: this.startedMs,
      finishedMs,
    };
  }

  /** One arm's share of a round: the batch sent closed-loop, `concurrency` requests in flight. */
  private async replayRound(arm: ArmRecord, role: ShadowRole, batch: readonly { tokens: number[]; maxTokens: number }[], concurrency: number): Promise<void> {
    const engine = this.engines[role];
    if (!engine) return;
    const ctx = engine.info.contextLength;
    const samples: RequestSample[] = [];
    let next = 0,
      broken = false;
    const worker = async (): Promise<void> => {
      for (let i = next++; i < batch.length && !broken; i = next++) {
        const p = batch[i]!;
        const start = performance.now();
        try {
          const result = await engine.generate({
            tokens: p.tokens,
            // Greedy and blind to EOS: both arms generate exactly the same number of tokens.
            maxTokens: Math.max(1, Math.min(p.maxTokens, ctx - p.tokens.length)),
            temperature: 0,
            seed: 0,
            stopAtEos: false,
          }).result;
          samples.push(toSample(result, (performance.now() - start) / 1000));
        } catch (e) {
          broken = true;
          throw e;
        }
      }
    };
    const t0 = performance.now();
    // allSettled: on a failure, let the other workers stop (`broken`) before the lock is released.
    const settled = await Promise.allSettled(Array.from({ length: Math.min(concurrency, batch.length) }, worker));
    for (const s of settled) if (s.status === 'rejected') throw s.reason;
    arm.wallS += (performance.now() - t0) / 1000;
    arm.samples.push(...samples);
  }

  /** Cores an arm computes on: ranks × threadsPerRank as loaded (= shadowThreads for one rank). */
  private cores(role: ShadowRole): number {
    const layout = this.engines[role]?.info.layout;
    return layout ? ranksOf(layout) * layout.threadsPerRank : this.cfg.shadowThreads;
  }

  private qualityEvidence(): QualityEvidence {
    const n = this.positions;
    const { baseNll, candNll, tokens } = this.probe;
    const baselinePerplexity = tokens > 0 ? Math.exp(baseNll / tokens) : NaN;
    const candidatePerplexity = tokens > 0 ? Math.exp(candNll / tokens) : NaN;
    const q = {
      positions: n,
      meanCosine: n > 0 ? this.cosineSum / n : NaN,
      minCosine: n > 0 ? this.minCosine : NaN,
      greedyAgreement: n > 0 ? this.agreements / n : NaN,
      baselinePerplexity,
      candidatePerplexity,
      perplexityDelta: candidatePerplexity / baselinePerplexity - 1,
    };
    return { ...q, passed: qualityPassed(q, this.cfg) };
  }

  private describeMethod(rounds: number, concurrency: number, replayS: number, skipped: string | undefined): string {
    const replay =
      skipped !== undefined
        ? `performance replay ${skipped}`
        : `after an unrecorded warm-up, ${rounds} interleaved replay rounds (baseline then candidate, the order alternating ` +
          `each round), each ${REPLAY_ROUND_FACTOR * concurrency} greedy requests from the mirrored prompts sent closed-loop at ` +
          `${concurrency} in flight, ${replayS.toFixed(1)} s of replay in all`;
    const dropped = this.dropped > 0 ? `; ${this.dropped} mirrored requests dropped (queue full or unusable)` : '';
    return (
      `A/B against a fresh baseline shadow with the live settings, not the busy primary (A/A control for the shared CPU): ` +
      `two in-process shadow engines on ${this.cfg.shadowThreads} thread(s) each, one computing at a time; quality by teacher ` +
      `forcing ${this.processed} mirrored requests (share ${this.cfg.shadowShare}) on the primary's tokens; ${replay}; ` +
      `latency by two-sided Mann-Whitney U (alpha ${+(1 - this.cfg.confidence).toFixed(4)} split over the three metrics, |rank-biserial| ≥ ${this.cfg.effectSizeBar})${dropped}.`
    );
  }
}

function toSample(r: GenerationResult, e2eS: number): RequestSample {
  const n = r.usage.completionTokens;
  return {
    atMs: Date.now(),
    ok: true,
    queueS: r.timings.queueMs / 1000,
    ttftS: r.timings.timeToFirstTokenMs / 1000,
    interTokenS: n > 1 ? r.timings.decodeMs / 1000 / (n - 1) : NaN,
    e2eS,
    promptTokens: r.usage.promptTokens,
    completionTokens: n,
  };
}

function describeError(e: unknown): string {
  if (e instanceof Error) return 'code' in e && typeof e.code === 'string' ? `${e.code}: ${e.message}` : e.message;
  return String(e);
}

/** Observers (metrics) must not break the shadow. */
function safeCall(fn: () => void): void {
  try {
    fn();
  } catch {
    // ignored: a metrics callback failing is not a shadow failure
  }
}
