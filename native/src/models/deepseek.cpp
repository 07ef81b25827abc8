// general.architecture = deepseek (DeepSeek-MoE 16B, the first DeepSeek MoE): llama's attention (NORM RoPE, optional
// rope_freqs, heads of dim / head_count) with leading_dense_block_count dense layers, then Mixture-of-Experts FFNs
// (moe.h): softmax gating, top expert_used_count of expert_count, weights not renormalized, times
// expert_weights_scale (when neither 0 nor 1), plus expert_shared_count shared experts (ffn_*_shexp, one gated MLP of
// expert_feed_forward_length x expert_shared_count), as llama.cpp's deepseek graph computes it. Group-limited routing
// (expert_group_count / _used_count) is applied when present, as llama.cpp applies it to any architecture.
#include <cmath>

#include "architecture.h"
#include "errors.h"
#include "layers.h"
#include "model_loader.h"
#include "moe.h"

namespace tl {

namespace {

class DeepseekArchitecture final : public Architecture {
public:
    const char * name() const override { return "deepseek"; }

    ModelHParams read_hparams(const GgufFile & f) const override {
        refuse_unknown_keys(f, "deepseek",
                            {"expert_count", "expert_used_count", "expert_feed_forward_length", "expert_shared_count",
                             "leading_dense_block_count", "expert_weights_scale", "expert_group_count",
                             "expert_group_used_count"});
        ModelHParams hp = read_transformer_hparams(f, "deepseek");
        hp.rope_style = RopeStyle::NORM;
        if (hp.rope_dim != hp.head_dim)
            corrupt(f, "deepseek.rope.dimension_count " + std::to_string(hp.rope_dim) + " must equal the head width " +
                           std::to_string(hp.head_dim));
        read_moe_hparams(f, hp);
        MoeHParams & m = hp.moe;
        // llama.cpp requires expert_shared_count for deepseek.
        if (!f.find("deepseek.expert_shared_count")) corrupt(f, "metadata 'deepseek.expert_shared_count' is missing");
        const int64_t shared = f.get_int("deepseek.expert_shared_count", 0);
        if (shared < 0 || shared > 64)
            corrupt(f,
                    "metadata 'deepseek.expert_shared_count' = " + std::to_string(shared) + " is out of range (0..64)");
        m.n_expert_shared = (int32_t) shared;
        const int64_t lead = f.get_int("deepseek.leading_dense_block_count", 0);
        if (lead < 0 || lead > hp.n_layers)
            corrupt(f, "metadata 'deepseek.leading_dense_block_count' = " + std::to_string(lead) +
                           " is out of range (0.." + std::to_string(hp.n_layers) + ")");
        m.n_leading_dense = (int32_t) lead;
        m.gating = MoeGating::SOFTMAX;
        m.norm_weights = false;
        m.weights_scale = (float) f.get_float("deepseek.expert_weights_scale", 0.0);
        if (!std::isfinite(m.weights_scale) || m.weights_scale < 0)
            corrupt(f, "metadata 'deepseek.expert_weights_scale' must be a non-negative number");
        return hp;
    }

    ModelWeights load(const GgufFile & f, const ModelHParams & hp, const ModelLayout & lay,
                      ThreadPool & pool) const override {
        DecoderTensors spec;
        spec.rope_factors = DecoderTensors::RopeFactors::FREQS;
        return load_decoder(f, hp, lay, pool, spec);
    }

    void forward(RankState & rs, const ForwardBatch & b, float * logits) const override {
        const SharedWeights & sh = rs.shared;
        layers::reserve(rs, b);
        layers::embed(rs, b);
        layers::rope_tables(rs, b);
        for (int l = 0; l < rs.hp.n_layers; ++l) {
            const ShardWeights::Layer & w = rs.shard.layers[l];
            layers::rms_norm(rs, rs.xn.data(), rs.x.data(), sh.attn_norm[l], b.n);
            layers::attention(rs, b, l, w);
            layers::add_residual(rs, b);
            layers::rms_norm(rs, rs.xn.data(), rs.x.data(), sh.ffn_norm[l], b.n);
            if (w.moe) layers::moe_ffn(rs, b, l, *w.moe);
            else layers::gated_mlp(rs, b, w);
            layers::add_residual(rs, b);
        }
        layers::output_head(rs, b, sh.output_norm, logits);
    }
};

} // namespace

TL_REGISTER_ARCHITECTURE(DeepseekArchitecture)

} // namespace tl
