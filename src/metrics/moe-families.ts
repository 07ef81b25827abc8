// Mixture-of-Experts and KV-size families, read from engine.stats().moe and engine.info (docs/metrics.md, "MoE").
// A dense model has no `moe` section: its engine contributes no series to the tuneloop_moe_* families, and none to
// the parameter gauges (which only an MoE model's info states). KV bytes per token are reported for any model whose
// engine states them (MLA shrinks them; kind="mha" is what plain multi-head attention would need).
import type { FamilyBuilder } from './families.js';
import { imbalanceSeries, routedTokenSeries } from './expert-routing.js';

export function defineMoeFamilies(f: FamilyBuilder): void {
  f.labelled(
    'tuneloop_moe_expert_tokens_total',
    'Tokens routed to each expert of each MoE layer (a token counts once per expert it selects); at most 64 layer and 64 expert values, the rest summed as "other".',
    'counter',
    (s) => (s.stats.moe ? routedTokenSeries(s.stats.moe.moeLayers, s.stats.moe.tokensPerExpert) : []),
  );
  f.labelled(
    'tuneloop_moe_expert_load_imbalance_ratio',
    'Max over mean of the tokens routed to the experts of a layer, over the tokens routed since the previous scrape that reported the layer (1 = balanced; absent while the window holds fewer than 8 tokens per expert).',
    'gauge',
    (s) => (s.stats.moe ? imbalanceSeries(s.stats.moe.moeLayers, s.expertImbalance) : []),
  );
  f.labelled(
    'tuneloop_moe_alltoall_seconds_total',
    'Time each expert-parallel rank spent in all-to-alls (the combine after routed experts; injected delay included).',
    'counter',
    (s) => (s.stats.moe?.allToAllSeconds ?? []).map((v, rank) => [{ rank }, v]),
  );
  f.labelled('tuneloop_moe_alltoalls_total', 'Expert-parallel all-to-all operations run.', 'counter', (s) => (s.stats.moe ? [[{}, s.stats.moe.allToAlls]] : []));
  f.labelled('tuneloop_moe_expert_busy_seconds_total', 'Time each expert-parallel rank spent in routed-expert matmuls.', 'counter', (s) =>
    (s.stats.moe?.expertSecondsPerRank ?? []).map((v, rank) => [{ rank }, v]),
  );
  f.labelled('tuneloop_moe_redundant_experts', 'Experts replicated on a second rank (the redundantExperts knob).', 'gauge', (s) =>
    s.stats.moe ? [[{}, s.stats.moe.redundantExperts.length]] : [],
  );
  f.labelled(
    'tuneloop_moe_experts',
    'Experts per MoE layer: kind="routed" (the router chooses among them), "used" (chosen per token, top-k), "shared" (every token).',
    'gauge',
    (s) =>
      s.stats.moe
        ? [
            [{ kind: 'routed' }, s.stats.moe.expertCount],
            [{ kind: 'used' }, s.stats.moe.expertUsed],
            [{ kind: 'shared' }, s.stats.moe.sharedExperts],
          ]
        : [],
  );
  f.labelled('tuneloop_config_ep_degree', 'Live expert-parallel degree (MoE models).', 'gauge', (s) => (s.stats.moe ? [[{}, s.stats.moe.epDegree]] : []));
  f.labelled(
    'tuneloop_model_parameters',
    'Model parameters: kind="active" is what one token runs through (shared and top-k routed experts), "total" all.',
    'gauge',
    (s) =>
      s.info.moe
        ? [
            [{ kind: 'active' }, s.info.moe.activeParams],
            [{ kind: 'total' }, s.info.moe.totalParams],
          ]
        : [],
  );
  f.labelled('tuneloop_model_active_weight_bytes_per_token', "Weight bytes one token's forward pass reads, as the weights are held (MoE models).", 'gauge', (s) =>
    s.info.moe ? [[{}, s.info.moe.activeWeightBytesPerToken]] : [],
  );
  f.labelled(
    'tuneloop_kv_cache_bytes_per_token',
    'KV-cache bytes one token takes in all layers: kind="model" as stored (MLA: compressed latent plus RoPE part), "mha" what plain multi-head attention with the same heads would take.',
    'gauge',
    (s) => {
      const out: [{ kind: string }, number][] = [];
      if (s.info.kvBytesPerToken !== undefined) out.push([{ kind: 'model' }, s.info.kvBytesPerToken]);
      if (s.info.kvBytesPerTokenMha !== undefined) out.push([{ kind: 'mha' }, s.info.kvBytesPerTokenMha]);
      return out;
    },
  );
}
