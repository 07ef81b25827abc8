// general.architecture = gemma3 (text): Gemma 2's block (sqrt(dim) embedding scale, post-norms, GeGLU) with QK-norm
// instead of attention soft-capping, no final soft-capping unless final_logit_softcapping is given, and when
// attention.sliding_window is set, the 5 local : 1 global pattern (attention.sliding_window_pattern, default 6:
// layer l slides when l % 6 < 5). Local layers rotate with their own RoPE: base rope.freq_base_swa (default 10000)
// and no scaling; global layers with rope.freq_base and the file's scaling (linear x8 on the 4B and larger). The
// query scale is 1 / sqrt(head_dim), 1 / sqrt(dim / heads) for the 27B shape (62 layers), as llama.cpp decides it.
#include <cmath>

#include "architecture.h"
#include "errors.h"
#include "layers.h"
#include "model_loader.h"

namespace tl {

namespace {

class Gemma3Architecture final : public Architecture {
public:
    const char * name() const override { return "gemma3"; }

    ModelHParams read_hparams(const GgufFile & f) const override {
        refuse_unknown_keys(f, "gemma3",
                            {"attention.sliding_window", "attention.sliding_window_pattern", "rope.freq_base_swa",
                             "final_logit_softcapping"});
        ModelHParams hp = read_transformer_hparams(f, "gemma3");
        hp.rope_style = RopeStyle::NEOX;
        hp.embd_scale = std::sqrt((float) hp.dim);
        hp.ffn_act = FfnAct::GELU;
        const int64_t window = f.get_int("gemma3.attention.sliding_window", 0);
        if (window < 0 || window > (1 << 24)) corrupt(f, "gemma3.attention.sliding_window is out of range");
        if (window > 0) {
            hp.n_swa = (int32_t) window;
            const int32_t pattern = positive_int(f, "gemma3.attention.sliding_window_pattern", 6, 1024);
            hp.swa_layers.resize(hp.n_layers);
            for (int l = 0; l < hp.n_layers; ++l) hp.swa_layers[l] = l % pattern < pattern - 1;
            // Local layers: their own base, never scaled (llama.cpp's rope_freq_scale_train_swa = 1).
            hp.rope_swa.base = (float) f.get_float("gemma3.rope.freq_base_swa", 10000.0);
            hp.rope_swa.freq_scale = 1.0f;
            if (!(hp.rope_swa.base > 0) || !std::isfinite(hp.rope_swa.base))
                corrupt(f, "gemma3.rope.freq_base_swa must be a positive number");
        }
        hp.final_softcap = (float) f.get_float("gemma3.final_logit_softcapping", 0.0);
        if (!(hp.final_softcap >= 0) || !std::isfinite(hp.final_softcap))
            corrupt(f, "gemma3.final_logit_softcapping must be a non-negative number");
        hp.attn_scale = 1.0f / std::sqrt((float) (hp.n_layers == 62 ? hp.dim / hp.n_heads : hp.head_dim));
        return hp;
    }

    ModelWeights load(const GgufFile & f, const ModelHParams & hp, const ModelLayout & lay,
                      ThreadPool & pool) const override {
        DecoderTensors spec;
        spec.post_norms = true;
        spec.qk_norm = true;
        return load_decoder(f, hp, lay, pool, spec);
    }

    void forward(RankState & rs, const ForwardBatch & b, float * logits) const override {
        const SharedWeights & sh = rs.shared;
        layers::reserve(rs, b);
        layers::embed(rs, b);       // x sqrt(dim)
        layers::rope_tables(rs, b); // global and local tables
        for (int l = 0; l < rs.hp.n_layers; ++l) {
            const ShardWeights::Layer & w = rs.shard.layers[l];
            layers::rms_norm(rs, rs.xn.data(), rs.x.data(), sh.attn_norm[l], b.n);
            layers::attention(rs, b, l, w); // QK-norm; the window and local RoPE on sliding layers
            layers::add_residual_post_norm(rs, b, sh.attn_post_norm[l]);
            layers::rms_norm(rs, rs.xn.data(), rs.x.data(), sh.ffn_norm[l], b.n);
            layers::gated_mlp(rs, b, w); // GeGLU
            layers::add_residual_post_norm(rs, b, sh.ffn_post_norm[l]);
        }
        layers::output_head(rs, b, sh.output_norm, logits);
    }
};

} // namespace

TL_REGISTER_ARCHITECTURE(Gemma3Architecture)

} // namespace tl
