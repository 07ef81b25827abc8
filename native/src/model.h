// A decoder-only transformer instance: its weights, sharded over `tp` tensor-parallel ranks, and the forward pass.
//
// The model is architecture-neutral. What a GGUF architecture means (its hyperparameters, its tensors, the order of
// the layers in its forward pass) is an Architecture (architecture.h), one file per architecture under models/
// (models/llama.cpp), composed from the shared layer functions of layers.h. This class holds the weights and the
// per-rank state, and runs the architecture's forward on every rank.
//
// Tensor parallelism (Megatron-LM style) over `tp` ranks. Each rank owns a shard of every weight matrix:
//   column-split (by output rows): Q, K, V (by heads), gate and up (by FFN columns), the output head (by vocabulary);
//   row-split (by input columns):  O and down — their partial products are summed across ranks (all-reduce).
// Every rank keeps a full copy of the residual stream, so norms and the embedding are computed on each rank and
// the only communication is two all-reduces per layer (through a Communicator, tp.h). Rank 0 runs on the caller's
// thread; ranks 1.. on their own leader threads (RankThreads, tp.h); each rank has a pool of `threads_per_rank`
// threads for its matmuls and attention heads.
//
// The KV cache is paged: a sequence's positions live in fixed-size blocks named by its block table; each rank stores
// the keys/values of its own KV heads (kv_cache.h).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "kernels/cpu/kernels.h"
#include "kv_cache.h"
#include "threadpool.h"
#include "tp.h"

namespace tl {

class Architecture;
struct RankState;

// How RoPE pairs the dimensions of a head: NORM rotates adjacent pairs (2i, 2i+1) (GGUF llama files); NEOX rotates
// (i, i + rope_dim/2) (GPT-NeoX layout: qwen2/qwen3/gemma2/gemma3/phi3), as llama_model_rope_type() says per architecture.
enum class RopeStyle { NORM, NEOX };

// One RoPE frequency setting, as llama.cpp's ggml_rope_ext arguments (ggml-cpu rope_yarn): the angle of pair i at
// position p is theta_e = p * base^(-2i / rope_dim) / factor[i] (factor: the rope_freqs / LongRoPE tensor, else 1),
// interpolated theta_i = freq_scale * theta_e, and with YaRN (ext_factor != 0) mixed back towards theta_e over the
// correction dims [beta_fast, beta_slow]; cos and sin are multiplied by mscale = attn_factor (x (1 + 0.1 ln(1 /
// freq_scale)) under YaRN).
struct RopeConfig {
    float base = 10000.0f;
    float freq_scale = 1.0f; // 1 / rope.scaling.factor for linear and YaRN scaling
    float ext_factor = 0.0f; // 1 for YaRN
    float attn_factor = 1.0f;
    float beta_fast = 32.0f, beta_slow = 1.0f;
    int32_t n_ctx_orig = 0; // rope.scaling.original_context_length (YaRN's correction dims, LongRoPE's long/short)
    bool operator==(const RopeConfig & o) const {
        return base == o.base && freq_scale == o.freq_scale && ext_factor == o.ext_factor &&
               attn_factor == o.attn_factor && beta_fast == o.beta_fast && beta_slow == o.beta_slow &&
               n_ctx_orig == o.n_ctx_orig;
    }
};

// The gated MLP's activation: SwiGLU (silu) or GeGLU (gelu, tanh approximation: gemma).
enum class FfnAct { SILU, GELU };

// Multi-head Latent Attention (DeepSeek-V2/V3, mla.h): queries (optionally through a low-rank q_lora bottleneck) of
// nope + rope per head; keys and values decompressed per head from one shared latent of kv_lora values plus one RoPE
// key part of `rope` values shared by every head. The KV cache holds only the latent and that RoPE part per token.
struct MlaHParams {
    int32_t q_lora = 0;    // attention.q_lora_rank; 0: the query projection reads the layer input directly (attn_q)
    int32_t kv_lora = 0;   // attention.kv_lora_rank: the latent's width; 0: not an MLA model
    int32_t nope = 0;      // per head, the query/key part without position (key_length_mla - rope)
    int32_t rope = 0;      // per head, the rotated query part; the key's is shared by all heads (rope.dimension_count)
    int32_t v_head = 0;    // attention.value_length_mla: a head's value width after decompression
    float kq_scale = 0.0f; // the query . key scale (mscale^2 / sqrt(nope + rope) under DeepSeek's YaRN)
};

// How a Mixture-of-Experts layer scores its experts (llama.cpp's llama_expert_gating_func_type 1 and 2).
enum class MoeGating { SOFTMAX, SIGMOID };

// The router and expert shapes of a Mixture-of-Experts model (all zero for a dense model). An architecture reads its
// keys into these (qwen3moe: expert_count, expert_used_count, expert_feed_forward_length, expert_group_*; deepseek2
// also leading_dense_block_count, expert_shared_count, expert_gating_func, expert_weights_norm / _scale), and the
// MoE FFN (moe.h) routes as llama.cpp's build_moe_ffn does with them.
struct MoeHParams {
    int32_t n_expert = 0;        // routed experts per MoE layer (0: dense model)
    int32_t n_expert_used = 0;   // top-k
    int32_t n_expert_shared = 0; // shared experts (ffn_*_shexp, one gated MLP of width expert_ffn_dim * n_shared)
    int32_t expert_ffn_dim = 0;  // one routed expert's FFN width
    int32_t n_leading_dense = 0; // the first layers have a dense FFN (ffn_gate/up/down) instead
    MoeGating gating = MoeGating::SOFTMAX;
    bool norm_weights = false;  // the chosen weights divided by their sum (clamped below at 6.103515625e-5)
    float weights_scale = 0.0f; // the routed weights times it; 0 or 1: not applied (as llama.cpp)
    int32_t n_groups = 0;       // group-limited routing when > 1: experts in n_groups equal groups, ...
    int32_t n_groups_used = 0;  // ... a token's experts come from its best n_groups_used groups
    bool has_bias = false;      // exp_probs_b.bias: a selection bias added to the scores when choosing only

    bool enabled() const { return n_expert > 0; }
    bool layer_is_moe(int l) const { return n_expert > 0 && l >= n_leading_dense; }
};

// Hyperparameters, read from the GGUF metadata by the architecture.
struct ModelHParams {
    std::string arch; // general.architecture (also the prefix of its metadata keys)
    int32_t n_vocab = 0;
    int32_t dim = 0;
    int32_t n_layers = 0;
    int32_t n_heads = 0;
    int32_t n_kv_heads = 0;
    int32_t head_dim = 0; // attention.key_length (= value_length), dim / n_heads when absent
    int32_t ffn_dim = 0;
    int32_t n_ctx_train = 0;
    int32_t rope_dim = 0; // dimensions rotated per head (<= head_dim)
    float rope_theta = 10000.0f;
    float rms_eps = 1e-5f;
    bool tied_output = false;
    // --- What differs between the architectures (the defaults are llama's) ---
    RopeStyle rope_style = RopeStyle::NORM;
    RopeConfig rope;                   // every layer, or the global (full-attention) layers when some slide
    RopeConfig rope_swa;               // the sliding-window layers (gemma3: base 10000 whatever rope.freq_base says)
    std::string rope_scaling = "none"; // rope.scaling.type as applied: none, linear, yarn, longrope (shown by inspect)
    int32_t n_swa = 0;                 // sliding window in tokens (0: none): a query at p sees keys p - n_swa + 1 .. p
    std::vector<uint8_t> swa_layers;   // [n_layers]: 1 where the layer attends over the window only
    float attn_scale = 0.0f;           // the query scale; 0: 1 / sqrt(head_dim)
    float attn_softcap = 0.0f;         // scores -> c * tanh(scores / c) before the softmax (gemma2), 0: none
    float final_softcap = 0.0f;        // the same on the output logits
    float embd_scale = 0.0f;           // embeddings multiplied by it (gemma: sqrt(dim)), 0: none
    FfnAct ffn_act = FfnAct::SILU;
    // MLA (deepseek2): head_dim is then the cached row, kv_lora + rope, and n_kv_heads 1 (MQA over the latent).
    MlaHParams mla;
    MoeHParams moe; // Mixture-of-Experts FFN layers (moe.n_expert 0: dense)

    bool is_mla() const { return mla.kv_lora > 0; }
    int32_t q_dim() const { return n_heads * head_dim; }
    int32_t kv_dim() const { return n_kv_heads * head_dim; }
    bool layer_swa(int l) const { return n_swa > 0 && !swa_layers.empty() && swa_layers[l]; }
};

// Weight storage policy (see src/engine/types.ts WeightsPolicy). NATIVE runs every tensor in the type the file holds;
// the others re-quantize (or dequantize) at load, with llama.cpp's fallbacks for rows that are not whole blocks of the
// target type (model_loader.h choose_weight_type). INT8 and INT4 are the documented aliases of Q8_0 and Q4_0 (kept
// apart only so that the name the caller used is the name reported back).
enum class WeightsPolicy { NATIVE, F32, BF16, Q8_0, Q6_K, Q5_K, Q4_K, Q4_0, MIXED, INT8, INT4 };
const char * weights_policy_name(WeightsPolicy p);
bool parse_weights_policy(const std::string & s, WeightsPolicy * out);

// A tensor held in another type than the weights policy asked for, because its rows are not whole blocks of that type
// (or the file's type was kept): shown in ModelInfo.weightFallbacks.
struct WeightFallback {
    std::string tensor;
    std::string requested, used; // GGUF type names ("q4_K", "q5_0", ...)
};

// How the model is laid out in memory: everything that needs a new instance to change ("cold" settings).
struct ModelLayout {
    WeightsPolicy policy = WeightsPolicy::NATIVE;
    int32_t tp = 1;
    int32_t threads_per_rank = 1;
    KvDtype kv_dtype = KvDtype::F32;
    int32_t kv_block_size = 16;
    int32_t kv_blocks = 0;          // blocks in the pool (each rank stores its heads of every block)
    int32_t allreduce_delay_us = 0; // injected per all-reduce: emulates a slow interconnect (seed 001)
    int32_t n_ctx = 0;              // the context served (0: the trained one); picks Phi-3's long or short RoPE factors
    // Expert parallelism (MoE models; docs/architecture.md "Expert parallelism"): the routed experts of every MoE layer
    // are spread over ep_degree ranks; redundant_experts (layer, expert) are also held by one more rank, which takes
    // part of their tokens; alltoall_delay_us is spun per expert combine (like allreduce_delay_us).
    int32_t ep_degree = 1;
    std::vector<std::pair<int32_t, int32_t>> redundant_experts;
    int32_t alltoall_delay_us = 0;

    // Rank threads: max(tp, ep_degree). With tp 1 and ep_degree > 1 every rank runs the attention (and any dense
    // FFN) in full, replicated; with tp = ep_degree the attention is tensor-parallel as without experts.
    int32_t n_ranks() const { return tp > ep_degree ? tp : ep_degree; }
    // The rank holding expert e of layer l: e % ep_degree; a redundant expert also on the next rank.
    int32_t expert_owner(int32_t e) const { return e % ep_degree; }
    bool expert_redundant(int32_t l, int32_t e) const {
        for (const auto & [rl, re] : redundant_experts)
            if (rl == l && re == e) return true;
        return false;
    }
};

// Weights every rank reads in full.
struct SharedWeights {
    QMatrix tok_embd;                                    // [n_vocab x dim]; rows decoded on lookup
    std::vector<float> output_norm;                      // [dim]
    std::vector<std::vector<float>> attn_norm, ffn_norm; // [n_layers][dim]
    // Optional per architecture (empty when absent):
    std::vector<std::vector<float>> attn_post_norm, ffn_post_norm; // [n_layers][dim] (gemma2/3)
    std::vector<std::vector<float>> attn_q_norm, attn_k_norm; // [n_layers][head_dim]: per-head RMSNorm (qwen3, gemma3)
    std::vector<float> rope_factors; // [rope_dim / 2]: rope_freqs (Llama 3.1) or the chosen LongRoPE factors (Phi-3)
    std::vector<std::vector<float>> attn_q_a_norm, attn_kv_a_norm; // [n_layers][q_lora / kv_lora] (MLA)
    // Mixture-of-Experts routers, replicated (every rank routes every token the same way); [n_layers], empty
    // matrices / vectors on dense layers:
    std::vector<QMatrix> moe_router;              // ffn_gate_inp [n_expert x dim], held in f32 whatever the file has
    std::vector<std::vector<float>> moe_sel_bias; // exp_probs_b.bias [n_expert] (DeepSeek-V3), empty when absent
};

// One layer's MLA weights on one rank (mla.h): the compressions are replicated, the per-head parts are this rank's
// heads. The output projection is ShardWeights::Layer::wo ([dim x local heads * v_head]).
struct MlaLayerWeights {
    QMatrix wq_a;              // attn_q_a [q_lora x dim] (absent when q_lora is 0)
    QMatrix wq;                // attn_q_b [local heads * (nope + rope) x q_lora], or attn_q [.. x dim] without q_lora
    QMatrix wkv_a;             // attn_kv_a_mqa [kv_lora + rope x dim]: the latent, then the shared RoPE key part
    std::vector<QMatrix> wk_b; // per local head, attn_k_b's slab [kv_lora x nope]: q_nope -> latent space (absorbed)
    std::vector<QMatrix> wv_b; // per local head, attn_v_b's slab [v_head x kv_lora]: attended latent -> value
};

// One rank's part of a Mixture-of-Experts FFN layer. Under tensor parallelism every expert is split as the dense FFN
// is (gate / up by rows, down by columns: expert_ffn_dim / tp each); under expert parallelism a rank holds only the
// experts it owns (the others are empty matrices).
struct MoeLayerWeights {
    // Which of each expert's routed rows this rank computes (expert parallelism): NONE (not held), ALL, or one half of
    // the expert's rows of a batch (FIRST: the first ceil(n / 2), SECOND: the rest) when the expert is redundant.
    enum Part : uint8_t { NONE = 0, ALL = 1, FIRST = 2, SECOND = 3 };
    std::vector<uint8_t> part;     // [n_expert]
    std::vector<QMatrix> gate, up; // [n_expert] of [local expert ffn x dim]
    std::vector<QMatrix> down;     // [n_expert] of [dim x local expert ffn]
    QMatrix sh_gate, sh_up;        // shared experts (empty when none): [local shared ffn x dim]
    QMatrix sh_down;               // [dim x local shared ffn]
};

// One rank's shard.
struct ShardWeights {
    struct Layer {
        QMatrix wq, wk, wv;                   // [local heads * head_dim x dim]
        QMatrix wo;                           // [dim x local heads * head_dim]
        QMatrix w_gate, w_up;                 // [local ffn x dim]
        QMatrix w_down;                       // [dim x local ffn]
        std::vector<float> bq, bk, bv;        // the local rows of the Q/K/V biases (qwen2; empty when absent)
        std::unique_ptr<MoeLayerWeights> moe; // a Mixture-of-Experts FFN layer (then w_gate/up/down are empty)
        MlaLayerWeights mla;                  // deepseek2 (empty otherwise)
    };
    int32_t head_begin = 0, n_heads = 0;       // query heads owned
    int32_t kv_head_begin = 0, n_kv_heads = 0; // KV heads owned
    int32_t ffn_begin = 0, ffn = 0;
    int32_t expert_ffn_begin = 0, expert_ffn = 0; // the local columns of every routed expert (MoE)
    int32_t shexp_ffn_begin = 0, shexp_ffn = 0;   // the local columns of the shared experts' MLP (MoE)
    int32_t vocab_begin = 0, vocab = 0;
    std::vector<Layer> layers;
    QMatrix output; // [vocab x dim] rows of the output head (a copy of tok_embd rows when tied and tp > 1)
    bool output_is_tok_embd = false;
};

struct ModelWeights {
    SharedWeights shared;
    std::vector<ShardWeights> shards; // one per rank
};

// One sequence's part of a forward batch: tokens at positions pos0 .. pos0 + n_tokens - 1. Positions below pos0
// are already in the cache; block_table covers every position up to pos0 + n_tokens - 1.
struct BatchEntry {
    const int32_t * block_table = nullptr;
    int32_t pos0 = 0;
    const int32_t * tokens = nullptr;
    int32_t n_tokens = 0;
    bool want_logits = true; // false: a prefill chunk that is not the prompt's last
    bool all_logits = false; // logits for every token (perplexity, verification) or only the last
    // Embeddings: when set, the final hidden state of every token (after output_norm, before the output head) is
    // written here, [n_tokens][dim], and the entry wants no logits.
    float * hidden = nullptr;
};

// Seconds spent per operation (summed over ranks) and per rank. Written only by the forward pass; read racily by stats
// (doubles are written atomically on x86-64 and a slightly stale value is fine for monitoring).
struct ModelTimes {
    double matmul = 0, attention = 0, norm = 0, rope = 0, ffn_act = 0, embed = 0, output = 0;
    std::vector<double> rank_busy, rank_allreduce;
    uint64_t allreduces = 0;
    // Mixture-of-Experts (empty for a dense model): tokens routed to each expert of each MoE layer since load
    // ([i over the MoE layers][expert], counted by rank 0), seconds each rank spent in routed-expert matmuls, in the
    // expert-parallel combine (all-to-all), and the number of combines.
    std::vector<std::vector<uint64_t>> moe_tokens;
    std::vector<double> rank_expert, rank_alltoall;
    uint64_t alltoalls = 0;
    uint64_t alltoall_rows = 0; // routed rows computed on a rank other than their token's home rank
};

// What one token reads of a Mixture-of-Experts model. Active: the embedding row, attention, dense and shared FFNs, the
// routers, expert_used routed experts per MoE layer (an average expert of the layer) and the output head (with a tied
// head, the embedding matrix once: the looked-up row is part of it); total: every weight once (a tied head counted
// once). The norm weights and Q/K/V biases count as parameters (as a training framework counts them); the selection
// bias and RoPE factors (buffers, not trained weights) do not. Bytes as held (after the weights policy), all ranks
// together.
struct MoeActiveCounts {
    double active_params = 0, total_params = 0, active_bytes_per_token = 0;
};

// What each layer's KV cache holds per token on a rank that owns `local_kv_heads` KV heads (an MLA layer: the latent
// row, whatever the rank).
std::vector<KvLayerShape> kv_layer_shapes(const ModelHParams & hp, int32_t local_kv_heads);
// KV-cache bytes per token, every layer of every one of `tp` ranks (the MLA latent is replicated on each), in `dtype`:
// what sizes the block pool.
size_t kv_bytes_per_token(const ModelHParams & hp, KvDtype dtype, int32_t tp);
// What plain multi-head attention over the same query heads would store per token: n_layers * n_heads * (k_head +
// v_head) elements (k_head = nope + rope, v_head = value_length_mla for MLA; head_dim for the others). Equal to
// kv_bytes_per_token for MHA models, above it for GQA and MLA ones.
size_t kv_bytes_per_token_mha(const ModelHParams & hp, KvDtype dtype);

class Model {
public:
    Model(const Architecture & arch, ModelHParams hp, ModelWeights weights, ModelLayout layout);
    ~Model();

    const Architecture & architecture() const { return arch_; }
    const ModelHParams & hparams() const { return hp_; }
    const ModelLayout & layout() const { return layout_; }
    // Bytes held per GGUF type name of the values ("f32", "bf16", "q8_0", "q4_K", ...), all ranks together.
    std::vector<std::pair<std::string, size_t>> weight_bytes() const;
    // Tensors held in another type than the policy asked for, once each (not per rank).
    const std::vector<WeightFallback> & weight_fallbacks() const { return fallbacks_; }
    size_t weight_bytes_total() const;
    size_t kv_bytes() const;
    size_t scratch_bytes() const;

    static int64_t logits_rows(const std::vector<BatchEntry> & batch);
    // Runs the batch. logits: float[logits_rows(batch)][n_vocab], rows in batch order.
    void forward(const std::vector<BatchEntry> & batch, float * logits);

    // Copy KV block `src` into `dst` on every rank (copy-on-write of a forked sequence's partial block). Call between
    // forward passes only.
    void copy_kv_block(int32_t src, int32_t dst);

    ModelTimes times() const;
    // Active / total parameters and bytes per token (a dense model: everything is active).
    MoeActiveCounts active_counts() const;

private:
    const Architecture & arch_;
    ModelHParams hp_;
    SharedWeights shared_;
    ModelLayout layout_;
    std::vector<std::unique_ptr<RankState>> ranks_;
    std::unique_ptr<Communicator> comm_;     // all-reduces between the ranks (tp.h)
    std::unique_ptr<Communicator> comm_moe_; // the expert combine (MoE), with its own injected delay
    std::unique_ptr<RankThreads> rank_threads_;
    std::vector<WeightFallback> fallbacks_;

    void rank_forward(int r, const std::vector<BatchEntry> & batch, float * logits);
};

} // namespace tl
