// Reading a GGUF into a Model (model_loader.h): the shared readers the architectures use, and the entry points.
#include "model_loader.h"

#include <algorithm>
#include <cmath>

#include "architecture.h"
#include "errors.h"
#include "tensor_convert.h"

namespace tl {

void corrupt(const GgufFile & f, const std::string & what) {
    fail(ErrorCode::MODEL_CORRUPT, "model '" + f.path() + "': " + what);
}

int32_t positive_int(const GgufFile & f, const std::string & key, int64_t def, int64_t max) {
    int64_t v = f.get_int(key, def);
    if (v <= 0 || v > max)
        corrupt(f,
                "metadata '" + key + "' = " + std::to_string(v) + " is out of range (1.." + std::to_string(max) + ")");
    return (int32_t) v;
}

namespace {

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
                                                     ggml_type_name(t->type) + " (id " + std::to_string(t->type) +
                                                     "); supported: F32, F16, BF16, Q8_0, Q4_0");
    bool ok = t->ne[0] == ne0 && t->ne[1] == ne1 && t->ne[2] == 1 && t->ne[3] == 1;
    if (!ok)
        corrupt(f, "tensor '" + name + "' has shape " + shape_str(*t) + ", expected [" + std::to_string(ne0) +
                       (ne1 > 1 ? ", " + std::to_string(ne1) : "") + "] from the metadata");
    return *t;
}

} // namespace

std::vector<float> load_vector(const GgufFile & f, const std::string & name, int64_t n) {
    const GgufTensorInfo & t = require_tensor(f, name, n, 1);
    std::vector<float> out(n);
    dequantize_row(t.type, t.data, out.data(), n);
    for (float v : out)
        if (!std::isfinite(v)) corrupt(f, "tensor '" + name + "' holds a non-finite value");
    return out;
}

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
                if (!std::isfinite(buf[i])) {
                    errors[idx] = "tensor '" + name + "' holds a non-finite value";
                    return;
                }
            }
            qmatrix_set_rows(out, buf.data(), r0, r1);
        }
    });
    for (const std::string & e : errors)
        if (!e.empty()) corrupt(f, e);
}

ModelHParams read_transformer_hparams(const GgufFile & f, const std::string & arch) {
    const std::string p = arch + ".";
    ModelHParams hp;
    hp.arch = arch;
    hp.dim = positive_int(f, p + "embedding_length", 0, 1 << 16);
    hp.n_layers = positive_int(f, p + "block_count", 0, 1024);
    hp.n_heads = positive_int(f, p + "attention.head_count", 0, 1024);
    hp.n_kv_heads = positive_int(f, p + "attention.head_count_kv", hp.n_heads, 1024);
    hp.ffn_dim = positive_int(f, p + "feed_forward_length", 0, 1 << 18);
    hp.n_ctx_train = positive_int(f, p + "context_length", 2048, 1 << 20);
    if (hp.dim % hp.n_heads != 0)
        corrupt(f, "embedding_length " + std::to_string(hp.dim) + " is not a multiple of head_count " +
                       std::to_string(hp.n_heads));
    if (hp.n_heads % hp.n_kv_heads != 0)
        corrupt(f, "head_count " + std::to_string(hp.n_heads) + " is not a multiple of head_count_kv " +
                       std::to_string(hp.n_kv_heads));
    hp.head_dim = hp.dim / hp.n_heads;
    hp.rope_dim = positive_int(f, p + "rope.dimension_count", hp.head_dim, hp.head_dim);
    if (hp.rope_dim % 2 != 0) corrupt(f, "rope.dimension_count must be even");
    hp.rope_theta = (float) f.get_float(p + "rope.freq_base", 10000.0);
    hp.rms_eps = (float) f.get_float(p + "attention.layer_norm_rms_epsilon", 1e-5);
    if (!(hp.rope_theta > 0) || !std::isfinite(hp.rope_theta)) corrupt(f, "rope.freq_base must be a positive number");
    if (!(hp.rms_eps > 0) || !std::isfinite(hp.rms_eps)) corrupt(f, "layer_norm_rms_epsilon must be a positive number");
    const GgufTensorInfo * embd = f.find_tensor("token_embd.weight");
    if (!embd) corrupt(f, "required tensor 'token_embd.weight' is missing");
    if (embd->ne[0] != hp.dim)
        corrupt(f, "tensor 'token_embd.weight' has rows of " + std::to_string(embd->ne[0]) +
                       ", expected embedding_length " + std::to_string(hp.dim));
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

void check_layout(const ModelHParams & hp, const ModelLayout & lay) {
    auto invalid = [](const std::string & m) { fail(ErrorCode::INVALID_ARGUMENT, m); };
    if (lay.tp < 1 || lay.tp > 64) invalid("tpDegree must be between 1 and 64");
    if (lay.threads_per_rank < 1 || lay.threads_per_rank > 256) invalid("threadsPerRank must be between 1 and 256");
    if (hp.n_kv_heads % lay.tp != 0)
        invalid("tpDegree " + std::to_string(lay.tp) + " does not divide the model's " + std::to_string(hp.n_kv_heads) +
                " KV heads");
    if (hp.ffn_dim % lay.tp != 0)
        invalid("tpDegree " + std::to_string(lay.tp) + " does not divide the model's FFN width " +
                std::to_string(hp.ffn_dim));
    if (lay.kv_block_size < 1 || lay.kv_block_size > 1024) invalid("kvBlockSizeTokens must be between 1 and 1024");
    if (lay.kv_blocks < 1) invalid("the KV cache needs at least one block");
}

ModelHParams read_model_hparams(const GgufFile & f) { return architecture_of(f).read_hparams(f); }

std::unique_ptr<Model> load_model(const GgufFile & f, const ModelLayout & lay, ThreadPool & pool) {
    const Architecture & arch = architecture_of(f);
    ModelHParams hp = arch.read_hparams(f);
    check_layout(hp, lay);
    ModelWeights w = arch.load(f, hp, lay, pool);
    return std::make_unique<Model>(arch, std::move(hp), std::move(w), lay);
}

void assign_shard(const ModelHParams & hp, int tp, int r, ShardWeights & S) {
    S.n_kv_heads = hp.n_kv_heads / tp;
    S.kv_head_begin = r * S.n_kv_heads;
    S.n_heads = hp.n_heads / tp;
    S.head_begin = r * S.n_heads;
    S.ffn = hp.ffn_dim / tp;
    S.ffn_begin = r * S.ffn;
    S.vocab_begin = (int32_t) ((int64_t) hp.n_vocab * r / tp);
    S.vocab = (int32_t) ((int64_t) hp.n_vocab * (r + 1) / tp) - S.vocab_begin;
}

} // namespace tl
