// Shared layer functions of the decoder forward pass (layers.h). Moved here from the llama-only forward so that every
// architecture (models/*.cpp) composes the same, tested code.
#include "layers.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "moe.h"
#include "quant/quant.h"
#include "simd_clones.h"

namespace tl {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

TL_CLONES void rmsnorm_row(float * out, const float * x, const float * w, int n, float eps) {
    float ss = 0.0f;
    for (int i = 0; i < n; ++i) ss += x[i] * x[i];
    float scale = 1.0f / std::sqrt(ss / n + eps);
    for (int i = 0; i < n; ++i) out[i] = x[i] * scale * w[i];
}

TL_CLONES void add_inplace(float * y, const float * x, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

// gate[i] = gelu(gate[i]) * up[i] with the tanh approximation (ggml_gelu, Gemma's GeGLU).
TL_CLONES void gelu_mul(float * gate, const float * up, int64_t n) {
    const float k0 = 0.79788456080286535588f, k1 = 0.044715f; // sqrt(2 / pi)
    for (int64_t i = 0; i < n; ++i) {
        const float x = gate[i];
        gate[i] = 0.5f * x * (1.0f + std::tanh(k0 * x * (1.0f + k1 * x * x))) * up[i];
    }
}

TL_CLONES void softcap_inplace(float * y, int64_t n, float cap) {
    const float inv = 1.0f / cap;
    for (int64_t i = 0; i < n; ++i) y[i] = cap * std::tanh(y[i] * inv);
}

// One RoPE configuration's tables (ggml-cpu's rope_yarn / ggml_rope_yarn_corr_dims, in double for the angle): see
// RopeConfig in model.h. With no scaling and no factors this is exactly pos * theta^(-2i / rope_dim).
void fill_rope(std::vector<float> & cs, std::vector<float> & sn, const ForwardBatch & b, int rope_dim,
               const RopeConfig & rc, const std::vector<float> & factors) {
    const int n_pairs = rope_dim / 2;
    cs.resize((size_t) b.n * n_pairs);
    sn.resize((size_t) b.n * n_pairs);
    float corr0 = 0.0f, corr1 = 0.0f;
    double mscale = rc.attn_factor;
    if (rc.ext_factor != 0.0f) {
        // The dims where YaRN moves from extrapolation (high frequencies) to interpolation (low ones).
        auto corr_dim = [&](float n_rot) {
            return rope_dim * std::log(rc.n_ctx_orig / (n_rot * 2 * (float) M_PI)) / (2 * std::log(rc.base));
        };
        corr0 = std::max(0.0f, std::floor(corr_dim(rc.beta_fast)));
        corr1 = std::min((float) (rope_dim - 1), std::ceil(corr_dim(rc.beta_slow)));
        mscale *= 1.0f + 0.1f * std::log(1.0f / rc.freq_scale);
    }
    for (int t = 0; t < b.n; ++t) {
        for (int i = 0; i < n_pairs; ++i) {
            double extrap = b.tok_pos[t] * std::pow((double) rc.base, -2.0 * i / rope_dim);
            if (!factors.empty()) extrap /= factors[i];
            double a = extrap * rc.freq_scale;
            if (rc.ext_factor != 0.0f) {
                const float y = (i - corr0) / std::max(0.001f, corr1 - corr0);
                const double mix = (1.0f - std::min(1.0f, std::max(0.0f, y))) * rc.ext_factor;
                a = a * (1 - mix) + extrap * mix;
            }
            cs[(size_t) t * n_pairs + i] = (float) (std::cos(a) * mscale);
            sn[(size_t) t * n_pairs + i] = (float) (std::sin(a) * mscale);
        }
    }
}

bool any_swa_layer(const ModelHParams & hp) {
    for (int l = 0; l < hp.n_layers; ++l)
        if (hp.layer_swa(l)) return true;
    return false;
}

} // namespace

RankState::RankState(int rank_, int n_ranks_, const ModelHParams & hp_, const ModelLayout & layout_,
                     const SharedWeights & shared_, Communicator & comm_, Communicator & comm_moe_, ShardWeights shard_)
    : rank(rank_), n_ranks(n_ranks_), hp(hp_), layout(layout_), shared(shared_), kernels(cpu_kernels()), comm(comm_),
      comm_moe(comm_moe_), shard(std::move(shard_)), pool(layout_.threads_per_rank),
      kv(kv_layer_shapes(hp_, shard.n_kv_heads), layout_.kv_blocks, layout_.kv_block_size, layout_.kv_dtype),
      rope_swa_own(any_swa_layer(hp_) && !(hp_.rope_swa == hp_.rope)) {
    if (hp_.moe.enabled()) {
        moe = std::make_unique<MoeScratch>();
        // Indexed by layer (dense layers' rows stay zero; stats report the MoE layers only).
        moe->tokens.assign(hp_.n_layers, std::vector<uint64_t>(hp_.moe.n_expert));
    }
}

RankState::~RankState() = default;

size_t RankState::scratch_bytes() const {
    size_t n = x.capacity() + xn.capacity() + q.capacity() + k.capacity() + v.capacity() + att.capacity() +
               gate.capacity() + up.capacity() + partial.capacity() + scores.capacity() + rope_cos.capacity() +
               rope_sin.capacity() + rope_cos_swa.capacity() + rope_sin_swa.capacity() + mla_qa.capacity() +
               mla_q.capacity() + mla_heads.capacity() + mla_o.capacity();
    size_t a = 0;
    for (const AlignedBuffer & b : acts) a += b.size;
    for (const QActs & q : mla_xq) a += q.q.size + q.scales.size + q.sums.size;
    return n * sizeof(float) + xq.q.size + xq.scales.size + xq.sums.size + a + (moe ? moe->bytes() : 0);
}

ForwardBatch::ForwardBatch(const std::vector<BatchEntry> & batch) : entries(batch) {
    for (const BatchEntry & e : batch) n += e.n_tokens;
    tok_entry.resize(n);
    tok_pos.resize(n);
    int t = 0;
    for (int32_t i = 0; i < (int32_t) batch.size(); ++i) {
        const BatchEntry & e = batch[i];
        for (int j = 0; j < e.n_tokens; ++j, ++t) {
            tok_entry[t] = i;
            tok_pos[t] = e.pos0 + j;
        }
        max_ctx = std::max(max_ctx, e.pos0 + e.n_tokens);
    }
}

namespace layers {

void reserve(RankState & rs, const ForwardBatch & b) {
    const size_t n = (size_t) b.n, dim = (size_t) rs.hp.dim, hd = (size_t) rs.hp.head_dim;
    const size_t q_loc = rs.shard.n_heads * hd, kv_loc = rs.shard.n_kv_heads * hd, ffn = rs.shard.ffn;
    rs.x.resize(n * dim);
    rs.xn.resize(n * dim);
    rs.q.resize(n * q_loc);
    rs.k.resize(n * kv_loc);
    rs.v.resize(n * kv_loc);
    rs.att.resize(n * q_loc);
    rs.gate.resize(n * ffn);
    rs.up.resize(n * ffn);
    rs.partial.resize(n * dim);
    const int group = rs.hp.n_heads / rs.hp.n_kv_heads;
    rs.scores.resize((size_t) rs.pool.size() *
                     attn_scratch_floats(std::min(group, ATTN_MAX_ROWS), b.max_ctx, (int) hd));
}

void embed(RankState & rs, const ForwardBatch & b) {
    auto t0 = Clock::now();
    const int dim = rs.hp.dim;
    int t = 0;
    for (const BatchEntry & e : b.entries)
        for (int i = 0; i < e.n_tokens; ++i, ++t)
            qmatrix_get_row(rs.shared.tok_embd, e.tokens[i], rs.x.data() + (size_t) t * dim);
    if (rs.hp.embd_scale != 0.0f) { // Gemma: embeddings times sqrt(dim)
        const float s = rs.hp.embd_scale;
        for (size_t i = 0; i < (size_t) b.n * dim; ++i) rs.x[i] *= s;
    }
    rs.times.embed += seconds_since(t0);
}

void rope_tables(RankState & rs, const ForwardBatch & b) {
    auto t0 = Clock::now();
    fill_rope(rs.rope_cos, rs.rope_sin, b, rs.hp.rope_dim, rs.hp.rope, rs.shared.rope_factors);
    if (rs.rope_swa_own)
        fill_rope(rs.rope_cos_swa, rs.rope_sin_swa, b, rs.hp.rope_dim, rs.hp.rope_swa, rs.shared.rope_factors);
    rs.times.embed += seconds_since(t0);
}

void rms_norm(RankState & rs, float * out, const float * in, const std::vector<float> & weight, int n) {
    auto t0 = Clock::now();
    const int dim = rs.hp.dim;
    for (int t = 0; t < n; ++t)
        rmsnorm_row(out + (size_t) t * dim, in + (size_t) t * dim, weight.data(), dim, rs.hp.rms_eps);
    rs.times.norm += seconds_since(t0);
}

void rms_norm_part(RankState & rs, float * rows, const std::vector<float> & weight, int n, int width, int64_t stride) {
    auto t0 = Clock::now();
    for (int t = 0; t < n; ++t) rmsnorm_row(rows + t * stride, rows + t * stride, weight.data(), width, rs.hp.rms_eps);
    rs.times.norm += seconds_since(t0);
}

void matmuls(RankState & rs, const float * x, int n, int64_t cols,
             std::initializer_list<std::pair<const QMatrix *, float *>> outs, int64_t y_stride) {
    auto t0 = Clock::now();
    const QActs * xq = nullptr;
    // The activation formats needed, each once: QActs for the int8 / int4 layouts, and each act_type of the block
    // types (F32 needs no conversion: x itself).
    quant::Type fmts[4];
    int n_fmts = 0;
    for (auto & [m, y] : outs) {
        if (!m->rows) continue;
        if (!xq && (m->type == WeightType::I8 || m->type == WeightType::I4)) {
            qacts_quantize(rs.xq, x, n, cols, m->cols_padded);
            xq = &rs.xq;
        }
        if (m->type != WeightType::BLOCKS) continue;
        const quant::Type at = quant::traits(m->qtype)->act_type;
        bool seen = at == quant::Type::F32;
        for (int i = 0; i < n_fmts; ++i) seen = seen || fmts[i] == at;
        if (!seen && n_fmts < 4) fmts[n_fmts++] = at;
    }
    for (int i = 0; i < n_fmts; ++i) {
        const quant::Type at = fmts[i];
        const size_t stride = (size_t) quant::row_bytes(at, cols);
        AlignedBuffer & buf = rs.acts[(int) at];
        if (buf.size < stride * n || !buf.data()) buf.allocate(stride * n);
        auto quantize = [&](int t0_, int t1_) {
            for (int t = t0_; t < t1_; ++t)
                quant::quantize_acts(at, x + (size_t) t * cols, buf.data() + stride * t, cols);
        };
        if (n < 8 || rs.pool.size() == 1) quantize(0, n);
        else rs.pool.run([&](int idx, int nth) { quantize(n * idx / nth, n * (idx + 1) / nth); });
    }
    // Rows are handed out in tiles of 16 so that each thread streams a contiguous part of every matrix.
    rs.pool.run([&](int idx, int nth) {
        for (auto & [m, y] : outs) {
            int64_t tiles = (m->rows + 15) / 16;
            int64_t b = tiles * idx / nth * 16, e = std::min<int64_t>(m->rows, tiles * (idx + 1) / nth * 16);
            if (b >= e) continue;
            const int64_t ys = y_stride ? y_stride : m->rows;
            if (m->type != WeightType::BLOCKS) {
                rs.kernels.matmul(*m, x, xq, y, ys, n, b, e);
                continue;
            }
            const quant::Type at = quant::traits(m->qtype)->act_type;
            const void * a = at == quant::Type::F32 ? (const void *) x : (const void *) rs.acts[(int) at].data();
            const size_t as =
                at == quant::Type::F32 ? (size_t) cols * sizeof(float) : (size_t) quant::row_bytes(at, cols);
            quant::matmul(m->qtype, m->data.data(), m->row_bytes(), cols, b, e, a, as, n, y, ys);
        }
    });
    rs.times.matmul += seconds_since(t0);
}

void rope_and_cache(RankState & rs, const ForwardBatch & b, int l) {
    auto t0 = Clock::now();
    const ShardWeights & S = rs.shard;
    const int hd = rs.hp.head_dim, q_loc = S.n_heads * hd, kv_loc = S.n_kv_heads * hd;
    const int n_pairs = rs.hp.rope_dim / 2, bs = rs.layout.kv_block_size;
    const bool own = rs.rope_swa_own && rs.hp.layer_swa(l);
    const std::vector<float> &cos_tab = own ? rs.rope_cos_swa : rs.rope_cos,
                             &sin_tab = own ? rs.rope_sin_swa : rs.rope_sin;
    const bool neox = rs.hp.rope_style == RopeStyle::NEOX;
    for (int t = 0; t < b.n; ++t) {
        const float * cs = cos_tab.data() + (size_t) t * n_pairs;
        const float * sn = sin_tab.data() + (size_t) t * n_pairs;
        auto rotate = [&](float * vec, int heads) {
            for (int h = 0; h < heads; ++h) {
                float * p = vec + (size_t) h * hd;
                if (neox) {
                    for (int i = 0; i < n_pairs; ++i) {
                        float a = p[i], c = p[i + n_pairs];
                        p[i] = a * cs[i] - c * sn[i];
                        p[i + n_pairs] = a * sn[i] + c * cs[i];
                    }
                    continue;
                }
                for (int i = 0; i < n_pairs; ++i) {
                    float a = p[2 * i], c = p[2 * i + 1];
                    p[2 * i] = a * cs[i] - c * sn[i];
                    p[2 * i + 1] = a * sn[i] + c * cs[i];
                }
            }
        };
        rotate(rs.q.data() + (size_t) t * q_loc, S.n_heads);
        rotate(rs.k.data() + (size_t) t * kv_loc, S.n_kv_heads);
        const BatchEntry & e = b.entries[b.tok_entry[t]];
        const int pos = b.tok_pos[t];
        rs.kv.write(l, e.block_table[pos / bs], pos % bs, rs.k.data() + (size_t) t * kv_loc,
                    rs.v.data() + (size_t) t * kv_loc);
    }
    rs.times.rope += seconds_since(t0);
}

void causal_attention(RankState & rs, const ForwardBatch & b, int l) {
    auto t0 = Clock::now();
    const ShardWeights & S = rs.shard;
    const int hd = rs.hp.head_dim, q_loc = S.n_heads * hd;
    const int group = rs.hp.n_heads / rs.hp.n_kv_heads;
    // One task per (token, KV head, up to ATTN_MAX_ROWS of its query heads): the group's query heads share each K/V
    // row read. Tasks are dealt round-robin so that the long-context tokens at the end of a prefill are shared out.
    const int parts = (group + ATTN_MAX_ROWS - 1) / ATTN_MAX_ROWS, per_part = (group + parts - 1) / parts;
    const int64_t per_tok = (int64_t) S.n_kv_heads * parts, items = (int64_t) b.n * per_tok;
    const size_t scratch = attn_scratch_floats(per_part, b.max_ctx, hd);
    const float scale = rs.hp.attn_scale > 0.0f ? rs.hp.attn_scale : 1.0f / std::sqrt((float) hd);
    // The KV cache keeps every position; a sliding window is a lower bound on the keys a query reads.
    const int window = rs.hp.layer_swa(l) ? rs.hp.n_swa : 0;
    rs.pool.run([&](int idx, int nth) {
        float * sc = rs.scores.data() + (size_t) idx * scratch;
        for (int64_t it = idx; it < items; it += nth) {
            const int t = (int) (it / per_tok), g = (int) (it % per_tok) / parts, part = (int) (it % parts);
            const int h0 = g * group + part * per_part;
            const BatchEntry & e = b.entries[b.tok_entry[t]];
            AttnTask task;
            rs.kv.fill_task(task, l, e.block_table, g);
            task.rows = std::min(per_part, g * group + group - h0);
            task.n_ctx = b.tok_pos[t] + 1;
            task.kv0 = window > 0 ? std::max(0, b.tok_pos[t] + 1 - window) : 0;
            task.scale = scale;
            task.softcap = rs.hp.attn_softcap;
            task.q = rs.q.data() + (size_t) t * q_loc + (size_t) h0 * hd;
            task.out = rs.att.data() + (size_t) t * q_loc + (size_t) h0 * hd;
            task.row_stride = hd;
            rs.kernels.attend(task, sc);
        }
    });
    rs.times.attention += seconds_since(t0);
}

void attention(RankState & rs, const ForwardBatch & b, int l, const ShardWeights::Layer & w) {
    matmuls(rs, rs.xn.data(), b.n, rs.hp.dim, {{&w.wq, rs.q.data()}, {&w.wk, rs.k.data()}, {&w.wv, rs.v.data()}});
    if (!w.bq.empty() || !w.bk.empty() || !w.bv.empty() || !rs.shared.attn_q_norm.empty()) {
        auto t0 = Clock::now();
        const int hd = rs.hp.head_dim, q_loc = rs.shard.n_heads * hd, kv_loc = rs.shard.n_kv_heads * hd;
        auto add_bias = [&](std::vector<float> & y, const std::vector<float> & bias, int width) {
            if (bias.empty()) return;
            for (int t = 0; t < b.n; ++t) add_inplace(y.data() + (size_t) t * width, bias.data(), width);
        };
        add_bias(rs.q, w.bq, q_loc);
        add_bias(rs.k, w.bk, kv_loc);
        add_bias(rs.v, w.bv, kv_loc);
        if (!rs.shared.attn_q_norm.empty()) {
            // Qwen3 / Gemma3: each head of Q and K RMS-normed over head_dim before RoPE.
            const float * wq = rs.shared.attn_q_norm[l].data();
            const float * wk = rs.shared.attn_k_norm[l].data();
            for (int h = 0; h < b.n * rs.shard.n_heads; ++h)
                rmsnorm_row(rs.q.data() + (size_t) h * hd, rs.q.data() + (size_t) h * hd, wq, hd, rs.hp.rms_eps);
            for (int h = 0; h < b.n * rs.shard.n_kv_heads; ++h)
                rmsnorm_row(rs.k.data() + (size_t) h * hd, rs.k.data() + (size_t) h * hd, wk, hd, rs.hp.rms_eps);
        }
        rs.times.norm += seconds_since(t0);
    }
    rope_and_cache(rs, b, l);
    causal_attention(rs, b, l);
    matmuls(rs, rs.att.data(), b.n, rs.shard.n_heads * rs.hp.head_dim, {{&w.wo, rs.partial.data()}});
    rs.partial_whole = rs.layout.tp == 1; // replicated on every rank beside expert parallelism
}

void gated_mlp(RankState & rs, const ForwardBatch & b, const ShardWeights::Layer & w) {
    const int ffn = rs.shard.ffn;
    matmuls(rs, rs.xn.data(), b.n, rs.hp.dim, {{&w.w_gate, rs.gate.data()}, {&w.w_up, rs.up.data()}});
    auto t0 = Clock::now();
    const int64_t n = (int64_t) b.n * ffn;
    const bool gelu = rs.hp.ffn_act == FfnAct::GELU;
    rs.pool.run([&](int idx, int nth) {
        const int64_t lo = n * idx / nth / 16 * 16, hi = idx + 1 == nth ? n : n * (idx + 1) / nth / 16 * 16;
        if (gelu) gelu_mul(rs.gate.data() + lo, rs.up.data() + lo, hi - lo);
        else rs.kernels.silu_mul(rs.gate.data() + lo, rs.up.data() + lo, hi - lo);
    });
    rs.times.ffn_act += seconds_since(t0);
    matmuls(rs, rs.gate.data(), b.n, ffn, {{&w.w_down, rs.partial.data()}});
    rs.partial_whole = rs.layout.tp == 1; // replicated on every rank beside expert parallelism
}

// Under tensor parallelism rank 0 adds the residual into its partial, so that the all-reduced sum is
// x + partial_0 + partial_1 + ... in rank order, the same on every rank (and as a single rank would add).
void add_residual(RankState & rs, const ForwardBatch & b) {
    const size_t n = (size_t) b.n * rs.hp.dim;
    const bool whole = rs.partial_whole, moe = rs.partial_moe;
    rs.partial_whole = rs.partial_moe = false; // each op that writes the partial says what it holds
    if (rs.n_ranks == 1 || whole) {
        add_inplace(rs.x.data(), rs.partial.data(), (int64_t) n);
        return;
    }
    auto t0 = Clock::now();
    if (rs.rank == 0) add_inplace(rs.partial.data(), rs.x.data(), (int64_t) n);
    if (moe) {
        // The expert combine: each rank's routed (and shared-expert) outputs summed back to every token.
        rs.comm_moe.all_reduce_sum(rs.rank, rs.partial.data(), rs.x.data(), n);
        rs.alltoall += seconds_since(t0);
        if (rs.rank == 0) ++rs.alltoalls;
        return;
    }
    rs.comm.all_reduce_sum(rs.rank, rs.partial.data(), rs.x.data(), n);
    rs.allreduce += seconds_since(t0);
    ++rs.times.allreduces;
}

void add_residual_post_norm(RankState & rs, const ForwardBatch & b, const std::vector<float> & norm) {
    const size_t n = (size_t) b.n * rs.hp.dim;
    float * sum = rs.partial.data();
    const bool whole = rs.partial_whole;
    rs.partial_whole = rs.partial_moe = false;
    if (rs.n_ranks > 1 && !whole) {
        // The whole attention / FFN output first (xn is free: this layer's normed input has been used).
        auto t0 = Clock::now();
        rs.comm.all_reduce_sum(rs.rank, rs.partial.data(), rs.xn.data(), n);
        rs.allreduce += seconds_since(t0);
        ++rs.times.allreduces;
        sum = rs.xn.data();
    }
    rms_norm(rs, sum, sum, norm, b.n);
    add_inplace(rs.x.data(), sum, (int64_t) n);
}

void output_head(RankState & rs, const ForwardBatch & b, const std::vector<float> & norm, float * logits) {
    // Only the rows wanted; each rank writes its vocabulary columns of the shared logits buffer.
    auto t0 = Clock::now();
    const int dim = rs.hp.dim;
    int rows = 0, t = 0;
    for (const BatchEntry & e : b.entries) {
        for (int i = 0; i < e.n_tokens; ++i, ++t) {
            // x is whole on every rank here (the last residual was all-reduced): rank 0 writes the hidden states.
            if (e.hidden && rs.rank == 0)
                rmsnorm_row(e.hidden + (size_t) i * dim, rs.x.data() + (size_t) t * dim, norm.data(), dim,
                            rs.hp.rms_eps);
            if (e.want_logits && (e.all_logits || i == e.n_tokens - 1)) {
                rmsnorm_row(rs.xn.data() + (size_t) rows * dim, rs.x.data() + (size_t) t * dim, norm.data(), dim,
                            rs.hp.rms_eps);
                ++rows;
            }
        }
    }
    rs.times.norm += seconds_since(t0);
    if (rows > 0) {
        t0 = Clock::now();
        const QMatrix & out = rs.shard.output_is_tok_embd ? rs.shared.tok_embd : rs.shard.output;
        matmuls(rs, rs.xn.data(), rows, dim, {{&out, logits + rs.shard.vocab_begin}}, rs.hp.n_vocab);
        if (rs.hp.final_softcap > 0.0f) // Gemma 2: logits -> c * tanh(logits / c), on this rank's columns
            for (int r = 0; r < rows; ++r)
                softcap_inplace(logits + (size_t) r * rs.hp.n_vocab + rs.shard.vocab_begin, rs.shard.vocab,
                                rs.hp.final_softcap);
        rs.times.output += seconds_since(t0);
    }
}

} // namespace layers
} // namespace tl
