// general.architecture = phi3 (Phi-3, Phi-3.5, Phi-4-mini): llama's block with NEOX RoPE, a fused QKV projection
// (attn_qkv.weight, [q; k; v] rows) and a fused gate/up projection (ffn_up.weight, 2 x ffn rows, the gate half
// first), both split by rows at load so that tensor parallelism shards each part like a separate matrix; LongRoPE:
// rope_factors_long / rope_factors_short.weight, the long ones when the served context exceeds
// rope.scaling.original_context_length (as llama.cpp picks them by its context size), with rope.scaling.attn_factor
// multiplying cos and sin. phi3.attention.sliding_window is accepted and has no effect: llama.cpp's phi3 turns the
// window off ("Phi SWA is currently disabled"), and tuneloop computes what llama.cpp does.
#include "architecture.h"
#include "layers.h"
#include "model_loader.h"

namespace tl {

namespace {

class Phi3Architecture final : public Architecture {
public:
    const char * name() const override { return "phi3"; }

    ModelHParams read_hparams(const GgufFile & f) const override {
        refuse_unknown_keys(f, "phi3", {"attention.sliding_window"});
        ModelHParams hp = read_transformer_hparams(f, "phi3");
        hp.rope_style = RopeStyle::NEOX;
        return hp;
    }

    ModelWeights load(const GgufFile & f, const ModelHParams & hp, const ModelLayout & lay,
                      ThreadPool & pool) const override {
        DecoderTensors spec;
        spec.fused_ffn_up = true;
        spec.rope_factors = DecoderTensors::RopeFactors::LONGROPE;
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
            layers::gated_mlp(rs, b, w); // gate / up: the halves of the fused ffn_up
            layers::add_residual(rs, b);
        }
        layers::output_head(rs, b, sh.output_norm, logits);
    }
};

} // namespace

TL_REGISTER_ARCHITECTURE(Phi3Architecture)

} // namespace tl
