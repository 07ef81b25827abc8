// Reading a GGUF into a Model. What a file holds depends on its architecture (architecture.h: one builder per
// general.architecture under models/); this unit has the entry points the engine calls, and the readers every
// builder shares: checked metadata, the standard <arch>.* hyperparameters, and tensor readers that check each shape
// against the metadata before touching data, keep or convert each matrix's GGUF type under the weights policy and cut
// tensor-parallel shards.
#pragma once
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "gguf.h"
#include "model.h"
#include "quant/types.h"
#include "threadpool.h"

namespace tl {

// The file's hyperparameters, read by its architecture's builder (UNSUPPORTED_ARCHITECTURE for an unknown one).
ModelHParams read_model_hparams(const GgufFile & file);
// Checks that the layout can shard this model (heads, KV heads and FFN divisible by tp) and is in range.
void check_layout(const ModelHParams & hp, const ModelLayout & layout);
// Loads every rank's shard through the file's architecture. `pool` is used for decoding and quantizing in parallel.
std::unique_ptr<Model> load_model(const GgufFile & file, const ModelLayout & layout, ThreadPool & pool);

// --- For architecture builders (models/*.cpp) ---

// Attention projections are kept 16-bit by the `mixed` policy; everything else is OTHER.
enum class MatrixRole { ATTENTION, OTHER };
// The GGUF type a matrix is held in, and the one the policy asked for (they differ after a fallback).
struct WeightChoice {
    quant::Type requested, type;
};
// The type of tensor `name` (GGUF type id `src`, rows of `n` elements) under `policy`:
//  * native: the file's type; f32 / bf16: that; q8_0 (int8), q4_0 (int4), q6_k, q5_k, q4_k: that block type;
//    mixed: bf16 for ATTENTION, q8_0 for the rest.
//  * rows that are not whole blocks of it fall back as llama.cpp's quantizer does: q4_K -> q5_0, q5_K -> q5_1,
//    q6_K -> q8_0, q2_K / q3_K / iq4_xs -> iq4_nl; when no 32-element format fits either, the file's 16/32-bit type
//    is kept (bf16 when the file's type is not a float type).
//  * re-quantizing a quantized tensor into another block type with at least as many bits per weight would lose
//    precision without saving bytes: INVALID_ARGUMENT, saying so (dequantizing to f32 / bf16 is allowed).
// UNSUPPORTED_TENSOR_TYPE naming the tensor and the id for a type this engine cannot execute or decode.
WeightChoice choose_weight_type(const GgufFile & f, const std::string & name, WeightsPolicy policy, MatrixRole role,
                                uint32_t src, int64_t n);
// MODEL_CORRUPT: "model '<path>': <what>".
[[noreturn]] void corrupt(const GgufFile & f, const std::string & what);
// An integer metadata value in [1, max] (`def` when absent); MODEL_CORRUPT naming the key otherwise.
int32_t positive_int(const GgufFile & f, const std::string & key, int64_t def, int64_t max);
// The hyperparameters most GGUF decoder architectures share, under the `<arch>.` prefix: embedding_length,
// block_count, attention.head_count(_kv), feed_forward_length, context_length, rope.dimension_count, rope.freq_base,
// attention.layer_norm_rms_epsilon; the vocabulary from token_embd.weight and a tied head when output.weight is absent.
// attention.key_length / value_length (head width; they must be equal) and the RoPE scaling (read_rope_scaling).
ModelHParams read_transformer_hparams(const GgufFile & f, const std::string & arch);
// hp.rope (and hp.rope_swa, a copy) from rope.freq_base and rope.scaling.{type, factor, attn_factor,
// original_context_length} (or the old rope.scale_linear), computed as llama.cpp's context does: linear -> freq_scale
// 1 / factor; yarn -> also ext_factor 1, beta_fast 32, beta_slow 1 and the mscale llama_context derives; longrope ->
// the factor tensors (the architecture loads them). An unknown scaling type is UNSUPPORTED_ARCHITECTURE.
void read_rope_scaling(const GgufFile & f, ModelHParams & hp);
// UNSUPPORTED_ARCHITECTURE naming the first "<arch>.*" key that is neither read by read_transformer_hparams (nor
// documentary: rope.scaling.finetuned, vocab_size, expert counts of 0) nor in `extra` (the keys the architecture itself reads): a file
// whose math tuneloop would get wrong is refused, never run with the key ignored.
void refuse_unknown_keys(const GgufFile & f, const std::string & arch, std::initializer_list<const char *> extra = {});
// A [n] f32 vector tensor (norm weights), decoded; MODEL_CORRUPT on a wrong shape or a non-finite value.
std::vector<float> load_vector(const GgufFile & f, const std::string & name, int64_t n);
// A half-open range of rows or columns.
struct Range {
    int64_t begin, end;
    int64_t size() const { return end - begin; }
};
// One matrix (or a rank's shard of it) to load: the rows rr x columns cr part of a [rows x cols] tensor. Column-split
// shards take a range of rows, row-split ones a range of columns; the whole matrix is the full range of both.
struct MatrixSpec {
    std::string name;
    int64_t rows, cols;
    MatrixRole role;
    Range rr, cr;
    // A 3-D tensor (ne [cols, rows, n_mats]: MoE experts) is a stack of n_mats matrices; this spec is matrix `mat`.
    int64_t n_mats = 1, mat = 0;
    bool force_f32 = false; // held in f32 whatever the weights policy (MoE routers)
};
// Everything load_matrix would refuse, without touching the data: the shape, the type (choose_weight_type) and, for a
// column range, block alignment (INVALID_ARGUMENT naming the tensor and its block size: tensor parallelism cannot cut
// a block). Builders run it over every matrix of every rank before loading any, so a refusal costs nothing.
WeightChoice check_matrix(const GgufFile & f, const MatrixSpec & m, WeightsPolicy policy);
// Loads it, in parallel, a band of rows per thread at a time: the file's blocks copied (Q8_0 / Q4_0 repacked for the
// int8 / int4 kernels) when the type is kept, else decoded and quantized with quant::quantize_row. Every block's
// scales are checked (quant::validate_blocks): MODEL_CORRUPT naming the tensor for a NaN or Inf.
void load_matrix(const GgufFile & f, const MatrixSpec & m, WeightsPolicy policy, QMatrix & out, ThreadPool & pool);
// The tensors of a GGUF decoder beyond llama's, by architecture (models/*.cpp fill it in).
struct DecoderTensors {
    bool qk_norm = false;      // blk.N.attn_q_norm / attn_k_norm.weight [head_dim], required (qwen3, gemma3)
    bool post_norms = false;   // blk.N.post_attention_norm / post_ffw_norm.weight [dim], required (gemma2/3)
    bool fused_ffn_up = false; // ffn_up.weight holds [gate; up] (2 ffn rows, the gate half first), no ffn_gate (phi3)
    // FREQS: an optional rope_freqs.weight [rope_dim / 2] (Llama 3.1); LONGROPE: optional rope_factors_long /
    // rope_factors_short.weight, the one the served context calls for (phi3, llama files with scaling longrope).
    enum class RopeFactors { NONE, FREQS, LONGROPE } rope_factors = RopeFactors::NONE;
    // Layers where hp.moe.layer_is_moe(l) get the MoE tensors (moe.h plan_moe_layer) instead of ffn_gate/up/down;
    // true: each may have an exp_probs_b.bias selection bias (deepseek2).
    bool moe_selection_bias = false;
};
// Every rank's shard of a standard GGUF decoder: token_embd, output (or tied), output_norm, and per layer attn_norm,
// Q/K/V (separate, or the fused attn_qkv split by rows at load), their optional biases (sliced with their rows),
// attn_output, ffn_norm, gate/up (or the fused ffn_up split in halves), ffn_down, and what `spec` adds. Any tensor
// in the file it does not read is refused (UNSUPPORTED_ARCHITECTURE naming it), as llama.cpp refuses one.
ModelWeights load_decoder(const GgufFile & f, const ModelHParams & hp, const ModelLayout & layout, ThreadPool & pool,
                          const DecoderTensors & spec);
// Rank r's part of a tp-way Megatron split: its query heads, KV heads, FFN columns and vocabulary rows.
void assign_shard(const ModelHParams & hp, int tp, int r, ShardWeights & shard);
// Rank r of layout.n_ranks(): assign_shard over the tp ranks (r % tp: with tp 1 and expert parallelism every rank
// holds the attention whole), the vocabulary and the shared experts over all ranks, whole experts under expert
// parallelism (which experts: plan_moe_layer).
void assign_ranks(const ModelHParams & hp, const ModelLayout & lay, int r, ShardWeights & S);

} // namespace tl
