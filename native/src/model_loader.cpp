// Reading a GGUF into a Model (model_loader.h): the shared readers the architectures use, and the entry points.
#include "model_loader.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>

#include "architecture.h"
#include "errors.h"
#include "moe.h"
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

// ne2 > 1: a stack of ne2 matrices (the 3-D expert tensors of a MoE layer).
const GgufTensorInfo & require_tensor(const GgufFile & f, const std::string & name, int64_t ne0, int64_t ne1,
                                      int64_t ne2 = 1) {
    const GgufTensorInfo * t = f.find_tensor(name);
    if (!t) corrupt(f, "required tensor '" + name + "' is missing");
    require_supported_type(f, *t);
    bool ok = t->ne[0] == ne0 && t->ne[1] == ne1 && t->ne[2] == ne2 && t->ne[3] == 1;
    if (!ok)
        corrupt(f, "tensor '" + name + "' has shape " + shape_str(*t) + ", expected [" + std::to_string(ne0) +
                       (ne1 > 1 || ne2 > 1 ? ", " + std::to_string(ne1) : "") +
                       (ne2 > 1 ? ", " + std::to_string(ne2) : "") + "] from the metadata");
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
    const GgufTensorInfo & t = require_tensor(f, m.name, m.cols, m.rows, m.n_mats);
    if (m.mat < 0 || m.mat >= m.n_mats) corrupt(f, "tensor '" + m.name + "': matrix index out of range");
    if (m.force_f32) policy = WeightsPolicy::F32;
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
    const GgufTensorInfo & t = require_tensor(f, m.name, m.cols, m.rows, m.n_mats);
    const WeightChoice c = check_matrix(f, m, m.force_f32 ? WeightsPolicy::F32 : policy);
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
            // Matrix m.mat of a stack is the m.mat-th [rows x cols] slice (ggml's ne2 is the slowest index).
            const uint8_t * src_row = t.data + (m.mat * m.rows + m.rr.begin + r) * row_bytes;
            std::string why;
            if (!quant::validate_blocks(src, src_row, blocks_per_row, &why)) {
                // Again from the tensor's start, so that the message counts blocks (or elements) of the tensor.
                quant::validate_blocks(src, t.data, (m.mat * m.rows + m.rr.begin + r + 1) * blocks_per_row, &why);
                errors[idx] = "tensor '" + m.name + "' holds a non-finite value: " + why + " (row " +
                              std::to_string(m.rr.begin + r) +
                              (m.n_mats > 1 ? " of matrix " + std::to_string(m.mat) : std::string()) + ")";
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

namespace {

// Keys under "<arch>." that every decoder reads (read_transformer_hparams) or that change nothing in the forward pass.
const char * const kCommonKeys[] = {
    "context_length", "embedding_length", "block_count", "feed_forward_length", "attention.head_count",
    "attention.head_count_kv", "attention.layer_norm_rms_epsilon", "attention.key_length", "attention.value_length",
    "rope.dimension_count", "rope.freq_base", "rope.scaling.type", "rope.scaling.factor", "rope.scale_linear",
    "rope.scaling.attn_factor", "rope.scaling.original_context_length",
    // Documentary: llama.cpp reads them into hparams that no computation uses.
    "rope.scaling.finetuned", "vocab_size",
    // How embeddings are pooled (llama.cpp's enum): read by the embeddings route, not by the forward pass.
    "pooling_type"};

} // namespace

void refuse_unknown_keys(const GgufFile & f, const std::string & arch, std::initializer_list<const char *> extra) {
    const std::string p = arch + ".";
    for (const auto & [key, _] : f.metadata()) {
        if (key.compare(0, p.size(), p) != 0) continue;
        const std::string k = key.substr(p.size());
        // Some converters write expert counts of 0 into dense models: that is a dense model.
        if ((k == "expert_count" || k == "expert_used_count") && f.find(key)->type != GgufType::ARRAY &&
            f.get_int(key, 0) == 0)
            continue;
        bool known = false;
        for (const char * c : kCommonKeys) known = known || k == c;
        for (const char * c : extra) known = known || k == c;
        if (!known)
            fail(ErrorCode::UNSUPPORTED_ARCHITECTURE,
                 "model '" + f.path() + "': metadata '" + key + "' changes how a " + arch +
                     " model computes and tuneloop does not implement it (refused rather than ignored)");
    }
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
    // attention.key_length / value_length: a head's width when it is not embedding_length / head_count (Qwen3,
    // Gemma); Q is then head_count * key_length wide and the output projection reads head_count * value_length.
    const bool has_kl = f.find(p + "attention.key_length") != nullptr;
    if (!has_kl && hp.dim % hp.n_heads != 0)
        corrupt(f, "embedding_length " + std::to_string(hp.dim) + " is not a multiple of head_count " +
                       std::to_string(hp.n_heads));
    if (hp.n_heads % hp.n_kv_heads != 0)
        corrupt(f, "head_count " + std::to_string(hp.n_heads) + " is not a multiple of head_count_kv " +
                       std::to_string(hp.n_kv_heads));
    hp.head_dim = positive_int(f, p + "attention.key_length", has_kl ? 0 : hp.dim / hp.n_heads, 4096);
    const int32_t head_v = positive_int(f, p + "attention.value_length", hp.head_dim, 4096);
    if (head_v != hp.head_dim)
        fail(ErrorCode::UNSUPPORTED_ARCHITECTURE, "model '" + f.path() + "': attention.value_length " +
                                                      std::to_string(head_v) + " differs from key_length " +
                                                      std::to_string(hp.head_dim) +
                                                      "; tuneloop's KV cache holds keys and values of one width");
    if (hp.head_dim % 2 != 0) corrupt(f, "attention.key_length must be even (RoPE rotates pairs)");
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
    read_rope_scaling(f, hp);
    return hp;
}

void read_rope_scaling(const GgufFile & f, ModelHParams & hp) {
    const std::string p = hp.arch + ".";
    RopeConfig & r = hp.rope;
    r.base = hp.rope_theta;
    // As llama.cpp's llama_model_base::load_hparams and llama_context's constructor: the type defaults to linear
    // (a factor of 0 / absent means no scaling), "none" never scales.
    const std::string type = f.get_string(p + "rope.scaling.type", "linear");
    if (type != "none" && type != "linear" && type != "yarn" && type != "longrope")
        fail(ErrorCode::UNSUPPORTED_ARCHITECTURE, "model '" + f.path() + "': metadata '" + p +
                                                      "rope.scaling.type' = '" + type +
                                                      "' is not a RoPE scaling tuneloop knows (none, linear, yarn, "
                                                      "longrope)");
    double factor = f.get_float(p + "rope.scaling.factor", 0.0);
    if (factor == 0.0) factor = f.get_float(p + "rope.scale_linear", 0.0);
    if (!std::isfinite(factor) || factor < 0) corrupt(f, "rope.scaling.factor must be a non-negative number");
    r.freq_scale = factor == 0.0 || type == "none" ? 1.0f : (float) (1.0 / factor);
    r.n_ctx_orig = positive_int(f, p + "rope.scaling.original_context_length", hp.n_ctx_train, 1 << 24);
    const float rope_attn_factor = (float) f.get_float(p + "rope.scaling.attn_factor", 1.0);
    if (!(rope_attn_factor > 0) || !std::isfinite(rope_attn_factor))
        corrupt(f, "rope.scaling.attn_factor must be a positive number");
    r.attn_factor = 1.0f;
    if (type == "yarn") {
        r.ext_factor = 1.0f;
        // llama_context: attn_factor = get_mscale(factor) / (1 + 0.1 ln factor), because the rope kernel multiplies
        // by (1 + 0.1 ln(1 / freq_scale)) again under YaRN; beta_fast / beta_slow are llama.cpp's defaults (32, 1).
        const float fac = 1.0f / r.freq_scale;
        const float mscale = fac <= 1.0f ? 1.0f : 0.1f * std::log(fac) + 1.0f;
        r.attn_factor = mscale * (1.0f / (1.0f + 0.1f * std::log(fac)));
    }
    r.attn_factor *= rope_attn_factor;
    hp.rope_scaling = type == "linear" && r.freq_scale == 1.0f ? "none" : type;
    hp.rope_swa = r;
}

ModelWeights load_decoder(const GgufFile & f, const ModelHParams & hp, const ModelLayout & lay, ThreadPool & pool,
                          const DecoderTensors & spec) {
    const Range all_dim{0, hp.dim};
    const MatrixRole attn = MatrixRole::ATTENTION, other = MatrixRole::OTHER;
    std::set<std::string> used; // every tensor this architecture reads: any other one in the file is refused
    auto present = [&](const std::string & name) { return f.find_tensor(name) != nullptr; };
    // Every matrix of every rank, with where it goes: checked first (types, the policy's refusals, shard alignment),
    // then loaded.
    ModelWeights w;
    SharedWeights & sh = w.shared;
    const int n_ranks = lay.n_ranks();
    w.shards.resize(n_ranks);
    std::vector<std::pair<MatrixSpec, QMatrix *>> mats;
    mats.push_back({{"token_embd.weight", hp.n_vocab, hp.dim, other, {0, hp.n_vocab}, all_dim}, &sh.tok_embd});
    const int hd = hp.head_dim;
    const int64_t q_dim = hp.q_dim(), kv_dim = hp.kv_dim(), ffn = hp.ffn_dim;
    // Biases (whole vectors, decoded once) whose rows each rank keeps a slice of.
    struct BiasSlice {
        std::string name;
        int64_t n, offset; // the tensor's length; where this part starts in it (fused QKV)
        Range rows;        // the rank's rows within the part
        std::vector<float> * out;
    };
    std::vector<BiasSlice> biases;
    for (int r = 0; r < n_ranks; ++r) {
        ShardWeights & S = w.shards[r];
        assign_ranks(hp, lay, r, S);
        const Range q_rows{(int64_t) S.head_begin * hd, (int64_t) (S.head_begin + S.n_heads) * hd};
        const Range kv_rows{(int64_t) S.kv_head_begin * hd, (int64_t) (S.kv_head_begin + S.n_kv_heads) * hd};
        const Range ffn_range{S.ffn_begin, S.ffn_begin + S.ffn};
        const Range vocab_rows{S.vocab_begin, S.vocab_begin + S.vocab};
        if (hp.tied_output && n_ranks == 1) {
            S.output_is_tok_embd = true;
        } else {
            mats.push_back({{hp.tied_output ? "token_embd.weight" : "output.weight", hp.n_vocab, hp.dim, other,
                             vocab_rows, all_dim},
                            &S.output});
        }
        auto shifted = [](Range x, int64_t by) { return Range{x.begin + by, x.end + by}; };
        S.layers.resize(hp.n_layers);
        for (int l = 0; l < hp.n_layers; ++l) {
            const std::string p = "blk." + std::to_string(l) + ".";
            ShardWeights::Layer & L = S.layers[l];
            if (present(p + "attn_qkv.weight")) {
                // Fused Q, K, V (Phi-3): one [q + 2 kv] x dim matrix, split here by rows so that each rank holds its
                // heads of each part exactly as separate matrices would be sharded.
                const std::string n = p + "attn_qkv.weight";
                const int64_t rows = q_dim + 2 * kv_dim;
                mats.push_back({{n, rows, hp.dim, attn, q_rows, all_dim}, &L.wq});
                mats.push_back({{n, rows, hp.dim, attn, shifted(kv_rows, q_dim), all_dim}, &L.wk});
                mats.push_back({{n, rows, hp.dim, attn, shifted(kv_rows, q_dim + kv_dim), all_dim}, &L.wv});
                if (present(p + "attn_qkv.bias")) {
                    biases.push_back({p + "attn_qkv.bias", rows, 0, q_rows, &L.bq});
                    biases.push_back({p + "attn_qkv.bias", rows, q_dim, kv_rows, &L.bk});
                    biases.push_back({p + "attn_qkv.bias", rows, q_dim + kv_dim, kv_rows, &L.bv});
                }
            } else {
                mats.push_back({{p + "attn_q.weight", q_dim, hp.dim, attn, q_rows, all_dim}, &L.wq});
                mats.push_back({{p + "attn_k.weight", kv_dim, hp.dim, attn, kv_rows, all_dim}, &L.wk});
                mats.push_back({{p + "attn_v.weight", kv_dim, hp.dim, attn, kv_rows, all_dim}, &L.wv});
                // Q/K/V biases (Qwen2): optional for every architecture, as llama.cpp's create_tensor_qkv reads them.
                if (present(p + "attn_q.bias")) biases.push_back({p + "attn_q.bias", q_dim, 0, q_rows, &L.bq});
                if (present(p + "attn_k.bias")) biases.push_back({p + "attn_k.bias", kv_dim, 0, kv_rows, &L.bk});
                if (present(p + "attn_v.bias")) biases.push_back({p + "attn_v.bias", kv_dim, 0, kv_rows, &L.bv});
            }
            mats.push_back({{p + "attn_output.weight", hp.dim, q_dim, attn, all_dim, q_rows}, &L.wo});
            if (hp.moe.layer_is_moe(l)) continue; // planned below, for every rank at once
            if (spec.fused_ffn_up) {
                // [gate; up] in one 2 ffn x dim matrix (Phi-3: the first half goes through silu).
                mats.push_back({{p + "ffn_up.weight", 2 * ffn, hp.dim, other, ffn_range, all_dim}, &L.w_gate});
                mats.push_back(
                    {{p + "ffn_up.weight", 2 * ffn, hp.dim, other, shifted(ffn_range, ffn), all_dim}, &L.w_up});
            } else {
                mats.push_back({{p + "ffn_gate.weight", ffn, hp.dim, other, ffn_range, all_dim}, &L.w_gate});
                mats.push_back({{p + "ffn_up.weight", ffn, hp.dim, other, ffn_range, all_dim}, &L.w_up});
            }
            mats.push_back({{p + "ffn_down.weight", hp.dim, ffn, other, all_dim, ffn_range}, &L.w_down});
        }
    }
    for (int l = 0; l < hp.n_layers; ++l)
        if (hp.moe.layer_is_moe(l)) plan_moe_layer(f, hp, lay, l, spec.moe_selection_bias, sh, w.shards, mats, used);
    for (const auto & [spec_m, _] : mats) {
        check_matrix(f, spec_m, lay.policy);
        used.insert(spec_m.name);
    }
    auto vec = [&](const std::string & name, int64_t n) {
        used.insert(name);
        return load_vector(f, name, n);
    };
    sh.output_norm = vec("output_norm.weight", hp.dim);
    for (int l = 0; l < hp.n_layers; ++l) {
        const std::string p = "blk." + std::to_string(l) + ".";
        sh.attn_norm.push_back(vec(p + "attn_norm.weight", hp.dim));
        sh.ffn_norm.push_back(vec(p + "ffn_norm.weight", hp.dim));
        if (spec.post_norms) {
            sh.attn_post_norm.push_back(vec(p + "post_attention_norm.weight", hp.dim));
            sh.ffn_post_norm.push_back(vec(p + "post_ffw_norm.weight", hp.dim));
        }
        if (spec.qk_norm) {
            // Per head (replicated on every rank whatever heads it owns).
            sh.attn_q_norm.push_back(vec(p + "attn_q_norm.weight", hd));
            sh.attn_k_norm.push_back(vec(p + "attn_k_norm.weight", hd));
        }
    }
    for (const BiasSlice & b : biases) {
        const std::vector<float> full = vec(b.name, b.n);
        b.out->assign(full.begin() + b.offset + b.rows.begin, full.begin() + b.offset + b.rows.end);
    }
    const int64_t n_factors = hp.rope_dim / 2;
    if (spec.rope_factors == DecoderTensors::RopeFactors::FREQS) {
        // Llama 3.1: one divisor per rotated pair.
        if (present("rope_freqs.weight")) sh.rope_factors = vec("rope_freqs.weight", n_factors);
    } else if (spec.rope_factors == DecoderTensors::RopeFactors::LONGROPE) {
        // Phi-3 LongRoPE: llama.cpp (llama_model::get_rope_factors) takes the long factors when the context served
        // is longer than rope.scaling.original_context_length, else the short ones.
        const int32_t n_ctx = lay.n_ctx > 0 ? lay.n_ctx : hp.n_ctx_train;
        const std::string pick = n_ctx > hp.rope.n_ctx_orig ? "rope_factors_long.weight" : "rope_factors_short.weight";
        for (const char * n : {"rope_factors_long.weight", "rope_factors_short.weight"}) {
            if (!present(n)) continue;
            std::vector<float> v = vec(n, n_factors);
            if (pick == n) sh.rope_factors = std::move(v);
        }
    }
    for (float x : sh.rope_factors)
        if (!(x > 0)) corrupt(f, "RoPE frequency factors must be positive");
    for (const GgufTensorInfo & t : f.tensors())
        if (!used.count(t.name))
            fail(
                ErrorCode::UNSUPPORTED_ARCHITECTURE,
                "model '" + f.path() + "': tensor '" + t.name + "' is not part of tuneloop's " + hp.arch +
                    " architecture (refused rather than ignored, as llama.cpp refuses a file with unexpected tensors)");
    for (const auto & [spec_m, out] : mats) load_matrix(f, spec_m, lay.policy, *out, pool);
    return w;
}

void check_layout(const ModelHParams & hp, const ModelLayout & lay) {
    auto invalid = [](const std::string & m) { fail(ErrorCode::INVALID_ARGUMENT, m); };
    if (lay.tp < 1 || lay.tp > 64) invalid("tpDegree must be between 1 and 64");
    if (lay.threads_per_rank < 1 || lay.threads_per_rank > 256) invalid("threadsPerRank must be between 1 and 256");
    if (hp.is_mla()) {
        // MLA splits the query heads (their absorbed products and values); every rank keeps the whole latent cache.
        if (hp.n_heads % lay.tp != 0)
            invalid("tpDegree " + std::to_string(lay.tp) + " does not divide the model's " +
                    std::to_string(hp.n_heads) + " attention heads");
    } else if (hp.n_kv_heads % lay.tp != 0) {
        invalid("tpDegree " + std::to_string(lay.tp) + " does not divide the model's " + std::to_string(hp.n_kv_heads) +
                " KV heads");
    }
    // A MoE model without dense layers never uses feed_forward_length (qwen3moe writes it all the same).
    const bool dense_ffn = !hp.moe.enabled() || hp.moe.n_leading_dense > 0;
    if (dense_ffn && hp.ffn_dim % lay.tp != 0)
        invalid("tpDegree " + std::to_string(lay.tp) + " does not divide the model's FFN width " +
                std::to_string(hp.ffn_dim));
    if (hp.moe.enabled() && lay.ep_degree == 1 && hp.moe.expert_ffn_dim % lay.tp != 0)
        invalid("tpDegree " + std::to_string(lay.tp) + " does not divide the model's expert FFN width " +
                std::to_string(hp.moe.expert_ffn_dim));
    if (lay.ep_degree < 1 || lay.ep_degree > 64) invalid("epDegree must be between 1 and 64");
    if (lay.alltoall_delay_us < 0 || lay.alltoall_delay_us > 1000000)
        invalid("alltoallDelayUs must be between 0 and 1000000");
    if (!hp.moe.enabled() && (lay.ep_degree > 1 || !lay.redundant_experts.empty()))
        invalid("epDegree / redundantExperts: the model has no experts (a dense " + hp.arch + " model)");
    if (lay.ep_degree > 1) {
        const std::string ep = "epDegree " + std::to_string(lay.ep_degree);
        if (lay.tp != 1 && lay.tp != lay.ep_degree)
            invalid(ep + " with tpDegree " + std::to_string(lay.tp) +
                    ": expert parallelism runs either beside replicated attention (tpDegree 1) or on the "
                    "tensor-parallel ranks (tpDegree = epDegree)");
        if (lay.ep_degree > hp.moe.n_expert)
            invalid(ep + " exceeds the model's " + std::to_string(hp.moe.n_expert) + " experts");
        const int64_t shared = (int64_t) hp.moe.expert_ffn_dim * hp.moe.n_expert_shared;
        if (lay.tp > 1 && shared % lay.ep_degree != 0)
            invalid(ep + " does not divide the shared experts' FFN width " + std::to_string(shared));
    }
    if (!lay.redundant_experts.empty() && lay.ep_degree < 2)
        invalid("redundantExperts need epDegree > 1 (a replica lives on another rank)");
    for (size_t i = 0; i < lay.redundant_experts.size(); ++i) {
        const auto [l, e] = lay.redundant_experts[i];
        const std::string what = "redundantExperts[" + std::to_string(i) + "] {layer " + std::to_string(l) +
                                 ", expert " + std::to_string(e) + "}";
        if (l < 0 || l >= hp.n_layers || !hp.moe.layer_is_moe(l)) invalid(what + ": not a MoE layer of the model");
        if (e < 0 || e >= hp.moe.n_expert)
            invalid(what + ": the layer has experts 0.." + std::to_string(hp.moe.n_expert - 1));
        for (size_t j = 0; j < i; ++j)
            if (lay.redundant_experts[j] == lay.redundant_experts[i]) invalid(what + ": listed twice");
    }
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

void assign_ranks(const ModelHParams & hp, const ModelLayout & lay, int r, ShardWeights & S) {
    // Attention and dense FFN: tensor-parallel over the tp ranks (each of the ranks beyond, if any, a replica).
    assign_shard(hp, lay.tp, r % lay.tp, S);
    const int n = lay.n_ranks();
    // Every rank has the whole residual stream, so the vocabulary (and the shared experts, summed with the routed
    // ones) split over all ranks.
    S.vocab_begin = (int32_t) ((int64_t) hp.n_vocab * r / n);
    S.vocab = (int32_t) ((int64_t) hp.n_vocab * (r + 1) / n) - S.vocab_begin;
    const int64_t shared = (int64_t) hp.moe.expert_ffn_dim * hp.moe.n_expert_shared;
    if (lay.tp == 1 && n > 1 && (shared % n != 0 || (shared / n) % 256 != 0)) {
        // Beside replicated attention the shared experts' width may not split into whole blocks of every GGUF type
        // (256 values: DeepSeek-V2-Lite's 2 x 1408 over 2 ranks is 1408, half a Q4_K block off): rank 0 runs them
        // whole, the other ranks none (its partial carries them into the combine).
        S.shexp_ffn = r == 0 ? (int32_t) shared : 0;
        S.shexp_ffn_begin = 0;
    } else {
        S.shexp_ffn = (int32_t) (shared / n);
        S.shexp_ffn_begin = r * S.shexp_ffn;
    }
    if (lay.ep_degree > 1) { // whole experts, owned by ranks
        S.expert_ffn = hp.moe.expert_ffn_dim;
        S.expert_ffn_begin = 0;
    }
}

void assign_shard(const ModelHParams & hp, int tp, int r, ShardWeights & S) {
    S.n_kv_heads = hp.n_kv_heads / tp;
    S.kv_head_begin = r * S.n_kv_heads;
    S.n_heads = hp.n_heads / tp;
    S.head_begin = r * S.n_heads;
    S.ffn = hp.ffn_dim / tp;
    S.ffn_begin = r * S.ffn;
    S.expert_ffn = hp.moe.expert_ffn_dim / tp;
    S.expert_ffn_begin = r * S.expert_ffn;
    S.shexp_ffn = hp.moe.expert_ffn_dim * hp.moe.n_expert_shared / tp;
    S.shexp_ffn_begin = r * S.shexp_ffn;
    S.vocab_begin = (int32_t) ((int64_t) hp.n_vocab * r / tp);
    S.vocab = (int32_t) ((int64_t) hp.n_vocab * (r + 1) / tp) - S.vocab_begin;
}

} // namespace tl
