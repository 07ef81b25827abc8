// The tuner's durable state in one SQLite file: per-minute rollups, findings, proposals with every state transition,
// verification evidence, approvals, the audit log, the versioned history of live settings, the tuner's run records,
// the alerts received from Alertmanager and an index of the weekly reports written.
// Durability: WAL with synchronous=FULL, and every write is one transaction that has committed (and been fsynced)
// before the method returns, so a kill -9 (or a power cut) loses nothing a caller was told had been stored.
// History is append-only: triggers abort UPDATE/DELETE on the audit log, transitions, approvals, verifications,
// settings versions and alerts, so even a second connection with raw SQL cannot rewrite what happened.
// Proposal moves: transition() makes only the moves in the lifecycle table (PROPOSAL_TRANSITIONS, proposals.ts), and
// only from the state the proposal is in; listeners of onProposalsChanged hear of every committed proposal write.
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { PROPOSAL_TRANSITIONS, isLegalTransition } from './proposals.js';
import {
  PROPOSAL_STATES,
  type Actor,
  type Finding,
  type LiveSettings,
  type Proposal,
  type ProposalState,
  type VerificationEvidence,
  type WindowSummary,
} from './types.js';

export type SettingsSource = 'config' | 'tuner' | 'rollback' | 'api';
export interface SettingsVersion {
  version: number;
  settings: LiveSettings;
  source: SettingsSource;
  actor: string;
  proposalId: number | null;
  note: string;
  createdMs: number;
}
export interface StoredFinding extends Finding {
  id: number;
  createdMs: number;
  runId: number | null;
}
export interface ProposalTransition {
  proposalId: number;
  from: ProposalState | null;
  to: ProposalState;
  atMs: number;
  actor: string;
  comment: string;
}
export interface Approval {
  proposalId: number;
  decision: 'approve' | 'reject';
  actor: string;
  role: string;
  comment: string;
  atMs: number;
}
export interface AuditEntry {
  id: number;
  atMs: number;
  actor: string;
  role: string;
  action: string;
  target: string;
  detail: Record<string, unknown>;
}
export interface RunRecord {
  id: number;
  /** 'monitor' | 'analyze' | 'report' | … */
  kind: string;
  /** 'cron' | 'api' | 'alert' | 'startup' */
  trigger: string;
  startedMs: number;
  finishedMs: number | null;
  outcome: 'running' | 'ok' | 'error' | 'skipped';
  error: string;
  detail: Record<string, unknown>;
}
export interface Verification {
  proposalId: number;
  verdict: string;
  evidence: VerificationEvidence;
  atMs: number;
}
/** An alert as the store keeps it (from the inbox's ReceivedAlert). */
export interface StoredAlert {
  id: number;
  receivedMs: number;
  alertname: string;
  /** The `severity` label ('' when the rule set none). */
  severity: string;
  status: 'firing' | 'resolved';
  labels: Record<string, string>;
  annotations: Record<string, string>;
  /** Alertmanager's startsAt (RFC 3339), which with the fingerprint identifies one firing episode. */
  startsAt: string;
  fingerprint: string;
}
/** The alert fields insertAlert reads (structurally the inbox's ReceivedAlert, which the store does not import):
 *  alertname and severity are read from the labels, the time from receivedAt (ISO). */
export type AlertInput = Pick<StoredAlert, 'status' | 'labels' | 'annotations' | 'startsAt' | 'fingerprint'> & { receivedAt: string };
/** One weekly report written: its week, when, the period it covers and a few headline figures. */
export interface ReportRecord {
  week: string;
  generatedMs: number;
  periodStartMs: number;
  periodEndMs: number;
  summary: Record<string, unknown>;
}
export type NewProposal = Omit<Proposal, 'id' | 'state' | 'createdMs' | 'updatedMs' | 'evidence' | 'appliedVersion'>;
/** What a transition may record beside the move. */
export interface TransitionDetail {
  comment?: string;
  evidence?: VerificationEvidence;
  appliedVersion?: number;
  expiresMs?: number;
}

/** The caller decides the rollup cutoff; the tuner must keep at least this much (5 weeks: a week-over-week report
 *  of the last four weeks plus the week before them). */
export const MIN_ROLLUP_RETENTION_MS = 35 * 24 * 3600 * 1000;
/** Lists without a time range are capped so a years-old store cannot answer with everything. */
const DEFAULT_LIST_LIMIT = 1000;
const INTERRUPTED = 'interrupted (process exited during the run)';

/** A proposal (or run) is not in a state the operation expects: the REST layer answers 409. */
export class StoreConflictError extends Error {
  readonly code = 'CONFLICT';
  constructor(
    message: string,
    readonly actual?: string,
  ) {
    super(message);
    this.name = 'StoreConflictError';
  }
}

/** ILLEGAL_TRANSITION: a proposal move the lifecycle table does not have (a bug in the caller, never the user's doing). */
export type StoreErrorCode = 'SCHEMA_TOO_NEW' | 'NOT_FOUND' | 'IO' | 'CONSTRAINT' | 'ILLEGAL_TRANSITION';
export class StoreError extends Error {
  readonly code: StoreErrorCode;
  constructor(code: StoreErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'StoreError';
    this.code = code;
  }
}

// The slice of better-sqlite3 used here, typed locally: the package ships no declarations (@types/better-sqlite3 is
// not a dependency), and these few signatures are all the store needs.
export interface SqliteStatement {
  run(...params: unknown[]): { changes: number; lastInsertRowid: number | bigint };
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
}
export interface SqliteDatabase {
  prepare(sql: string): SqliteStatement;
  exec(sql: string): void;
  pragma(sql: string, options?: { simple?: boolean }): unknown;
  transaction<T>(fn: () => T): { (): T; immediate(): T };
  close(): void;
}
type SqliteConstructor = new (path: string) => SqliteDatabase;
const Sqlite = createRequire(import.meta.url)('better-sqlite3') as SqliteConstructor;

// SQL steps are never edited once released: a change is a new step at the end. user_version = steps applied.
export const MIGRATIONS: readonly string[] = [
  `CREATE TABLE rollups (
     id INTEGER PRIMARY KEY, start_ms INTEGER NOT NULL, end_ms INTEGER NOT NULL, source TEXT NOT NULL,
     settings_version INTEGER NOT NULL, throughput REAL, goodput REAL, slo_attainment REAL, summary TEXT NOT NULL);
   CREATE INDEX rollups_start ON rollups(start_ms);
   CREATE INDEX rollups_end ON rollups(end_ms);
   CREATE TABLE runs (
     id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, trigger TEXT NOT NULL, started_ms INTEGER NOT NULL,
     finished_ms INTEGER, outcome TEXT NOT NULL CHECK (outcome IN ('running','ok','error','skipped')),
     error TEXT NOT NULL DEFAULT '', detail TEXT NOT NULL DEFAULT '{}');
   CREATE INDEX runs_kind ON runs(kind, id);
   CREATE INDEX runs_outcome ON runs(outcome);
   CREATE TABLE findings (
     id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, confidence REAL, impact REAL, summary TEXT NOT NULL,
     evidence TEXT NOT NULL, from_ms INTEGER NOT NULL, to_ms INTEGER NOT NULL, created_ms INTEGER NOT NULL,
     run_id INTEGER REFERENCES runs(id));
   CREATE INDEX findings_from ON findings(from_ms);
   CREATE TABLE proposals (
     id INTEGER PRIMARY KEY AUTOINCREMENT, state TEXT NOT NULL, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,
     candidate TEXT NOT NULL, base_version INTEGER NOT NULL, target TEXT NOT NULL,
     needs_approval INTEGER NOT NULL CHECK (needs_approval IN (0, 1)), finding_id INTEGER REFERENCES findings(id),
     evidence TEXT, applied_version INTEGER REFERENCES settings(version), expires_ms INTEGER NOT NULL);
   CREATE INDEX proposals_state ON proposals(state);
   CREATE TABLE settings (
     version INTEGER PRIMARY KEY, settings TEXT NOT NULL, source TEXT NOT NULL, actor TEXT NOT NULL,
     proposal_id INTEGER REFERENCES proposals(id), note TEXT NOT NULL, created_ms INTEGER NOT NULL);
   CREATE TABLE proposal_transitions (
     id INTEGER PRIMARY KEY AUTOINCREMENT, proposal_id INTEGER NOT NULL REFERENCES proposals(id), from_state TEXT,
     to_state TEXT NOT NULL, at_ms INTEGER NOT NULL, actor TEXT NOT NULL, comment TEXT NOT NULL);
   CREATE INDEX proposal_transitions_proposal ON proposal_transitions(proposal_id, id);
   CREATE TABLE approvals (
     id INTEGER PRIMARY KEY AUTOINCREMENT, proposal_id INTEGER NOT NULL REFERENCES proposals(id),
     decision TEXT NOT NULL CHECK (decision IN ('approve','reject')), actor TEXT NOT NULL, role TEXT NOT NULL,
     comment TEXT NOT NULL, at_ms INTEGER NOT NULL);
   CREATE INDEX approvals_proposal ON approvals(proposal_id, id);
   CREATE TABLE verifications (
     id INTEGER PRIMARY KEY AUTOINCREMENT, proposal_id INTEGER NOT NULL REFERENCES proposals(id),
     verdict TEXT NOT NULL, evidence TEXT NOT NULL, at_ms INTEGER NOT NULL);
   CREATE INDEX verifications_verdict ON verifications(verdict);
   CREATE INDEX verifications_at ON verifications(at_ms);
   CREATE TABLE audit_log (
     id INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL, actor TEXT NOT NULL, role TEXT NOT NULL,
     action TEXT NOT NULL, target TEXT NOT NULL, detail TEXT NOT NULL);
   CREATE INDEX audit_log_action ON audit_log(action, id);
   ${['audit_log', 'proposal_transitions', 'approvals', 'verifications', 'settings'].map(appendOnly).join('\n')}`,
  // 2: alerts received from Alertmanager (history, append-only) and the weekly reports written (an index of files that
  // are regenerated at will, so a row is replaced when its week is written again).
  `CREATE TABLE alerts (
     id INTEGER PRIMARY KEY AUTOINCREMENT, received_ms INTEGER NOT NULL, alertname TEXT NOT NULL, severity TEXT NOT NULL,
     status TEXT NOT NULL, labels TEXT NOT NULL, annotations TEXT NOT NULL, starts_at TEXT NOT NULL, fingerprint TEXT NOT NULL);
   CREATE INDEX alerts_received ON alerts(received_ms);
   CREATE TABLE reports (
     week TEXT PRIMARY KEY, generated_ms INTEGER NOT NULL, period_start_ms INTEGER NOT NULL, period_end_ms INTEGER NOT NULL,
     summary TEXT NOT NULL);
   ${appendOnly('alerts')}`,
];
export const SCHEMA_VERSION = MIGRATIONS.length;

function appendOnly(table: string): string {
  return ['UPDATE', 'DELETE']
    .map(
      (op) => `CREATE TRIGGER ${table}_no_${op.toLowerCase()} BEFORE ${op} ON ${table}
     BEGIN SELECT RAISE(ABORT, '${table} is append-only: ${op} refused'); END;`,
    )
    .join('\n');
}

/** Brings `db` to `migrations.length`, each step in its own transaction with its user_version bump, so a failed step
 *  leaves the previous version intact. A file from newer code is refused rather than guessed at. */
export function migrate(db: SqliteDatabase, migrations: readonly string[] = MIGRATIONS): number {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > migrations.length) {
    throw new StoreError(
      'SCHEMA_TOO_NEW',
      `tuner store schema is version ${current}, but this tuneloop knows only up to ` +
        `version ${migrations.length}: it was written by a newer tuneloop; upgrade, or point the tuner at another file`,
    );
  }
  for (let v = current; v < migrations.length; v++) {
    db.transaction(() => {
      db.exec(migrations[v]!);
      db.pragma(`user_version = ${v + 1}`);
    }).immediate();
  }
  return migrations.length;
}

// JSON has no NaN/±Infinity/-0 (stringify writes null or 0); summaries use NaN for "no data", so non-finite numbers
// and -0 are written as a tagged object and read back as the number (so a one-key object {"$float": string} is reserved).
const FLOAT_TAG = '$float';
function toJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    typeof v !== 'number' || (Number.isFinite(v) && !Object.is(v, -0)) ? v : { [FLOAT_TAG]: Object.is(v, -0) ? '-0' : String(v) },
  );
}
function fromJson<T>(text: string): T {
  return JSON.parse(text, (_key, v: unknown) => {
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      const keys = Object.keys(v);
      const tag = (v as Record<string, unknown>)[FLOAT_TAG];
      if (keys.length === 1 && typeof tag === 'string') return Number(tag);
    }
    return v;
  }) as T;
}

// Rows as SQLite returns them (snake_case columns; JSON columns as text).
interface SettingsRow {
  version: number;
  settings: string;
  source: SettingsSource;
  actor: string;
  proposal_id: number | null;
  note: string;
  created_ms: number;
}
interface FindingRow {
  id: number;
  kind: Finding['kind'];
  confidence: number | null;
  impact: number | null;
  summary: string;
  evidence: string;
  from_ms: number;
  to_ms: number;
  created_ms: number;
  run_id: number | null;
}
interface ProposalRow {
  id: number;
  state: ProposalState;
  created_ms: number;
  updated_ms: number;
  candidate: string;
  base_version: number;
  target: string;
  needs_approval: number;
  finding_id: number | null;
  evidence: string | null;
  applied_version: number | null;
  expires_ms: number;
}
interface TransitionRow {
  proposal_id: number;
  from_state: ProposalState | null;
  to_state: ProposalState;
  at_ms: number;
  actor: string;
  comment: string;
}
interface ApprovalRow {
  proposal_id: number;
  decision: Approval['decision'];
  actor: string;
  role: string;
  comment: string;
  at_ms: number;
}
interface AuditRow {
  id: number;
  at_ms: number;
  actor: string;
  role: string;
  action: string;
  target: string;
  detail: string;
}
interface RunRow {
  id: number;
  kind: string;
  trigger: string;
  started_ms: number;
  finished_ms: number | null;
  outcome: RunRecord['outcome'];
  error: string;
  detail: string;
}
interface VerificationRow {
  proposal_id: number;
  verdict: string;
  evidence: string;
  at_ms: number;
}
interface AlertRow {
  id: number;
  received_ms: number;
  alertname: string;
  severity: string;
  status: StoredAlert['status'];
  labels: string;
  annotations: string;
  starts_at: string;
  fingerprint: string;
}
interface ReportRow {
  week: string;
  generated_ms: number;
  period_start_ms: number;
  period_end_ms: number;
  summary: string;
}

const toSettings = (r: SettingsRow): SettingsVersion => ({
  version: r.version,
  settings: fromJson(r.settings),
  source: r.source,
  actor: r.actor,
  proposalId: r.proposal_id,
  note: r.note,
  createdMs: r.created_ms,
});
// REAL columns hold NaN as NULL; the JSON column is the faithful copy, so confidence/impact come back as NaN.
const toFinding = (r: FindingRow): StoredFinding => ({
  kind: r.kind,
  confidence: r.confidence ?? NaN,
  impact: r.impact ?? NaN,
  summary: r.summary,
  evidence: fromJson(r.evidence),
  fromMs: r.from_ms,
  toMs: r.to_ms,
  id: r.id,
  createdMs: r.created_ms,
  runId: r.run_id,
});
const toProposal = (r: ProposalRow): Proposal => ({
  id: r.id,
  createdMs: r.created_ms,
  updatedMs: r.updated_ms,
  state: r.state,
  candidate: fromJson(r.candidate),
  baseVersion: r.base_version,
  target: fromJson(r.target),
  needsApproval: r.needs_approval === 1,
  findingId: r.finding_id,
  evidence: r.evidence === null ? null : fromJson(r.evidence),
  appliedVersion: r.applied_version,
  expiresMs: r.expires_ms,
});
const toAudit = (r: AuditRow): AuditEntry => ({
  id: r.id,
  atMs: r.at_ms,
  actor: r.actor,
  role: r.role,
  action: r.action,
  target: r.target,
  detail: fromJson(r.detail),
});
const toRun = (r: RunRow): RunRecord => ({
  id: r.id,
  kind: r.kind,
  trigger: r.trigger,
  startedMs: r.started_ms,
  finishedMs: r.finished_ms,
  outcome: r.outcome,
  error: r.error,
  detail: fromJson(r.detail),
});

// Prepared once per connection; named parameters where one value is used twice.
function prepareStatements(db: SqliteDatabase) {
  const p = (sql: string) => db.prepare(sql);
  return {
    insertRollup: p(`INSERT INTO rollups (start_ms, end_ms, source, settings_version, throughput, goodput, slo_attainment, summary)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
    rollups: p('SELECT summary FROM rollups WHERE start_ms >= ? AND start_ms < ? ORDER BY start_ms, id'),
    pruneRollups: p('DELETE FROM rollups WHERE end_ms < ?'),
    insertFinding: p(`INSERT INTO findings (kind, confidence, impact, summary, evidence, from_ms, to_ms, created_ms, run_id)
                      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *`),
    findings: p('SELECT * FROM findings WHERE from_ms >= ? AND from_ms < ? ORDER BY from_ms, id'),
    insertSettings: p(`INSERT INTO settings (version, settings, source, actor, proposal_id, note, created_ms)
                       VALUES ((SELECT COALESCE(MAX(version), 0) + 1 FROM settings), ?, ?, ?, ?, ?, ?) RETURNING *`),
    currentSettings: p('SELECT * FROM settings ORDER BY version DESC LIMIT 1'),
    settingsVersion: p('SELECT * FROM settings WHERE version = ?'),
    settingsHistory: p('SELECT * FROM settings ORDER BY version DESC LIMIT ?'),
    insertProposal: p(`INSERT INTO proposals (state, created_ms, updated_ms, candidate, base_version, target, needs_approval, finding_id, expires_ms)
                       VALUES ('proposed', ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *`),
    getProposal: p('SELECT * FROM proposals WHERE id = ?'),
    listProposals: p(`SELECT * FROM proposals WHERE (@states IS NULL OR state IN (SELECT value FROM json_each(@states)))
                      ORDER BY id DESC LIMIT @limit`),
    countProposals: p('SELECT state, COUNT(*) AS n FROM proposals GROUP BY state'),
    updateProposal: p(`UPDATE proposals SET state = ?, updated_ms = ?, evidence = COALESCE(?, evidence),
                       applied_version = COALESCE(?, applied_version), expires_ms = COALESCE(?, expires_ms) WHERE id = ? RETURNING *`),
    insertTransition: p('INSERT INTO proposal_transitions (proposal_id, from_state, to_state, at_ms, actor, comment) VALUES (?, ?, ?, ?, ?, ?)'),
    transitions: p('SELECT * FROM proposal_transitions WHERE proposal_id = ? ORDER BY id'),
    insertApproval: p('INSERT INTO approvals (proposal_id, decision, actor, role, comment, at_ms) VALUES (?, ?, ?, ?, ?, ?)'),
    approvals: p('SELECT * FROM approvals WHERE proposal_id = ? ORDER BY id'),
    insertVerification: p('INSERT INTO verifications (proposal_id, verdict, evidence, at_ms) VALUES (?, ?, ?, ?)'),
    verifications: p('SELECT * FROM verifications WHERE at_ms >= ? AND at_ms < ? ORDER BY at_ms, id'),
    insertAudit: p('INSERT INTO audit_log (at_ms, actor, role, action, target, detail) VALUES (?, ?, ?, ?, ?, ?) RETURNING *'),
    auditLog: p('SELECT * FROM audit_log WHERE id > @sinceId AND (@action IS NULL OR action = @action) ORDER BY id LIMIT @limit'),
    startRun: p(`INSERT INTO runs (kind, trigger, started_ms, outcome) VALUES (?, ?, ?, 'running') RETURNING *`),
    finishRun: p(`UPDATE runs SET finished_ms = ?, outcome = ?, error = ?, detail = ? WHERE id = ? AND outcome = 'running' RETURNING *`),
    getRun: p('SELECT * FROM runs WHERE id = ?'),
    runs: p('SELECT * FROM runs WHERE (@kind IS NULL OR kind = @kind) ORDER BY id DESC LIMIT @limit'),
    interruptRuns: p(`UPDATE runs SET outcome = 'error', error = ?, finished_ms = ? WHERE outcome = 'running'`),
    insertAlert: p(`INSERT INTO alerts (received_ms, alertname, severity, status, labels, annotations, starts_at, fingerprint)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
    alerts: p('SELECT * FROM alerts WHERE received_ms >= ? AND received_ms < ? ORDER BY received_ms, id'),
    upsertReport: p(`INSERT INTO reports (week, generated_ms, period_start_ms, period_end_ms, summary) VALUES (?, ?, ?, ?, ?)
                     ON CONFLICT(week) DO UPDATE SET generated_ms = excluded.generated_ms, period_start_ms = excluded.period_start_ms,
                     period_end_ms = excluded.period_end_ms, summary = excluded.summary`),
    reports: p('SELECT * FROM reports ORDER BY period_start_ms DESC, week DESC LIMIT ?'),
  };
}
type Statements = ReturnType<typeof prepareStatements>;

function isSqliteError(e: unknown): e is Error & { code: string } {
  return e instanceof Error && e.name === 'SqliteError' && typeof (e as { code?: unknown }).code === 'string';
}

function illegalTransition(id: number, from: readonly ProposalState[], to: ProposalState): StoreError {
  const allowed = from.map((f) => `from '${f}': ${PROPOSAL_TRANSITIONS[f].map((s) => `'${s}'`).join(', ') || 'none'}`).join('; ');
  return new StoreError(
    'ILLEGAL_TRANSITION',
    `illegal proposal transition ${from.map((f) => `'${f}'`).join(' | ')} → '${to}' ` + `(proposal ${id}): not in the lifecycle table (PROPOSAL_TRANSITIONS; ${allowed})`,
  );
}

export class TunerStore {
  /** Runs found 'running' at open (left by a process that died mid-run) and marked 'error'. */
  readonly interruptedRunsAtOpen: number;
  private readonly q: Statements;
  private readonly proposalListeners = new Set<() => void>();
  /** Depth of nested transaction() calls, and whether a proposal was written inside the outermost one. */
  private txDepth = 0;
  private proposalsChanged = false;

  private constructor(
    private readonly db: SqliteDatabase,
    readonly path: string,
    private readonly now: () => number,
  ) {
    this.q = prepareStatements(db);
    this.interruptedRunsAtOpen = this.markInterruptedRuns();
  }

  /** Opens (creating parent folders and the file) and migrates. ':memory:' gives a private in-memory store. */
  static open(path: string, options: { now?: () => number } = {}): TunerStore {
    let db: SqliteDatabase | undefined;
    try {
      if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
      db = new Sqlite(path);
      db.pragma('journal_mode = WAL');
      // FULL: each WAL commit is fsynced before it returns (NORMAL could lose the last commits on power loss).
      db.pragma('synchronous = FULL');
      // A second process (the CLI) may hold the write lock briefly: wait rather than fail at once.
      db.pragma('busy_timeout = 5000');
      db.pragma('foreign_keys = ON');
      migrate(db);
      return new TunerStore(db, path, options.now ?? Date.now);
    } catch (e) {
      db?.close();
      if (e instanceof StoreError) throw e;
      throw new StoreError('IO', `cannot open tuner store ${path}: ${(e as Error).message}`, { cause: e });
    }
  }

  close(): void {
    this.db.close();
  }

  schemaVersion(): number {
    return this.db.pragma('user_version', { simple: true }) as number;
  }

  /** All writes inside fn commit together or not at all; nested calls become savepoints. */
  transaction<T>(fn: () => T): T {
    // IMMEDIATE takes the write lock up front, so a read-then-write cannot fail half-way on a lock upgrade.
    let result: T;
    this.txDepth++;
    try {
      result = this.db.transaction(fn).immediate();
    } catch (e) {
      if (this.txDepth === 1) this.proposalsChanged = false;
      if (isSqliteError(e)) {
        const constraint = e.code.startsWith('SQLITE_CONSTRAINT');
        throw new StoreError(constraint ? 'CONSTRAINT' : 'IO', `tuner store: ${e.message}`, { cause: e });
      }
      throw e;
    } finally {
      this.txDepth--;
    }
    if (this.txDepth === 0 && this.proposalsChanged) {
      this.proposalsChanged = false;
      for (const listener of this.proposalListeners) {
        try {
          listener();
        } catch {
          // A listener (a metrics refresh) must not turn a committed write into an error.
        }
      }
    }
    return result;
  }

  /** Calls `listener` once after each committed transaction that created or moved a proposal (after the outermost
   *  one, when nested). Returns the function that unsubscribes it. */
  onProposalsChanged(listener: () => void): () => void {
    this.proposalListeners.add(listener);
    return () => this.proposalListeners.delete(listener);
  }

  insertRollup(w: WindowSummary): number {
    return Number(
      this.transaction(() =>
        this.q.insertRollup.run(w.startMs, w.endMs, w.source, w.settingsVersion, w.throughputTokensPerS, w.goodputTokensPerS, w.sloAttainment, toJson(w)),
      ).lastInsertRowid,
    );
  }

  rollups(fromMs: number, toMs: number): WindowSummary[] {
    return (this.q.rollups.all(fromMs, toMs) as { summary: string }[]).map((r) => fromJson<WindowSummary>(r.summary));
  }

  pruneRollups(olderThanMs: number): number {
    return this.transaction(() => this.q.pruneRollups.run(olderThanMs).changes);
  }

  insertFinding(f: Finding, runId: number | null = null): StoredFinding {
    return this.transaction(() =>
      toFinding(this.q.insertFinding.get(f.kind, f.confidence, f.impact, f.summary, toJson(f.evidence), f.fromMs, f.toMs, this.now(), runId) as FindingRow),
    );
  }

  /** Findings whose evidence range starts in [fromMs, toMs), by that start (the same half-open rule as rollups). */
  findings(fromMs: number, toMs: number): StoredFinding[] {
    return (this.q.findings.all(fromMs, toMs) as FindingRow[]).map(toFinding);
  }

  commitSettings(s: LiveSettings, source: SettingsSource, actor: string, proposalId: number | null = null, note = ''): SettingsVersion {
    return this.transaction(() => toSettings(this.q.insertSettings.get(toJson(s), source, actor, proposalId, note, this.now()) as SettingsRow));
  }

  currentSettings(): SettingsVersion | undefined {
    const row = this.q.currentSettings.get() as SettingsRow | undefined;
    return row && toSettings(row);
  }

  settingsVersion(version: number): SettingsVersion | undefined {
    const row = this.q.settingsVersion.get(version) as SettingsRow | undefined;
    return row && toSettings(row);
  }

  settingsHistory(limit = DEFAULT_LIST_LIMIT): SettingsVersion[] {
    return (this.q.settingsHistory.all(limit) as SettingsRow[]).map(toSettings);
  }

  createProposal(p: NewProposal, actor: Actor): Proposal {
    return this.transaction(() => {
      const at = this.now();
      const row = this.q.insertProposal.get(
        at,
        at,
        toJson(p.candidate),
        p.baseVersion,
        toJson(p.target),
        p.needsApproval ? 1 : 0,
        p.findingId,
        p.expiresMs,
      ) as ProposalRow;
      this.proposalsChanged = true;
      this.q.insertTransition.run(row.id, null, 'proposed', at, actor.name, '');
      this.writeAudit(at, actor.name, actor.role, 'proposal.proposed', `proposal:${row.id}`, {
        from: null,
        to: 'proposed',
        addresses: p.candidate.addresses,
        temperature: p.candidate.temperature,
        change: p.candidate.change,
        baseVersion: p.baseVersion,
      });
      return toProposal(row);
    });
  }

  getProposal(id: number): Proposal | undefined {
    const row = this.q.getProposal.get(id) as ProposalRow | undefined;
    return row && toProposal(row);
  }

  listProposals(filter: { state?: ProposalState | ProposalState[]; limit?: number } = {}): Proposal[] {
    const states = filter.state === undefined ? null : toJson(Array.isArray(filter.state) ? filter.state : [filter.state]);
    return (this.q.listProposals.all({ states, limit: filter.limit ?? DEFAULT_LIST_LIMIT }) as ProposalRow[]).map(toProposal);
  }

  /** Compare-and-set on the proposal's state: checks the move is in the lifecycle table (PROPOSAL_TRANSITIONS; else
   *  StoreError ILLEGAL_TRANSITION naming from → to) and that the proposal is in `from` (else StoreConflictError
   *  naming the actual state; an unknown id is StoreError NOT_FOUND), sets `to` (+ evidence / appliedVersion /
   *  expiresMs when given) and writes the transition row, an audit row (`proposal.<to>`) and, with evidence, a
   *  verifications row — all in one transaction. A refused move writes nothing. */
  transition(id: number, from: ProposalState | readonly ProposalState[], to: ProposalState, actor: Actor, detail: TransitionDetail = {}): Proposal {
    const expected: readonly ProposalState[] = typeof from === 'string' ? [from] : from;
    // The table first, before the proposal is read: a move that exists from none of the expected states is a bug
    // whatever state the proposal is in.
    if (!expected.some((s) => isLegalTransition(s, to))) throw illegalTransition(id, expected, to);
    return this.transaction(() => {
      const current = this.getProposal(id);
      if (!current) throw new StoreError('NOT_FOUND', `proposal ${id} not found`);
      if (!expected.includes(current.state)) {
        const expectedText = expected.map((s) => `'${s}'`).join(' or ');
        throw new StoreConflictError(`proposal ${id} is '${current.state}', expected ${expectedText} (to move it to '${to}')`, current.state);
      }
      if (!isLegalTransition(current.state, to)) throw illegalTransition(id, [current.state], to);
      const at = this.now();
      const comment = detail.comment ?? '';
      const evidence = detail.evidence === undefined ? null : toJson(detail.evidence);
      const row = this.q.updateProposal.get(to, at, evidence, detail.appliedVersion ?? null, detail.expiresMs ?? null, id) as ProposalRow;
      this.q.insertTransition.run(id, current.state, to, at, actor.name, comment);
      this.proposalsChanged = true;
      if (detail.evidence !== undefined) this.q.insertVerification.run(id, detail.evidence.verdict, evidence, at);
      this.writeAudit(at, actor.name, actor.role, `proposal.${to}`, `proposal:${id}`, {
        from: current.state,
        to,
        comment,
        ...(detail.evidence !== undefined && { verdict: detail.evidence.verdict }),
        ...(detail.appliedVersion !== undefined && { appliedVersion: detail.appliedVersion }),
        ...(detail.expiresMs !== undefined && { expiresMs: detail.expiresMs }),
      });
      return toProposal(row);
    });
  }

  /** How many proposals are in each state (every state present, 0 when none). */
  countProposalsByState(): Record<ProposalState, number> {
    const counts = Object.fromEntries(PROPOSAL_STATES.map((s) => [s, 0])) as Record<ProposalState, number>;
    for (const r of this.q.countProposals.all() as { state: ProposalState; n: number }[]) {
      if (r.state in counts) counts[r.state] = r.n;
    }
    return counts;
  }

  transitions(proposalId: number): ProposalTransition[] {
    return (this.q.transitions.all(proposalId) as TransitionRow[]).map((r) => ({
      proposalId: r.proposal_id,
      from: r.from_state,
      to: r.to_state,
      atMs: r.at_ms,
      actor: r.actor,
      comment: r.comment,
    }));
  }

  recordApproval(a: Omit<Approval, 'atMs'>): Approval {
    return this.transaction(() => {
      if (!this.getProposal(a.proposalId)) throw new StoreError('NOT_FOUND', `proposal ${a.proposalId} not found`);
      const at = this.now();
      this.q.insertApproval.run(a.proposalId, a.decision, a.actor, a.role, a.comment, at);
      this.writeAudit(at, a.actor, a.role, 'proposal.approval', `proposal:${a.proposalId}`, { decision: a.decision, comment: a.comment });
      return { ...a, atMs: at };
    });
  }

  approvals(proposalId: number): Approval[] {
    return (this.q.approvals.all(proposalId) as ApprovalRow[]).map((r) => ({
      proposalId: r.proposal_id,
      decision: r.decision,
      actor: r.actor,
      role: r.role,
      comment: r.comment,
      atMs: r.at_ms,
    }));
  }

  /** One row per verification attempt recorded in [fromMs, toMs), oldest first. */
  verifications(fromMs: number, toMs: number): Verification[] {
    return (this.q.verifications.all(fromMs, toMs) as VerificationRow[]).map((r) => ({
      proposalId: r.proposal_id,
      verdict: r.verdict,
      evidence: fromJson(r.evidence),
      atMs: r.at_ms,
    }));
  }

  audit(actor: Actor, action: string, target: string, detail: Record<string, unknown> = {}): AuditEntry {
    return this.transaction(() => this.writeAudit(this.now(), actor.name, actor.role, action, target, detail));
  }

  /** Entries with id > sinceId (0: from the start), oldest first, at most `limit` (default 1000). */
  auditLog(filter: { sinceId?: number | undefined; limit?: number | undefined; action?: string | undefined } = {}): AuditEntry[] {
    const params = { sinceId: filter.sinceId ?? 0, action: filter.action ?? null, limit: filter.limit ?? DEFAULT_LIST_LIMIT };
    return (this.q.auditLog.all(params) as AuditRow[]).map(toAudit);
  }

  startRun(kind: string, trigger: string): RunRecord {
    return this.transaction(() => toRun(this.q.startRun.get(kind, trigger, this.now()) as RunRow));
  }

  /** A run finishes once: finishing an unknown run is NOT_FOUND, finishing a finished one a conflict. */
  finishRun(id: number, outcome: 'ok' | 'error' | 'skipped', error = '', detail: Record<string, unknown> = {}): RunRecord {
    return this.transaction(() => {
      const row = this.q.finishRun.get(this.now(), outcome, error, toJson(detail), id) as RunRow | undefined;
      if (row) return toRun(row);
      const existing = this.q.getRun.get(id) as RunRow | undefined;
      if (!existing) throw new StoreError('NOT_FOUND', `run ${id} not found`);
      throw new StoreConflictError(`run ${id} already finished as '${existing.outcome}'`, existing.outcome);
    });
  }

  runs(filter: { kind?: string; limit?: number } = {}): RunRecord[] {
    return (this.q.runs.all({ kind: filter.kind ?? null, limit: filter.limit ?? DEFAULT_LIST_LIMIT }) as RunRow[]).map(toRun);
  }

  /** Marks runs left 'running' as 'error' (interrupted); returns how many. open() calls it: the store has one writing
   *  process (the tuner), so any run still 'running' when it opens belongs to a process that died. */
  markInterruptedRuns(): number {
    return this.transaction(() => this.q.interruptRuns.run(INTERRUPTED, this.now()).changes);
  }

  /** Records one alert as received (firing or resolved); the time is when it arrived (receivedAt), not now. */
  insertAlert(a: AlertInput): number {
    const receivedMs = Date.parse(a.receivedAt);
    if (!Number.isFinite(receivedMs)) throw new StoreError('CONSTRAINT', `alert receivedAt '${a.receivedAt}' is not a time`);
    return Number(
      this.transaction(() =>
        this.q.insertAlert.run(
          receivedMs,
          a.labels['alertname'] ?? '',
          a.labels['severity'] ?? '',
          a.status,
          toJson(a.labels),
          toJson(a.annotations),
          a.startsAt,
          a.fingerprint,
        ),
      ).lastInsertRowid,
    );
  }

  /** Alerts received in [fromMs, toMs), oldest first. */
  alerts(fromMs: number, toMs: number): StoredAlert[] {
    return (this.q.alerts.all(fromMs, toMs) as AlertRow[]).map((r) => ({
      id: r.id,
      receivedMs: r.received_ms,
      alertname: r.alertname,
      severity: r.severity,
      status: r.status,
      labels: fromJson(r.labels),
      annotations: fromJson(r.annotations),
      startsAt: r.starts_at,
      fingerprint: r.fingerprint,
    }));
  }

  /** Records (or, for a week written again, replaces) a report's index row. */
  recordReport(r: ReportRecord): ReportRecord {
    this.transaction(() => this.q.upsertReport.run(r.week, r.generatedMs, r.periodStartMs, r.periodEndMs, toJson(r.summary)));
    return r;
  }

  /** Reports written, newest period first. */
  reports(limit = DEFAULT_LIST_LIMIT): ReportRecord[] {
    return (this.q.reports.all(limit) as ReportRow[]).map((r) => ({
      week: r.week,
      generatedMs: r.generated_ms,
      periodStartMs: r.period_start_ms,
      periodEndMs: r.period_end_ms,
      summary: fromJson(r.summary),
    }));
  }

  private writeAudit(at: number, actor: string, role: string, action: string, target: string, detail: Record<string, unknown>): AuditEntry {
    return toAudit(this.q.insertAudit.get(at, actor, role, action, target, toJson(detail)) as AuditRow);
  }
}
