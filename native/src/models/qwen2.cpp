// general.architecture = qwen2 (Qwen2, Qwen2.5): llama's block with biases on the Q, K and V projections and NEOX RoPE
// (rotation of (i, i + rope_dim / 2) pairs). The biases are loaded and sharded with their rows by load_decoder
// (optional there, as in llama.cpp's create_tensor_qkv); RoPE scaling (YaRN for Qwen2.5's long context) is
// read_rope_scaling's.
#include "architecture.h"
#include "errors.h"
#include "layers.h"
#include "model_loader.h"

namespace tl {

namespace {

class Qwen2Architecture final : public Architecture {
public:
    const char * name() const override { return "qwen2"; }

    ModelHParams read_hparams(const GgufFile & f) const override {
        refuse_unknown_keys(f, "qwen2");
        ModelHParams hp = read_transformer_hparams(f, "qwen2");
        hp.rope_style = RopeStyle::NEOX;
        // llama.cpp's qwen2 graph asserts it.
        if (hp.rope_dim != hp.head_dim)
            corrupt(f, "qwen2.rope.dimension_count " + std::to_string(hp.rope_dim) + " must equal the head width " +
                           std::to_string(hp.head_dim));
        return hp;
    }

    ModelWeights load(const GgufFile & f, const ModelHParams & hp, const ModelLayout & lay,
                      ThreadPool & pool) const override {
        return load_decoder(f, hp, lay, pool, DecoderTensors{});
    }

    void forward(RankState & rs, const ForwardBatch & b, float * logits) const override {
        const SharedWeights & sh = rs.shared;
        layers::reserve(rs, b);
        layers::embed(rs, b);
        layers::rope_tables(rs, b);
        for (int l = 0; l < rs.hp.n_layers; ++l) {
            const ShardWeights::Layer & w = rs.shard.layers[l];
            layers::rms_norm(rs, rs.xn.data(), rs.x.data(), sh.attn_norm[l], b.n);
            layers::attention(rs, b, l, w); // + the Q/K/V biases
            layers::add_residual(rs, b);
            layers::rms_norm(rs, rs.xn.data(), rs.x.data(), sh.ffn_norm[l], b.n);
            layers::gated_mlp(rs, b, w);
            layers::add_residual(rs, b);
        }
        layers::output_head(rs, b, sh.output_norm, logits);
    }
};

} // namespace

TL_REGISTER_ARCHITECTURE(Qwen2Architecture)

} // namespace tl
