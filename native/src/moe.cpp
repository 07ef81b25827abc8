// The Mixture-of-Experts FFN (moe.h): routing, tokens grouped by expert, and loading the expert tensors.
#include "moe.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>

#include "errors.h"
#include "quant/quant.h"

namespace tl {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// llama.cpp clamps the sum of the chosen weights to the smallest normal f16 before dividing by it.
constexpr float kMinWeightSum = 6.103515625e-5f;

// Indices of the k largest of v[0, n), largest first; ties to the lower index (a stable order, so that the choice is
// the same on every rank and for every batch).
void top_k(const float * v, int n, int k, int32_t * out) {
    int m = 0;
    for (int i = 0; i < n; ++i) {
        if (m == k && !(v[i] > v[out[k - 1]])) continue;
        int j = m < k ? m++ : k - 1;
        while (j > 0 && v[i] > v[out[j - 1]]) {
            out[j] = out[j - 1];
            --j;
        }
        out[j] = i;
    }
}

// A QActs that views rows [row0, row0 + n) of another one (no ownership: the int8 / int4 kernels index rows from 0).
QActs qacts_view(const QActs & a, int row0, int n) {
    auto noop = [](void *) {};
    const int64_t ng = a.cols_padded / QK;
    QActs v;
    v.n = n;
    v.cols_padded = a.cols_padded;
    v.q.ptr = {const_cast<uint8_t *>(a.q.data()) + (size_t) row0 * a.cols_padded, noop};
    v.scales.ptr = {const_cast<uint8_t *>(a.scales.data()) + (size_t) row0 * ng * 4, noop};
    v.sums.ptr = {const_cast<uint8_t *>(a.sums.data()) + (size_t) row0 * ng * 4, noop};
    return v;
}

// One product of a tile of rows of an expert matrix with the expert's gathered rows.
struct Tile {
    const QMatrix * m;
    int row0, n;        // the expert's gathered rows (and so its activations and outputs)
    float * y;          // [n][ys]
    int64_t ys, rb, re; // output stride; the matrix rows of the tile
    const QActs * xq;   // int8 / int4 activations (a view), else null
};

// The activations every matrix in `ms` needs, from x [n][cols]: QActs for the int8 / int4 layouts, and one buffer per
// block-activation format.
void prepare_acts(RankState & rs, MoeScratch & s, const std::vector<const QMatrix *> & ms, const float * x, int n,
                  int64_t cols) {
    bool need_q = false, need[quant::kTypeCount] = {};
    int64_t cols_padded = cols;
    for (const QMatrix * m : ms) {
        if (!m->rows) continue;
        if (m->type == WeightType::I8 || m->type == WeightType::I4) {
            need_q = true;
            cols_padded = m->cols_padded;
        } else if (m->type == WeightType::BLOCKS) {
            const quant::Type at = quant::traits(m->qtype)->act_type;
            if (at != quant::Type::F32) need[(int) at] = true;
        }
    }
    if (need_q) qacts_quantize(s.xq, x, n, cols, cols_padded);
    for (int at = 0; at < quant::kTypeCount; ++at) {
        if (!need[at]) continue;
        const size_t stride = (size_t) quant::row_bytes((quant::Type) at, cols);
        AlignedBuffer & buf = s.acts[at];
        if (buf.size < stride * n || !buf.data()) buf.allocate(stride * n);
        auto quantize = [&](int t0, int t1) {
            for (int t = t0; t < t1; ++t)
                quant::quantize_acts((quant::Type) at, x + (size_t) t * cols, buf.data() + stride * t, cols);
        };
        if (n < 8 || rs.pool.size() == 1) quantize(0, n);
        else rs.pool.run([&](int idx, int nth) { quantize(n * idx / nth, n * (idx + 1) / nth); });
    }
}

// Runs the tiles over the rank's threads (dynamically: tiles differ in cost when groups differ in size). Each output
// element is computed by exactly one tile, so the result does not depend on how tiles are shared out.
void run_tiles(RankState & rs, MoeScratch & s, const std::vector<Tile> & tiles, const float * x, int64_t cols) {
    std::atomic<size_t> next{0};
    rs.pool.run([&](int, int) {
        for (size_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < tiles.size();) {
            const Tile & t = tiles[i];
            const QMatrix & m = *t.m;
            const float * xt = x + (size_t) t.row0 * cols;
            if (m.type != WeightType::BLOCKS) {
                rs.kernels.matmul(m, xt, t.xq, t.y, t.ys, t.n, t.rb, t.re);
                continue;
            }
            const quant::Type at = quant::traits(m.qtype)->act_type;
            const bool f32 = at == quant::Type::F32;
            const size_t as = f32 ? (size_t) cols * sizeof(float) : (size_t) quant::row_bytes(at, cols);
            const void * a = f32 ? (const void *) xt : (const void *) (s.acts[(int) at].data() + as * t.row0);
            quant::matmul(m.qtype, m.data.data(), m.row_bytes(), cols, t.rb, t.re, a, as, t.n, t.y, t.ys);
        }
    });
}

// Rows per tile: small enough that every thread gets several tiles of a decode step, whole multiples of 16.
int64_t tile_rows(int64_t total_rows, int threads) {
    const int64_t want = total_rows / std::max(1, 4 * threads);
    return std::max<int64_t>(16, want / 16 * 16);
}

void add_tiles(std::vector<Tile> & tiles, const QMatrix & m, int row0, int n, float * y, int64_t ys, const QActs * xq,
               int64_t rows_per_tile) {
    for (int64_t rb = 0; rb < m.rows; rb += rows_per_tile)
        tiles.push_back({&m, row0, n, y, ys, rb, std::min(m.rows, rb + rows_per_tile), xq});
}

} // namespace

size_t MoeScratch::bytes() const {
    size_t f = logits.capacity() + scores.capacity() + choose.capacity() + wsel.capacity() + xg.capacity() +
               g.capacity() + u.capacity() + d.capacity() + sg.capacity() + su.capacity() + sd.capacity();
    size_t i = sel.capacity() + count.capacity() + offset.capacity() + fill.capacity() + row_token.capacity() +
               tok_row.capacity() + lo.capacity() + hi.capacity() + mine.capacity() / 4;
    size_t a = xq.q.size + xq.scales.size + xq.sums.size;
    for (const AlignedBuffer & b : acts) a += b.size;
    return f * sizeof(float) + i * sizeof(int32_t) + a;
}

void moe_route(const MoeHParams & moe, const float * logits, int n, const float * bias, MoeScratch & s) {
    const int E = moe.n_expert, k = moe.n_expert_used;
    s.scores.resize((size_t) n * E);
    s.choose.resize((size_t) n * E);
    s.sel.resize((size_t) n * k);
    s.wsel.resize((size_t) n * k);
    const int G = moe.n_groups > 1 ? moe.n_groups : 0, per_group = G ? E / G : 0;
    std::vector<float> group_score(G);
    std::vector<int32_t> best_groups(G ? moe.n_groups_used : 0), best2(2);
    for (int t = 0; t < n; ++t) {
        const float * lg = logits + (size_t) t * E;
        float * sc = s.scores.data() + (size_t) t * E;
        float * ch = s.choose.data() + (size_t) t * E;
        if (moe.gating == MoeGating::SOFTMAX) {
            // As ggml_soft_max: exp(x - max), summed in double, times 1 / sum.
            float mx = -std::numeric_limits<float>::infinity();
            for (int e = 0; e < E; ++e) mx = std::max(mx, lg[e]);
            double sum = 0;
            for (int e = 0; e < E; ++e) sum += (sc[e] = std::exp(lg[e] - mx));
            const float inv = (float) (1.0 / sum);
            for (int e = 0; e < E; ++e) sc[e] *= inv;
        } else {
            for (int e = 0; e < E; ++e) sc[e] = 1.0f / (1.0f + std::exp(-lg[e]));
        }
        for (int e = 0; e < E; ++e) ch[e] = bias ? sc[e] + bias[e] : sc[e];
        if (G) {
            // Group-limited routing (DeepSeek-V3): a group scores the sum of its best two choose values; experts
            // outside the best n_groups_used groups cannot be chosen.
            for (int g = 0; g < G; ++g) {
                const float * v = ch + (size_t) g * per_group;
                if (per_group >= 2) {
                    top_k(v, per_group, 2, best2.data());
                    group_score[g] = v[best2[0]] + v[best2[1]];
                } else {
                    group_score[g] = v[0];
                }
            }
            top_k(group_score.data(), G, moe.n_groups_used, best_groups.data());
            for (int g = 0; g < G; ++g) {
                if (std::find(best_groups.begin(), best_groups.end(), g) != best_groups.end()) continue;
                for (int e = 0; e < per_group; ++e) ch[g * per_group + e] = -std::numeric_limits<float>::infinity();
            }
        }
        int32_t * sel = s.sel.data() + (size_t) t * k;
        float * w = s.wsel.data() + (size_t) t * k;
        top_k(ch, E, k, sel);
        for (int j = 0; j < k; ++j) w[j] = sc[sel[j]];
        if (moe.norm_weights) {
            float sum = 0;
            for (int j = 0; j < k; ++j) sum += w[j];
            sum = std::max(sum, kMinWeightSum);
            for (int j = 0; j < k; ++j) w[j] /= sum;
        }
        if (moe.weights_scale != 0.0f && moe.weights_scale != 1.0f)
            for (int j = 0; j < k; ++j) w[j] *= moe.weights_scale;
    }
}

namespace layers {

void moe_ffn(RankState & rs, const ForwardBatch & b, int layer, const MoeLayerWeights & w) {
    MoeScratch & s = *rs.moe;
    const MoeHParams & moe = rs.hp.moe;
    const int n = b.n, dim = rs.hp.dim, E = moe.n_expert, k = moe.n_expert_used;
    const int ffn = rs.shard.expert_ffn;

    // Router (f32, replicated): logits [n][E], then every token's experts and weights.
    s.logits.resize((size_t) n * E);
    matmuls(rs, rs.xn.data(), n, dim, {{&rs.shared.moe_router[layer], s.logits.data()}});
    auto t0 = Clock::now();
    const std::vector<float> & bias = rs.shared.moe_sel_bias[layer];
    moe_route(moe, s.logits.data(), n, bias.empty() ? nullptr : bias.data(), s);

    // Group the rows by expert (tokens in batch order within each expert, so a token's rows do not depend on the
    // other tokens of the batch).
    s.count.assign(E, 0);
    for (int i = 0; i < n * k; ++i) ++s.count[s.sel[i]];
    if (rs.rank == 0) {
        std::vector<uint64_t> & tok = s.tokens[layer];
        for (int e = 0; e < E; ++e) tok[e] += (uint64_t) s.count[e];
    }
    s.offset.resize(E + 1);
    s.offset[0] = 0;
    for (int e = 0; e < E; ++e) s.offset[e + 1] = s.offset[e] + s.count[e];
    const int M = n * k;
    s.fill.assign(E, 0);
    s.row_token.resize(M);
    s.tok_row.resize(M);
    for (int t = 0; t < n; ++t)
        for (int j = 0; j < k; ++j) {
            const int e = s.sel[(size_t) t * k + j], r = s.offset[e] + s.fill[e]++;
            s.row_token[r] = t;
            s.tok_row[(size_t) t * k + j] = r;
        }
    s.xg.resize((size_t) M * dim);
    for (int r = 0; r < M; ++r)
        std::copy_n(rs.xn.data() + (size_t) s.row_token[r] * dim, dim, s.xg.data() + (size_t) r * dim);
    rs.times.ffn_act += seconds_since(t0);

    // gate and up of every chosen expert over its rows, then silu(gate) * up, then down.
    const auto t_exp = Clock::now();
    s.g.resize((size_t) M * ffn);
    s.u.resize((size_t) M * ffn);
    s.d.resize((size_t) M * dim);
    std::vector<const QMatrix *> used;
    for (int e = 0; e < E; ++e)
        if (s.count[e] && w.gate[e].rows) used.insert(used.end(), {&w.gate[e], &w.up[e]});
    // (Activations are prepared for every gathered row: under expert parallelism some are not this rank's, which
    // costs a quantization of rows the rank does not multiply, small beside the products.)
    prepare_acts(rs, s, used, s.xg.data(), M, dim);
    // The rows of each expert this rank computes: all of them, none (another rank owns the expert), or one half of
    // a redundant expert's (its replicas split its rows: the first ceil(n / 2) and the rest).
    s.lo.assign(E, 0);
    s.hi.assign(E, 0);
    s.mine.assign(M, 0);
    for (int e = 0; e < E; ++e) {
        const int cnt = s.count[e], half = (cnt + 1) / 2;
        const uint8_t part = w.part.empty() ? (uint8_t) MoeLayerWeights::ALL : w.part[e];
        if (!cnt || part == MoeLayerWeights::NONE || !w.gate[e].rows) continue;
        s.lo[e] = part == MoeLayerWeights::SECOND ? half : 0;
        s.hi[e] = part == MoeLayerWeights::FIRST ? half : cnt;
        for (int i = s.lo[e]; i < s.hi[e]; ++i) {
            const int r = s.offset[e] + i;
            s.mine[r] = 1;
            // Under expert parallelism a token's home is rank t % n_ranks (as if the batch were spread over them):
            // rows computed elsewhere are what a real interconnect would dispatch and return.
            if (s.row_token[r] % rs.n_ranks != rs.rank) ++rs.a2a_rows;
        }
    }
    std::vector<Tile> tiles;
    std::vector<QActs> views(E);
    const int64_t tr1 = tile_rows((int64_t) 2 * ffn * std::max(1, (int) used.size() / 2), rs.pool.size());
    for (int e = 0; e < E; ++e) {
        if (s.hi[e] <= s.lo[e]) continue;
        const int r0 = s.offset[e] + s.lo[e], cnt = s.hi[e] - s.lo[e];
        const bool q = w.gate[e].type == WeightType::I8 || w.gate[e].type == WeightType::I4 ||
                       w.up[e].type == WeightType::I8 || w.up[e].type == WeightType::I4;
        if (q) views[e] = qacts_view(s.xq, r0, cnt);
        add_tiles(tiles, w.gate[e], r0, cnt, s.g.data() + (size_t) r0 * ffn, ffn, q ? &views[e] : nullptr, tr1);
        add_tiles(tiles, w.up[e], r0, cnt, s.u.data() + (size_t) r0 * ffn, ffn, q ? &views[e] : nullptr, tr1);
    }
    run_tiles(rs, s, tiles, s.xg.data(), dim);
    {
        const int64_t total = (int64_t) M * ffn;
        rs.pool.run([&](int idx, int nth) {
            const int64_t lo = total * idx / nth / 16 * 16,
                          hi = idx + 1 == nth ? total : total * (idx + 1) / nth / 16 * 16;
            if (hi > lo) rs.kernels.silu_mul(s.g.data() + lo, s.u.data() + lo, hi - lo);
        });
    }
    used.clear();
    for (int e = 0; e < E; ++e)
        if (s.hi[e] > s.lo[e]) used.push_back(&w.down[e]);
    prepare_acts(rs, s, used, s.g.data(), M, ffn);
    tiles.clear();
    const int64_t tr2 = tile_rows((int64_t) dim * std::max(1, (int) used.size()), rs.pool.size());
    for (int e = 0; e < E; ++e) {
        if (s.hi[e] <= s.lo[e]) continue;
        const int r0 = s.offset[e] + s.lo[e], cnt = s.hi[e] - s.lo[e];
        const bool q = w.down[e].type == WeightType::I8 || w.down[e].type == WeightType::I4;
        if (q) views[e] = qacts_view(s.xq, r0, cnt);
        add_tiles(tiles, w.down[e], r0, cnt, s.d.data() + (size_t) r0 * dim, dim, q ? &views[e] : nullptr, tr2);
    }
    run_tiles(rs, s, tiles, s.g.data(), ffn);
    const double expert_s = seconds_since(t_exp);
    s.expert_seconds += expert_s;
    rs.times.matmul += expert_s;

    // partial[t] = sum over j in top-k order of w_j * d[row of (t, j)] (llama.cpp adds the weighted experts in
    // that order), then the shared experts' MLP.
    t0 = Clock::now();
    // Only this rank's rows: the combine (add_residual) sums the ranks' partials. 0 + w d is w d exactly, so one
    // rank adds exactly as llama.cpp does.
    std::fill(rs.partial.begin(), rs.partial.begin() + (size_t) n * dim, 0.0f);
    for (int t = 0; t < n; ++t) {
        float * out = rs.partial.data() + (size_t) t * dim;
        for (int j = 0; j < k; ++j) {
            const int r = s.tok_row[(size_t) t * k + j];
            if (!s.mine[r]) continue;
            const float wj = s.wsel[(size_t) t * k + j];
            const float * dr = s.d.data() + (size_t) r * dim;
            for (int i = 0; i < dim; ++i) out[i] += wj * dr[i];
        }
    }
    rs.times.ffn_act += seconds_since(t0);
    if (w.sh_gate.rows) {
        const int sf = rs.shard.shexp_ffn;
        s.sg.resize((size_t) n * sf);
        s.su.resize((size_t) n * sf);
        s.sd.resize((size_t) n * dim);
        matmuls(rs, rs.xn.data(), n, dim, {{&w.sh_gate, s.sg.data()}, {&w.sh_up, s.su.data()}});
        t0 = Clock::now();
        rs.kernels.silu_mul(s.sg.data(), s.su.data(), (int64_t) n * sf);
        rs.times.ffn_act += seconds_since(t0);
        matmuls(rs, s.sg.data(), n, sf, {{&w.sh_down, s.sd.data()}});
        for (size_t i = 0; i < (size_t) n * dim; ++i) rs.partial[i] += s.sd[i];
    }
    rs.partial_moe = true; // a share of the sum on each rank, combined by add_residual
}

} // namespace layers

void read_moe_hparams(const GgufFile & f, ModelHParams & hp, int64_t expert_ffn_default) {
    const std::string p = hp.arch + ".";
    MoeHParams & m = hp.moe;
    // llama.cpp also accepts per-layer arrays for these (models that route a different number of experts per layer);
    // tuneloop reads one value for every layer.
    for (const char * k : {"expert_used_count", "expert_feed_forward_length"}) {
        const GgufValue * v = f.find(p + k);
        if (v && v->type == GgufType::ARRAY)
            fail(ErrorCode::UNSUPPORTED_ARCHITECTURE,
                 "model '" + f.path() + "': metadata '" + p + k +
                     "' is a per-layer array; tuneloop supports one value for every layer (refused rather than "
                     "ignored)");
    }
    m.n_expert = positive_int(f, p + "expert_count", 0, 4096);
    m.n_expert_used = positive_int(f, p + "expert_used_count", 0, 4096);
    if (m.n_expert_used > m.n_expert)
        corrupt(f, "metadata '" + p + "expert_used_count' = " + std::to_string(m.n_expert_used) + " exceeds '" + p +
                       "expert_count' = " + std::to_string(m.n_expert));
    if (expert_ffn_default < 0) expert_ffn_default = hp.ffn_dim / m.n_expert_used; // llama.cpp's qwen3moe default
    m.expert_ffn_dim = positive_int(f, p + "expert_feed_forward_length", expert_ffn_default, 1 << 18);
    const int64_t groups = f.get_int(p + "expert_group_count", 0);
    const int64_t used = f.get_int(p + "expert_group_used_count", 0);
    if (groups > 1) {
        // llama.cpp's load_hparams asserts these.
        if (groups >= m.n_expert || m.n_expert % groups != 0)
            corrupt(f, "metadata '" + p + "expert_group_count' = " + std::to_string(groups) +
                           " must be below and divide expert_count " + std::to_string(m.n_expert));
        if (used <= 0 || used >= groups)
            corrupt(f, "metadata '" + p + "expert_group_used_count' = " + std::to_string(used) + " must be in 1.." +
                           std::to_string(groups - 1));
        if (used * (m.n_expert / groups) < m.n_expert_used)
            corrupt(f, "metadata '" + p + "expert_group_used_count' = " + std::to_string(used) + " groups of " +
                           std::to_string(m.n_expert / groups) + " experts cannot hold expert_used_count " +
                           std::to_string(m.n_expert_used) + " experts");
        m.n_groups = (int32_t) groups;
        m.n_groups_used = (int32_t) used;
    } else if (groups < 0 || used < 0 || (groups <= 1 && used > 1)) {
        corrupt(f, "metadata '" + p + "expert_group_used_count' = " + std::to_string(used) +
                       " without an expert_group_count above 1");
    }
}

void plan_moe_layer(const GgufFile & f, const ModelHParams & hp, const ModelLayout & lay, int l, bool selection_bias,
                    SharedWeights & sh, std::vector<ShardWeights> & shards,
                    std::vector<std::pair<MatrixSpec, QMatrix *>> & mats, std::set<std::string> & used) {
    const MoeHParams & moe = hp.moe;
    const std::string p = "blk." + std::to_string(l) + ".";
    const Range all_dim{0, hp.dim};
    const MatrixRole other = MatrixRole::OTHER;
    if ((int) sh.moe_router.size() < hp.n_layers) sh.moe_router.resize(hp.n_layers);
    if ((int) sh.moe_sel_bias.size() < hp.n_layers) sh.moe_sel_bias.resize(hp.n_layers);
    // The router in f32 whatever the policy (llama.cpp multiplies an F32 router in f32; its scores pick experts, and
    // a re-quantized router would pick others).
    MatrixSpec router{p + "ffn_gate_inp.weight", moe.n_expert, hp.dim, other, {0, moe.n_expert}, all_dim};
    router.force_f32 = true;
    mats.push_back({router, &sh.moe_router[l]});
    if (selection_bias && f.find_tensor(p + "exp_probs_b.bias")) {
        used.insert(p + "exp_probs_b.bias");
        sh.moe_sel_bias[l] = load_vector(f, p + "exp_probs_b.bias", moe.n_expert);
    }
    const int64_t ef = moe.expert_ffn_dim, sf = (int64_t) moe.expert_ffn_dim * moe.n_expert_shared;
    for (int r = 0; r < (int) shards.size(); ++r) {
        ShardWeights & S = shards[r];
        auto L = std::make_unique<MoeLayerWeights>();
        L->gate.resize(moe.n_expert);
        L->up.resize(moe.n_expert);
        L->down.resize(moe.n_expert);
        L->part.assign(moe.n_expert, MoeLayerWeights::ALL);
        const Range fr{S.expert_ffn_begin, S.expert_ffn_begin + S.expert_ffn};
        for (int e = 0; e < moe.n_expert; ++e) {
            if (lay.ep_degree > 1) {
                // Expert parallelism: e lives on rank e % ep; a redundant one also on the next rank, each replica
                // computing one half of the expert's rows.
                const int owner = lay.expert_owner(e), replica = (owner + 1) % lay.ep_degree;
                const bool red = lay.expert_redundant(l, e);
                uint8_t part = MoeLayerWeights::NONE;
                if (r == owner) part = red ? MoeLayerWeights::FIRST : MoeLayerWeights::ALL;
                else if (red && r == replica) part = MoeLayerWeights::SECOND;
                L->part[e] = part;
                if (part == MoeLayerWeights::NONE) continue;
            }
            MatrixSpec g{p + "ffn_gate_exps.weight", ef, hp.dim, other, fr, all_dim, moe.n_expert, e};
            MatrixSpec u{p + "ffn_up_exps.weight", ef, hp.dim, other, fr, all_dim, moe.n_expert, e};
            MatrixSpec d{p + "ffn_down_exps.weight", hp.dim, ef, other, all_dim, fr, moe.n_expert, e};
            mats.push_back({g, &L->gate[e]});
            mats.push_back({u, &L->up[e]});
            mats.push_back({d, &L->down[e]});
        }
        if (moe.n_expert_shared > 0) {
            const Range sr{S.shexp_ffn_begin, S.shexp_ffn_begin + S.shexp_ffn};
            mats.push_back({{p + "ffn_gate_shexp.weight", sf, hp.dim, other, sr, all_dim}, &L->sh_gate});
            mats.push_back({{p + "ffn_up_shexp.weight", sf, hp.dim, other, sr, all_dim}, &L->sh_up});
            mats.push_back({{p + "ffn_down_shexp.weight", hp.dim, sf, other, all_dim, sr}, &L->sh_down});
        }
        S.layers[l].moe = std::move(L);
    }
}

} // namespace tl
