// Reading a GGUF into a Model (model_loader.h): the shared readers the architectures use, and the entry points.
#include "model_loader.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "architecture.h"
#include "errors.h"
#include "quant/formats.h"
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

std::string supported_types() {
    std::string s;
    for (int id = 0; id < quant::kTypeCount; ++id) {
        if (!quant::is_native_weight_type((quant::Type) id)) continue;
        s += (s.empty() ? "" : ", ") + std::string(quant::type_name((quant::Type) id));
    }
    return s;
}

// UNSUPPORTED_TENSOR_TYPE unless the engine can run (and so decode) the tensor's type.
void require_supported_type(const GgufFile & f, const GgufTensorInfo & t) {
    const quant::TypeTraits * tt = quant::traits(t.type);
    if (tt && quant::is_native_weight_type(tt->type) && t.data) return;
    const std::string what = tt ? std::string("type ") + tt->name + " (ggml type id " + std::to_string(t.type) + ")"
                                : "ggml type id " + std::to_string(t.type) + ", which this engine does not know";
    fail(ErrorCode::UNSUPPORTED_TENSOR_TYPE,
         "model '" + f.path() + "': tensor '" + t.name + "' has " + what + "; supported: " + supported_types());
}

const GgufTensorInfo & require_tensor(const GgufFile & f, const std::string & name, int64_t ne0, int64_t ne1) {
    const GgufTensorInfo * t = f.find_tensor(name);
    if (!t) corrupt(f, "required tensor '" + name + "' is missing");
    require_supported_type(f, *t);
    bool ok = t->ne[0] == ne0 && t->ne[1] == ne1 && t->ne[2] == 1 && t->ne[3] == 1;
    if (!ok)
        corrupt(f, "tensor '" + name + "' has shape " + shape_str(*t) + ", expected [" + std::to_string(ne0) +
                       (ne1 > 1 ? ", " + std::to_string(ne1) : "") + "] from the metadata");
    return *t;
}

double bits_per_weight(quant::Type t) {
    const quant::TypeTraits * tt = quant::traits(t);
    return 8.0 * tt->block_bytes / tt->block_elems;
}

std::string bpw_str(quant::Type t) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f", bits_per_weight(t));
    return buf;
}

// The type a policy asks for, before any fallback.
quant::Type policy_type(WeightsPolicy p, MatrixRole role, quant::Type src) {
    switch (p) {
        case WeightsPolicy::NATIVE: return src;
        case WeightsPolicy::F32: return quant::Type::F32;
        case WeightsPolicy::BF16: return quant::Type::BF16;
        case WeightsPolicy::Q8_0:
        case WeightsPolicy::INT8: return quant::Type::Q8_0;
        case WeightsPolicy::Q4_0:
        case WeightsPolicy::INT4: return quant::Type::Q4_0;
        case WeightsPolicy::Q6_K: return quant::Type::Q6_K;
        case WeightsPolicy::Q5_K: return quant::Type::Q5_K;
        case WeightsPolicy::Q4_K: return quant::Type::Q4_K;
        case WeightsPolicy::MIXED: return role == MatrixRole::ATTENTION ? quant::Type::BF16 : quant::Type::Q8_0;
    }
    return src;
}

bool is_float_type(quant::Type t) { return t == quant::Type::F32 || t == quant::Type::F16 || t == quant::Type::BF16; }

// llama.cpp's fallback (llama_tensor_get_type) for rows of n elements that are not whole blocks of `want`.
quant::Type fit_rows(quant::Type want, quant::Type src, int64_t n) {
    auto fits = [n](quant::Type t) { return n % quant::traits(t)->block_elems == 0; };
    if (fits(want)) return want;
    quant::Type t = want;
    switch (want) {
        case quant::Type::Q4_K: t = quant::Type::Q5_0; break;
        case quant::Type::Q5_K: t = quant::Type::Q5_1; break;
        case quant::Type::Q6_K: t = quant::Type::Q8_0; break;
        case quant::Type::Q2_K:
        case quant::Type::Q3_K:
        case quant::Type::IQ4_XS: t = quant::Type::IQ4_NL; break;
        default: break;
    }
    if (fits(t)) return t;
    return is_float_type(src) ? src : quant::Type::BF16;
}

} // namespace

WeightChoice choose_weight_type(const GgufFile & f, const std::string & name, WeightsPolicy policy, MatrixRole role,
                                uint32_t src_id, int64_t n) {
    const GgufTensorInfo * t = f.find_tensor(name);
    if (!t) corrupt(f, "required tensor '" + name + "' is missing");
    require_supported_type(f, *t);
    const quant::Type src = (quant::Type) src_id;
    const quant::Type want = policy_type(policy, role, src);
    const quant::Type type = fit_rows(want, src, n);
    const quant::TypeTraits *ts = quant::traits(src), *td = quant::traits(type);
    if (ts->is_quantized && td->is_quantized && type != src && bits_per_weight(type) >= bits_per_weight(src))
        fail(ErrorCode::INVALID_ARGUMENT,
             std::string("weights '") + weights_policy_name(policy) + "' would re-quantize tensor '" + name +
                 "' of model '" + f.path() + "' from " + ts->name + " (" + bpw_str(src) + " bits per weight) to " +
                 td->name + " (" + bpw_str(type) +
                 " bits per weight): that only loses precision, it saves no bytes. Use weights 'native' to run "
                 "the file's types, or 'f32' / 'bf16' to dequantize");
    return {want, type};
}

std::vector<float> load_vector(const GgufFile & f, const std::string & name, int64_t n) {
    const GgufTensorInfo & t = require_tensor(f, name, n, 1);
    std::vector<float> out(n);
    std::string why;
    if (!quant::validate_blocks((quant::Type) t.type, t.data, t.n_bytes / quant::traits(t.type)->block_bytes, &why))
        corrupt(f, "tensor '" + name + "' holds a non-finite value: " + why);
    dequantize_row(t.type, t.data, out.data(), n);
    for (float v : out)
        if (!std::isfinite(v)) corrupt(f, "tensor '" + name + "' holds a non-finite value");
    return out;
}

WeightChoice check_matrix(const GgufFile & f, const MatrixSpec & m, WeightsPolicy policy) {
    const GgufTensorInfo & t = require_tensor(f, m.name, m.cols, m.rows);
    const WeightChoice c = choose_weight_type(f, m.name, policy, m.role, t.type, m.cols);
    if (m.cr.begin != 0 || m.cr.end != m.cols) {
        // A row-split shard: its columns must be whole blocks of the type it is held in (the file's blocks are
        // copied, or whole rows decoded and the shard's part re-quantized).
        const int64_t b = quant::traits(c.type)->block_elems;
        for (int64_t at : {m.cr.begin, m.cr.end})
            if (at % b != 0)
                fail(ErrorCode::INVALID_ARGUMENT,
                     "tpDegree: tensor '" + m.name + "' (" + quant::type_name(c.type) + ", blocks of " +
                         std::to_string(b) +
                         " elements) is split by input columns across tensor-parallel ranks, and "
                         "a shard boundary at column " +
                         std::to_string(at) + " of " + std::to_string(m.cols) +
                         " is not a multiple of the block size " + std::to_string(b) +
                         "; use a tpDegree that cuts it at whole blocks");
    }
    return c;
}

void load_matrix(const GgufFile & f, const MatrixSpec & m, WeightsPolicy policy, QMatrix & out, ThreadPool & pool) {
    const GgufTensorInfo & t = require_tensor(f, m.name, m.cols, m.rows);
    const WeightChoice c = check_matrix(f, m, policy);
    const quant::Type src = (quant::Type) t.type;
    const quant::TypeTraits * ts = quant::traits(src);
    qmatrix_alloc_typed(out, c.type, m.rr.size(), m.cr.size());
    out.name = m.name;
    out.requested = c.requested;
    const int64_t row_bytes = quant::row_bytes(src, m.cols);
    const int64_t blocks_per_row = m.cols / ts->block_elems;
    std::vector<std::string> errors(pool.size());
    pool.run([&](int idx, int nth) {
        const int64_t n = m.rr.size();
        std::vector<float> row;
        for (int64_t r = n * idx / nth; r < n * (idx + 1) / nth; ++r) {
            const uint8_t * src_row = t.data + (m.rr.begin + r) * row_bytes;
            std::string why;
            if (!quant::validate_blocks(src, src_row, blocks_per_row, &why)) {
                // Again from the tensor's start, so that the message counts blocks (or elements) of the tensor.
                quant::validate_blocks(src, t.data, (m.rr.begin + r + 1) * blocks_per_row, &why);
                errors[idx] = "tensor '" + m.name + "' holds a non-finite value: " + why + " (row " +
                              std::to_string(m.rr.begin + r) + ")";
                return;
            }
            if (c.type == src) {
                // Kept: the shard's blocks as they are (check_matrix made the column range whole blocks).
                qmatrix_set_row_from(out, r, src, src_row + m.cr.begin / ts->block_elems * ts->block_bytes);
            } else {
                row.resize((size_t) m.cols);
                dequantize_row(t.type, src_row, row.data(), m.cols);
                qmatrix_set_row_from(out, r, quant::Type::F32, row.data() + m.cr.begin);
            }
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
