// general.architecture = deepseek2 (DeepSeek-V2, V2-Lite, V3 and their GGUF descendants): Multi-head Latent Attention
// (mla.h) in every layer, a SwiGLU FFN in the first leading_dense_block_count layers and a Mixture-of-Experts FFN in
// the others (moe.h: shared experts, softmax or sigmoid scores, the exp_probs_b selection bias, group-limited routing,
// renormalized and scaled weights, as the file's expert_* keys say), NORM (adjacent-pair) RoPE on the rope part only,
// YaRN as DeepSeek declares it, and a head tied to token_embd when output.weight is absent.
//
// What the file holds, as llama.cpp's deepseek2 loader reads it (MLA form; see tools/train-deepseek-model/README.md):
// MLA is stored as MQA over the latent: head_count_kv 1, attention.key_length = kv_lora_rank + rope,
// attention.value_length = kv_lora_rank; the per-head sizes are attention.key_length_mla (nope + rope) and
// value_length_mla. attn_q_a [dim, q_lora] + attn_q_a_norm + attn_q_b [q_lora, heads * (nope + rope)], or (q_lora_rank
// 0, V2-Lite) attn_q [dim, heads * (nope + rope)]; attn_kv_a_mqa [dim, kv_lora + rope] + attn_kv_a_norm [kv_lora];
// attn_k_b [nope, kv_lora, heads] and attn_v_b [kv_lora, v_head, heads]; attn_output [heads * v_head, dim].
//
// A multi-token-prediction module (nextn_predict_layers K, DeepSeek-V3's MTP): block_count counts it and its blocks
// blk.<n>.. blk.<n + K - 1> (n = block_count - K) hold a decoder block plus nextn.* tensors. It predicts a further
// token for speculative decoding; the model's own next-token logits never use it, and llama.cpp skips it unless asked
// for an MTP context. tuneloop runs the n trunk layers and accepts those blocks without loading them.
//
// The query . key scale under YaRN (llama.cpp's deepseek2 graph and llama_context): with rope.scaling.
// yarn_log_multiplier (the converter writes 0.1 * mscale_all_dim), the RoPE magnitude is rope.scaling.attn_factor
// alone (llama_context cancels ggml's own YaRN factor and, for deepseek2, mscale = mscale_all_dim makes the ratio
// get_mscale(mscale) / get_mscale(mscale_all_dim) 1), and scores are scaled by mscale^2 / sqrt(key_length_mla) with
// mscale = attn_factor * (1 + 0.1 * mscale_all_dim * ln factor).
#include <cmath>
#include <set>

#include "architecture.h"
#include "errors.h"
#include "layers.h"
#include "mla.h"
#include "model_loader.h"
#include "moe.h"

namespace tl {

namespace {

const char * const kArch = "deepseek2";

[[noreturn]] void unsupported(const GgufFile & f, const std::string & what) {
    fail(ErrorCode::UNSUPPORTED_ARCHITECTURE, "model '" + f.path() + "': " + what);
}

// An integer key in [0, max] (def when absent).
int32_t non_negative_int(const GgufFile & f, const std::string & key, int64_t def, int64_t max) {
    const int64_t v = f.get_int(key, def);
    if (v < 0 || v > max)
        corrupt(f,
                "metadata '" + key + "' = " + std::to_string(v) + " is out of range (0.." + std::to_string(max) + ")");
    return (int32_t) v;
}

// leading_dense_block_count: layers before it have a dense FFN, the others are MoE.
int32_t dense_layers(const GgufFile & f, int32_t n_layers) {
    return non_negative_int(f, std::string(kArch) + ".leading_dense_block_count", 0, n_layers);
}

// The trunk's layers: block_count less the MTP module's (nextn_predict_layers).
int32_t trunk_layers(const GgufFile & f) {
    const std::string p = std::string(kArch) + ".";
    const int32_t blocks = positive_int(f, p + "block_count", 0, 1024);
    const int32_t mtp = non_negative_int(f, p + "nextn_predict_layers", 0, 1024);
    if (mtp >= blocks)
        corrupt(f, "metadata '" + p + "nextn_predict_layers' = " + std::to_string(mtp) + " leaves no trunk layer of " +
                       p + "block_count = " + std::to_string(blocks));
    return blocks - mtp;
}

// Whether `name` is a tensor of the MTP module's blocks (layers n_layers .. blocks - 1).
bool mtp_tensor(const std::string & name, int32_t n_layers, int32_t blocks) {
    if (name.compare(0, 4, "blk.") != 0) return false;
    const size_t dot = name.find('.', 4);
    if (dot == std::string::npos || dot == 4) return false;
    int64_t layer = 0;
    for (size_t i = 4; i < dot; ++i) {
        if (name[i] < '0' || name[i] > '9' || layer > (1 << 20)) return false;
        layer = layer * 10 + (name[i] - '0');
    }
    return layer >= n_layers && layer < blocks;
}

class Deepseek2Architecture final : public Architecture {
public:
    const char * name() const override { return kArch; }

    ModelHParams read_hparams(const GgufFile & f) const override {
        const std::string p = std::string(kArch) + ".";
        // Beyond the common keys: the MLA and YaRN keys read here, and the MoE keys, which only MoE layers read (a
        // file whose every layer is dense runs without them, as llama.cpp's graph does).
        refuse_unknown_keys(
            f, kArch,
            {"leading_dense_block_count", "nextn_predict_layers", "attention.q_lora_rank", "attention.kv_lora_rank",
             "attention.key_length_mla", "attention.value_length_mla", "rope.scaling.yarn_log_multiplier",
             "rope.scaling.yarn_beta_fast", "rope.scaling.yarn_beta_slow", "expert_count", "expert_used_count",
             "expert_feed_forward_length", "expert_shared_count", "expert_weights_scale", "expert_weights_norm",
             "expert_gating_func", "expert_group_count", "expert_group_used_count"});
        ModelHParams hp;
        hp.arch = kArch;
        hp.dim = positive_int(f, p + "embedding_length", 0, 1 << 16);
        hp.n_layers = trunk_layers(f);
        hp.n_heads = positive_int(f, p + "attention.head_count", 0, 1024);
        hp.n_kv_heads = positive_int(f, p + "attention.head_count_kv", hp.n_heads, 1024);
        hp.ffn_dim = positive_int(f, p + "feed_forward_length", 0, 1 << 18);
        hp.n_ctx_train = positive_int(f, p + "context_length", 2048, 1 << 20);
        hp.rope_theta = (float) f.get_float(p + "rope.freq_base", 10000.0);
        // Required, as llama.cpp's deepseek2 loader requires it (no family default to fall back on).
        if (!f.find(p + "attention.layer_norm_rms_epsilon"))
            corrupt(f, "metadata '" + p + "attention.layer_norm_rms_epsilon' is required");
        hp.rms_eps = (float) f.get_float(p + "attention.layer_norm_rms_epsilon", 0.0);
        if (!(hp.rope_theta > 0) || !std::isfinite(hp.rope_theta))
            corrupt(f, "rope.freq_base must be a positive number");
        if (!(hp.rms_eps > 0) || !std::isfinite(hp.rms_eps))
            corrupt(f, "layer_norm_rms_epsilon must be a positive number");
        read_mla(f, hp);
        const GgufTensorInfo * embd = f.find_tensor("token_embd.weight");
        if (!embd) corrupt(f, "required tensor 'token_embd.weight' is missing");
        if (embd->ne[0] != hp.dim)
            corrupt(f, "tensor 'token_embd.weight' has rows of " + std::to_string(embd->ne[0]) +
                           ", expected embedding_length " + std::to_string(hp.dim));
        hp.n_vocab = (int32_t) embd->ne[1];
        hp.tied_output = f.find_tensor("output.weight") == nullptr;
        read_yarn(f, hp);
        const int32_t dense = dense_layers(f, hp.n_layers);
        if (dense < hp.n_layers) read_moe(f, hp, dense);
        return hp;
    }

    ModelWeights load(const GgufFile & f, const ModelHParams & hp, const ModelLayout & lay,
                      ThreadPool & pool) const override {
        const MlaHParams & m = hp.mla;
        const MatrixRole attn = MatrixRole::ATTENTION, other = MatrixRole::OTHER;
        const Range all_dim{0, hp.dim};
        const int64_t qk = m.nope + m.rope, H = hp.n_heads, ffn = hp.ffn_dim;
        const int32_t blocks = (int32_t) f.get_int(std::string(kArch) + ".block_count", hp.n_layers);
        auto present = [&](const std::string & name) { return f.find_tensor(name) != nullptr; };
        std::set<std::string> used;
        ModelWeights w;
        SharedWeights & sh = w.shared;
        const int n_ranks = lay.n_ranks(); // max(tp, ep): expert parallelism beside replicated attention
        w.shards.resize(n_ranks);
        std::vector<std::pair<MatrixSpec, QMatrix *>> mats;
        mats.push_back({{"token_embd.weight", hp.n_vocab, hp.dim, other, {0, hp.n_vocab}, all_dim}, &sh.tok_embd});
        for (int l = 0; l < hp.n_layers; ++l) {
            // Which query form the file holds must agree with q_lora_rank (llama.cpp would read a missing tensor).
            const std::string p = "blk." + std::to_string(l) + ".";
            if (m.q_lora > 0 && present(p + "attn_q.weight"))
                corrupt(f, "tensor '" + p + "attn_q.weight' is present but " + kArch + ".attention.q_lora_rank is " +
                               std::to_string(m.q_lora) + " (the query goes through attn_q_a / attn_q_b)");
            if (m.q_lora == 0 && present(p + "attn_q_a.weight"))
                corrupt(f, "tensor '" + p + "attn_q_a.weight' is present but " + kArch +
                               ".attention.q_lora_rank is 0 or absent (the query is attn_q)");
        }
        for (int r = 0; r < n_ranks; ++r) {
            ShardWeights & S = w.shards[r];
            assign_ranks(hp, lay, r, S);
            // MLA: the query heads are split; the one latent "KV head" is on every rank.
            S.n_kv_heads = 1;
            S.kv_head_begin = 0;
            const Range q_rows{S.head_begin * qk, (S.head_begin + S.n_heads) * qk};
            const Range o_cols{(int64_t) S.head_begin * m.v_head, (int64_t) (S.head_begin + S.n_heads) * m.v_head};
            const Range ffn_range{S.ffn_begin, S.ffn_begin + S.ffn};
            if (hp.tied_output && n_ranks == 1) {
                S.output_is_tok_embd = true;
            } else {
                mats.push_back({{hp.tied_output ? "token_embd.weight" : "output.weight",
                                 hp.n_vocab,
                                 hp.dim,
                                 other,
                                 {S.vocab_begin, S.vocab_begin + S.vocab},
                                 all_dim},
                                &S.output});
            }
            S.layers.resize(hp.n_layers);
            for (int l = 0; l < hp.n_layers; ++l) {
                const std::string p = "blk." + std::to_string(l) + ".";
                ShardWeights::Layer & L = S.layers[l];
                MlaLayerWeights & M = L.mla;
                if (m.q_lora > 0) {
                    mats.push_back({{p + "attn_q_a.weight", m.q_lora, hp.dim, attn, {0, m.q_lora}, all_dim}, &M.wq_a});
                    mats.push_back({{p + "attn_q_b.weight", H * qk, m.q_lora, attn, q_rows, {0, m.q_lora}}, &M.wq});
                } else {
                    mats.push_back({{p + "attn_q.weight", H * qk, hp.dim, attn, q_rows, all_dim}, &M.wq});
                }
                const int64_t row = m.kv_lora + m.rope;
                mats.push_back({{p + "attn_kv_a_mqa.weight", row, hp.dim, attn, {0, row}, all_dim}, &M.wkv_a});
                if (!present(p + "attn_k_b.weight") && present(p + "attn_kv_b.weight"))
                    unsupported(f, "tensor '" + p +
                                       "attn_kv_b.weight' is the unsplit legacy layout; tuneloop runs MLA from the "
                                       "split attn_k_b / attn_v_b that current converters write");
                // One matrix per head of the 3-D attn_k_b [nope, kv_lora, heads] / attn_v_b [kv_lora, v_head, heads].
                M.wk_b.resize(S.n_heads);
                M.wv_b.resize(S.n_heads);
                for (int h = 0; h < S.n_heads; ++h) {
                    const int64_t g = S.head_begin + h;
                    MatrixSpec kb{p + "attn_k_b.weight", m.kv_lora, m.nope, attn, {0, m.kv_lora}, {0, m.nope}, H, g};
                    MatrixSpec vb{p + "attn_v_b.weight", m.v_head,       m.kv_lora, attn,
                                  {0, m.v_head},         {0, m.kv_lora}, H,         g};
                    mats.push_back({kb, &M.wk_b[h]});
                    mats.push_back({vb, &M.wv_b[h]});
                }
                mats.push_back({{p + "attn_output.weight", hp.dim, H * m.v_head, attn, all_dim, o_cols}, &L.wo});
                if (!hp.moe.layer_is_moe(l)) {
                    mats.push_back({{p + "ffn_gate.weight", ffn, hp.dim, other, ffn_range, all_dim}, &L.w_gate});
                    mats.push_back({{p + "ffn_up.weight", ffn, hp.dim, other, ffn_range, all_dim}, &L.w_up});
                    mats.push_back({{p + "ffn_down.weight", hp.dim, ffn, other, all_dim, ffn_range}, &L.w_down});
                }
            }
        }
        // The MoE layers' router, selection bias (DeepSeek-V3's exp_probs_b, when the file has it), routed and shared
        // experts, for every rank at once.
        for (int l = 0; l < hp.n_layers; ++l)
            if (hp.moe.layer_is_moe(l))
                plan_moe_layer(f, hp, lay, l, /*selection_bias=*/true, sh, w.shards, mats, used);
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
            if (m.q_lora > 0) sh.attn_q_a_norm.push_back(vec(p + "attn_q_a_norm.weight", m.q_lora));
            sh.attn_kv_a_norm.push_back(vec(p + "attn_kv_a_norm.weight", m.kv_lora));
        }
        for (const GgufTensorInfo & t : f.tensors())
            if (!used.count(t.name) && !mtp_tensor(t.name, hp.n_layers, blocks))
                unsupported(f, "tensor '" + t.name +
                                   "' is not part of tuneloop's deepseek2 architecture (refused "
                                   "rather than ignored, as llama.cpp refuses a file with unexpected "
                                   "tensors)");
        for (const auto & [spec_m, out] : mats) load_matrix(f, spec_m, lay.policy, *out, pool);
        return w;
    }

    void forward(RankState & rs, const ForwardBatch & b, float * logits) const override {
        const SharedWeights & sh = rs.shared;
        layers::reserve(rs, b);
        layers::embed(rs, b);
        layers::rope_tables(rs, b); // the rope part's angles (YaRN)
        for (int l = 0; l < rs.hp.n_layers; ++l) {
            const ShardWeights::Layer & w = rs.shard.layers[l];
            layers::rms_norm(rs, rs.xn.data(), rs.x.data(), sh.attn_norm[l], b.n);
            layers::mla_attention(rs, b, l, w);
            layers::add_residual(rs, b);
            layers::rms_norm(rs, rs.xn.data(), rs.x.data(), sh.ffn_norm[l], b.n);
            if (rs.hp.moe.layer_is_moe(l)) layers::moe_ffn(rs, b, l, *w.moe); // routed + shared experts
            else layers::gated_mlp(rs, b, w);                                 // the leading dense layers
            layers::add_residual(rs, b);
        }
        layers::output_head(rs, b, sh.output_norm, logits);
    }

private:
    // The MoE layers' keys (llama.cpp's deepseek2 loader, then build_moe_ffn's arguments): expert_count,
    // expert_used_count, expert_feed_forward_length, groups (read_moe_hparams), expert_shared_count (required: the
    // graph always adds the shared experts), expert_gating_func (1 softmax, 2 sigmoid; absent: softmax, except the
    // GLM-4.7-Lite shape llama.cpp recognizes), expert_weights_norm, expert_weights_scale (0 or 1: not applied).
    static void read_moe(const GgufFile & f, ModelHParams & hp, int32_t dense) {
        const std::string p = std::string(kArch) + ".";
        read_moe_hparams(f, hp);
        MoeHParams & moe = hp.moe;
        moe.n_leading_dense = dense;
        if (!f.find(p + "expert_shared_count"))
            corrupt(f, "metadata '" + p + "expert_shared_count' is required for a model with MoE layers");
        moe.n_expert_shared = positive_int(f, p + "expert_shared_count", 0, 1024);
        const int64_t gating = f.get_int(p + "expert_gating_func", 0);
        if (gating == 2) {
            moe.gating = MoeGating::SIGMOID;
        } else if (gating == 0 || gating == 1) {
            moe.gating = MoeGating::SOFTMAX;
            // llama.cpp: GLM-4.7-Lite files (47 or 48 layers, a 154880-token vocabulary) without the key are sigmoid.
            const int64_t n_vocab = f.get_int(p + "vocab_size", hp.n_vocab);
            if (gating == 0 && (hp.n_layers == 47 || hp.n_layers == 48) && n_vocab == 154880)
                moe.gating = MoeGating::SIGMOID;
        } else {
            unsupported(f, "metadata '" + p + "expert_gating_func' = " + std::to_string(gating) +
                               " is not a gating tuneloop implements (1 softmax, 2 sigmoid)");
        }
        moe.norm_weights = f.get_bool(p + "expert_weights_norm", false);
        const double scale = f.get_float(p + "expert_weights_scale", 0.0);
        if (!std::isfinite(scale) || scale < 0)
            corrupt(f, "metadata '" + p + "expert_weights_scale' must be a non-negative number");
        moe.weights_scale = (float) scale;
    }

    // The MLA shape keys, checked against each other (the tensors are checked against them at load).
    static void read_mla(const GgufFile & f, ModelHParams & hp) {
        const std::string p = std::string(kArch) + ".";
        MlaHParams & m = hp.mla;
        if (!f.find(p + "attention.key_length_mla") || !f.find(p + "attention.value_length_mla")) {
            if (f.find_tensor("blk.0.attn_kv_b.weight"))
                unsupported(f, "metadata '" + p +
                                   "attention.key_length_mla' / 'value_length_mla' are absent: a legacy "
                                   "file with the unsplit attn_kv_b, which tuneloop does not run (MLA "
                                   "needs the split attn_k_b / attn_v_b of current converters)");
            corrupt(f, "metadata '" + p + "attention.key_length_mla' and '" + p +
                           "attention.value_length_mla' are required (the per-head sizes of MLA)");
        }
        if (hp.n_kv_heads != 1)
            corrupt(f, "metadata '" + p + "attention.head_count_kv' is " + std::to_string(hp.n_kv_heads) +
                           "; MLA files store the latent as one KV head (1)");
        m.kv_lora = positive_int(f, p + "attention.kv_lora_rank", 0, 1 << 16);
        m.q_lora = non_negative_int(f, p + "attention.q_lora_rank", 0, 1 << 16);
        const int32_t k_mla = positive_int(f, p + "attention.key_length_mla", 0, 4096);
        m.v_head = positive_int(f, p + "attention.value_length_mla", 0, 4096);
        if (!f.find(p + "rope.dimension_count")) corrupt(f, "metadata '" + p + "rope.dimension_count' is required");
        m.rope = positive_int(f, p + "rope.dimension_count", 0, 4096);
        if (m.rope % 2 != 0)
            corrupt(f, "metadata '" + p + "rope.dimension_count' = " + std::to_string(m.rope) +
                           " must be even (RoPE rotates pairs)");
        if (m.rope >= k_mla)
            corrupt(f, "metadata '" + p + "rope.dimension_count' = " + std::to_string(m.rope) +
                           " leaves no position-free part of attention.key_length_mla = " + std::to_string(k_mla));
        m.nope = k_mla - m.rope;
        // The cached row: the latent, then the rope part (llama.cpp's key_length / value_length for MLA files).
        const int32_t key_length = positive_int(f, p + "attention.key_length", 0, 1 << 17);
        const int32_t value_length = positive_int(f, p + "attention.value_length", 0, 1 << 17);
        if (key_length != m.kv_lora + m.rope)
            corrupt(f, "metadata '" + p + "attention.key_length' = " + std::to_string(key_length) +
                           " must be attention.kv_lora_rank + rope.dimension_count = " +
                           std::to_string(m.kv_lora + m.rope) + " (MLA's cached row)");
        if (value_length != m.kv_lora)
            corrupt(f, "metadata '" + p + "attention.value_length' = " + std::to_string(value_length) +
                           " must be attention.kv_lora_rank = " + std::to_string(m.kv_lora));
        hp.head_dim = m.kv_lora + m.rope;
        hp.rope_dim = m.rope;
        hp.rope_style = RopeStyle::NORM;
    }

    // RoPE scaling (read_rope_scaling), then DeepSeek's YaRN magnitude and the query . key scale (file comment).
    static void read_yarn(const GgufFile & f, ModelHParams & hp) {
        const std::string p = std::string(kArch) + ".";
        read_rope_scaling(f, hp);
        // llama.cpp reads neither key (its YaRN ramp is always beta_fast 32, beta_slow 1): other values are refused
        // rather than run differently from the reference.
        for (const auto & [key, def] : {std::pair<const char *, double>{"rope.scaling.yarn_beta_fast", 32.0},
                                        std::pair<const char *, double>{"rope.scaling.yarn_beta_slow", 1.0}}) {
            const double v = f.get_float(p + key, def);
            if (v != def)
                unsupported(f, "metadata '" + p + key + "' = " + std::to_string(v) + "; only " +
                                   std::to_string((int) def) + " (the value llama.cpp always uses) is supported");
        }
        const double log_mul_file = f.get_float(p + "rope.scaling.yarn_log_multiplier", 0.0);
        if (!std::isfinite(log_mul_file) || log_mul_file < 0)
            corrupt(f, "metadata '" + p + "rope.scaling.yarn_log_multiplier' must be a non-negative number");
        // The converter writes 0.1 * mscale_all_dim; llama.cpp divides the 0.1 out again.
        const float mscale_all_dim = (float) log_mul_file / 0.1f;
        RopeConfig & r = hp.rope;
        const float ln_factor = std::log(1.0f / r.freq_scale);
        if (r.ext_factor != 0.0f && mscale_all_dim != 0.0f) {
            // llama_context: attn_factor = get_mscale(factor, mscale) / get_mscale(factor, mscale_all_dim), with
            // mscale = mscale_all_dim for deepseek2 (1 when mscale_all_dim is 1): both 1. Then, as for any YaRN
            // model, divided by the factor the rope kernel multiplies back, and times rope.scaling.attn_factor.
            const float rope_attn_factor = (float) f.get_float(p + "rope.scaling.attn_factor", 1.0);
            r.attn_factor = 1.0f * (1.0f / (1.0f + 0.1f * ln_factor)) * rope_attn_factor;
            hp.rope_swa = r;
        }
        // deepseek2's graph: the attention factor before llama_context's YaRN adjustment, times DeepSeek's mscale.
        const float attn_factor_org = r.attn_factor * (1.0f + 0.1f * ln_factor);
        const float mscale = attn_factor_org * (1.0f + 0.1f * mscale_all_dim * ln_factor);
        hp.mla.kq_scale = mscale * mscale / std::sqrt((float) (hp.mla.nope + hp.mla.rope));
        hp.attn_scale = hp.mla.kq_scale;
    }
};

} // namespace

TL_REGISTER_ARCHITECTURE(Deepseek2Architecture)

} // namespace tl
