// The proposal lifecycle table and the approval policy.
//   proposed → verifying → verified | rejected
//   verified → approved (a human, or the tuner when policy allows auto-apply) → applying → watching → confirmed | rolled_back
//   proposed | verified → expired (past its time to live; a verification older than that proves nothing any more)
// The table is the law: TunerStore.transition refuses any move not in it (as well as a move from a state the proposal
// is not in), so a bug cannot invent one. The moves themselves are made by ProposalLifecycle (lifecycle.ts).
import { PROPOSAL_STATES, type ProposalState, type SettingsChange } from './types.js';

export const PROPOSAL_TRANSITIONS: Readonly<Record<ProposalState, readonly ProposalState[]>> = {
  proposed: ['verifying', 'expired'],
  // 'expired' from verifying: a verification interrupted by a restart proves nothing.
  verifying: ['verified', 'rejected', 'expired'],
  verified: ['approved', 'rejected', 'expired'],
  approved: ['applying'],
  // 'rolled_back' from applying: the engine refused the change, or the process died mid-apply (nothing was committed).
  applying: ['watching', 'rolled_back'],
  watching: ['confirmed', 'rolled_back'],
  rejected: [],
  confirmed: [],
  rolled_back: [],
  expired: [],
};

/** States with no way out (in PROPOSAL_STATES order). */
export const FINAL_STATES: readonly ProposalState[] = PROPOSAL_STATES.filter((s) => PROPOSAL_TRANSITIONS[s].length === 0);
/** States a proposal can still leave: not final (in PROPOSAL_STATES order). */
export const OPEN_STATES: readonly ProposalState[] = PROPOSAL_STATES.filter((s) => PROPOSAL_TRANSITIONS[s].length > 0);

/** Whether the table has the move `from` → `to`. */
export function isLegalTransition(from: ProposalState, to: ProposalState): boolean {
  return PROPOSAL_TRANSITIONS[from].includes(to);
}

/** States from which `to` can be reached. */
export function fromStates(to: ProposalState): ProposalState[] {
  return PROPOSAL_STATES.filter((s) => isLegalTransition(s, to));
}

export interface ApprovalPolicy {
  /** Knobs that may be applied without a human once verification passes. */
  autoApply: readonly string[];
  /** Knobs that always need an approver. */
  requireApproval: readonly string[];
}

/** A change needs a human when any knob it touches requires approval or is not explicitly allowed to auto-apply. */
export function needsApproval(change: SettingsChange, policy: ApprovalPolicy): boolean {
  const knobs = [...Object.keys(change.scheduler ?? {}), ...Object.keys(change.layout ?? {})];
  return knobs.some((k) => policy.requireApproval.includes(k) || !policy.autoApply.includes(k));
}
