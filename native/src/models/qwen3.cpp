// general.architecture = qwen3: llama's block with NEOX RoPE and QK-norm: every head of Q and of K is RMS-normed over
// head_dim (attn_q_norm / attn_k_norm.weight, [head_dim], the same on every tensor-parallel rank) before RoPE. Heads
// are usually wider than dim / heads (attention.key_length 128 at dim 1024).
#include "architecture.h"
#include "errors.h"
#include "layers.h"
#include "model_loader.h"

namespace tl {

namespace {

class Qwen3Architecture final : public Architecture {
public:
    const char * name() const override { return "qwen3"; }

    ModelHParams read_hparams(const GgufFile & f) const override {
        refuse_unknown_keys(f, "qwen3");
        ModelHParams hp = read_transformer_hparams(f, "qwen3");
        hp.rope_style = RopeStyle::NEOX;
        // llama.cpp's qwen3 graph asserts it.
        if (hp.rope_dim != hp.head_dim)
            corrupt(f, "qwen3.rope.dimension_count " + std::to_string(hp.rope_dim) + " must equal the head width " +
                           std::to_string(hp.head_dim));
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
            layers::attention(rs, b, l, w); // QK-norm before RoPE
            layers::add_residual(rs, b);
            layers::rms_norm(rs, rs.xn.data(), rs.x.data(), sh.ffn_norm[l], b.n);
            layers::gated_mlp(rs, b, w);
            layers::add_residual(rs, b);
        }
        layers::output_head(rs, b, sh.output_norm, logits);
    }
};

} // namespace

TL_REGISTER_ARCHITECTURE(Qwen3Architecture)

} // namespace tl
