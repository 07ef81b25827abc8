// The building blocks of a decoder forward pass, shared by every architecture (models/*.cpp compose them): token
// embedding, RoPE, RMSNorm, the attention block (Q/K/V projections, rotation, paged-cache write, causal attention over
// the cache, output projection), the gated MLP (SwiGLU / GeGLU), Gemma's post-norms, the residual add (an all-reduce
// under tensor parallelism) and the output head. Each works on one rank's RankState for one forward batch and times
// itself into the rank's ModelTimes, so per-operation stats mean the same whatever the architecture.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <utility>
#include <vector>

#include "model.h"
#include "quant/types.h"

namespace tl {

struct MoeScratch; // moe.h

// One rank of a model instance: its shard, threads, KV storage, timings and scratch.
struct RankState {
    const int rank;
    const int n_ranks;
    const ModelHParams & hp;
    const ModelLayout & layout;
    const SharedWeights & shared;
    const CpuKernels & kernels;
    Communicator & comm;
    Communicator & comm_moe; // the expert combine (its own injected delay: alltoall_delay_us)
    ShardWeights shard;
    ThreadPool pool;
    KvStorage kv;
    QActs xq;                              // activations of the int8 / int4 kernels
    AlignedBuffer acts[quant::kTypeCount]; // activations of the quant kernels, by format (Q8_0, Q8_1, Q8_K, BF16)
    ModelTimes times;                      // this rank's share (rank_busy / rank_allreduce unused here)
    double busy = 0, allreduce = 0;
    double alltoall = 0;    // seconds in the expert combine (expert parallelism / MoE under tensor parallelism)
    uint64_t alltoalls = 0; // combines (rank 0's count)
    uint64_t a2a_rows = 0;  // routed rows computed away from their token's home rank (see moe.h)
    // What rs.partial holds, said by the op that wrote it and reset by add_residual: by default a share of a sum
    // over the ranks (tensor-parallel attention or FFN); partial_whole: the whole value on every rank (attention or a
    // dense FFN replicated beside expert parallelism, tpDegree 1: set it in any op that writes a replicated
    // partial); partial_moe: a MoE layer's share, summed by the expert combine (timed as the all-to-all).
    bool partial_whole = false, partial_moe = false;
    // Scratch, grown as needed: x/xn/partial full width; q/k/v/att/gate/up local width.
    std::vector<float> x, xn, q, k, v, att, gate, up, partial, scores, rope_cos, rope_sin;
    // The sliding-window layers' RoPE tables when their frequencies differ from the others' (gemma3's local base).
    std::vector<float> rope_cos_swa, rope_sin_swa;
    // MLA (mla.h): the q_lora bottleneck, the full query, per-head inputs of the absorbed products, the heads' values.
    std::vector<float> mla_qa, mla_q, mla_heads, mla_o;
    std::vector<QActs> mla_xq;       // per head, activations of int8 / int4 attn_k_b / attn_v_b slabs
    const bool rope_swa_own;         // hp.rope_swa != hp.rope and some layer slides
    std::unique_ptr<MoeScratch> moe; // MoE routing scratch and counters (null for a dense model)

    RankState(int rank, int n_ranks, const ModelHParams & hp, const ModelLayout & layout, const SharedWeights & shared,
              Communicator & comm, Communicator & comm_moe, ShardWeights shard);
    ~RankState();
    size_t scratch_bytes() const;
};

// The tokens of one forward batch, flattened: token t belongs to batch entry tok_entry[t], at position tok_pos[t].
struct ForwardBatch {
    const std::vector<BatchEntry> & entries;
    int n = 0;       // tokens in all
    int max_ctx = 0; // longest context any token attends over
    std::vector<int32_t> tok_entry, tok_pos;

    explicit ForwardBatch(const std::vector<BatchEntry> & batch);
};

namespace layers {

// Sizes the rank's scratch for `b` (residual stream x, norms, Q/K/V, attention output, FFN, partial products).
void reserve(RankState & rs, const ForwardBatch & b);
// x[t] = the embedding row of token t.
void embed(RankState & rs, const ForwardBatch & b);
// cos/sin of every token's RoPE angles for each rotated pair i: pos * theta^(-2i / rope_dim), divided by the rope
// factor of the pair (rope_freqs, LongRoPE) and scaled (linear, YaRN) as RopeConfig (model.h) says; both tables, with
// the sliding-window layers' own when they differ.
void rope_tables(RankState & rs, const ForwardBatch & b);
// out[t] = RMSNorm(in[t]) * weight for the first `n` rows of width hp.dim.
void rms_norm(RankState & rs, float * out, const float * in, const std::vector<float> & weight, int n);
// The first `width` values of each of n rows (at `stride`) RMS-normed in place with `weight` [width] (MLA's latent
// and q_lora bottleneck).
void rms_norm_part(RankState & rs, float * rows, const std::vector<float> & weight, int n, int width, int64_t stride);
// Several products of one input [n x cols] in one parallel region. The input is quantized once per activation format
// the matrices need (their types may differ: attn_v in q6_K beside q4_K Q and K), then every thread multiplies its
// share of rows of each matrix: int8 / int4 / f32 / bf16 layouts with the kernels/cpu kernels, GGUF blocks with
// quant::matmul. y_stride 0: each output is [n][rows], else rows are written at that stride.
void matmuls(RankState & rs, const float * x, int n, int64_t cols,
             std::initializer_list<std::pair<const QMatrix *, float *>> outs, int64_t y_stride = 0);
// Rotates q and k of every token by its RoPE angles (adjacent pairs for RopeStyle::NORM, as GGUF llama files expect;
// (i, i + rope_dim / 2) for NEOX; dimensions past rope_dim are left as they are) and writes k and v into the paged
// cache of layer `l`.
void rope_and_cache(RankState & rs, const ForwardBatch & b, int l);
// att[t][h] = causal attention of query head h of token t over its sequence's cache (positions 0..pos_t; only the
// last n_swa of them on a sliding-window layer), scores scaled by hp.attn_scale and soft-capped by hp.attn_softcap.
void causal_attention(RankState & rs, const ForwardBatch & b, int l);
// The attention block of layer `l` from the normed input xn: Q/K/V (+ their biases when the layer has them), the
// per-head Q/K RMSNorm when the model has it, RoPE, cache, attention, then the output projection into rs.partial (a
// partial sum under tensor parallelism).
void attention(RankState & rs, const ForwardBatch & b, int l, const ShardWeights::Layer & w);
// The gated MLP from the normed input xn: down(act(gate(xn)) * up(xn)) into rs.partial, act = silu (SwiGLU) or the
// tanh-approximated gelu (GeGLU) as hp.ffn_act says.
void gated_mlp(RankState & rs, const ForwardBatch & b, const ShardWeights::Layer & w);
// x += partial: summed over the ranks (an all-reduce) unless rs.partial_whole, the MoE combine
// (timed as all-to-all, through comm_moe) when a MoE layer wrote it; a local add when every rank has the whole value.
void add_residual(RankState & rs, const ForwardBatch & b);
// x += RMSNorm(partial) * norm (Gemma's post-attention / post-FFN norms): the ranks' partial sums are all-reduced
// first, since the norm needs the whole sum.
void add_residual_post_norm(RankState & rs, const ForwardBatch & b, const std::vector<float> & norm);
// Final norm of the rows whose logits are wanted, then this rank's vocabulary columns of the output head
// (logits[row][vocab_begin ..]), soft-capped by hp.final_softcap when set. An entry with `hidden` gets its tokens'
// normed rows written there instead (rank 0; the one place every architecture's forward ends, so embeddings need no
// per-architecture code).
void output_head(RankState & rs, const ForwardBatch & b, const std::vector<float> & norm, float * logits);

} // namespace layers
} // namespace tl
