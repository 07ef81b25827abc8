// general.architecture = llama: RMSNorm, RoPE (adjacent-pair rotation), grouped-query attention, SwiGLU MLP, tied or
// untied output head. The template for another architecture: read its hyperparameters (most share the standard keys
// of read_transformer_hparams), load its tensors into shards (model_loader.h), and compose its forward pass from
// layers.h, adding a shared layer there when the architecture needs one (a bias, another activation).
#include "architecture.h"
#include "layers.h"
#include "model_loader.h"

namespace tl {

namespace {

class LlamaArchitecture final : public Architecture {
public:
    const char * name() const override { return "llama"; }

    ModelHParams read_hparams(const GgufFile & f) const override { return read_transformer_hparams(f, "llama"); }

    ModelWeights load(const GgufFile & f, const ModelHParams & hp, const ModelLayout & lay,
                      ThreadPool & pool) const override {
        const Range all_dim{0, hp.dim};
        const MatrixRole attn = MatrixRole::ATTENTION, other = MatrixRole::OTHER;
        // Every matrix of every rank, with where it goes: checked first (types, the policy's refusals, shard
        // alignment), then loaded.
        ModelWeights w;
        SharedWeights & sh = w.shared;
        w.shards.resize(lay.tp);
        std::vector<std::pair<MatrixSpec, QMatrix *>> mats;
        mats.push_back({{"token_embd.weight", hp.n_vocab, hp.dim, other, {0, hp.n_vocab}, all_dim}, &sh.tok_embd});
        const int hd = hp.head_dim;
        for (int r = 0; r < lay.tp; ++r) {
            ShardWeights & S = w.shards[r];
            assign_shard(hp, lay.tp, r, S);
            const Range q_rows{(int64_t) S.head_begin * hd, (int64_t) (S.head_begin + S.n_heads) * hd};
            const Range kv_rows{(int64_t) S.kv_head_begin * hd, (int64_t) (S.kv_head_begin + S.n_kv_heads) * hd};
            const Range ffn_range{S.ffn_begin, S.ffn_begin + S.ffn};
            const Range vocab_rows{S.vocab_begin, S.vocab_begin + S.vocab};
            if (hp.tied_output && lay.tp == 1) {
                S.output_is_tok_embd = true;
            } else {
                mats.push_back({{hp.tied_output ? "token_embd.weight" : "output.weight", hp.n_vocab, hp.dim, other,
                                 vocab_rows, all_dim},
                                &S.output});
            }
            S.layers.resize(hp.n_layers);
            for (int l = 0; l < hp.n_layers; ++l) {
                const std::string p = "blk." + std::to_string(l) + ".";
                ShardWeights::Layer & L = S.layers[l];
                mats.push_back({{p + "attn_q.weight", hp.q_dim(), hp.dim, attn, q_rows, all_dim}, &L.wq});
                mats.push_back({{p + "attn_k.weight", hp.kv_dim(), hp.dim, attn, kv_rows, all_dim}, &L.wk});
                mats.push_back({{p + "attn_v.weight", hp.kv_dim(), hp.dim, attn, kv_rows, all_dim}, &L.wv});
                mats.push_back({{p + "attn_output.weight", hp.dim, hp.q_dim(), attn, all_dim, q_rows}, &L.wo});
                mats.push_back({{p + "ffn_gate.weight", hp.ffn_dim, hp.dim, other, ffn_range, all_dim}, &L.w_gate});
                mats.push_back({{p + "ffn_up.weight", hp.ffn_dim, hp.dim, other, ffn_range, all_dim}, &L.w_up});
                mats.push_back({{p + "ffn_down.weight", hp.dim, hp.ffn_dim, other, all_dim, ffn_range}, &L.w_down});
            }
        }
        for (const auto & [spec, _] : mats) check_matrix(f, spec, lay.policy);
        sh.output_norm = load_vector(f, "output_norm.weight", hp.dim);
        for (int l = 0; l < hp.n_layers; ++l) {
            const std::string p = "blk." + std::to_string(l) + ".";
            sh.attn_norm.push_back(load_vector(f, p + "attn_norm.weight", hp.dim));
            sh.ffn_norm.push_back(load_vector(f, p + "ffn_norm.weight", hp.dim));
        }
        for (const auto & [spec, out] : mats) load_matrix(f, spec, lay.policy, *out, pool);
        return w;
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
            layers::swiglu_mlp(rs, b, w);
            layers::add_residual(rs, b);
        }
        layers::output_head(rs, b, sh.output_norm, logits);
    }
};

} // namespace

TL_REGISTER_ARCHITECTURE(LlamaArchitecture)

} // namespace tl
