// general.architecture = llama: RMSNorm, RoPE (adjacent-pair rotation), grouped-query attention, SwiGLU MLP, tied or
// untied output head. The RoPE variants inside llama files: attention.key_length (a head wider or narrower than
// dim / heads), Llama-3.1's rope_freqs.weight (one divisor per rotated pair), rope.scaling linear / yarn, and
// LongRoPE factor tensors when rope.scaling.type says longrope. Mistral files are llama files; llama.cpp does not read
// a llama.attention.sliding_window key (every layer attends over the whole context), so neither does tuneloop: the
// key is accepted and has no effect, which docs/architecture.md says.
//
// The template for another architecture: read its hyperparameters (read_transformer_hparams has the standard keys,
// refuse_unknown_keys refuses the ones not implemented), load its tensors with load_decoder (model_loader.h), and
// compose its forward pass from layers.h, adding a shared layer there when the architecture needs one.
#include "architecture.h"
#include "errors.h"
#include "layers.h"
#include "model_loader.h"

namespace tl {

namespace {

class LlamaArchitecture final : public Architecture {
public:
    const char * name() const override { return "llama"; }

    ModelHParams read_hparams(const GgufFile & f) const override {
        refuse_unknown_keys(f, "llama", {"attention.sliding_window"});
        ModelHParams hp = read_transformer_hparams(f, "llama");
        // As llama.cpp (llama_model_base::load_hparams): a llama head rotates all its dimensions.
        if (hp.rope_dim != hp.head_dim)
            corrupt(f, "llama.rope.dimension_count " + std::to_string(hp.rope_dim) + " must equal the head width " +
                           std::to_string(hp.head_dim) + " (llama rotates whole heads)");
        return hp;
    }

    ModelWeights load(const GgufFile & f, const ModelHParams & hp, const ModelLayout & lay,
                      ThreadPool & pool) const override {
        DecoderTensors spec;
        spec.rope_factors =
            hp.rope_scaling == "longrope" ? DecoderTensors::RopeFactors::LONGROPE : DecoderTensors::RopeFactors::FREQS;
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
            layers::gated_mlp(rs, b, w);
            layers::add_residual(rs, b);
        }
        layers::output_head(rs, b, sh.output_norm, logits);
    }
};

} // namespace

TL_REGISTER_ARCHITECTURE(LlamaArchitecture)

} // namespace tl
