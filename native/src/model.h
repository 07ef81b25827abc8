// Llama-family decoder: RMSNorm, RoPE (adjacent-pair rotation, as GGUF llama files expect), grouped-query
// attention, SwiGLU MLP, tied or untied output head. The forward pass takes a batch of sequence chunks so that one
// call can prefill one sequence and decode others (the scheduler builds such batches).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/cpu/kernels.h"
#include "threadpool.h"

namespace tl {

struct LlamaHParams {
    int32_t n_vocab = 0;
    int32_t dim = 0;
    int32_t n_layers = 0;
    int32_t n_heads = 0;
    int32_t n_kv_heads = 0;
    int32_t head_dim = 0;
    int32_t ffn_dim = 0;
    int32_t n_ctx_train = 0;
    int32_t rope_dim = 0;     // dimensions rotated per head (<= head_dim)
    float rope_theta = 10000.0f;
    float rms_eps = 1e-5f;
    bool tied_output = false;

    int32_t q_dim() const { return n_heads * head_dim; }
    int32_t kv_dim() const { return n_kv_heads * head_dim; }
};

// Weight storage policy (see src/engine/types.ts WeightsPolicy).
enum class WeightsPolicy { F32, BF16, INT8, INT4, MIXED };
const char * weights_policy_name(WeightsPolicy p);
bool parse_weights_policy(const std::string & s, WeightsPolicy * out);

struct LlamaLayer {
    std::vector<float> attn_norm; // [dim]
    std::vector<float> ffn_norm;  // [dim]
    QMatrix wq, wk, wv, wo;       // [q_dim x dim], [kv_dim x dim] x2, [dim x q_dim]
    QMatrix w_gate, w_up, w_down; // [ffn x dim] x2, [dim x ffn]
};

struct LlamaWeights {
    QMatrix tok_embd;               // [n_vocab x dim]; rows are decoded on lookup
    std::vector<float> output_norm; // [dim]
    QMatrix output;                 // [n_vocab x dim]; empty when tied (tok_embd is used)
    std::vector<LlamaLayer> layers;

    const QMatrix & output_matrix() const { return output.rows ? output : tok_embd; }
};

// Key/value cache of one sequence: contiguous f32, [n_layers][n_ctx][kv_dim] for K and for V.
class KvCache {
public:
    KvCache(int32_t n_layers, int32_t n_ctx, int32_t kv_dim);
    float * k_at(int32_t layer, int32_t pos) { return k_.data() + ((size_t) layer * n_ctx_ + pos) * kv_dim_; }
    float * v_at(int32_t layer, int32_t pos) { return v_.data() + ((size_t) layer * n_ctx_ + pos) * kv_dim_; }
    int32_t n_ctx() const { return n_ctx_; }
    size_t bytes() const { return (k_.size() + v_.size()) * sizeof(float); }
private:
    int32_t n_layers_, n_ctx_, kv_dim_;
    std::vector<float> k_, v_;
};

// One sequence's part of a forward batch: tokens at positions pos0 .. pos0 + n_tokens - 1.
struct BatchEntry {
    KvCache * kv = nullptr;
    int32_t pos0 = 0;
    const int32_t * tokens = nullptr;
    int32_t n_tokens = 0;
    bool all_logits = false;       // logits for every token (perplexity, verification) or only the last
};

// Time spent per operation, accumulated over forward calls (seconds). Read by stats.
struct OpTimes {
    double matmul = 0, attention = 0, norm = 0, rope = 0, ffn_act = 0, embed = 0, output = 0;
};

class LlamaModel {
public:
    LlamaModel(LlamaHParams hp, LlamaWeights w, WeightsPolicy policy);

    const LlamaHParams & hparams() const { return hp_; }
    WeightsPolicy policy() const { return policy_; }
    // Bytes held per storage type name ("f32", "bf16", "int8", "int4").
    std::vector<std::pair<std::string, size_t>> weight_bytes() const;
    size_t weight_bytes_total() const;

    // Runs the batch; writes logits rows in batch order: for each entry, n_tokens rows if all_logits else 1 row.
    // logits: float[n_rows][n_vocab]. Positions must be < kv->n_ctx() (the caller checks).
    void forward(const std::vector<BatchEntry> & batch, float * logits, ThreadPool & pool);
    static int64_t logits_rows(const std::vector<BatchEntry> & batch);

    OpTimes op_times() const { return times_; }

private:
    LlamaHParams hp_;
    LlamaWeights w_;
    WeightsPolicy policy_;
    const CpuKernels & kernels_;
    OpTimes times_;

    // Scratch, grown as needed (forward is called from one thread at a time).
    std::vector<float> x_, xn_, q_, k_, v_, att_, gate_, up_, tmp_, rope_cos_, rope_sin_;
    std::vector<int32_t> pos_;
    QActs xq_;

    void matmuls(ThreadPool & pool, const float * x, int n, int64_t cols,
                 std::initializer_list<std::pair<const QMatrix *, float *>> outs);
};

} // namespace tl
