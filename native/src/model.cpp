#include "model.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <map>

#include "errors.h"
#include "simd_clones.h"


namespace tl {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }


TL_CLONES void rmsnorm(float * out, const float * x, const float * w, int n, float eps) {
    float ss = 0.0f;
    for (int i = 0; i < n; ++i) ss += x[i] * x[i];
    float scale = 1.0f / std::sqrt(ss / n + eps);
    for (int i = 0; i < n; ++i) out[i] = x[i] * scale * w[i];
}

TL_CLONES void add_inplace(float * y, const float * x, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

void swiglu(float * gate, const float * up, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        float g = gate[i];
        gate[i] = g / (1.0f + std::exp(-g)) * up[i];
    }
}

} // namespace

const char * weights_policy_name(WeightsPolicy p) {
    switch (p) {
        case WeightsPolicy::F32: return "f32";
        case WeightsPolicy::BF16: return "bf16";
        case WeightsPolicy::INT8: return "int8";
        case WeightsPolicy::INT4: return "int4";
        case WeightsPolicy::MIXED: return "mixed";
    }
    return "f32";
}

bool parse_weights_policy(const std::string & s, WeightsPolicy * out) {
    static const std::pair<const char *, WeightsPolicy> names[] = {
        {"f32", WeightsPolicy::F32}, {"bf16", WeightsPolicy::BF16}, {"int8", WeightsPolicy::INT8},
        {"int4", WeightsPolicy::INT4}, {"mixed", WeightsPolicy::MIXED}};
    for (auto & [name, p] : names) {
        if (s == name) { *out = p; return true; }
    }
    return false;
}

struct LlamaModel::Rank {
    LlamaShard shard;
    ThreadPool pool;
    KvStorage kv;
    QActs xq;
    ModelTimes times; // this rank's share (rank_busy / rank_allreduce unused here)
    double busy = 0, allreduce = 0;
    // Scratch, grown as needed: x/xn/partial full width; q/k/v/att/gate/up local width.
    std::vector<float> x, xn, q, k, v, att, gate, up, partial, scores, rope_cos, rope_sin;

    Rank(LlamaShard s, int threads, const LlamaHParams & hp, const ModelLayout & lay)
        : shard(std::move(s)), pool(threads),
          kv(hp.n_layers, lay.kv_blocks, lay.kv_block_size, shard.n_kv_heads, hp.head_dim, lay.kv_dtype) {}

    size_t scratch_bytes() const {
        size_t n = x.capacity() + xn.capacity() + q.capacity() + k.capacity() + v.capacity() + att.capacity() + gate.capacity() +
                   up.capacity() + partial.capacity() + scores.capacity() + rope_cos.capacity() + rope_sin.capacity();
        return n * sizeof(float) + xq.q.size + xq.scales.size + xq.sums.size;
    }
};

LlamaModel::LlamaModel(LlamaHParams hp, LlamaShared shared, std::vector<LlamaShard> shards, ModelLayout layout)
    : hp_(hp), shared_(std::move(shared)), layout_(layout), kernels_(cpu_kernels()) {
    for (auto & s : shards) ranks_.push_back(std::make_unique<Rank>(std::move(s), layout.threads_per_rank, hp_, layout_));
    comm_ = std::make_unique<SharedMemoryCommunicator>((int) ranks_.size(), layout_.allreduce_delay_us);
    rank_threads_ = std::make_unique<RankThreads>((int) ranks_.size());
}

LlamaModel::~LlamaModel() = default;

std::vector<std::pair<std::string, size_t>> LlamaModel::weight_bytes() const {
    std::map<std::string, size_t> by;
    auto add = [&](const QMatrix & m) { if (m.rows) by[weight_type_name(m.type)] += m.bytes(); };
    add(shared_.tok_embd);
    size_t norms = shared_.output_norm.size() * sizeof(float);
    for (size_t l = 0; l < shared_.attn_norm.size(); ++l) norms += (shared_.attn_norm[l].size() + shared_.ffn_norm[l].size()) * sizeof(float);
    by["f32"] += norms;
    for (const auto & r : ranks_) {
        if (!r->shard.output_is_tok_embd) add(r->shard.output);
        for (const auto & L : r->shard.layers)
            for (const QMatrix * m : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) add(*m);
    }
    return {by.begin(), by.end()};
}

size_t LlamaModel::weight_bytes_total() const {
    size_t total = 0;
    for (auto & [_, b] : weight_bytes()) total += b;
    return total;
}

size_t LlamaModel::kv_bytes() const {
    size_t b = 0;
    for (const auto & r : ranks_) b += r->kv.bytes();
    return b;
}

size_t LlamaModel::scratch_bytes() const {
    size_t b = 0;
    for (const auto & r : ranks_) b += r->scratch_bytes();
    return b;
}

ModelTimes LlamaModel::times() const {
    ModelTimes t;
    for (const auto & r : ranks_) {
        t.matmul += r->times.matmul; t.attention += r->times.attention; t.norm += r->times.norm; t.rope += r->times.rope;
        t.ffn_act += r->times.ffn_act; t.embed += r->times.embed; t.output += r->times.output;
        t.rank_busy.push_back(r->busy);
        t.rank_allreduce.push_back(r->allreduce);
        t.allreduces += r->times.allreduces;
    }
    return t;
}

int64_t LlamaModel::logits_rows(const std::vector<BatchEntry> & batch) {
    int64_t rows = 0;
    for (const BatchEntry & e : batch) rows += !e.want_logits ? 0 : e.all_logits ? e.n_tokens : 1;
    return rows;
}

void LlamaModel::forward(const std::vector<BatchEntry> & batch, float * logits) {
    rank_threads_->run([&](int r) { rank_forward(r, batch, logits); });
}

// Rank 0 adds the residual into its partial, so that the all-reduced sum is x + partial_0 + partial_1 + ... in rank
// order, the same on every rank.
void LlamaModel::all_reduce(int r, float * x, float * partial, size_t n) {
    Rank & rank = *ranks_[r];
    auto t0 = Clock::now();
    if (r == 0) add_inplace(partial, x, (int64_t) n);
    comm_->all_reduce_sum(r, partial, x, n);
    rank.allreduce += seconds_since(t0);
    ++rank.times.allreduces;
}

// Several products that share one input (Q/K/V, or gate/up) in one parallel region: one barrier instead of three,
// and the input is quantized once. y_stride 0 means each output is [n][rows] (else rows are written at that stride).
void LlamaModel::matmuls(Rank & rank, const float * x, int n, int64_t cols,
                         std::initializer_list<std::pair<const QMatrix *, float *>> outs, int64_t y_stride) {
    auto t0 = Clock::now();
    const QActs * xq = nullptr;
    for (auto & [m, y] : outs) {
        if (m->rows && (m->type == WeightType::I8 || m->type == WeightType::I4)) {
            qacts_quantize(rank.xq, x, n, cols, m->cols_padded);
            xq = &rank.xq;
            break;
        }
    }
    // Rows are handed out in tiles of 16 so that each thread streams a contiguous part of every matrix.
    rank.pool.run([&](int idx, int nth) {
        for (auto & [m, y] : outs) {
            int64_t tiles = (m->rows + 15) / 16;
            int64_t b = tiles * idx / nth * 16, e = std::min<int64_t>(m->rows, tiles * (idx + 1) / nth * 16);
            if (b < e) kernels_.matmul(*m, x, xq, y, y_stride ? y_stride : m->rows, n, b, e);
        }
    });
    rank.times.matmul += seconds_since(t0);
}

void LlamaModel::rank_forward(int r, const std::vector<BatchEntry> & batch, float * logits) {
    Rank & R = *ranks_[r];
    const LlamaShard & S = R.shard;
    const auto t_start = Clock::now();
    const double allreduce_before = R.allreduce;
    const int dim = hp_.dim, hd = hp_.head_dim;
    const int q_loc = S.n_heads * hd, kv_loc = S.n_kv_heads * hd, ffn = S.ffn;
    const bool tp = ranks_.size() > 1;
    int n = 0;
    for (const BatchEntry & e : batch) n += e.n_tokens;
    if (n == 0) return;

    R.x.resize((size_t) n * dim); R.xn.resize((size_t) n * dim);
    R.q.resize((size_t) n * q_loc); R.k.resize((size_t) n * kv_loc); R.v.resize((size_t) n * kv_loc);
    R.att.resize((size_t) n * q_loc); R.gate.resize((size_t) n * ffn); R.up.resize((size_t) n * ffn);
    R.partial.resize((size_t) n * dim);

    // Per token: its entry and position.
    auto t0 = Clock::now();
    std::vector<int32_t> tok_entry(n), tok_pos(n);
    int max_ctx = 0;
    {
        int t = 0;
        for (int32_t b = 0; b < (int32_t) batch.size(); ++b) {
            const BatchEntry & e = batch[b];
            for (int i = 0; i < e.n_tokens; ++i, ++t) {
                qmatrix_get_row(shared_.tok_embd, e.tokens[i], R.x.data() + (size_t) t * dim);
                tok_entry[t] = b;
                tok_pos[t] = e.pos0 + i;
            }
            max_ctx = std::max(max_ctx, e.pos0 + e.n_tokens);
        }
    }
    // RoPE angles per token and rotated pair: pos * theta^(-2i / rope_dim).
    const int n_pairs = hp_.rope_dim / 2;
    R.rope_cos.resize((size_t) n * n_pairs); R.rope_sin.resize((size_t) n * n_pairs);
    for (int t = 0; t < n; ++t) {
        for (int i = 0; i < n_pairs; ++i) {
            double a = tok_pos[t] * std::pow((double) hp_.rope_theta, -2.0 * i / hp_.rope_dim);
            R.rope_cos[(size_t) t * n_pairs + i] = (float) std::cos(a);
            R.rope_sin[(size_t) t * n_pairs + i] = (float) std::sin(a);
        }
    }
    R.scores.resize((size_t) R.pool.size() * max_ctx);
    R.times.embed += seconds_since(t0);

    const float att_scale = 1.0f / std::sqrt((float) hd);
    const int group = hp_.n_heads / hp_.n_kv_heads;
    const int bs = layout_.kv_block_size;

    for (int l = 0; l < hp_.n_layers; ++l) {
        const LlamaShard::Layer & L = S.layers[l];
        t0 = Clock::now();
        for (int t = 0; t < n; ++t) rmsnorm(R.xn.data() + (size_t) t * dim, R.x.data() + (size_t) t * dim, shared_.attn_norm[l].data(), dim, hp_.rms_eps);
        R.times.norm += seconds_since(t0);

        matmuls(R, R.xn.data(), n, dim, {{&L.wq, R.q.data()}, {&L.wk, R.k.data()}, {&L.wv, R.v.data()}});

        t0 = Clock::now();
        for (int t = 0; t < n; ++t) {
            const float * cs = R.rope_cos.data() + (size_t) t * n_pairs;
            const float * sn = R.rope_sin.data() + (size_t) t * n_pairs;
            auto rotate = [&](float * vec, int heads) {
                for (int h = 0; h < heads; ++h) {
                    float * p = vec + (size_t) h * hd;
                    for (int i = 0; i < n_pairs; ++i) {
                        float a = p[2 * i], b = p[2 * i + 1];
                        p[2 * i] = a * cs[i] - b * sn[i];
                        p[2 * i + 1] = a * sn[i] + b * cs[i];
                    }
                }
            };
            rotate(R.q.data() + (size_t) t * q_loc, S.n_heads);
            rotate(R.k.data() + (size_t) t * kv_loc, S.n_kv_heads);
            const BatchEntry & e = batch[tok_entry[t]];
            R.kv.write(l, e.block_table[tok_pos[t] / bs], tok_pos[t] % bs, R.k.data() + (size_t) t * kv_loc, R.v.data() + (size_t) t * kv_loc);
        }
        R.times.rope += seconds_since(t0);

        // Causal attention over the paged cache: token t sees positions 0..pos_t of its own sequence.
        t0 = Clock::now();
        const int64_t items = (int64_t) n * S.n_heads;
        R.pool.run([&](int idx, int nth) {
            float * sc = R.scores.data() + (size_t) idx * max_ctx;
            for (int64_t it = items * idx / nth; it < items * (idx + 1) / nth; ++it) {
                int t = (int) (it / S.n_heads), h = (int) (it % S.n_heads);
                const BatchEntry & e = batch[tok_entry[t]];
                R.kv.attend(l, e.block_table, tok_pos[t] + 1, h / group, R.q.data() + (size_t) t * q_loc + (size_t) h * hd, att_scale,
                            R.att.data() + (size_t) t * q_loc + (size_t) h * hd, sc);
            }
        });
        R.times.attention += seconds_since(t0);

        float * part = R.partial.data();
        matmuls(R, R.att.data(), n, q_loc, {{&L.wo, part}});
        if (tp) all_reduce(r, R.x.data(), part, (size_t) n * dim);
        else add_inplace(R.x.data(), part, (int64_t) n * dim);

        t0 = Clock::now();
        for (int t = 0; t < n; ++t) rmsnorm(R.xn.data() + (size_t) t * dim, R.x.data() + (size_t) t * dim, shared_.ffn_norm[l].data(), dim, hp_.rms_eps);
        R.times.norm += seconds_since(t0);

        matmuls(R, R.xn.data(), n, dim, {{&L.w_gate, R.gate.data()}, {&L.w_up, R.up.data()}});
        t0 = Clock::now();
        swiglu(R.gate.data(), R.up.data(), (int64_t) n * ffn);
        R.times.ffn_act += seconds_since(t0);
        matmuls(R, R.gate.data(), n, ffn, {{&L.w_down, part}});
        if (tp) all_reduce(r, R.x.data(), part, (size_t) n * dim);
        else add_inplace(R.x.data(), part, (int64_t) n * dim);
    }

    // Output head: only the rows wanted; each rank writes its vocabulary columns of the shared logits buffer.
    t0 = Clock::now();
    int rows = 0;
    {
        int t = 0;
        for (const BatchEntry & e : batch) {
            for (int i = 0; i < e.n_tokens; ++i, ++t) {
                if (e.want_logits && (e.all_logits || i == e.n_tokens - 1)) {
                    rmsnorm(R.xn.data() + (size_t) rows * dim, R.x.data() + (size_t) t * dim, shared_.output_norm.data(), dim, hp_.rms_eps);
                    ++rows;
                }
            }
        }
    }
    R.times.norm += seconds_since(t0);
    if (rows > 0) {
        t0 = Clock::now();
        const QMatrix & out = S.output_is_tok_embd ? shared_.tok_embd : S.output;
        matmuls(R, R.xn.data(), rows, dim, {{&out, logits + S.vocab_begin}}, hp_.n_vocab);
        R.times.output += seconds_since(t0);
    }
    R.busy += seconds_since(t_start) - (R.allreduce - allreduce_before);
}

} // namespace tl
