// The Tuner: runs the closed loop's cycle — monitor ticks, then analyze → optimize → verify of the candidates — keeps
// every step in the store, drives the tuner metrics, and answers the REST layer (TunerControl, facade.ts). What
// happens to a proposal after the cycle made it (approval, apply, watch, rollback, expiry, crash recovery) is the
// ProposalLifecycle's (lifecycle.ts); the Tuner delegates those calls to it.
//
// Concurrency: one cycle (analyze → optimize → verify of its candidates) at a time; a second trigger while one runs
// is refused (BUSY) or, from cron, recorded as skipped. Changes to the live settings go through the lifecycle's one
// serial queue, so two applies never interleave. Monitor ticks run beside both: they only read the engine and append
// rollups.
import { availableParallelism } from 'node:os';
import type { Logger } from 'pino';
import { Engine } from '../engine/engine.js';
import { ranksOf } from '../engine/knobs.js';
import { parseExpertRefs } from '../config/load.js';
import type { GenerateRequest, GenerationResult, ModelInfo } from '../engine/types.js';
import type { TuneloopConfig } from '../config/schema.js';
import type { Metrics } from '../metrics/registry.js';
import { analyze } from './analyze.js';
import { diffSettings } from './apply.js';
import { TunerError, type ProposalDetail, type RunOutcome, type TunerControl, type TunerStatus } from './facade.js';
import { ProposalLifecycle, SYSTEM } from './lifecycle.js';
import type { MetricsSource, RegistrySource } from './monitor.js';
import { applyChange, changeKey, optimize, type WeightFacts } from './optimize.js';
import type { TensorDesc } from './weight-formats.js';
import { OPEN_STATES, needsApproval } from './proposals.js';
import { ShadowVerifier } from './shadow.js';
import { verifyConfigFrom, type VerifyConfig } from './verify.js';
import type { RunRecord, SettingsVersion, TunerStore } from './store.js';
import type { Actor, Finding, LiveSettings, Proposal, ProposalState, RequestSample, SettingsChange, SloTargets, WindowSummary } from './types.js';
import type { EngineOptions } from '../engine/types.js';

export { SYSTEM };

export interface TunerDeps {
  engine: Engine;
  store: TunerStore;
  config: TuneloopConfig;
  logger: Logger;
  /** Where window summaries come from (in-process registry, or Prometheus in fleet mode). */
  source: MetricsSource;
  /** The in-process request log (always present: the watch window and goodput read it). */
  requests: RegistrySource;
  metrics?: Pick<Metrics, 'tuner' | 'attachEngine' | 'observeConfigChange'>;
  /** Token ids of the fixed perplexity probe set. */
  probeTokens: number[][];
  now?: () => number;
  /** Test hook: how shadow engines are loaded (e.g. a deliberately corrupted candidate). */
  loadShadowEngine?: (opts: EngineOptions, role: 'baseline' | 'candidate') => Promise<import('../engine/engine.js').Engine>;
}

/** The tuner-managed knobs of a config (what the engine is started with when the store has nothing newer). */
export function settingsFromConfig(cfg: TuneloopConfig, threads = availableParallelism()): LiveSettings {
  const tp = cfg.model.tpDegree;
  const total = cfg.model.threads ?? threads;
  return {
    scheduler: { ...cfg.scheduler },
    layout: {
      weights: cfg.model.weights,
      kvDtype: cfg.model.kvDtype,
      tpDegree: tp,
      threadsPerRank: cfg.model.threadsPerRank ?? Math.max(1, Math.floor(total / ranksOf({ tpDegree: tp, epDegree: cfg.model.epDegree }))),
      // MoE knobs only away from their defaults: settings of dense models (and their reports) stay as they were.
      ...(cfg.model.epDegree !== 1 ? { epDegree: cfg.model.epDegree } : {}),
      ...(cfg.model.redundantExperts.length > 0 ? { redundantExperts: parseExpertRefs(cfg.model.redundantExperts) } : {}),
    },
  };
}

function sameSettings(a: LiveSettings, b: LiveSettings): boolean {
  return diffSettings(a, b).knobs.length === 0;
}

/**
 * Which settings the engine must start with. The store's last committed version is the truth (a crash mid-apply
 * never committed, so this is also the rollback of any half-applied change) — unless the operator edited the config
 * file since: a config that differs from the last version recorded *from config* is a new decision and wins.
 */
export function resolveStartupSettings(store: TunerStore, fromConfig: LiveSettings): SettingsVersion {
  const current = store.currentSettings();
  const lastConfig = store.settingsHistory().find((v) => v.source === 'config');
  if (!current || !lastConfig || !sameSettings(lastConfig.settings, fromConfig)) {
    return store.commitSettings(fromConfig, 'config', 'config', null, current ? 'the config file changed' : 'initial settings from the config');
  }
  return current;
}

interface ActiveVerification {
  proposalId: number;
  verifier: ShadowVerifier;
}

export class Tuner implements TunerControl {
  private readonly now: () => number;
  private readonly lifecycle: ProposalLifecycle;
  private cycle: Promise<void> | undefined;
  private verification: ActiveVerification | undefined;
  private lastFindings: Finding[] = [];
  private pausedReason = '';
  private closed = false;
  /** The model file's tensors (its GGUF header), read once per path. */
  private fileTensors: { path: string; tensors: readonly TensorDesc[] | undefined } | undefined;

  private constructor(private readonly d: TunerDeps) {
    this.now = d.now ?? Date.now;
    this.lifecycle = new ProposalLifecycle(d);
  }

  /** Open the tuner over a store whose current version the engine was started with: finish what a crash left. */
  static async create(deps: TunerDeps): Promise<Tuner> {
    const t = new Tuner(deps);
    t.lifecycle.recover();
    t.pause('');
    return t;
  }

  private get cfg(): TuneloopConfig['tuner'] {
    return this.d.config.tuner;
  }

  private get slo(): SloTargets {
    return this.d.config.slo;
  }

  private get verifyConfig(): VerifyConfig {
    return verifyConfigFrom(this.d.config.verify);
  }

  // ---- inputs from the server -----------------------------------------------------------------------------------

  /** Every finished generation request: the request log for goodput and watch checks, and the shadow mirror. */
  onGeneration(e: { request: GenerateRequest; promptTokens: number[]; result?: GenerationResult; durationS: number; ok: boolean }): void {
    const r = e.result;
    const sample: RequestSample = {
      atMs: this.now(),
      ok: e.ok,
      queueS: r ? r.timings.queueMs / 1000 : NaN,
      ttftS: r ? r.timings.timeToFirstTokenMs / 1000 : NaN,
      interTokenS: r && r.usage.completionTokens > 1 ? r.timings.decodeMs / 1000 / (r.usage.completionTokens - 1) : NaN,
      e2eS: e.durationS,
      promptTokens: e.promptTokens.length,
      completionTokens: r?.usage.completionTokens ?? 0,
    };
    this.d.requests.record(sample);
    const v = this.verification;
    if (v && e.ok && r && r.tokens.length > 0 && v.verifier.shouldMirror()) {
      const m = { tokens: e.promptTokens, maxTokens: e.request.maxTokens ?? r.tokens.length, primaryTokens: r.tokens };
      v.verifier.mirror(m);
    }
  }

  // ---- monitor ---------------------------------------------------------------------------------------------------

  /** One monitor tick: summarise the window, persist it, prune old rollups, expire stale proposals. */
  async monitorTick(trigger = 'cron'): Promise<WindowSummary | undefined> {
    // Two ways to fail, each pauses the tuner with its reason until a tick succeeds again: the metrics source (fleet
    // mode with Prometheus down: never analyze on guesses) and the store (a full disk: serving goes on, nothing is
    // recorded, so nothing may be decided either).
    let runId: number;
    try {
      runId = this.d.store.startRun('monitor', trigger).id;
    } catch (err) {
      this.pause(`store unavailable: ${(err as Error).message}`);
      this.countRun('monitor', 'error');
      return undefined;
    }
    let w: WindowSummary;
    try {
      w = await this.d.source.collect();
    } catch (err) {
      this.pause(`metrics source unavailable: ${(err as Error).message}`);
      this.tryStore(() => this.d.store.finishRun(runId, 'error', (err as Error).message));
      this.countRun('monitor', 'error');
      return undefined;
    }
    const stored = this.tryStore(() => {
      w.settingsVersion = this.liveVersion();
      this.d.store.insertRollup(w);
      this.d.store.pruneRollups(this.now() - this.cfg.rollupRetentionDays * 86_400_000);
      this.lifecycle.expireStale();
      this.d.store.finishRun(runId, 'ok', '', { requests: w.requests.finished });
    });
    if (!stored) {
      this.countRun('monitor', 'error');
      return undefined;
    }
    this.pause('');
    this.countRun('monitor', 'ok');
    return w;
  }

  /** Run a store write; on failure pause with the reason and return false (the caller's work is not recorded). */
  private tryStore(write: () => void): boolean {
    try {
      write();
      return true;
    } catch (err) {
      this.pause(`store unavailable: ${(err as Error).message}`);
      return false;
    }
  }

  /** Set (or clear, with '') the reason the tuner is paused; logged once per change, exported as a gauge. */
  private pause(reason: string): void {
    if (reason !== this.pausedReason) {
      if (reason) this.d.logger.warn({ reason }, 'tuner paused');
      else this.d.logger.info({ was: this.pausedReason }, 'tuner resumed');
    }
    this.pausedReason = reason;
    this.d.metrics?.tuner.paused.set(reason || !this.cfg.enabled ? 1 : 0);
  }

  // ---- analyze → optimize → verify ------------------------------------------------------------------------------

  async runNow(trigger: 'api' | 'alert' | 'cron', actor: Actor): Promise<RunOutcome> {
    if (this.closed) throw new TunerError('PAUSED', 'the tuner is shutting down');
    if (!this.cfg.enabled) throw new TunerError('PAUSED', 'the tuner is disabled (tuner.enabled: false)');
    if (this.cycle) throw new TunerError('BUSY', 'a tuner cycle is already running (analysis or verification in progress)');
    if (this.pausedReason) throw new TunerError('PAUSED', `the tuner is paused: ${this.pausedReason}`);
    let run: RunRecord;
    try {
      run = this.d.store.startRun('analyze', trigger);
      this.d.store.audit(actor, 'tuner.run', `run:${run.id}`, { trigger });
    } catch (err) {
      this.pause(`store unavailable: ${(err as Error).message}`);
      throw new TunerError('PAUSED', `the tuner is paused: ${this.pausedReason}`);
    }
    let findings: Finding[];
    let proposals: Proposal[];
    try {
      ({ findings, proposals } = this.analyzeAndPropose(run.id, actor));
    } catch (err) {
      this.d.store.finishRun(run.id, 'error', (err as Error).message);
      this.countRun('analyze', 'error');
      this.d.logger.error({ err }, 'tuner analysis failed');
      return { runId: run.id, outcome: 'error', findings: [], proposals: [], error: (err as Error).message };
    }
    this.d.store.finishRun(run.id, 'ok', '', { findings: findings.length, proposals: proposals.map((p) => p.id) });
    this.countRun('analyze', 'ok');
    this.d.metrics?.tuner.lastRunTimestamp.set(this.now() / 1000);
    if (proposals.length > 0) {
      this.cycle = this.verifyAll(proposals.map((p) => p.id)).finally(() => {
        this.cycle = undefined;
      });
    }
    return { runId: run.id, outcome: 'ok', findings, proposals };
  }

  /** Resolves when the current cycle (verification included) has finished. */
  async idle(): Promise<void> {
    await this.cycle;
    await this.lifecycle.idle();
  }

  /** `requester`: who triggered the run (the tuner itself for cron); recorded as the actor of `proposal.proposed`, so
   *  a distinct-approver policy can tell who asked for the change. */
  private analyzeAndPropose(runId: number, requester: Actor): { findings: Finding[]; proposals: Proposal[] } {
    const now = this.now();
    const windows = this.d.store.rollups(now - this.cfg.analysisWindowMinutes * 60_000, now + 1);
    const live = this.liveSettings();
    const findings = analyze({ windows, settings: live, slo: this.slo });
    this.lastFindings = findings;
    this.setBottleneckGauge(findings);
    for (const f of findings) this.d.store.insertFinding(f, runId);
    const startOptimize = this.d.store.startRun('optimize', 'cycle');
    const info = this.d.engine.info;
    const cooldownFrom = now - this.cfg.failedCooldownHours * 3_600_000;
    const recentlyFailed: SettingsChange[] = this.d.store
      .listProposals({ state: 'rejected' })
      .filter((p) => p.updatedMs >= cooldownFrom)
      .map((p) => p.candidate.change);
    // Anything already open for the same change is not proposed twice. A verified proposal whose base version is no
    // longer live cannot be approved any more (409): it must not block verifying the same change again.
    const liveNow = this.liveVersion();
    const open = this.d.store
      .listProposals({ state: [...OPEN_STATES] })
      .filter((p) => !(p.state === 'verified' && p.baseVersion !== liveNow))
      .map((p) => p.candidate.change);
    const candidates = optimize({
      findings,
      windows,
      settings: live,
      slo: this.slo,
      policy: { forbid: this.cfg.forbid, maxCandidates: this.cfg.maxCandidates },
      recentlyFailed: [...recentlyFailed, ...open],
      model: {
        nKvHeads: info.nKvHeads,
        ffnDim: info.ffnDim,
        cores: availableParallelism(),
        weights: this.weightFacts(info),
        alltoallDelayUs: info.layout.alltoallDelayUs ?? 0,
      },
    });
    const version = this.liveVersion();
    const proposals = candidates.map((c) =>
      this.d.store.createProposal(
        {
          candidate: c,
          baseVersion: version,
          target: applyChange(live, c.change),
          needsApproval: needsApproval(c.change, this.cfg),
          findingId: null,
          expiresMs: now + this.cfg.proposalTtlHours * 3_600_000,
        },
        requester,
      ),
    );
    this.d.store.finishRun(startOptimize.id, 'ok', '', { candidates: candidates.map((c) => changeKey(c.change)) });
    this.countRun('optimize', 'ok');
    return { findings, proposals };
  }

  /** What a weights change is priced and vetted against: the file's tensors (header only, cached) and the bytes by
   *  type the engine holds now. Undefined when the header cannot be read: then no weights change is proposed from
   *  `native` (the optimizer cannot know what the file holds). */
  private weightFacts(info: ModelInfo): WeightFacts | undefined {
    if (this.fileTensors?.path !== info.path) {
      let tensors: readonly TensorDesc[] | undefined;
      try {
        tensors = Engine.inspect(info.path).tensors;
      } catch (err) {
        this.d.logger.warn({ err, model: info.path }, 'cannot read the model file header: weights changes are not priced from it');
      }
      this.fileTensors = { path: info.path, tensors };
    }
    const tensors = this.fileTensors.tensors;
    return tensors ? { tensors, liveBytesByType: info.weightBytes } : undefined;
  }

  private async verifyAll(ids: number[]): Promise<void> {
    for (const id of ids) {
      if (this.closed) return;
      try {
        await this.verifyOne(id);
        this.countRun('verify', 'ok');
      } catch (err) {
        this.countRun('verify', 'error');
        this.d.logger.error({ err, proposal: id }, 'verification failed to run');
        this.lifecycle.abortVerification(id, (err as Error).message);
      }
    }
  }

  /** Verify one proposal on shadow traffic; the lifecycle records the verdict (and applies a pass policy allows). */
  private async verifyOne(id: number): Promise<void> {
    const p = this.lifecycle.startVerification(id);
    if (!p) return;
    const live = this.liveSettings();
    const vc = this.verifyConfig;
    const info = this.d.engine.info;
    const verifier = await ShadowVerifier.start({
      modelPath: info.path,
      baseline: live,
      candidate: p.target,
      config: vc,
      slo: this.slo,
      contextLength: info.contextLength,
      probeTokens: this.d.probeTokens,
      seed: this.d.config.verify.seed,
      ...(this.d.loadShadowEngine ? { loadEngine: this.d.loadShadowEngine } : {}),
      onMirrored: () => this.d.metrics?.tuner.shadowRequests.inc(),
      onSimilarity: (c: number) => this.d.metrics?.tuner.shadowSimilarity.observe(c),
    });
    const detach: (() => void)[] = [];
    if (this.d.metrics && verifier.engines.candidate) {
      detach.push(this.d.metrics.attachEngine(verifier.engines.candidate, 'shadow', `${this.d.config.model.name}-candidate`));
    }
    this.verification = { proposalId: id, verifier };
    let evidence;
    try {
      const windows = this.d.store.rollups(this.now() - this.cfg.analysisWindowMinutes * 60_000, this.now() + 1);
      const concurrency = windows.length ? windows.reduce((s, w) => s + w.requests.meanConcurrency, 0) / windows.length : 1;
      evidence = await verifier.finish({ deadlineMs: this.now() + this.d.config.verify.timeoutSeconds * 1000, observedConcurrency: concurrency });
    } finally {
      this.verification = undefined;
      for (const f of detach) f();
      await verifier.close();
    }
    this.d.metrics?.tuner.verdicts.inc({ verdict: evidence.verdict });
    await this.lifecycle.finishVerification(id, evidence);
  }

  // ---- REST ------------------------------------------------------------------------------------------------------

  status(): TunerStatus {
    return {
      enabled: this.cfg.enabled,
      state: this.pausedReason || !this.cfg.enabled ? 'paused' : this.cycle ? 'running' : 'idle',
      pausedReason: this.pausedReason || (this.cfg.enabled ? '' : 'disabled by configuration'),
      metricsSource: this.d.source.kind,
      liveVersion: this.liveVersion(),
      schedule: { monitor: this.cfg.monitorCron, analyze: this.cfg.analyzeCron, report: this.cfg.reportCron, timezone: this.cfg.timezone },
      lastRuns: this.d.store.runs({ limit: 10 }),
      findings: this.lastFindings,
      open: this.d.store.listProposals({ state: [...OPEN_STATES] }),
      verifying: this.verification ? { proposalId: this.verification.proposalId, mirrored: this.verification.verifier.mirroredCount } : null,
    };
  }

  listProposals(state?: ProposalState): Proposal[] {
    return this.d.store.listProposals(state ? { state } : {});
  }

  getProposal(id: number): ProposalDetail | undefined {
    const p = this.d.store.getProposal(id);
    if (!p) return undefined;
    return { ...p, transitions: this.d.store.transitions(id), approvals: this.d.store.approvals(id) };
  }

  approve(id: number, actor: Actor, comment: string): Promise<Proposal> {
    return this.lifecycle.approve(id, actor, comment);
  }

  reject(id: number, actor: Actor, comment: string): Promise<Proposal> {
    return this.lifecycle.reject(id, actor, comment);
  }

  liveConfig(): SettingsVersion {
    return this.d.store.currentSettings()!;
  }

  configHistory(limit?: number): SettingsVersion[] {
    return this.d.store.settingsHistory(limit);
  }

  rollbackTo(version: number, actor: Actor, comment: string): Promise<SettingsVersion> {
    return this.lifecycle.rollbackTo(version, actor, comment);
  }

  auditLog(filter?: { sinceId?: number | undefined; limit?: number | undefined; action?: string | undefined }) {
    return this.d.store.auditLog(filter);
  }

  // ---- helpers ---------------------------------------------------------------------------------------------------

  liveVersion(): number {
    return this.lifecycle.liveVersion();
  }

  liveSettings(): LiveSettings {
    return this.lifecycle.liveSettings();
  }

  private countRun(stage: 'monitor' | 'analyze' | 'optimize' | 'verify', outcome: 'ok' | 'error'): void {
    this.d.metrics?.tuner.runs.inc({ stage, outcome });
  }

  private setBottleneckGauge(findings: Finding[]): void {
    const g = this.d.metrics?.tuner.bottleneck;
    if (!g) return;
    g.reset();
    if (findings[0]) g.set({ kind: findings[0].kind }, 1);
  }

  /** Stop timers and any verification; the store stays open (the caller owns it). */
  async close(): Promise<void> {
    this.closed = true;
    this.lifecycle.stopWatching();
    await this.verification?.verifier.close();
    await this.cycle?.catch(() => undefined);
    await this.lifecycle.close();
  }
}
