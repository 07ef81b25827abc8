#include "model_loader.h"

#include <algorithm>
#include <cmath>

#include "errors.h"
#include "tensor_convert.h"

namespace tl {

namespace {

[[noreturn]] void corrupt(const GgufFile & f, const std::string & what) {
    fail(ErrorCode::MODEL_CORRUPT, "model '" + f.path() + "': " + what);
}

int32_t positive_int(const GgufFile & f, const std::string & key, int64_t def, int64_t max) {
    int64_t v = f.get_int(key, def);
    if (v <= 0 || v > max) corrupt(f, "metadata '" + key + "' = " + std::to_string(v) + " is out of range (1.." + std::to_string(max) + ")");
    return (int32_t) v;
}

std::string shape_str(const GgufTensorInfo & t) {
    std::string s = "[";
    for (uint32_t d = 0; d < t.n_dims; ++d) s += (d ? ", " : "") + std::to_string(t.ne[d]);
    return s + "]";
}

const GgufTensorInfo & require_tensor(const GgufFile & f, const std::string & name, int64_t ne0, int64_t ne1) {
    const GgufTensorInfo * t = f.find_tensor(name);
    if (!t) corrupt(f, "required tensor '" + name + "' is missing");
    if (!ggml_type_supported(t->type))
        fail(ErrorCode::UNSUPPORTED_TENSOR_TYPE, "model '" + f.path() + "': tensor '" + name + "' has type " +
             ggml_type_name(t->type) + " (id " + std::to_string(t->type) + "); supported: F32, F16, BF16, Q8_0, Q4_0");
    bool ok = t->ne[0] == ne0 && t->ne[1] == ne1 && t->ne[2] == 1 && t->ne[3] == 1;
    if (!ok) corrupt(f, "tensor '" + name + "' has shape " + shape_str(*t) + ", expected [" + std::to_string(ne0) +
                        (ne1 > 1 ? ", " + std::to_string(ne1) : "") + "] from the metadata");
    return *t;
}

std::vector<float> load_vector(const GgufFile & f, const std::string & name, int64_t n) {
    const GgufTensorInfo & t = require_tensor(f, name, n, 1);
    std::vector<float> out(n);
    dequantize_row(t.type, t.data, out.data(), n);
    for (float v : out)
        if (!std::isfinite(v)) corrupt(f, "tensor '" + name + "' holds a non-finite value");
    return out;
}

// Decode and quantize the [row_begin, row_end) x [col_begin, col_end) part of a [rows x cols] tensor, in parallel,
// a band of rows per thread at a time. Tensor-parallel shards take a range of rows (column-split) or of columns
// (row-split); the whole matrix is the full range of both.
struct Range { int64_t begin, end; int64_t size() const { return end - begin; } };

void load_matrix(const GgufFile & f, const std::string & name, int64_t rows, int64_t cols, WeightType type,
                 QMatrix & out, ThreadPool & pool, Range rr, Range cr) {
    const GgufTensorInfo & t = require_tensor(f, name, cols, rows);
    qmatrix_alloc(out, type, rr.size(), cr.size());
    const uint64_t row_bytes = ggml_row_bytes(t.type, cols);
    std::vector<std::string> errors(pool.size());
    pool.run([&](int idx, int nth) {
        const int64_t band = 64, n = rr.size();
        std::vector<float> row(cols), buf((size_t) band * cr.size());
        for (int64_t r0 = n * idx / nth; r0 < n * (idx + 1) / nth; r0 += band) {
            int64_t r1 = std::min<int64_t>(n * (idx + 1) / nth, r0 + band);
            for (int64_t r = r0; r < r1; ++r) {
                dequantize_row(t.type, t.data + (rr.begin + r) * row_bytes, row.data(), cols);
                std::copy(row.begin() + cr.begin, row.begin() + cr.end, buf.begin() + (r - r0) * cr.size());
            }
            for (int64_t i = 0; i < (r1 - r0) * cr.size(); ++i) {
                if (!std::isfinite(buf[i])) { errors[idx] = "tensor '" + name + "' holds a non-finite value"; return; }
            }
            qmatrix_set_rows(out, buf.data(), r0, r1);
        }
    });
    for (const std::string & e : errors)
        if (!e.empty()) corrupt(f, e);
}

} // namespace

LlamaHParams read_llama_hparams(const GgufFile & f) {
    std::string arch = f.get_string("general.architecture", "");
    if (arch.empty()) corrupt(f, "metadata 'general.architecture' is missing");
    if (arch != "llama")
        fail(ErrorCode::UNSUPPORTED_ARCHITECTURE, "model '" + f.path() + "' has architecture '" + arch + "'; supported: llama");
    LlamaHParams hp;
    hp.dim = positive_int(f, "llama.embedding_length", 0, 1 << 16);
    hp.n_layers = positive_int(f, "llama.block_count", 0, 1024);
    hp.n_heads = positive_int(f, "llama.attention.head_count", 0, 1024);
    hp.n_kv_heads = positive_int(f, "llama.attention.head_count_kv", hp.n_heads, 1024);
    hp.ffn_dim = positive_int(f, "llama.feed_forward_length", 0, 1 << 18);
    hp.n_ctx_train = positive_int(f, "llama.context_length", 2048, 1 << 20);
    if (hp.dim % hp.n_heads != 0) corrupt(f, "embedding_length " + std::to_string(hp.dim) + " is not a multiple of head_count " + std::to_string(hp.n_heads));
    if (hp.n_heads % hp.n_kv_heads != 0) corrupt(f, "head_count " + std::to_string(hp.n_heads) + " is not a multiple of head_count_kv " + std::to_string(hp.n_kv_heads));
    hp.head_dim = hp.dim / hp.n_heads;
    hp.rope_dim = positive_int(f, "llama.rope.dimension_count", hp.head_dim, hp.head_dim);
    if (hp.rope_dim % 2 != 0) corrupt(f, "rope.dimension_count must be even");
    hp.rope_theta = (float) f.get_float("llama.rope.freq_base", 10000.0);
    hp.rms_eps = (float) f.get_float("llama.attention.layer_norm_rms_epsilon", 1e-5);
    if (!(hp.rope_theta > 0) || !std::isfinite(hp.rope_theta)) corrupt(f, "rope.freq_base must be a positive number");
    if (!(hp.rms_eps > 0) || !std::isfinite(hp.rms_eps)) corrupt(f, "layer_norm_rms_epsilon must be a positive number");
    const GgufTensorInfo * embd = f.find_tensor("token_embd.weight");
    if (!embd) corrupt(f, "required tensor 'token_embd.weight' is missing");
    if (embd->ne[0] != hp.dim) corrupt(f, "tensor 'token_embd.weight' has rows of " + std::to_string(embd->ne[0]) + ", expected embedding_length " + std::to_string(hp.dim));
    hp.n_vocab = (int32_t) embd->ne[1];
    hp.tied_output = f.find_tensor("output.weight") == nullptr;
    return hp;
}

WeightType weight_type_for(WeightsPolicy policy, bool attention_projection) {
    switch (policy) {
        case WeightsPolicy::F32: return WeightType::F32;
        case WeightsPolicy::BF16: return WeightType::BF16;
        case WeightsPolicy::INT8: return WeightType::I8;
        case WeightsPolicy::INT4: return WeightType::I4;
        case WeightsPolicy::MIXED: return attention_projection ? WeightType::BF16 : WeightType::I8;
    }
    return WeightType::F32;
}

void check_layout(const LlamaHParams & hp, const ModelLayout & lay) {
    auto invalid = [](const std::string & m) { fail(ErrorCode::INVALID_ARGUMENT, m); };
    if (lay.tp < 1 || lay.tp > 64) invalid("tpDegree must be between 1 and 64");
    if (lay.threads_per_rank < 1 || lay.threads_per_rank > 256) invalid("threadsPerRank must be between 1 and 256");
    if (hp.n_kv_heads % lay.tp != 0)
        invalid("tpDegree " + std::to_string(lay.tp) + " does not divide the model's " + std::to_string(hp.n_kv_heads) + " KV heads");
    if (hp.ffn_dim % lay.tp != 0)
        invalid("tpDegree " + std::to_string(lay.tp) + " does not divide the model's FFN width " + std::to_string(hp.ffn_dim));
    if (lay.kv_block_size < 1 || lay.kv_block_size > 1024) invalid("kvBlockSizeTokens must be between 1 and 1024");
    if (lay.kv_blocks < 1) invalid("the KV cache needs at least one block");
}

std::unique_ptr<LlamaModel> load_llama(const GgufFile & f, const ModelLayout & lay, ThreadPool & pool) {
    LlamaHParams hp = read_llama_hparams(f);
    check_layout(hp, lay);
    const WeightType attn_t = weight_type_for(lay.policy, true), other_t = weight_type_for(lay.policy, false);
    const Range all_dim{0, hp.dim};
    LlamaShared sh;
    load_matrix(f, "token_embd.weight", hp.n_vocab, hp.dim, other_t, sh.tok_embd, pool, {0, hp.n_vocab}, all_dim);
    sh.output_norm = load_vector(f, "output_norm.weight", hp.dim);
    for (int l = 0; l < hp.n_layers; ++l) {
        const std::string p = "blk." + std::to_string(l) + ".";
        sh.attn_norm.push_back(load_vector(f, p + "attn_norm.weight", hp.dim));
        sh.ffn_norm.push_back(load_vector(f, p + "ffn_norm.weight", hp.dim));
    }
    std::vector<LlamaShard> shards(lay.tp);
    const int hd = hp.head_dim;
    for (int r = 0; r < lay.tp; ++r) {
        LlamaShard & S = shards[r];
        S.n_kv_heads = hp.n_kv_heads / lay.tp;
        S.kv_head_begin = r * S.n_kv_heads;
        S.n_heads = hp.n_heads / lay.tp;
        S.head_begin = r * S.n_heads;
        S.ffn = hp.ffn_dim / lay.tp;
        S.ffn_begin = r * S.ffn;
        S.vocab_begin = (int32_t) ((int64_t) hp.n_vocab * r / lay.tp);
        S.vocab = (int32_t) ((int64_t) hp.n_vocab * (r + 1) / lay.tp) - S.vocab_begin;
        const Range q_rows{(int64_t) S.head_begin * hd, (int64_t) (S.head_begin + S.n_heads) * hd};
        const Range kv_rows{(int64_t) S.kv_head_begin * hd, (int64_t) (S.kv_head_begin + S.n_kv_heads) * hd};
        const Range ffn_range{S.ffn_begin, S.ffn_begin + S.ffn};
        const Range vocab_rows{S.vocab_begin, S.vocab_begin + S.vocab};
        if (hp.tied_output && lay.tp == 1) {
            S.output_is_tok_embd = true;
        } else {
            load_matrix(f, hp.tied_output ? "token_embd.weight" : "output.weight", hp.n_vocab, hp.dim, other_t, S.output, pool, vocab_rows, all_dim);
        }
        S.layers.resize(hp.n_layers);
        for (int l = 0; l < hp.n_layers; ++l) {
            const std::string p = "blk." + std::to_string(l) + ".";
            LlamaShard::Layer & L = S.layers[l];
            load_matrix(f, p + "attn_q.weight", hp.q_dim(), hp.dim, attn_t, L.wq, pool, q_rows, all_dim);
            load_matrix(f, p + "attn_k.weight", hp.kv_dim(), hp.dim, attn_t, L.wk, pool, kv_rows, all_dim);
            load_matrix(f, p + "attn_v.weight", hp.kv_dim(), hp.dim, attn_t, L.wv, pool, kv_rows, all_dim);
            load_matrix(f, p + "attn_output.weight", hp.dim, hp.q_dim(), attn_t, L.wo, pool, all_dim, q_rows);
            load_matrix(f, p + "ffn_gate.weight", hp.ffn_dim, hp.dim, other_t, L.w_gate, pool, ffn_range, all_dim);
            load_matrix(f, p + "ffn_up.weight", hp.ffn_dim, hp.dim, other_t, L.w_up, pool, ffn_range, all_dim);
            load_matrix(f, p + "ffn_down.weight", hp.dim, hp.ffn_dim, other_t, L.w_down, pool, all_dim, ffn_range);
        }
    }
    return std::make_unique<LlamaModel>(hp, std::move(sh), std::move(shards), lay);
}

} // namespace tl
