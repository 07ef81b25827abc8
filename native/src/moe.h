// The Mixture-of-Experts FFN (qwen3moe, deepseek2): a router picks each token's top-k experts and weights, and the
// token's FFN output is the weighted sum of those experts' gated MLPs (plus the shared experts' MLP when the model
// has them), computed as llama.cpp's build_moe_ffn computes it (llama-graph.cpp):
//   logits  = W_router x                                   (f32, replicated on every rank)
//   scores  = softmax(logits) | sigmoid(logits)            (MoeHParams::gating)
//   choose  = scores + selection bias                      (exp_probs_b, DeepSeek-V3; for choosing only)
//             masked to the best n_groups_used groups       (group score: the sum of its best two `choose` values)
//   experts = top-k of choose; weights = scores of them     (unbiased)
//             / their sum (clamped at 6.103515625e-5)      (norm_weights)
//             * weights_scale                              (when not 0 or 1)
//   out     = sum over the top-k, in top-k order, of weight * down(silu(gate x) * up x)  [+ shared MLP]
//
// Tokens are grouped by expert: every token's top-k is computed first, the rows routed to each expert gathered, and
// each expert's gate / up / down run once over its group, so a batch reads each chosen expert's weights once per
// step. The work of all experts of a layer is one list of (expert, matrix, row tile) items shared out over the rank's
// threads (two parallel regions per layer: gate+up, then down), which is faster than a parallel region per expert
// matrix when groups are small (decode) and as fast when they are large (prefill).
#pragma once
#include <cstdint>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "gguf.h"
#include "layers.h"
#include "model_loader.h"

namespace tl {

// A rank's MoE scratch and routing counters (grown as needed).
struct MoeScratch {
    std::vector<float> logits, scores, choose; // [n][n_expert]
    std::vector<int32_t> sel;                  // [n][k] chosen experts, in top-k order
    std::vector<float> wsel;                   // [n][k] their weights
    std::vector<int32_t> count, offset, fill;  // [n_expert]
    std::vector<int32_t> row_token;            // [n * k] the token of each gathered row (grouped by expert)
    std::vector<int32_t> tok_row;              // [n][k] where token t's j-th expert's row went
    std::vector<int32_t> lo, hi;               // [n_expert] the expert's rows this rank computes: [lo, hi)
    std::vector<uint8_t> mine;                 // [n * k] 1 where this rank computes the row
    std::vector<float> xg, g, u, d;            // gathered inputs [n k][dim], gate / up [n k][ffn], down out [n k][dim]
    std::vector<float> sg, su, sd;             // shared experts: gate / up [n][shexp ffn], down out [n][dim]
    AlignedBuffer acts[quant::kTypeCount];     // gathered rows quantized for the block kernels, by activation format
    QActs xq;                                  // ... and for the int8 / int4 kernels
    // Tokens routed to each expert of each layer since load ([n_layers][n_expert]; rank 0 counts).
    std::vector<std::vector<uint64_t>> tokens;
    double expert_seconds = 0; // seconds in routed-expert matmuls and their activation
    size_t bytes() const;
};

namespace layers {

// The MoE FFN of layer `layer` from the normed input rs.xn into rs.partial (a partial sum under tensor parallelism,
// summed by add_residual), as gated_mlp does for a dense layer. Router from rs.shared (moe_router / moe_sel_bias).
void moe_ffn(RankState & rs, const ForwardBatch & b, int layer, const MoeLayerWeights & w);

} // namespace layers

// Each token's experts and weights, as above: scores / choose scratch in `s`, results in s.sel / s.wsel ([n][k]).
// logits: [n][n_expert] router outputs. bias: [n_expert] or null.
void moe_route(const MoeHParams & moe, const float * logits, int n, const float * bias, MoeScratch & s);

// --- Loading (architectures' load()) ---

// The MoE tensors of layer `l` (hp.moe.layer_is_moe(l)): the router blk.l.ffn_gate_inp.weight ([dim, n_expert], held
// in f32) into sh.moe_router[l]; the optional selection bias blk.l.exp_probs_b.bias ([n_expert]) into
// sh.moe_sel_bias[l] when `selection_bias` (deepseek2) — a file that has it otherwise is refused as an unread tensor;
// every rank's slices of blk.l.ffn_{gate,up}_exps.weight ([dim, expert_ffn, n_expert]) and ffn_down_exps.weight
// ([expert_ffn, dim, n_expert]), one QMatrix per expert converted under the weights policy like any matrix; and the
// shared experts' blk.l.ffn_{gate,up,down}_shexp.weight (2-D, width expert_ffn * n_expert_shared) when
// n_expert_shared > 0. Matrices are appended to `mats` (the caller checks, then loads them, and marks their names
// used); vectors are loaded here and their names added to `used`. The shards have been assign_shard'ed; each gets a
// MoeLayerWeights for layer l. sh.moe_router / moe_sel_bias are resized to hp.n_layers when smaller.
void plan_moe_layer(const GgufFile & f, const ModelHParams & hp, const ModelLayout & lay, int l, bool selection_bias,
                    SharedWeights & sh, std::vector<ShardWeights> & shards,
                    std::vector<std::pair<MatrixSpec, QMatrix *>> & mats, std::set<std::string> & used);

// The MoE keys every MoE architecture reads (under "<arch>."): expert_count, expert_used_count,
// expert_feed_forward_length (required when expert_ffn_default is 0; -1: feed_forward_length / expert_used_count when
// absent), expert_group_count / expert_group_used_count (optional: group-limited
// routing, applied by llama.cpp to any architecture). MODEL_CORRUPT naming the key when out of range
// (expert_used_count 0 or above expert_count, groups that do not divide the experts...).
void read_moe_hparams(const GgufFile & f, ModelHParams & hp, int64_t expert_ffn_default = 0);

} // namespace tl
