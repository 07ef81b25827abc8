// general.architecture = qwen3moe (Qwen3-30B-A3B, Qwen3-235B-A22B): qwen3's block (NEOX RoPE, per-head QK-norm) with
// a Mixture-of-Experts FFN in every layer (moe.h): an f32 router over expert_count experts of
// expert_feed_forward_length, top expert_used_count. llama.cpp's qwen3moe graph hard-codes softmax gating and
// renormalized top-k weights (norm_topk_prob) and no routed-weight scale, so the file has no key for them; group-limited
// routing (expert_group_count / _used_count) is applied when present, as llama.cpp applies it to any architecture.
// No shared experts and no dense layers: a file declaring shared experts is refused (llama.cpp would ignore them).
#include "architecture.h"
#include "errors.h"
#include "layers.h"
#include "model_loader.h"
#include "moe.h"

namespace tl {

namespace {

class Qwen3MoeArchitecture final : public Architecture {
public:
    const char * name() const override { return "qwen3moe"; }

    ModelHParams read_hparams(const GgufFile & f) const override {
        if (f.get_int("qwen3moe.expert_shared_count", 0) != 0)
            fail(ErrorCode::UNSUPPORTED_ARCHITECTURE,
                 "model '" + f.path() +
                     "': metadata 'qwen3moe.expert_shared_count' declares shared experts, which llama.cpp's qwen3moe "
                     "does not read and tuneloop does not implement for qwen3moe (refused rather than ignored)");
        refuse_unknown_keys(f, "qwen3moe",
                            {"expert_count", "expert_used_count", "expert_feed_forward_length", "expert_group_count",
                             "expert_group_used_count", "expert_shared_count"});
        ModelHParams hp = read_transformer_hparams(f, "qwen3moe");
        hp.rope_style = RopeStyle::NEOX;
        if (hp.rope_dim != hp.head_dim)
            corrupt(f, "qwen3moe.rope.dimension_count " + std::to_string(hp.rope_dim) + " must equal the head width " +
                           std::to_string(hp.head_dim));
        if (!f.find("qwen3moe.expert_count") || f.get_int("qwen3moe.expert_count", 0) == 0)
            corrupt(f, "metadata 'qwen3moe.expert_count' is missing or 0 (a qwen3moe model has experts)");
        // llama.cpp: n_ff_exp defaults to feed_forward_length / expert_used_count when the key is absent.
        read_moe_hparams(f, hp, -1);
        hp.moe.gating = MoeGating::SOFTMAX;
        hp.moe.norm_weights = true;
        hp.moe.weights_scale = 0.0f;
        return hp;
    }

    ModelWeights load(const GgufFile & f, const ModelHParams & hp, const ModelLayout & lay,
                      ThreadPool & pool) const override {
        DecoderTensors spec;
        spec.qk_norm = true;
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
            layers::moe_ffn(rs, b, l, *w.moe);
            layers::add_residual(rs, b);
        }
        layers::output_head(rs, b, sh.output_norm, logits);
    }
};

} // namespace

TL_REGISTER_ARCHITECTURE(Qwen3MoeArchitecture)

} // namespace tl
