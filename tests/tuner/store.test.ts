// The tuner store against real files: migrations, round trips (NaN included), proposal state changes with their
// transition/audit rows, append-only triggers seen from a second connection, crash recovery of runs, a kill -9
// of a writing child process that must lose nothing it acknowledged, and the alerts and report index of migration 2.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MIGRATIONS, SCHEMA_VERSION, StoreConflictError, StoreError, TunerStore, migrate, type NewProposal, type SqliteDatabase } from '../../src/tuner/store.js';
import type { Actor, Finding, VerificationEvidence, WindowSummary } from '../../src/tuner/types.js';
import { REPO_ROOT } from '../helpers/shared.js';
import { CRASH_ACTOR, crashProposal, crashSettings } from './store-crash-child.js';

// A second, raw connection: what an operator with the sqlite file (or a bug elsewhere) could do.
const Sqlite = createRequire(import.meta.url)('better-sqlite3') as new (path: string) => SqliteDatabase;

const TUNER: Actor = { name: 'tuner', role: 'system' };
const ALICE: Actor = { name: 'alice', role: 'approver' };

function windowAt(startMs: number, over: Partial<WindowSummary> = {}): WindowSummary {
  const empty = { count: 0, mean: NaN, p50: NaN, p90: NaN, p99: NaN };
  return {
    startMs,
    endMs: startMs + 60_000,
    source: 'registry',
    settingsVersion: 1,
    requests: { finished: 0, errors: 0, rejected: 0, cancelled: 0, running: 0, waiting: 0, meanConcurrency: 0 },
    tokens: { prompt: 0, generated: 0 },
    throughputTokensPerS: 0,
    goodputTokensPerS: 0,
    sloAttainment: NaN,
    latency: { queue: empty, ttft: { ...empty }, interToken: { ...empty }, e2e: { ...empty } },
    batch: { steps: 0, meanSize: 0, fillRatio: 0, meanTokens: 0, meanStepSeconds: 0, meanDecodeStepSeconds: NaN, flushes: { full: 0, timeout: 0, queue_threshold: 0 } },
    kv: { usageRatio: 0, fragmentationRatio: -0, preemptions: 0, prefixHitRatio: Infinity },
    utilization: 0,
    cpuSeconds: -Infinity,
    ...over,
  };
}

function evidence(verdict: VerificationEvidence['verdict']): VerificationEvidence {
  return {
    verdict,
    reasons: [`${verdict} because`],
    method: 'interleaved rounds (A/A control)',
    mirroredRequests: 40,
    quality: {
      positions: 64,
      meanCosine: 0.999,
      minCosine: 0.99,
      greedyAgreement: 1,
      baselinePerplexity: 3.1,
      candidatePerplexity: 3.1,
      perplexityDelta: 0,
      passed: true,
    },
    performance: {
      comparisons: [
        {
          metric: 'ttft',
          baselineN: 0,
          candidateN: 0,
          baselineMedianS: NaN,
          candidateMedianS: NaN,
          relativeChange: NaN,
          u: 0,
          pValue: NaN,
          effectSize: 0,
          outcome: 'same',
        },
      ],
      baselineGoodputPerCore: 10,
      candidateGoodputPerCore: 12,
      goodputChange: 0.2,
    },
    shadowCost: { rssBytes: 1e6, cpuSeconds: 2, wallSeconds: 30 },
    startedMs: 1,
    finishedMs: 2,
  };
}

const FINDING: Finding = {
  kind: 'queueing',
  confidence: 0.97,
  impact: 12.5,
  summary: 'queue time is 83% of e2e',
  evidence: { queueShare: 0.83, pValue: NaN, full: true, note: 'NaN' },
  fromMs: 10_000,
  toMs: 70_000,
};

describe('TunerStore', () => {
  let dir: string;
  let file: string;
  let clockMs: number;
  let store: TunerStore | undefined;
  const open = () => (store = TunerStore.open(file, { now: () => clockMs }));
  const reopen = () => (store?.close(), open());

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tuneloop-store-'));
    file = join(dir, 'nested', 'tuner.db');
    clockMs = 1_000_000;
  });
  afterEach(() => {
    store?.close();
    store = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  describe('schema', () => {
    it('migrates a fresh file (creating its folder) and reopens idempotently', () => {
      const s = open();
      expect(s.schemaVersion()).toBe(SCHEMA_VERSION);
      expect(SCHEMA_VERSION).toBe(MIGRATIONS.length);
      s.commitSettings(crashSettings(1), 'config', 'boot');
      const raw = new Sqlite(file);
      const tables = (raw.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[]).map((r) => r.name);
      expect(tables).toEqual(
        expect.arrayContaining(['approvals', 'audit_log', 'findings', 'proposal_transitions', 'proposals', 'rollups', 'runs', 'settings', 'verifications']),
      );
      expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
      raw.close();
      const again = reopen();
      expect(again.schemaVersion()).toBe(SCHEMA_VERSION);
      expect(again.currentSettings()?.version).toBe(1);
    });

    it('applies each migration step atomically', () => {
      const raw = new Sqlite(':memory:');
      expect(migrate(raw, ['CREATE TABLE a (x);'])).toBe(1);
      expect(() => migrate(raw, ['CREATE TABLE a (x);', 'CREATE TABLE b (x); SELECT * FROM missing;'])).toThrow(/missing/);
      expect(raw.pragma('user_version', { simple: true })).toBe(1);
      expect(raw.prepare("SELECT name FROM sqlite_master WHERE name = 'b'").get()).toBeUndefined();
      raw.close();
    });

    it('refuses a file written by a newer schema with SCHEMA_TOO_NEW', () => {
      open().close();
      store = undefined;
      const raw = new Sqlite(file);
      raw.pragma(`user_version = ${SCHEMA_VERSION + 5}`);
      raw.close();
      const err = ((): unknown => {
        try {
          TunerStore.open(file);
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect(err).toBeInstanceOf(StoreError);
      expect((err as StoreError).code).toBe('SCHEMA_TOO_NEW');
      expect((err as StoreError).message).toContain(`schema is version ${SCHEMA_VERSION + 5}`);
      expect((err as StoreError).message).toContain(`only up to version ${SCHEMA_VERSION}`);
    });

    it('reports a file that is not a database as IO, and allows :memory:', () => {
      const junk = join(dir, 'junk.db');
      writeFileSync(junk, 'not a database, just some text that is long enough to have a header '.repeat(20));
      expect(() => TunerStore.open(junk)).toThrow(expect.objectContaining({ code: 'IO' }) as Error);
      const mem = TunerStore.open(':memory:');
      expect(mem.schemaVersion()).toBe(SCHEMA_VERSION);
      expect(mem.path).toBe(':memory:');
      mem.close();
    });
  });

  describe('rollups and findings', () => {
    it('round-trips summaries faithfully (NaN, ±Infinity, -0) and answers half-open ranges', () => {
      const s = open();
      const ws = [0, 1, 2, 3].map((i) => windowAt(60_000 * i, { settingsVersion: i, goodputTokensPerS: 10 * i }));
      for (const w of [ws[2]!, ws[0]!, ws[3]!, ws[1]!]) s.insertRollup(w);
      const all = s.rollups(0, 240_000);
      expect(all).toEqual(ws);
      expect(Object.is(all[0]!.kv.fragmentationRatio, -0)).toBe(true);
      expect(all[0]!.latency.ttft.p99).toBeNaN();
      expect(all[0]!.kv.prefixHitRatio).toBe(Infinity);
      expect(s.rollups(60_000, 180_000).map((w) => w.startMs)).toEqual([60_000, 120_000]);
      expect(s.rollups(61_000, 120_000)).toEqual([]);
      // Scalar columns for reports; NaN is NULL there (the JSON copy keeps NaN).
      const raw = new Sqlite(file);
      expect(raw.prepare('SELECT goodput, slo_attainment, settings_version FROM rollups WHERE start_ms = 120000').get()).toEqual({
        goodput: 20,
        slo_attainment: null,
        settings_version: 2,
      });
      raw.close();
    });

    it('prunes windows that ended before the cutoff', () => {
      const s = open();
      for (let i = 0; i < 5; i++) s.insertRollup(windowAt(60_000 * i));
      // Windows end at 60k, 120k, …: a cutoff of 120k removes only the first (its end is < 120k).
      expect(s.pruneRollups(120_000)).toBe(1);
      expect(s.pruneRollups(120_001)).toBe(1);
      expect(s.rollups(0, 1e9).map((w) => w.startMs)).toEqual([120_000, 180_000, 240_000]);
    });

    it('stores findings with their run and queries by evidence start', () => {
      const s = open();
      const run = s.startRun('analyze', 'cron');
      const f = s.insertFinding(FINDING, run.id);
      expect(f).toEqual({ ...FINDING, id: 1, createdMs: clockMs, runId: run.id });
      s.insertFinding({ ...FINDING, fromMs: 70_000, toMs: 130_000, confidence: NaN });
      expect(s.findings(0, 70_000)).toEqual([f]);
      const later = s.findings(70_000, 1e9);
      expect(later).toHaveLength(1);
      expect(later[0]!.confidence).toBeNaN();
      expect(later[0]!.runId).toBeNull();
      expect(later[0]!.evidence).toEqual(FINDING.evidence);
    });
  });

  describe('settings history', () => {
    it('numbers versions 1, 2, 3, lists newest first and keeps every earlier version restorable', () => {
      const s = open();
      const v1 = s.commitSettings(crashSettings(1), 'config', 'boot');
      clockMs += 10;
      const v2 = s.commitSettings(crashSettings(2), 'tuner', 'tuner', null, 'bigger batches');
      clockMs += 10;
      expect(v1).toEqual({ version: 1, settings: crashSettings(1), source: 'config', actor: 'boot', proposalId: null, note: '', createdMs: 1_000_000 });
      expect(v2.version).toBe(2);
      // Restoring version 1 is a new version with version 1's settings: history only grows.
      const restored = s.commitSettings(s.settingsVersion(1)!.settings, 'rollback', 'alice', null, 'back to 1');
      expect(restored.version).toBe(3);
      expect(s.currentSettings()).toEqual(restored);
      expect(restored.settings).toEqual(v1.settings);
      expect(s.settingsHistory().map((v) => v.version)).toEqual([3, 2, 1]);
      expect(s.settingsHistory(2).map((v) => v.version)).toEqual([3, 2]);
      expect(s.settingsVersion(2)).toEqual(v2);
      expect(s.settingsVersion(9)).toBeUndefined();
      expect(() => s.commitSettings(crashSettings(4), 'api', 'bob', 42)).toThrow(expect.objectContaining({ code: 'CONSTRAINT' }) as Error);
      expect(s.currentSettings()?.version).toBe(3);
    });

    it('is empty on a fresh store', () => {
      expect(open().currentSettings()).toBeUndefined();
      expect(store!.settingsHistory()).toEqual([]);
    });
  });

  describe('proposals', () => {
    const newProposal = (): NewProposal => ({ ...crashProposal(1), needsApproval: true, expiresMs: 5_000_000 });

    it('walks a full chain with one transition row and one audit row per step', () => {
      const s = open();
      s.commitSettings(crashSettings(1), 'config', 'boot');
      const created = s.createProposal(newProposal(), TUNER);
      expect(created).toMatchObject({
        id: 1,
        state: 'proposed',
        createdMs: clockMs,
        updatedMs: clockMs,
        evidence: null,
        appliedVersion: null,
        needsApproval: true,
        baseVersion: 1,
      });
      expect(s.getProposal(created.id)).toEqual(created);
      const steps: [string, string, Actor, Parameters<TunerStore['transition']>[4]][] = [
        ['proposed', 'verifying', TUNER, {}],
        ['verifying', 'verified', TUNER, { evidence: evidence('pass'), comment: 'shadow passed' }],
        ['verified', 'approved', ALICE, { comment: 'ship it' }],
        ['approved', 'applying', TUNER, {}],
        ['applying', 'watching', TUNER, { appliedVersion: 2, expiresMs: 9_000_000 }],
        ['watching', 'confirmed', TUNER, {}],
      ];
      for (const [from, to, actor, detail] of steps) {
        clockMs += 1000;
        if (to === 'watching') s.commitSettings(created.target, 'tuner', 'tuner', created.id);
        const p = s.transition(created.id, from as never, to as never, actor, detail);
        expect(p.state).toBe(to);
        expect(p.updatedMs).toBe(clockMs);
      }
      const final = s.getProposal(created.id)!;
      expect(final).toMatchObject({ state: 'confirmed', evidence: evidence('pass'), appliedVersion: 2, expiresMs: 9_000_000, createdMs: 1_000_000 });
      const trs = s.transitions(created.id);
      expect(trs.map((t) => [t.from, t.to])).toEqual([[null, 'proposed'], ...steps.map(([f, t]) => [f, t])]);
      expect(trs[3]).toEqual({ proposalId: 1, from: 'verified', to: 'approved', atMs: 1_003_000, actor: 'alice', comment: 'ship it' });
      const audit = s.auditLog({ action: undefined });
      expect(audit.map((a) => a.action)).toEqual(['proposal.proposed', ...steps.map(([, t]) => `proposal.${t}`)]);
      expect(audit.every((a) => a.target === 'proposal:1')).toBe(true);
      expect(audit[3]).toMatchObject({ actor: 'alice', role: 'approver', atMs: 1_003_000, detail: { from: 'verified', to: 'approved', comment: 'ship it' } });
      expect(audit[2]!.detail).toMatchObject({ verdict: 'pass' });
      const vs = s.verifications(0, 1e12);
      expect(vs).toEqual([{ proposalId: 1, verdict: 'pass', evidence: evidence('pass'), atMs: 1_002_000 }]);
      expect(vs[0]!.evidence.performance.comparisons[0]!.pValue).toBeNaN();
      expect(s.verifications(1_002_001, 1e12)).toEqual([]);
      expect(s.currentSettings()?.proposalId).toBe(1);
    });

    it('refuses a transition from the wrong state and changes nothing', () => {
      const s = open();
      const p = s.createProposal(newProposal(), TUNER);
      const before = { p: s.getProposal(p.id), t: s.transitions(p.id), a: s.auditLog() };
      clockMs += 1000;
      const err = ((): unknown => {
        try {
          s.transition(p.id, ['verified', 'approved'], 'applying', TUNER, { evidence: evidence('fail') });
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect(err).toBeInstanceOf(StoreConflictError);
      expect((err as StoreConflictError).code).toBe('CONFLICT');
      expect((err as StoreConflictError).actual).toBe('proposed');
      expect((err as Error).message).toMatch(/proposal 1 is 'proposed', expected 'verified' or 'approved'/);
      expect({ p: s.getProposal(p.id), t: s.transitions(p.id), a: s.auditLog() }).toEqual(before);
      expect(s.verifications(0, 1e12)).toEqual([]);
    });

    it('refuses a move the lifecycle table does not have, naming from → to, and changes nothing', () => {
      const s = open();
      s.commitSettings(crashSettings(1), 'config', 'boot');
      const p = s.createProposal(newProposal(), TUNER);
      const snapshot = () => ({ p: s.getProposal(p.id), t: s.transitions(p.id), a: s.auditLog(), v: s.verifications(0, 1e12) });
      const refused = (fn: () => unknown): StoreError => {
        try {
          fn();
        } catch (e) {
          return e as StoreError;
        }
        throw new Error('the move was not refused');
      };
      const before = snapshot();
      clockMs += 1000;
      // The proposal is in 'proposed' (the compare-and-set would pass): the table alone refuses the move.
      const skip = refused(() => s.transition(p.id, 'proposed', 'applying', TUNER, { evidence: evidence('pass') }));
      expect(skip).toBeInstanceOf(StoreError);
      expect(skip.code).toBe('ILLEGAL_TRANSITION');
      expect(skip.message).toMatch(/illegal proposal transition 'proposed' → 'applying' \(proposal 1\)/);
      expect(skip.message).toContain("from 'proposed': 'verifying', 'expired'");
      expect(snapshot()).toEqual(before);
      // Out of a final state: refused before the proposal is even read, whatever state it is in.
      const back = refused(() => s.transition(p.id, 'confirmed', 'watching', TUNER));
      expect(back.code).toBe('ILLEGAL_TRANSITION');
      expect(back.message).toMatch(/'confirmed' → 'watching'.*from 'confirmed': none/);
      expect(refused(() => s.transition(99, 'confirmed', 'watching', TUNER)).code).toBe('ILLEGAL_TRANSITION');
      expect(snapshot()).toEqual(before);
      // A proposal that really is confirmed cannot be moved back either.
      for (const [from, to] of [
        ['proposed', 'verifying'],
        ['verifying', 'verified'],
        ['verified', 'approved'],
        ['approved', 'applying'],
        ['applying', 'watching'],
        ['watching', 'confirmed'],
      ] as const)
        s.transition(p.id, from, to, TUNER);
      const done = snapshot();
      expect(done.p?.state).toBe('confirmed');
      expect(refused(() => s.transition(p.id, 'confirmed', 'watching', TUNER)).code).toBe('ILLEGAL_TRANSITION');
      expect(refused(() => s.transition(p.id, ['watching', 'confirmed'], 'watching', TUNER)).code).toBe('ILLEGAL_TRANSITION');
      expect(snapshot()).toEqual(done);
    });

    it('tells its listeners once per committed proposal write, after the outermost transaction', () => {
      const s = open();
      s.commitSettings(crashSettings(1), 'config', 'boot');
      const heard: Record<string, number>[] = [];
      const off = s.onProposalsChanged(() => heard.push({ ...s.countProposalsByState() }));
      expect(s.countProposalsByState()).toEqual({
        proposed: 0,
        verifying: 0,
        verified: 0,
        rejected: 0,
        approved: 0,
        applying: 0,
        watching: 0,
        confirmed: 0,
        rolled_back: 0,
        expired: 0,
      });
      const p = s.createProposal(newProposal(), TUNER);
      expect(heard.map((c) => c['proposed'])).toEqual([1]);
      s.transaction(() => {
        s.transition(p.id, 'proposed', 'verifying', TUNER);
        s.transition(p.id, 'verifying', 'rejected', TUNER);
        expect(heard).toHaveLength(1);
      });
      expect(heard).toHaveLength(2);
      expect(heard[1]).toMatchObject({ proposed: 0, verifying: 0, rejected: 1 });
      // A failed transaction (and a refused move) tells no one; writes that are not proposals neither.
      expect(() =>
        s.transaction(() => {
          s.createProposal(newProposal(), TUNER);
          throw new Error('changed my mind');
        }),
      ).toThrow('changed my mind');
      expect(() => s.transition(p.id, 'rejected', 'verified', TUNER)).toThrow(/illegal proposal transition/);
      s.audit(ALICE, 'tuner.pause', 'tuner');
      expect(heard).toHaveLength(2);
      // A listener that throws does not fail the committed write.
      const offBad = s.onProposalsChanged(() => {
        throw new Error('gauge broke');
      });
      expect(s.createProposal(newProposal(), TUNER).state).toBe('proposed');
      expect(heard).toHaveLength(3);
      off();
      offBad();
      s.createProposal(newProposal(), TUNER);
      expect(heard).toHaveLength(3);
      expect(s.countProposalsByState()).toMatchObject({ proposed: 2, rejected: 1 });
    });

    it('answers NOT_FOUND for an unknown proposal', () => {
      const s = open();
      expect(() => s.transition(99, 'proposed', 'verifying', TUNER)).toThrow(expect.objectContaining({ code: 'NOT_FOUND', message: 'proposal 99 not found' }) as Error);
      expect(() => s.recordApproval({ proposalId: 99, decision: 'approve', actor: 'alice', role: 'approver', comment: '' })).toThrow(
        expect.objectContaining({ code: 'NOT_FOUND' }) as Error,
      );
      expect(s.getProposal(99)).toBeUndefined();
      expect(s.auditLog()).toEqual([]);
    });

    it('records approvals with who, when and the comment, and audits them', () => {
      const s = open();
      const p = s.createProposal(newProposal(), TUNER);
      clockMs = 2_000_000;
      const a = s.recordApproval({ proposalId: p.id, decision: 'approve', actor: 'alice', role: 'approver', comment: 'looks good' });
      clockMs = 2_000_500;
      s.recordApproval({ proposalId: p.id, decision: 'reject', actor: 'bob', role: 'admin', comment: 'not on a Friday' });
      expect(a).toEqual({ proposalId: 1, decision: 'approve', actor: 'alice', role: 'approver', comment: 'looks good', atMs: 2_000_000 });
      expect(s.approvals(p.id)).toEqual([a, { proposalId: 1, decision: 'reject', actor: 'bob', role: 'admin', comment: 'not on a Friday', atMs: 2_000_500 }]);
      expect(s.auditLog({ action: 'proposal.approval' }).map((e) => [e.actor, e.role, e.atMs, e.detail])).toEqual([
        ['alice', 'approver', 2_000_000, { decision: 'approve', comment: 'looks good' }],
        ['bob', 'admin', 2_000_500, { decision: 'reject', comment: 'not on a Friday' }],
      ]);
    });

    it('lists newest first, filtered by state', () => {
      const s = open();
      for (let i = 0; i < 4; i++) s.createProposal(newProposal(), TUNER);
      // proposed → rejected is not a move of the lifecycle table: a rejection comes after a verification.
      s.transition(2, 'proposed', 'verifying', TUNER);
      s.transition(2, 'verifying', 'rejected', ALICE);
      s.transition(3, 'proposed', 'expired', TUNER);
      expect(s.listProposals().map((p) => p.id)).toEqual([4, 3, 2, 1]);
      expect(s.listProposals({ state: 'proposed' }).map((p) => p.id)).toEqual([4, 1]);
      expect(s.listProposals({ state: ['rejected', 'expired'], limit: 1 }).map((p) => p.id)).toEqual([3]);
      expect(s.listProposals({ state: [] })).toEqual([]);
    });
  });

  describe('audit log', () => {
    it('pages by sinceId, filters by action and caps by limit', () => {
      const s = open();
      for (let i = 0; i < 5; i++) s.audit(ALICE, i % 2 ? 'settings.set' : 'tuner.pause', 'tuner', { i, nan: NaN });
      const all = s.auditLog();
      expect(all.map((e) => e.id)).toEqual([1, 2, 3, 4, 5]);
      expect(all[0]).toEqual({ id: 1, atMs: clockMs, actor: 'alice', role: 'approver', action: 'tuner.pause', target: 'tuner', detail: { i: 0, nan: NaN } });
      expect(s.auditLog({ sinceId: 3 }).map((e) => e.id)).toEqual([4, 5]);
      expect(s.auditLog({ sinceId: 1, limit: 2 }).map((e) => e.id)).toEqual([2, 3]);
      expect(s.auditLog({ action: 'settings.set' }).map((e) => e.id)).toEqual([2, 4]);
    });

    it('cannot be updated or deleted, even with raw SQL on a second connection', () => {
      const s = open();
      const p = s.createProposal({ ...crashProposal(0) }, TUNER);
      s.transition(p.id, 'proposed', 'verifying', TUNER);
      s.transition(p.id, 'verifying', 'verified', TUNER, { evidence: evidence('pass') });
      s.recordApproval({ proposalId: p.id, decision: 'approve', actor: 'alice', role: 'approver', comment: 'ok' });
      s.commitSettings(crashSettings(1), 'config', 'boot');
      const before = { a: s.auditLog(), t: s.transitions(p.id), ap: s.approvals(p.id), v: s.verifications(0, 1e12), h: s.settingsHistory() };
      const raw = new Sqlite(file);
      for (const table of ['audit_log', 'proposal_transitions', 'approvals', 'verifications', 'settings']) {
        const column = table === 'settings' ? 'note' : table === 'verifications' ? 'verdict' : 'actor';
        expect(() => raw.prepare(`UPDATE ${table} SET ${column} = 'mallory'`).run()).toThrow(`${table} is append-only: UPDATE refused`);
        expect(() => raw.prepare(`DELETE FROM ${table}`).run()).toThrow(`${table} is append-only: DELETE refused`);
      }
      raw.close();
      expect({ a: s.auditLog(), t: s.transitions(p.id), ap: s.approvals(p.id), v: s.verifications(0, 1e12), h: s.settingsHistory() }).toEqual(before);
    });
  });

  describe('transactions', () => {
    it('rolls back every write of a failed transaction; a nested failure only its savepoint', () => {
      const s = open();
      expect(() =>
        s.transaction(() => {
          s.commitSettings(crashSettings(1), 'api', 'alice');
          s.audit(ALICE, 'settings.set', 'settings');
          throw new Error('changed my mind');
        }),
      ).toThrow('changed my mind');
      expect(s.currentSettings()).toBeUndefined();
      expect(s.auditLog()).toEqual([]);
      const version = s.transaction(() => {
        const v = s.commitSettings(crashSettings(1), 'api', 'alice');
        expect(() =>
          s.transaction(() => {
            s.audit(ALICE, 'inner', 'x');
            throw new Error('inner');
          }),
        ).toThrow('inner');
        s.audit(ALICE, 'outer', 'x');
        return v.version;
      });
      expect(version).toBe(1);
      expect(s.auditLog().map((e) => e.action)).toEqual(['outer']);
    });
  });

  describe('runs', () => {
    it('starts, finishes once, and lists newest first by kind', () => {
      const s = open();
      const a = s.startRun('monitor', 'cron');
      clockMs += 250;
      const b = s.startRun('analyze', 'api');
      expect(a).toEqual({ id: 1, kind: 'monitor', trigger: 'cron', startedMs: 1_000_000, finishedMs: null, outcome: 'running', error: '', detail: {} });
      clockMs += 250;
      expect(s.finishRun(a.id, 'ok', '', { windows: 1 })).toEqual({ ...a, finishedMs: 1_000_500, outcome: 'ok', detail: { windows: 1 } });
      expect(() => s.finishRun(a.id, 'error', 'again')).toThrow(StoreConflictError);
      expect(() => s.finishRun(77, 'ok')).toThrow(expect.objectContaining({ code: 'NOT_FOUND' }) as Error);
      s.finishRun(b.id, 'skipped', 'engine busy');
      expect(s.runs().map((r) => [r.id, r.outcome, r.error])).toEqual([
        [2, 'skipped', 'engine busy'],
        [1, 'ok', ''],
      ]);
      expect(s.runs({ kind: 'monitor' }).map((r) => r.id)).toEqual([1]);
      expect(s.runs({ limit: 1 }).map((r) => r.id)).toEqual([2]);
    });

    it("marks runs left 'running' by a dead process as interrupted errors on reopen", () => {
      const s = open();
      const left = s.startRun('analyze', 'cron');
      const done = s.startRun('monitor', 'cron');
      s.finishRun(done.id, 'ok');
      expect(s.interruptedRunsAtOpen).toBe(0);
      clockMs = 3_000_000;
      const again = reopen();
      expect(again.interruptedRunsAtOpen).toBe(1);
      expect(again.runs({ kind: 'analyze' })[0]).toEqual({ ...left, outcome: 'error', error: 'interrupted (process exited during the run)', finishedMs: 3_000_000 });
      expect(again.runs({ kind: 'monitor' })[0]!.outcome).toBe('ok');
      expect(reopen().interruptedRunsAtOpen).toBe(0);
    });
  });

  it('loses nothing acknowledged when the writer is killed with SIGKILL', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'tests', 'tuner', 'store-crash-child.ts'), file], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const lines: string[] = [];
    const closed = new Promise<void>((resolve) =>
      createInterface({ input: child.stdout })
        .on('line', (l) => lines.push(l))
        .on('close', resolve),
    );
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
    // Kill ~300 ms into the write loop, once at least one full iteration was acknowledged.
    const readyMs = await new Promise<number>((resolve, reject) => {
      const poll = setInterval(() => {
        if (lines.includes('ready') && lines.some((l) => l.startsWith('verifying '))) {
          clearInterval(poll);
          resolve(Date.now());
        }
        if (child.exitCode !== null) {
          clearInterval(poll);
          reject(new Error(`child exited early: ${stderr}`));
        }
      }, 5);
    });
    await new Promise((r) => setTimeout(r, Math.max(0, 300 - (Date.now() - readyMs))));
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
    await closed;

    const acked = lines.map((l) => l.split(' ')).filter((w) => w.length >= 2 && /^\d+$/.test(w[1]!));
    const settingsAcks = acked.filter((w) => w[0] === 'settings').map((w) => ({ version: Number(w[1]), i: Number(w[2]) }));
    const verifyingAcks = acked.filter((w) => w[0] === 'verifying').map((w) => Number(w[1]));
    expect(settingsAcks.length).toBeGreaterThan(0);

    const raw = new Sqlite(file);
    expect(raw.pragma('integrity_check', { simple: true })).toBe('ok');
    raw.close();
    const s = open();
    for (const { version, i } of settingsAcks) {
      expect(s.settingsVersion(version)).toMatchObject({ settings: crashSettings(i), note: `iteration ${i}` });
    }
    const current = s.currentSettings()!;
    expect(current.version).toBeGreaterThanOrEqual(settingsAcks.at(-1)!.version);
    // Whatever the last committed version is, it is whole: its settings are exactly what its iteration wrote.
    expect(current.settings).toEqual(crashSettings(Number(current.note.split(' ')[1])));
    expect(s.settingsHistory(1e6).map((v) => v.version)).toEqual(Array.from({ length: current.version }, (_, k) => current.version - k));
    for (const id of verifyingAcks) {
      expect(s.getProposal(id)?.state).toBe('verifying');
      expect(s.transitions(id).map((t) => t.to)).toEqual(['proposed', 'verifying']);
    }
    // Atomicity: every proposal's transition rows and audit rows went in together.
    const audits = s.auditLog({ limit: 1e6 });
    for (const p of s.listProposals({ limit: 1e6 })) {
      expect(audits.filter((a) => a.target === `proposal:${p.id}`).length).toBe(s.transitions(p.id).length);
      expect(audits.filter((a) => a.target === `proposal:${p.id}`).every((a) => a.actor === CRASH_ACTOR.name)).toBe(true);
    }
  });
});

describe('TunerStore alerts and report index (migration 2)', () => {
  let dir: string;
  let file: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tuneloop-store2-'));
    file = join(dir, 'tuner.db');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const alert = (receivedAt: string, alertname: string, severity?: string, status: 'firing' | 'resolved' = 'firing') => ({
    receivedAt,
    status,
    labels: { alertname, ...(severity ? { severity } : {}), instance: 'h:8080' },
    annotations: { summary: `${alertname} fired`, value: 'NaN' },
    startsAt: '2026-03-03T10:00:00Z',
    fingerprint: `fp-${alertname}`,
  });

  it('upgrades a version-1 file in place, keeping its data', () => {
    const raw = new Sqlite(file);
    migrate(raw, MIGRATIONS.slice(0, 1));
    raw.prepare(`INSERT INTO settings (version, settings, source, actor, proposal_id, note, created_ms) VALUES (1, '{}', 'config', 'boot', NULL, 'v1 file', 5)`).run();
    raw.close();
    const s = TunerStore.open(file);
    try {
      expect(s.schemaVersion()).toBe(2);
      expect(s.settingsVersion(1)?.note).toBe('v1 file');
      expect(s.alerts(0, Infinity)).toEqual([]);
      expect(s.reports()).toEqual([]);
    } finally {
      s.close();
    }
  });

  it('keeps alerts by arrival time, half-open, oldest first, and never rewrites them', () => {
    const s = TunerStore.open(file);
    try {
      const a = s.insertAlert(alert('2026-03-03T10:05:00.000Z', 'TuneloopQueueGrowing', 'warning'));
      s.insertAlert(alert('2026-03-03T10:01:00.000Z', 'TuneloopTtftP99High', 'critical'));
      s.insertAlert(alert('2026-03-03T10:10:00.000Z', 'NoSeverity', undefined, 'resolved'));
      const from = Date.parse('2026-03-03T10:01:00.000Z'),
        to = Date.parse('2026-03-03T10:10:00.000Z');
      const got = s.alerts(from, to);
      expect(got.map((x) => x.alertname)).toEqual(['TuneloopTtftP99High', 'TuneloopQueueGrowing']);
      expect(got[1]).toEqual({
        id: a,
        receivedMs: Date.parse('2026-03-03T10:05:00.000Z'),
        alertname: 'TuneloopQueueGrowing',
        severity: 'warning',
        status: 'firing',
        labels: { alertname: 'TuneloopQueueGrowing', severity: 'warning', instance: 'h:8080' },
        annotations: { summary: 'TuneloopQueueGrowing fired', value: 'NaN' },
        startsAt: '2026-03-03T10:00:00Z',
        fingerprint: 'fp-TuneloopQueueGrowing',
      });
      expect(s.alerts(to, to + 1)[0]).toMatchObject({ alertname: 'NoSeverity', severity: '', status: 'resolved' });
      expect(() => s.insertAlert(alert('yesterday', 'X'))).toThrow(expect.objectContaining({ code: 'CONSTRAINT' }) as Error);
    } finally {
      s.close();
    }
    const raw = new Sqlite(file);
    expect(() => raw.prepare("UPDATE alerts SET severity = 'info'").run()).toThrow('alerts is append-only: UPDATE refused');
    expect(() => raw.prepare('DELETE FROM alerts').run()).toThrow('alerts is append-only: DELETE refused');
    raw.close();
  });

  it('indexes reports by week, replacing a week written again, newest period first', () => {
    const s = TunerStore.open(file);
    try {
      s.recordReport({ week: '2026-W10', generatedMs: 100, periodStartMs: 1000, periodEndMs: 2000, summary: { requests: 5, sloAttainment: NaN } });
      s.recordReport({ week: '2026-W11', generatedMs: 200, periodStartMs: 2000, periodEndMs: 3000, summary: {} });
      s.recordReport({ week: '2026-W10', generatedMs: 300, periodStartMs: 1000, periodEndMs: 2000, summary: { requests: 6 } });
      expect(s.reports()).toEqual([
        { week: '2026-W11', generatedMs: 200, periodStartMs: 2000, periodEndMs: 3000, summary: {} },
        { week: '2026-W10', generatedMs: 300, periodStartMs: 1000, periodEndMs: 2000, summary: { requests: 6 } },
      ]);
      expect(s.reports(1).map((r) => r.week)).toEqual(['2026-W11']);
    } finally {
      s.close();
    }
  });
});
