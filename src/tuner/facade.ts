// What the REST layer may ask of the tuner. The HTTP routes (controlplane/tuner-api.ts) depend on this interface
// only, so they can be tested against the real Tuner and read without knowing how it works inside.
import type { AuditEntry, Approval, ProposalTransition, RunRecord, SettingsVersion } from './store.js';
import type { Actor, Finding, Proposal, ProposalState } from './types.js';

export type TunerErrorCode = 'NOT_FOUND' | 'CONFLICT' | 'BUSY' | 'INVALID' | 'PAUSED' | 'FORBIDDEN';

/** A refusal the REST layer maps to an HTTP status: NOT_FOUND 404, CONFLICT 409, BUSY 409, INVALID 400, PAUSED 503,
 *  FORBIDDEN 403 (a policy refusal for this identity, e.g. approving one's own request). */
export class TunerError extends Error {
  override readonly name = 'TunerError';
  constructor(
    readonly code: TunerErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export function isTunerError(e: unknown): e is TunerError {
  return e instanceof TunerError;
}

export interface TunerStatus {
  enabled: boolean;
  /** 'idle' | 'running' (a run in progress) | 'paused' (metrics source unreachable, or disabled). */
  state: 'idle' | 'running' | 'paused';
  pausedReason: string;
  metricsSource: 'registry' | 'prometheus';
  liveVersion: number;
  schedule: { monitor: string; analyze: string; report: string; timezone: string };
  lastRuns: RunRecord[];
  /** The last analysis' findings. */
  findings: Finding[];
  /** Proposals not in a final state. */
  open: Proposal[];
  verifying: { proposalId: number; mirrored: number } | null;
}

export interface ProposalDetail extends Proposal {
  transitions: ProposalTransition[];
  approvals: Approval[];
}

export interface RunOutcome {
  runId: number;
  outcome: 'ok' | 'error' | 'skipped';
  findings: Finding[];
  proposals: Proposal[];
  error?: string;
}

export interface TunerControl {
  status(): TunerStatus;
  /** Start an analyze → optimize → verify cycle now. Resolves when the cycle has *started* (verification continues in
   *  the background) with its run record; BUSY when one is in progress. */
  runNow(trigger: 'api' | 'alert', actor: Actor): Promise<RunOutcome>;
  listProposals(state?: ProposalState): Proposal[];
  getProposal(id: number): ProposalDetail | undefined;
  /** approver+: CONFLICT when the live settings changed since verification, or the proposal expired or is in a state
   *  that cannot be approved; approving an already approved/applied proposal returns it unchanged. */
  approve(id: number, actor: Actor, comment: string): Promise<Proposal>;
  reject(id: number, actor: Actor, comment: string): Promise<Proposal>;
  liveConfig(): SettingsVersion;
  configHistory(limit?: number): SettingsVersion[];
  /** admin: make an earlier version live again (a new version with source 'rollback'). */
  rollbackTo(version: number, actor: Actor, comment: string): Promise<SettingsVersion>;
  auditLog(filter?: { sinceId?: number | undefined; limit?: number | undefined; action?: string | undefined }): AuditEntry[];
}
