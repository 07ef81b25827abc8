// The four-eyes rule (auth.requireDistinctApprover) end to end on the real tuner and real HTTP: the approver whose
// POST /api/tuner/run produced a verified proposal may not approve it (403 forbidden), another approver may; and a
// proposal verified against settings that are no longer live is refused with 409 (the stale approval). The
// quickest proposal that waits for a human: the mis-set batching of closed-loop.test.ts with autoApply empty, so even
// a batching change needs an approval.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashToken } from '../../src/controlplane/auth.js';
import { startTunedServer, testConfig, type TunedServer } from './harness.js';

const SECOND_APPROVER = 'second-approver-token-0123456789';

describe('auth.requireDistinctApprover', () => {
  let h: TunedServer;
  beforeAll(async () => {
    // The harness's tokens for every role, plus a second approver (a config's token list replaces the harness's).
    const tokens = [...testConfig('/tmp').auth.tokens, { name: 'approver-2', role: 'approver' as const, sha256: hashToken(SECOND_APPROVER) }];
    h = await startTunedServer({
      config: {
        // The weights the batching proof was calibrated on (the default before `native`), as in closed-loop.test.ts.
        model: { weights: 'f32' },
        scheduler: { maxBatchSize: 1 },
        // One candidate: the run verifies its proposals one after another, and one is all this needs.
        tuner: { autoApply: [], maxCandidates: 1 },
        verify: { shadowShare: 0.5, minSamples: 12 },
        auth: { tokens, requireDistinctApprover: true },
      },
    });
  });
  afterAll(async () => {
    await h?.stop();
  });

  /** POST /api/tuner/run as the approver under load; wait for its verification; the first proposal's id. */
  async function verifiedProposal(): Promise<number> {
    await h.load({ clients: 8, seconds: 4 });
    const run = await h.api('/api/tuner/run', { method: 'POST', role: 'approver' });
    expect(run.status).toBe(202);
    const proposals = run.body.run.proposals as { id: number; needsApproval: boolean }[];
    expect(proposals.length).toBeGreaterThan(0);
    expect(proposals[0]!.needsApproval).toBe(true);
    const ac = new AbortController();
    const traffic = h.load({ clients: 8, seconds: 120, signal: ac.signal });
    await h.tuned.tuner.idle();
    ac.abort();
    await traffic;
    const id = proposals[0]!.id;
    const detail = await h.api(`/api/proposals/${id}`, { role: 'viewer' });
    expect(detail.body.state, JSON.stringify(detail.body.evidence?.reasons)).toBe('verified');
    expect(detail.body.transitions[0].actor).toBe('approver-user');
    return id;
  }
  const approveAsSecond = (id: number) =>
    fetch(`${h.url}/api/proposals/${id}/approve`, {
      method: 'POST',
      headers: { authorization: `Bearer ${SECOND_APPROVER}`, 'content-type': 'application/json' },
      body: '{"comment":"four eyes"}',
    });

  it('refuses the requester, refuses a stale approval (409), and lets another approver approve a current one', async () => {
    const stale = await verifiedProposal();
    const own = await h.api(`/api/proposals/${stale}/approve`, { method: 'POST', role: 'approver', body: { comment: 'mine' } });
    expect(own.status).toBe(403);
    expect(own.body.error.code).toBe('forbidden');
    expect(own.body.error.message).toContain('requireDistinctApprover');
    expect((await h.api(`/api/proposals/${stale}`, { role: 'viewer' })).body.state).toBe('verified');

    // The live settings move on to version 2 (as a restart with an edited config file commits one; REST cannot
    // restore the version that is already live): what was verified against version 1 may no longer be approved, by
    // anyone, and nothing is applied.
    h.store.commitSettings(h.store.currentSettings()!.settings, 'config', 'operator', null, 'config file edited');
    const conflict = await approveAsSecond(stale);
    const body = (await conflict.json()) as { error: { code: string; message: string } };
    expect([conflict.status, body.error.code]).toEqual([409, 'conflict']);
    expect(body.error.message).toMatch(/live settings changed since proposal \d+ was verified \(version 1 → 2\)/);
    expect((await h.api(`/api/proposals/${stale}`, { role: 'viewer' })).body).toMatchObject({ state: 'verified', approvals: [] });
    expect((await h.api('/api/config', { role: 'viewer' })).body).toMatchObject({ version: 2, settings: { scheduler: { maxBatchSize: 1 } } });

    // The stale proposal does not block verifying the same change again against the live version.
    const id = await verifiedProposal();
    expect(id).not.toBe(stale);
    // The same change as the stale one (with the stale proposal counted as open, the optimizer fell back to a worse one).
    const changeOf = async (n: number) => (await h.api(`/api/proposals/${n}`, { role: 'viewer' })).body.candidate.change;
    expect(await changeOf(id)).toEqual(await changeOf(stale));
    expect((await h.api(`/api/proposals/${id}`, { role: 'viewer' })).body.baseVersion).toBe(2);
    const res = await approveAsSecond(id);
    const other = (await res.json()) as { proposal: { state: string } };
    expect(res.status).toBe(200);
    expect(['approved', 'applying', 'watching']).toContain(other.proposal.state);
    const approvals = (await h.api(`/api/proposals/${id}`, { role: 'viewer' })).body.approvals as { actor: string; decision: string }[];
    expect(approvals).toEqual([expect.objectContaining({ actor: 'approver-2', decision: 'approve' })]);
    await h.tuned.tuner.idle();
  });
});
