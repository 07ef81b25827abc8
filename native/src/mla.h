// Multi-head Latent Attention (DeepSeek-V2 / V3; GGUF architecture deepseek2), in the absorbed form llama.cpp runs.
//
// Per token x (the normed layer input) and head h:
//   q       = W_q x, or W_qb RMSNorm(W_qa x) with a q_lora bottleneck; q[h] = [q_nope[h] (nope) | q_pe[h] (rope)]
//   [c | k_pe] = W_kv_a x: the latent c (kv_lora values, then RMS-normed) and one RoPE key part shared by every head
//   RoPE (adjacent pairs) on q_pe[h] and k_pe; the paged KV cache stores the row [c | k_pe] once per token
//   (kv_cache.h: kv_lora + rope values, not 2 * heads * head values as plain multi-head attention would).
// The full keys and values would be k[h] = [W_kb[h]^T c | k_pe] and v[h] = W_vb[h] c. Instead of re-expanding every
// cached token, the per-head matrices are folded into the query and the output (the "absorbed" form):
//   q_lat[h] = W_kb[h] q_nope[h]                           (kv_lora wide: q_nope . (W_kb^T c) = q_lat . c)
//   score(t, h) = (q_lat[h] . c_t + q_pe[h] . k_pe_t) * kq_scale
//   o_lat[h] = sum_t softmax(score)(t) c_t                 (attention over the latent: MQA with one KV "head")
//   o[h] = W_vb[h] o_lat[h]; out = W_o [o[0] .. o[H-1]]
// so each step reads the cache once, whatever the number of heads, and prefill uses the same form.
//
// Tensor parallelism splits the query heads (rows of W_q, the heads' W_kb / W_vb, columns of W_o); W_qa and W_kv_a
// are computed on every rank, and every rank keeps the whole latent cache (all of its heads read it).
#pragma once
#include "layers.h"

namespace tl {
namespace layers {

// The MLA attention block of layer `l` from the normed input rs.xn into rs.partial (a partial sum under tensor
// parallelism), writing the layer's latent row of every token into the cache.
void mla_attention(RankState & rs, const ForwardBatch & b, int l, const ShardWeights::Layer & w);

} // namespace layers
} // namespace tl
