// The proposal lifecycle: every move a proposal makes once the cycle (tuner.ts) has created it — into and out of
// verification, approval and rejection, apply, the watch window and its automatic rollback, expiry — plus an admin's
// rollback to any earlier settings version and what a crash left half-way (`recover`).
//
// Every move goes through `move`, i.e. TunerStore.transition, which refuses a move the lifecycle table
// (PROPOSAL_TRANSITIONS, proposals.ts) does not have; the store tells its listeners of each committed move, which is
// where the `tuneloop_tuner_proposals{state}` gauge is refreshed (one place). Changes to the live settings (auto-apply,
// approval, watch rollback, admin rollback) go through one serial queue (`applyChain`), so two applies never
// interleave; the engine is changed first, and only once it accepted the change is the new settings version committed,
// in one transaction with the proposal's move.
import type { Logger } from 'pino';
import type { Engine } from '../engine/engine.js';
import type { TuneloopConfig } from '../config/schema.js';
import type { Metrics } from '../metrics/registry.js';
import { applySettings, judgeWatchCheck, type WatchBaseline } from './apply.js';
import { TunerError } from './facade.js';
import type { RegistrySource } from './monitor.js';
import { changeKey } from './optimize.js';
import type { SettingsSource, SettingsVersion, TransitionDetail, TunerStore } from './store.js';
import { PROPOSAL_STATES, type Actor, type LiveSettings, type Proposal, type ProposalState, type VerificationEvidence } from './types.js';
import { faultPoint } from '../faults.js';

/** The tuner itself, as the actor of the moves it makes on its own. */
export const SYSTEM: Actor = { name: 'tuner', role: 'system' };

export interface LifecycleDeps {
  engine: Engine;
  store: TunerStore;
  config: TuneloopConfig;
  logger: Logger;
  /** The in-process request log: the watch window reads it. */
  requests: RegistrySource;
  metrics?: Pick<Metrics, 'tuner' | 'observeConfigChange'>;
  now?: () => number;
}

export class ProposalLifecycle {
  private readonly now: () => number;
  private applyChain: Promise<unknown> = Promise.resolve();
  private stopped = false;
  private readonly watchTimers = new Set<NodeJS.Timeout>();
  private readonly unsubscribe: () => void;

  constructor(private readonly d: LifecycleDeps) {
    this.now = d.now ?? Date.now;
    const refresh = (): void => this.refreshProposalGauge();
    this.unsubscribe = d.store.onProposalsChanged(refresh);
    refresh();
  }

  private get cfg(): TuneloopConfig['tuner'] {
    return this.d.config.tuner;
  }

  // ---- live settings -----------------------------------------------------------------------------------------------

  liveVersion(): number {
    return this.d.store.currentSettings()?.version ?? 0;
  }

  liveSettings(): LiveSettings {
    return this.d.store.currentSettings()!.settings;
  }

  // ---- crash recovery, expiry ---------------------------------------------------------------------------------------

  /** After a crash: an apply that never committed is rolled back (the engine runs the last committed version);
   *  a verification in flight proves nothing; an approved proposal is applied now; a watch window starts again. */
  recover(): void {
    const live = this.d.store.currentSettings();
    for (const p of this.d.store.listProposals({ state: 'applying' })) {
      this.move(p.id, 'applying', 'rolled_back', SYSTEM, `interrupted: the process exited while applying; live settings are version ${live?.version ?? 0}, unchanged`);
    }
    for (const p of this.d.store.listProposals({ state: 'verifying' })) {
      this.move(p.id, 'verifying', 'expired', SYSTEM, 'verification interrupted by a restart');
    }
    for (const p of this.d.store.listProposals({ state: 'approved' })) {
      // Approved but not started: apply it now if it still fits the live settings.
      void this.enqueueApply(p.id, SYSTEM);
    }
    for (const p of this.d.store.listProposals({ state: 'watching' })) this.startWatch(p.id);
  }

  /** Proposed or verified proposals past their time to live expire. */
  expireStale(): void {
    const now = this.now();
    for (const p of this.d.store.listProposals({ state: ['proposed', 'verified'] })) {
      if (p.expiresMs <= now) this.move(p.id, p.state, 'expired', SYSTEM, 'time to live passed');
    }
  }

  // ---- verification (the cycle runs the shadows; these are its moves) ----------------------------------------------

  /** Move a proposal into verification. Undefined when it is no longer `proposed`, or when the live settings changed
   *  since it was made (it then expires: it would be verified against settings that are not live). */
  startVerification(id: number): Proposal | undefined {
    const p = this.d.store.getProposal(id);
    if (!p || p.state !== 'proposed') return undefined;
    if (p.baseVersion !== this.liveVersion()) {
      this.move(id, 'proposed', 'expired', SYSTEM, 'the live settings changed before verification');
      return undefined;
    }
    return this.move(id, 'proposed', 'verifying', SYSTEM, '');
  }

  /** Record a verification's verdict. A pass that policy lets apply on its own is approved by the tuner and applied;
   *  resolves once that apply has finished. */
  async finishVerification(id: number, evidence: VerificationEvidence): Promise<void> {
    if (evidence.verdict !== 'pass') {
      this.move(id, 'verifying', 'rejected', SYSTEM, { comment: `verification ${evidence.verdict}: ${evidence.reasons.join('; ')}`, evidence });
      return;
    }
    const verified = this.move(id, 'verifying', 'verified', SYSTEM, { comment: evidence.reasons.join('; '), evidence });
    if (!verified.needsApproval) {
      this.d.store.recordApproval({
        proposalId: id,
        decision: 'approve',
        actor: SYSTEM.name,
        role: SYSTEM.role,
        comment: 'policy: auto-apply after a passing verification',
      });
      this.move(id, 'verified', 'approved', SYSTEM, 'auto-approved by policy');
      await this.enqueueApply(id, SYSTEM);
    }
  }

  /** A verification that could not run rejects its proposal (if it is still verifying). */
  abortVerification(id: number, reason: string): void {
    const p = this.d.store.getProposal(id);
    if (p && p.state === 'verifying') this.move(id, 'verifying', 'rejected', SYSTEM, `verification could not run: ${reason}`);
  }

  // ---- approval -------------------------------------------------------------------------------------------------------

  async approve(id: number, actor: Actor, comment: string): Promise<Proposal> {
    const p = this.d.store.getProposal(id);
    if (!p) throw new TunerError('NOT_FOUND', `proposal ${id} does not exist`);
    // Approving twice is harmless: the first approval already set it on its way.
    if (['approved', 'applying', 'watching', 'confirmed'].includes(p.state)) return p;
    if (p.state === 'verified' && p.expiresMs <= this.now()) {
      this.move(id, 'verified', 'expired', SYSTEM, 'time to live passed');
      throw new TunerError('CONFLICT', `proposal ${id} expired at ${new Date(p.expiresMs).toISOString()}; run the tuner again`);
    }
    if (p.state !== 'verified') throw new TunerError('CONFLICT', `proposal ${id} is ${p.state}; only a verified proposal can be approved`);
    const requester = this.d.store.transitions(id)[0]?.actor;
    if (this.d.config.auth.requireDistinctApprover && requester === actor.name) {
      throw new TunerError('FORBIDDEN', `${actor.name} requested proposal ${id}; auth.requireDistinctApprover needs another approver`);
    }
    const live = this.liveVersion();
    if (p.baseVersion !== live) {
      throw new TunerError('CONFLICT', `the live settings changed since proposal ${id} was verified (version ${p.baseVersion} → ${live}); it must be verified again`);
    }
    this.d.store.recordApproval({ proposalId: id, decision: 'approve', actor: actor.name, role: actor.role, comment });
    const approved = this.move(id, 'verified', 'approved', actor, comment);
    void this.enqueueApply(id, actor).catch((err) => this.d.logger.error({ err, proposal: id }, 'apply failed'));
    return approved;
  }

  async reject(id: number, actor: Actor, comment: string): Promise<Proposal> {
    const p = this.d.store.getProposal(id);
    if (!p) throw new TunerError('NOT_FOUND', `proposal ${id} does not exist`);
    if (p.state === 'rejected') return p;
    if (p.state !== 'verified' && p.state !== 'proposed') {
      throw new TunerError('CONFLICT', `proposal ${id} is ${p.state}; only a proposed or verified proposal can be rejected`);
    }
    this.d.store.recordApproval({ proposalId: id, decision: 'reject', actor: actor.name, role: actor.role, comment });
    if (p.state === 'proposed') {
      // Not verified yet: it never runs. 'expired' is the lifecycle's word for "will not be verified".
      return this.move(id, 'proposed', 'expired', actor, `rejected by ${actor.name}: ${comment}`);
    }
    return this.move(id, 'verified', 'rejected', actor, comment);
  }

  // ---- apply, watch, rollback (the serial queue) -----------------------------------------------------------------

  /** Run `job` after every change queued before it; a failed job does not stop the queue. */
  private enqueue<T>(job: () => Promise<T>): Promise<T> {
    const next = this.applyChain.then(job);
    this.applyChain = next.catch(() => undefined);
    return next;
  }

  private enqueueApply(id: number, actor: Actor): Promise<void> {
    return this.enqueue(() => this.applyProposal(id, actor));
  }

  private async applyProposal(id: number, actor: Actor): Promise<void> {
    const p = this.d.store.getProposal(id);
    if (!p || p.state !== 'approved') return;
    const live = this.d.store.currentSettings()!;
    if (p.baseVersion !== live.version) {
      // Approved against settings that are no longer live: applying it would silently undo the newer change.
      this.move(id, 'approved', 'applying', actor, 'start');
      this.move(id, 'applying', 'rolled_back', SYSTEM, `not applied: live settings moved from version ${p.baseVersion} to ${live.version}`);
      return;
    }
    const before = this.watchBaseline();
    this.move(id, 'approved', 'applying', actor, `applying ${changeKey(p.candidate.change)}`);
    let diff;
    try {
      diff = await applySettings(this.d.engine, live.settings, p.target);
      faultPoint('tuner.applying');
    } catch (err) {
      // A failed reload keeps the old model; undo whatever hot knobs were set.
      await applySettings(this.d.engine, p.target, live.settings).catch(() => undefined);
      this.move(id, 'applying', 'rolled_back', SYSTEM, `the engine refused the change: ${(err as Error).message}`);
      this.countApply('error');
      return;
    }
    this.move(id, 'applying', 'watching', actor, () => {
      const v = this.d.store.commitSettings(p.target, 'tuner', actor.name, id, p.candidate.rationale);
      return { comment: `live as version ${v.version}`, appliedVersion: v.version };
    });
    for (const k of diff.knobs) this.d.metrics?.observeConfigChange(k, 'tuner');
    this.countApply('ok');
    this.startWatch(id, before);
  }

  /** SLO attainment and error rate over the analysis window before a change: what the watch window compares with. */
  private watchBaseline(): WatchBaseline {
    const since = this.now() - this.cfg.analysisWindowMinutes * 60_000;
    const samples = this.d.requests.recentSamples(since);
    const n = samples.length;
    const j = judgeWatchCheck(samples, { sloAttainment: NaN, errorRate: 0 }, this.d.config.slo, 1, 1);
    return { sloAttainment: n ? j.sloAttainment : NaN, errorRate: n ? j.errorRate : 0 };
  }

  private startWatch(id: number, before: WatchBaseline = this.watchBaseline()): void {
    let checks = 0,
      failures = 0;
    let since = this.now();
    const tick = (): void => {
      if (this.stopped) return;
      const now = this.now();
      const samples = this.d.requests.recentSamples(since);
      since = now;
      const c = judgeWatchCheck(samples, before, this.d.config.slo, this.cfg.watchMaxGoodputDrop);
      checks++;
      if (c.ok === false) failures++;
      this.d.store.audit(SYSTEM, 'proposal.watch_check', `proposal:${id}`, { check: checks, ...c });
      if (failures >= this.cfg.watchFailureThreshold) {
        void this.enqueueRollback(id, c.reason);
        return;
      }
      if (checks >= this.cfg.watchChecks) {
        this.move(id, 'watching', 'confirmed', SYSTEM, `${checks} watch checks, ${failures} failed`);
        return;
      }
      schedule();
    };
    const schedule = (): void => {
      const t = setTimeout(() => {
        this.watchTimers.delete(t);
        tick();
      }, this.cfg.watchIntervalSeconds * 1000);
      t.unref();
      this.watchTimers.add(t);
    };
    schedule();
  }

  /** The watch window failed: make the proposal's base version live again (a new version, source 'rollback'). */
  private enqueueRollback(id: number, reason: string): Promise<void> {
    return this.enqueue(async () => {
      const p = this.d.store.getProposal(id);
      if (!p || p.state !== 'watching' || p.appliedVersion === null) return;
      const prev = this.d.store.settingsVersion(p.baseVersion);
      const live = this.d.store.currentSettings()!;
      if (!prev) return;
      const diff = await applySettings(this.d.engine, live.settings, prev.settings);
      this.move(id, 'watching', 'rolled_back', SYSTEM, () => {
        this.d.store.commitSettings(prev.settings, 'rollback', SYSTEM.name, id, `watch window failed: ${reason}`);
        return { comment: `watch window failed: ${reason}` };
      });
      for (const k of diff.knobs) this.d.metrics?.observeConfigChange(k, 'rollback');
      this.d.metrics?.tuner.rollbacks.inc();
    });
  }

  /** admin: make an earlier settings version live again (a new version with source 'rollback'). */
  rollbackTo(version: number, actor: Actor, comment: string): Promise<SettingsVersion> {
    const target = this.d.store.settingsVersion(version);
    if (!target) return Promise.reject(new TunerError('NOT_FOUND', `settings version ${version} does not exist`));
    return this.enqueue(async () => {
      const live = this.d.store.currentSettings()!;
      if (live.version === version) throw new TunerError('CONFLICT', `version ${version} is already live`);
      const diff = await applySettings(this.d.engine, live.settings, target.settings).catch(async (err) => {
        await applySettings(this.d.engine, target.settings, live.settings).catch(() => undefined);
        throw new TunerError('CONFLICT', `the engine refused version ${version}: ${(err as Error).message}`);
      });
      const v = this.d.store.transaction(() => {
        const committed = this.d.store.commitSettings(
          target.settings,
          'rollback' satisfies SettingsSource,
          actor.name,
          null,
          comment || `rollback to version ${version}`,
        );
        this.d.store.audit(actor, 'config.rollback', `version:${version}`, { newVersion: committed.version, comment });
        return committed;
      });
      for (const k of diff.knobs) this.d.metrics?.observeConfigChange(k, 'rollback');
      return v;
    });
  }

  // ---- the one way a proposal moves --------------------------------------------------------------------------------

  /** Move a proposal (the store checks the table and the current state). `detail` as a function runs inside the
   *  move's transaction, before it: what it writes (a settings version) commits with the move or not at all. */
  private move(id: number, from: ProposalState, to: ProposalState, actor: Actor, detail: string | TransitionDetail | (() => TransitionDetail)): Proposal {
    if (typeof detail === 'function') {
      return this.d.store.transaction(() => this.d.store.transition(id, from, to, actor, detail()));
    }
    return this.d.store.transition(id, from, to, actor, typeof detail === 'string' ? { comment: detail } : detail);
  }

  private refreshProposalGauge(): void {
    const g = this.d.metrics?.tuner.proposals;
    if (!g) return;
    const counts = this.d.store.countProposalsByState();
    for (const s of PROPOSAL_STATES) g.set({ state: s }, counts[s]);
  }

  private countApply(outcome: 'ok' | 'error'): void {
    this.d.metrics?.tuner.runs.inc({ stage: 'apply', outcome });
  }

  /** Resolves when every queued change has finished. */
  async idle(): Promise<void> {
    await this.applyChain;
  }

  /** Stop the watch windows (their timers); changes already queued still finish (see close). */
  stopWatching(): void {
    this.stopped = true;
    for (const t of this.watchTimers) clearTimeout(t);
    this.watchTimers.clear();
  }

  /** Stop the watch windows, wait for the queued changes, stop listening to the store (the caller owns it). */
  async close(): Promise<void> {
    this.stopWatching();
    await this.applyChain;
    this.unsubscribe();
  }
}
