// Issue 17 end to end: the shipped tiny DeepSeek-style model (deepseek2: MLA + MoE, routing trained skewed) served at
// epDegree 2 over real HTTP, fed Shakespeare prompts whose routing leaves the layers' busiest expert-parallel ranks
// ~1.29× the even share of routed tokens. A tuner cycle triggered over REST finds `expert_imbalance` (routing counts as
// evidence) and proposes both answers, priced by the cost model's MoE term: replicate the hot experts on two ranks, and
// go back to one rank (no all-to-alls: on one box they cost most of this tiny model's step). Both are verified on
// shadow engines loaded with the baseline's and the candidate's layout; the replicas' gain is too small to measure
// (its speed verdict is noise here: rejected unless pass), the single rank passes by a wide margin and an approver applies it:
// the engine reloads with that layout and its greedy outputs are unchanged. A second case loads the proposed replica
// set as the shadow did and checks it by the routing counts: the engine reports exactly that set, outputs are
// unchanged, and the busiest rank's share comes down.
//
// Nothing here is judged by wall time but the verdicts: the finding and the per-rank loads come from the routing
// counts (exact for a given prompt set at temperature 0), outputs from greedy text and the shadows' teacher-forced
// logits. The replication speed verdict is not asserted (its saving is ~1%, noise on this box); the single-rank pass has
// several times the bar.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { embeddedModelPath } from '../../src/defaults.js';
import { Engine } from '../../src/engine/index.js';
import type { ExpertRef } from '../../src/engine/types.js';
import { runLoad } from '../../src/loadgen/index.js';
import type { LoadReport } from '../../src/loadgen/report.js';
import { layoutBalance } from '../../src/tuner/expert-load.js';
import { RANK_IMBALANCE } from '../../src/tuner/analyze.js';
import { waitFor } from '../helpers/serving.js';
import { startTunedServer, type TunedServer } from './harness.js';

/** Prompts (built-in loadgen openings and lines of models/validation-slice.txt) whose routing at epDegree 2 gives a
 *  layout balance of 1.26–1.40 (the layers' busiest ranks serve that much over the even share), prompt by prompt (24 greedy tokens, probed
 *  one by one; the built-in set as a whole gives 1.21, below RANK_IMBALANCE 1.25; these together ≈ 1.29). */
const SKEWED_PROMPTS = [
  'MENENIUS:\nI tell you, friends, most charitable care',
  'GREMIO:\nYou are too blunt: go to it orderly.',
  'GLOUCESTER:\nWhy, what a peevish fool was that of Crete,',
  'CORIOLANUS:\nYou common cry of curs! whose breath I hate',
  'First Citizen:\nBefore we proceed any further, hear me speak.',
  "MERCUTIO:\nNay, I'll conjure too. Romeo! humours! madman!",
  'BAPTISTA:\nGood morrow, neighbour Gremio.\nGod save you, gentlemen!',
  'TRANIO:\nOf Pisa, sir; son to Vincentio.',
];

const key = (xs: readonly ExpertRef[]): string[] => xs.map((r) => `${r.layer}:${r.expert}`).sort();

describe('closed loop on the tiny DeepSeek model: skewed routing → expert replication', () => {
  let h: TunedServer;
  beforeAll(async () => {
    h = await startTunedServer({
      model: embeddedModelPath('tuneloop-deepseek-tiny')!,
      // Two expert-parallel ranks of one thread each: replication is proposed on the live degree only above 1.
      config: {
        model: { epDegree: 2, threads: 2 },
        // The cycle is about the expert layout: a scheduler change (tail latency finds maxQueueDelayMs) would apply on
        // its own, move the live settings on, and make the layout proposals verified against the old ones stale (409).
        tuner: { forbid: ['maxBatchSize', 'maxBatchTokens', 'maxQueueDelayMs', 'queueGrowThreshold', 'maxQueueLength'] },
        verify: { shadowShare: 0.5, minSamples: 12 },
      },
    });
  });
  afterAll(async () => {
    await h?.stop();
  });

  /** Closed-loop HTTP load on the skewed prompts, greedy, with a monitor tick every 1.5 s (and one at the end). */
  async function skewedLoad(seconds: number, signal?: AbortSignal): Promise<LoadReport> {
    const timer = setInterval(() => void h.tuned.tuner.monitorTick('test'), 1500);
    try {
      return await runLoad({
        url: h.url,
        model: h.config.model.name,
        concurrency: 4,
        durationS: seconds,
        outputLen: '24',
        ignoreEos: true,
        temperature: 0,
        seed: 1,
        slo: h.config.slo,
        prompts: SKEWED_PROMPTS,
        ...(signal ? { signal } : {}),
      });
    } finally {
      clearInterval(timer);
      await h.tuned.tuner.monitorTick('test');
    }
  }

  async function greedy(prompt: string): Promise<string> {
    const res = await fetch(`${h.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: h.config.model.name, prompt, max_tokens: 24, temperature: 0 }),
    });
    expect(res.status).toBe(200);
    return ((await res.json()) as { choices: { text: string }[] }).choices[0]!.text;
  }

  it('finds expert_imbalance, proposes replicas and an expert-parallel change, verifies them on shadows, applies the winner on approval', async () => {
    expect(h.engine.stats().moe?.epDegree).toBe(2);
    const before = await Promise.all(SKEWED_PROMPTS.map(greedy));

    // 10 s: about six monitor windows, enough for the imbalance test's p-value even when CI runs other files beside.
    const load = await skewedLoad(10);
    expect(load.requests.failed).toBe(0);

    const run = await h.api('/api/tuner/run', { method: 'POST', role: 'approver' });
    expect(run.status).toBe(202);
    const findings = run.body.run.findings as { kind: string; evidence: Record<string, number | string> }[];
    const finding = findings.find((f) => f.kind === 'expert_imbalance');
    expect(finding, JSON.stringify(findings.map((f) => f.kind))).toBeDefined();
    const ev = finding!.evidence;
    console.log(`finding: ${JSON.stringify(ev)}`);
    expect(ev['metric']).toBe('rank_routed_tokens');
    expect(ev['epDegree']).toBe(2);
    expect(ev['redundantExperts']).toBe('none');
    expect(ev['imbalance'] as number).toBeGreaterThan(RANK_IMBALANCE);
    expect(ev['windows'] as number).toBeGreaterThanOrEqual(3);
    // The routing counts behind it: every MoE layer (1..4) of 8 experts, summed over the judged windows. The statistic
    // is their balance under the live layout (per window, median): the sums give nearly the same figure.
    const moeLayers = h.engine.stats().moe!.moeLayers;
    expect(moeLayers).toEqual([1, 2, 3, 4]);
    const counts = moeLayers.map((l) => String(ev[`routingLayer${l}`]).split(',').map(Number));
    for (const row of counts) {
      expect(row).toHaveLength(8);
      expect(row.every((c) => Number.isInteger(c) && c >= 0)).toBe(true);
    }
    const liveBalance = layoutBalance(moeLayers, counts, 2, []).factor;
    expect(liveBalance).toBeCloseTo(ev['imbalance'] as number, 1);

    type Layout = { epDegree?: number; redundantExperts?: ExpertRef[] };
    type P = {
      id: number;
      needsApproval: boolean;
      candidate: { change: { layout?: Layout }; addresses: string; predicted: { goodputTokensPerS: number; baselineGoodputTokensPerS: number }; rationale: string };
    };
    const proposals = (run.body.run.proposals as P[]).filter((p) => p.candidate.addresses === 'expert_imbalance');
    for (const p of proposals) console.log(`proposal ${p.id}: ${JSON.stringify(p.candidate.change)} ${p.candidate.rationale}`);
    // Replicas on the live degree: the hottest expert of the busiest rank of each layer, which the routing counts
    // say brings the busiest rank down (not a timing: the layout model over the counts).
    const rep = proposals.find((p) => (p.candidate.change.layout?.redundantExperts?.length ?? 0) > 0 && p.candidate.change.layout?.epDegree === undefined);
    expect(rep, JSON.stringify(proposals.map((p) => p.candidate.change))).toBeDefined();
    const replicas = rep!.candidate.change.layout!.redundantExperts!;
    expect(rep!.needsApproval).toBe(true);
    expect(rep!.candidate.predicted.goodputTokensPerS).toBeGreaterThan(rep!.candidate.predicted.baselineGoodputTokensPerS);
    for (const layer of new Set(replicas.map((r) => r.layer))) {
      const row = counts[moeLayers.indexOf(layer)]!;
      const chosen = replicas.filter((r) => r.layer === layer).map((r) => r.expert);
      const ownerHalf = chosen[0]! < 4 ? row.slice(0, 4) : row.slice(4);
      const otherHalf = chosen[0]! < 4 ? row.slice(4) : row.slice(0, 4);
      // Owned by the layer's busier rank, and the hottest experts there (the greedy choice may take a second one of a
      // layer when one replica does not bring its rank near the even share).
      expect(ownerHalf.reduce((a, b) => a + b, 0)).toBeGreaterThan(otherHalf.reduce((a, b) => a + b, 0));
      const hottest = [...ownerHalf].sort((a, b) => b - a).slice(0, chosen.length);
      expect(chosen.map((e) => row[e]).sort((a, b) => b! - a!)).toEqual(hottest);
    }
    const replicatedBalance = layoutBalance(moeLayers, counts, 2, replicas).factor;
    expect(replicatedBalance).toBeLessThan(liveBalance);
    expect(replicatedBalance).toBeLessThan(RANK_IMBALANCE);
    // One rank fewer: what the all-to-alls cost on one box (they dominate a tiny model's step) goes away.
    const fewer = proposals.find((p) => p.candidate.change.layout?.epDegree === 1);
    expect(fewer, JSON.stringify(proposals.map((p) => p.candidate.change))).toBeDefined();
    expect(fewer!.needsApproval).toBe(true);
    expect(fewer!.candidate.predicted.goodputTokensPerS).toBeGreaterThan(fewer!.candidate.predicted.baselineGoodputTokensPerS);

    // Verification on shadow engines (baseline and candidate layouts) while live traffic continues; stop it once
    // the cycle is done.
    const ac = new AbortController();
    const during = skewedLoad(120, ac.signal);
    await h.tuned.tuner.idle();
    ac.abort();
    const duringReport = await during;
    expect(Object.keys(duringReport.errors).filter((k) => k !== 'aborted')).toEqual([]);

    const repDetail = (await h.api(`/api/proposals/${rep!.id}`, { role: 'viewer' })).body;
    const fewerDetail = (await h.api(`/api/proposals/${fewer!.id}`, { role: 'viewer' })).body;
    for (const d of [repDetail, fewerDetail]) console.log(`verdict ${d.id}: ${d.state} ${d.evidence?.verdict} ${JSON.stringify(d.evidence?.reasons)}`);
    // Replication saves ~1% of the step here (the rationale's step ×0.99): no measurable gain is the expected verdict
    // on a shared box (inconclusive, so the tuner rejects it: no reason to change), a pass is possible; never a fail.
    // The outputs under the replica set are the baseline's (the candidate shadow ran it): the quality check.
    // Its speed verdict is wall time on a shared 2-core box, where a ~1% saving is noise either way (a loaded CI run
    // has measured it as a fail): only what follows from the verdict is asserted, and the quality check, which is not
    // timing.
    expect(['pass', 'inconclusive', 'fail']).toContain(repDetail.evidence.verdict);
    expect(repDetail.state).toBe(repDetail.evidence.verdict === 'pass' ? 'verified' : 'rejected');
    expect(repDetail.evidence.quality.meanCosine).toBeGreaterThanOrEqual(0.98);
    expect(repDetail.evidence.quality.greedyAgreement).toBeGreaterThanOrEqual(0.9);
    // Dropping expert parallelism is predicted to more than double goodput and measures so (goodput per core +240% to +525% seen, bar +5%): a pass.
    expect(fewerDetail.evidence.verdict, JSON.stringify(fewerDetail.evidence.reasons)).toBe('pass');
    expect(fewerDetail.state).toBe('verified');
    expect(fewerDetail.evidence.quality.meanCosine).toBeGreaterThanOrEqual(0.98);
    expect(fewerDetail.evidence.quality.greedyAgreement).toBeGreaterThanOrEqual(0.9);
    // Nothing changed while they wait for a human.
    expect(h.engine.stats().moe?.epDegree).toBe(2);

    // The approver applies the verified winner; the engine reloads with its layout.
    const ok = await h.api(`/api/proposals/${fewer!.id}/approve`, { method: 'POST', role: 'approver', body: { comment: 'one box: no all-to-alls' } });
    expect(ok.status).toBe(200);
    await h.tuned.tuner.idle();
    const applied = (await h.api(`/api/proposals/${fewer!.id}`, { role: 'viewer' })).body;
    expect(['watching', 'confirmed']).toContain(applied.state);
    const cfg = await h.api('/api/config', { role: 'viewer' });
    expect(cfg.body.source).toBe('tuner');
    expect(cfg.body.settings.layout.epDegree ?? 1).toBe(1);
    const moe = h.engine.stats().moe!;
    expect(moe.epDegree).toBe(1);
    expect(key(moe.redundantExperts)).toEqual(key(cfg.body.settings.layout.redundantExperts ?? []));
    // Greedy outputs are those of the epDegree 2 engine before the cycle.
    expect(await Promise.all(SKEWED_PROMPTS.map(greedy))).toEqual(before);
  }, 150_000);

  it('the proposed replica set, loaded, is the engine layout, keeps greedy outputs and evens the ranks by the routing counts', async () => {
    // The replication proposal was verified but (inconclusive) not applied; load its layout as the shadow did and
    // check what it does on the same prompts, by the counts.
    const proposals = (await h.api('/api/proposals?limit=100', { role: 'viewer' })).body.proposals as {
      candidate: { change: { layout?: { epDegree?: number; redundantExperts?: ExpertRef[] } } };
    }[];
    const replicas = proposals.map((p) => p.candidate.change.layout).find((l) => l?.redundantExperts?.length && l.epDegree === undefined)!.redundantExperts!;
    const opts = { model: h.config.model.path, threads: 2, epDegree: 2 };
    const plain = await Engine.load(opts);
    const replicated = await Engine.load({ ...opts, redundantExperts: replicas });
    try {
      expect(key(replicated.stats().moe!.redundantExperts)).toEqual(key(replicas));
      const gen = async (e: typeof plain, prompt: string): Promise<string> => (await e.generate({ prompt, maxTokens: 24, temperature: 0 }).result).text;
      for (const p of SKEWED_PROMPTS) expect(await gen(replicated, p)).toBe(await gen(plain, p));
      // Same tokens routed either way (routing does not depend on the layout); the replicas split the hot experts'
      // tokens, so the busiest rank's share of each layer comes down. Stats are published by the engine thread after
      // a step: wait until the last step's are in.
      const routed = (e: Engine): string => JSON.stringify(e.stats().moe!.tokensPerExpert);
      await waitFor(() => routed(replicated) === routed(plain), 2000);
      const m = replicated.stats().moe!;
      expect(m.tokensPerExpert).toEqual(plain.stats().moe!.tokensPerExpert);
      const withoutReplicas = layoutBalance(m.moeLayers, m.tokensPerExpert, 2, []).factor;
      const withReplicas = layoutBalance(m.moeLayers, m.tokensPerExpert, 2, m.redundantExperts).factor;
      console.log(`busiest rank, routing counts of ${SKEWED_PROMPTS.length} prompts: ${withoutReplicas.toFixed(3)}× → ${withReplicas.toFixed(3)}× the even share`);
      expect(withReplicas).toBeLessThan(withoutReplicas);
    } finally {
      await replicated.close();
      await plain.close();
    }
  }, 60_000);
});
