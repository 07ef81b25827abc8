// general.architecture = gemma2: NEOX RoPE, embeddings scaled by sqrt(dim), post-attention and post-FFN RMSNorms (the
// norm of each block's output before the residual add), GeGLU MLP (tanh-approximated gelu on the gate), attention
// logit soft-capping (attn_logit_softcapping, default 50) and final logit soft-capping (final_logit_softcapping,
// default 30), sliding-window attention on alternate layers (attention.sliding_window, default 4096; the pattern
// attention.sliding_window_pattern, default 2: layer l slides when l % pattern < pattern - 1, so the even ones), and
// the output head is always token_embd. The query scale is 1 / sqrt(head_dim), except for the 27B shape (46 layers)
// whose scale is 1 / sqrt(dim / heads): llama.cpp's rule (query_pre_attn_scalar is not in the GGUF), so files of the
// same shape compute the same. The GGUF converter has already added Gemma's +1 to the norm weights.
#include <cmath>

#include "architecture.h"
#include "errors.h"
#include "layers.h"
#include "model_loader.h"

namespace tl {

namespace {

class Gemma2Architecture final : public Architecture {
public:
    const char * name() const override { return "gemma2"; }

    ModelHParams read_hparams(const GgufFile & f) const override {
        refuse_unknown_keys(f, "gemma2",
                            {"attention.sliding_window", "attention.sliding_window_pattern", "rope.freq_base_swa",
                             "attn_logit_softcapping", "final_logit_softcapping"});
        ModelHParams hp = read_transformer_hparams(f, "gemma2");
        hp.rope_style = RopeStyle::NEOX;
        hp.tied_output = true; // llama.cpp reads token_embd as the head (an output.weight is refused, unused)
        hp.embd_scale = std::sqrt((float) hp.dim);
        hp.ffn_act = FfnAct::GELU;
        hp.n_swa = positive_int(f, "gemma2.attention.sliding_window", 4096, 1 << 24);
        const int32_t pattern = positive_int(f, "gemma2.attention.sliding_window_pattern", 2, 1024);
        hp.swa_layers.resize(hp.n_layers);
        for (int l = 0; l < hp.n_layers; ++l) hp.swa_layers[l] = l % pattern < pattern - 1;
        // The sliding layers' RoPE: rope.freq_base_swa when given, the global scaling otherwise.
        hp.rope_swa.base = (float) f.get_float("gemma2.rope.freq_base_swa", hp.rope.base);
        hp.attn_softcap = (float) f.get_float("gemma2.attn_logit_softcapping", 50.0);
        hp.final_softcap = (float) f.get_float("gemma2.final_logit_softcapping", 30.0);
        for (float v : {hp.rope_swa.base, hp.attn_softcap, hp.final_softcap})
            if (!(v > 0) || !std::isfinite(v))
                corrupt(f, "gemma2: rope.freq_base_swa and the soft-capping values must be positive numbers");
        hp.attn_scale = 1.0f / std::sqrt((float) (hp.n_layers == 46 ? hp.dim / hp.n_heads : hp.head_dim));
        return hp;
    }

    ModelWeights load(const GgufFile & f, const ModelHParams & hp, const ModelLayout & lay,
                      ThreadPool & pool) const override {
        DecoderTensors spec;
        spec.post_norms = true;
        return load_decoder(f, hp, lay, pool, spec);
    }

    void forward(RankState & rs, const ForwardBatch & b, float * logits) const override {
        const SharedWeights & sh = rs.shared;
        layers::reserve(rs, b);
        layers::embed(rs, b); // x sqrt(dim)
        layers::rope_tables(rs, b);
        for (int l = 0; l < rs.hp.n_layers; ++l) {
            const ShardWeights::Layer & w = rs.shard.layers[l];
            layers::rms_norm(rs, rs.xn.data(), rs.x.data(), sh.attn_norm[l], b.n);
            layers::attention(rs, b, l, w); // soft-capped scores; the window on sliding layers
            layers::add_residual_post_norm(rs, b, sh.attn_post_norm[l]);
            layers::rms_norm(rs, rs.xn.data(), rs.x.data(), sh.ffn_norm[l], b.n);
            layers::gated_mlp(rs, b, w); // GeGLU
            layers::add_residual_post_norm(rs, b, sh.ffn_post_norm[l]);
        }
        layers::output_head(rs, b, sh.output_norm, logits); // soft-capped logits
    }
};

} // namespace

TL_REGISTER_ARCHITECTURE(Gemma2Architecture)

} // namespace tl
