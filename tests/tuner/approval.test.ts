// Proofs 2 and 3 of the tuner issue, on the real engine and real HTTP.
// 3: a compute-bound workload (step time growing with the batch at full utilization) leads to a quantization
//    proposal; it is verified on shadow traffic and then *waits* for a human (cold knob, policy); wrong tokens get
//    401/403; approval applies it through a reload with zero failed requests; it shows in /api/config and /metrics;
//    an admin rollback restores the earlier version.
// 2: the same proposal verified against a deliberately corrupted candidate model (test-only shadow loader) fails the
//    0.98 similarity bar, is rejected with the evidence, and is never applied.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../../src/engine/index.js';
import { writeCorruptedModel } from '../helpers/corrupt-model.js';
import { TempModels } from '../helpers/synthetic.js';
import { startTunedServer, type TunedServer } from './harness.js';

/** Load stepping through concurrency levels so the windows show how step time grows with the batch. */
async function computeBoundLoad(h: TunedServer): Promise<void> {
  for (const clients of [1, 2, 4, 8, 16]) await h.load({ clients, seconds: 2.5, tickS: 1.2, outputLen: 32 });
}

const QUANT = { scheduler: { maxBatchSize: 16 } };
const VERIFY = { shadowShare: 0.5, minSamples: 12 };

async function runUntilIdle(h: TunedServer, role: 'approver' | 'admin' = 'approver') {
  const run = await h.api('/api/tuner/run', { method: 'POST', role });
  expect(run.status).toBe(202);
  const ac = new AbortController();
  const traffic = h.load({ clients: 4, seconds: 120, signal: ac.signal });
  await h.tuned.tuner.idle();
  ac.abort();
  const report = await traffic;
  return {
    run: run.body.run as { findings: { kind: string }[]; proposals: { id: number; needsApproval: boolean; candidate: { change: { layout?: { weights?: string } } } }[] },
    report,
  };
}

describe('a quantization proposal waits for a human', () => {
  let h: TunedServer;
  const models = new TempModels();
  beforeAll(async () => {
    // A model big enough that decode is bound by weight traffic (47 MB of f32 weights), where q8_0 (the old int8) really
    // is faster; on the 9.7 MB shipped model it is not (verification rightly rejects it there: see the closing note).
    // The live policy is the default, native: this file's f32, so the tuner's lighter step is q8_0.
    const model = models.write({
      dim: 512,
      nLayers: 4,
      nHeads: 8,
      nKvHeads: 4,
      ffnDim: 1408,
      nVocab: 320,
      contextLength: 512,
      ropeTheta: 10000,
      rmsEps: 1e-5,
      tiedEmbeddings: false,
    });
    h = await startTunedServer({ model, config: { ...QUANT, verify: VERIFY } });
  });
  afterAll(async () => {
    await h?.stop();
    models.cleanup();
  });

  it('is verified, approved over REST, applied by reload without failures, visible, and rolled back by an admin', async () => {
    await computeBoundLoad(h);
    const { run } = await runUntilIdle(h);
    expect(run.findings.map((f) => f.kind)).toContain('compute_bound');
    const quant = run.proposals.find((p) => p.candidate.change.layout?.weights === 'q8_0');
    expect(quant, JSON.stringify(run.proposals.map((p) => p.candidate.change))).toBeDefined();
    expect(quant!.needsApproval).toBe(true);

    const waiting = await h.api(`/api/proposals/${quant!.id}`, { role: 'viewer' });
    expect(waiting.body.state, JSON.stringify(waiting.body.evidence?.reasons)).toBe('verified');
    expect(waiting.body.evidence.quality.meanCosine).toBeGreaterThanOrEqual(0.98);
    expect((await h.api('/api/proposals?state=verified', { role: 'viewer' })).body.proposals.map((p: { id: number }) => p.id)).toContain(quant!.id);
    // Nothing changed while it waits.
    expect(h.engine.info.weights).toBe('native');

    // Wrong tokens: none → 401, a viewer → 403.
    const anon = await fetch(`${h.url}/api/proposals/${quant!.id}/approve`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer nope' },
      body: '{}',
    });
    expect(anon.status).toBe(401);
    expect((await h.api(`/api/proposals/${quant!.id}/approve`, { method: 'POST', role: 'viewer', body: {} })).status).toBe(403);

    // Approve while traffic flows: the reload must not fail a single request.
    const ac = new AbortController();
    const traffic = h.load({ clients: 4, seconds: 60, signal: ac.signal });
    await new Promise((r) => setTimeout(r, 500));
    const ok = await h.api(`/api/proposals/${quant!.id}/approve`, { method: 'POST', role: 'approver', body: { comment: 'q8_0 looks safe' } });
    expect(ok.status).toBe(200);
    // Approving twice is harmless.
    expect((await h.api(`/api/proposals/${quant!.id}/approve`, { method: 'POST', role: 'approver', body: {} })).status).toBe(200);
    await h.tuned.tuner.idle();
    await new Promise((r) => setTimeout(r, 500));
    ac.abort();
    const during = await traffic;
    expect(Object.keys(during.errors).filter((k) => k !== 'aborted')).toEqual([]);
    expect(during.requests.completed).toBeGreaterThan(0);

    expect(h.engine.info.weights).toBe('q8_0');
    const cfg = await h.api('/api/config', { role: 'viewer' });
    expect(cfg.body).toMatchObject({ version: 2, source: 'tuner', settings: { layout: { weights: 'q8_0' } } });
    const metrics = await (await fetch(`${h.url}/metrics`)).text();
    expect(metrics).toMatch(/tuneloop_config_info\{[^}]*weights="q8_0"/);
    expect(metrics).toMatch(/tuneloop_config_changes_total\{[^}]*knob="weights"[^}]*source="tuner"[^}]*\} 1/);
    const detail = await h.api(`/api/proposals/${quant!.id}`, { role: 'viewer' });
    expect(detail.body.approvals).toEqual([expect.objectContaining({ decision: 'approve', actor: 'approver-user', comment: 'q8_0 looks safe' })]);

    // Rollback: approvers may not, admins may.
    expect((await h.api('/api/config/rollback/1', { method: 'POST', role: 'approver', body: {} })).status).toBe(403);
    const rb = await h.api('/api/config/rollback/1', { method: 'POST', role: 'admin', body: { comment: 'back to native' } });
    expect(rb.status).toBe(200);
    expect(h.engine.info.weights).toBe('native');
    const after = await h.api('/api/config', { role: 'viewer' });
    expect(after.body).toMatchObject({ version: 3, source: 'rollback', settings: { layout: { weights: 'native' } } });
    const history = await h.api('/api/config/history', { role: 'viewer' });
    expect(history.body.versions.map((v: { version: number; source: string }) => [v.version, v.source])).toEqual([
      [3, 'rollback'],
      [2, 'tuner'],
      [1, 'config'],
    ]);
    // Approving something verified against version 1 after the live settings moved is a conflict.
    const stale = (await h.api('/api/proposals?state=verified', { role: 'viewer' })).body.proposals as { id: number }[];
    for (const p of stale) expect((await h.api(`/api/proposals/${p.id}/approve`, { method: 'POST', role: 'approver', body: {} })).status).toBe(409);
    const audit = (await h.api('/api/audit?action=config.rollback', { role: 'viewer' })).body;
    expect(JSON.stringify(audit)).toContain('admin-user');
  });
});

describe('a candidate that hurts quality', () => {
  let h: TunedServer;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tuneloop-corrupt-'));
    const corrupt = join(dir, 'corrupt.gguf');
    writeCorruptedModel(corrupt, 2);
    h = await startTunedServer({
      config: { ...QUANT, verify: VERIFY },
      // Test-only: the candidate shadow loads a corrupted copy of the model (same tokenizer and shapes).
      loadShadowEngine: (opts, role) => Engine.load(role === 'candidate' ? { ...opts, model: corrupt } : opts),
    });
  });
  afterAll(async () => {
    await h?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('is rejected by verification with the similarity evidence, and never applied', async () => {
    await computeBoundLoad(h);
    const { run } = await runUntilIdle(h);
    expect(run.proposals.length).toBeGreaterThan(0);
    for (const p of run.proposals) {
      const d = (await h.api(`/api/proposals/${p.id}`, { role: 'viewer' })).body;
      expect(d.state).toBe('rejected');
      expect(d.evidence.verdict).toBe('fail');
      expect(d.evidence.quality.meanCosine).toBeLessThan(0.98);
      expect(d.evidence.reasons.join(' ')).toMatch(/cosine/i);
      expect((d.transitions as { to: string }[]).map((t) => t.to)).not.toContain('applying');
    }
    const cfg = await h.api('/api/config', { role: 'viewer' });
    expect(cfg.body.version).toBe(1);
    expect(h.engine.info.weights).toBe('native');
    const metrics = await (await fetch(`${h.url}/metrics`)).text();
    expect(metrics).toMatch(/tuneloop_verification_verdicts_total\{verdict="fail"\} [1-9]/);
  });
});
