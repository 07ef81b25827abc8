// Proof 1 of the tuner issue, end to end on the real engine and real HTTP: batching mis-set (maxBatchSize 1) under 8
// concurrent clients. A run triggered over REST finds the queueing bottleneck, proposes a bigger batch, verifies it
// on shadow traffic, applies it without a human (hot knob, policy auto-apply), the watch window confirms it, and the
// measured goodput of the same workload rises.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTunedServer, type TunedServer } from './harness.js';

describe('closed loop: mis-set batching is found, verified, applied and pays off', () => {
  let h: TunedServer;
  beforeAll(async () => {
    h = await startTunedServer({
      config: {
        scheduler: { maxBatchSize: 1 },
        // The weights this proof was calibrated on (the config default before `native`): the shipped F16 model runs
        // natively twice as fast per token, which leaves batching a smaller share of the HTTP round trip to win.
        model: { weights: 'f32' },
        // Enough mirrored requests quickly: half the traffic (the default 5% is for production volumes).
        verify: { shadowShare: 0.5, minSamples: 12 },
      },
    });
  });
  afterAll(async () => {
    await h?.stop();
  });

  it('rises goodput by batching, with the whole trail in the store and the metrics', async () => {
    const before = await h.load({ clients: 8, seconds: 6 });
    expect(before.requests.failed).toBe(0);

    // Viewers may look but not trigger.
    expect((await h.api('/api/tuner/run', { method: 'POST', role: 'viewer' })).status).toBe(403);
    const run = await h.api('/api/tuner/run', { method: 'POST', role: 'approver' });
    expect(run.status).toBe(202);
    const findings = run.body.run.findings as { kind: string }[];
    expect(findings[0]?.kind).toBe('queueing');
    const proposals = run.body.run.proposals as { id: number; candidate: { change: { scheduler?: { maxBatchSize?: number } } } }[];
    expect(proposals.length).toBeGreaterThan(0);
    expect(proposals[0]!.candidate.change.scheduler?.maxBatchSize).toBeGreaterThan(1);

    // Live traffic continues while the shadows verify; stop it once the cycle (verify + apply) is done.
    const ac = new AbortController();
    const during = h.load({ clients: 8, seconds: 120, signal: ac.signal });
    await h.tuned.tuner.idle();
    ac.abort();
    const duringReport = await during;
    // Requests cut by the abort are 'aborted'; nothing else may fail.
    expect(Object.keys(duringReport.errors).filter((k) => k !== 'aborted')).toEqual([]);

    const detail = await h.api(`/api/proposals/${proposals[0]!.id}`, { role: 'viewer' });
    expect(detail.status).toBe(200);
    expect(detail.body.evidence?.verdict, JSON.stringify(detail.body.evidence?.reasons)).toBe('pass');
    expect(detail.body.evidence.quality.meanCosine).toBeGreaterThanOrEqual(0.98);
    expect(detail.body.evidence.mirroredRequests).toBeGreaterThanOrEqual(12);
    expect(['watching', 'confirmed']).toContain(detail.body.state);
    const states = (detail.body.transitions as { to: string }[]).map((t) => t.to);
    expect(states.slice(0, 6)).toEqual(['proposed', 'verifying', 'verified', 'approved', 'applying', 'watching']);

    const live = await h.api('/api/config', { role: 'viewer' });
    const applied = live.body.settings.scheduler.maxBatchSize as number;
    expect(applied).toBeGreaterThan(1);
    expect(live.body.source).toBe('tuner');
    expect(h.engine.stats().settings.maxBatchSize).toBe(applied);

    const after = await h.load({ clients: 8, seconds: 6 });
    expect(after.requests.failed).toBe(0);
    const rise = after.goodput.outputTokensPerS / before.goodput.outputTokensPerS;
    console.log(
      `goodput ${before.goodput.outputTokensPerS.toFixed(1)} → ${after.goodput.outputTokensPerS.toFixed(1)} tok/s (×${rise.toFixed(2)}), maxBatchSize 1 → ${applied}`,
    );
    expect(rise).toBeGreaterThan(1.3);

    // The watch window (2 checks, 1 s apart) has confirmed it by now.
    await h.tuned.tuner.idle();
    await new Promise((r) => setTimeout(r, 2500));
    expect((await h.api(`/api/proposals/${proposals[0]!.id}`, { role: 'viewer' })).body.state).toBe('confirmed');

    const metrics = await (await fetch(`${h.url}/metrics`)).text();
    expect(metrics).toMatch(/tuneloop_verification_verdicts_total\{verdict="pass"\} [1-9]/);
    expect(metrics).toMatch(/tuneloop_shadow_requests_total [1-9]/);
    expect(metrics).toMatch(/tuneloop_config_changes_total\{[^}]*knob="maxBatchSize"[^}]*source="tuner"[^}]*\} 1/);
    expect(metrics).toMatch(/tuneloop_tuner_proposals\{state="confirmed"\} [1-9]/);
    const audit = await h.api('/api/audit?limit=1000', { role: 'viewer' });
    const actions = (audit.body.entries ?? audit.body) as { action: string }[];
    expect(actions.map((a) => a.action)).toEqual(
      expect.arrayContaining(['tuner.run', 'proposal.proposed', 'proposal.verified', 'proposal.approved', 'proposal.watching', 'proposal.confirmed']),
    );
  });
});
