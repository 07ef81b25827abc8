#include "model.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <map>

#include "errors.h"

namespace tl {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Small vector helpers. target_clones lets GCC emit AVX-512/AVX2 versions picked at load time, so the portable
// build still vectorises attention and norms on this CPU.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define TL_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define TL_CLONES
#endif

TL_CLONES float dot_f32(const float * a, const float * b, int n) {
    float s = 0.0f;
    for (int i = 0; i < n; ++i) s += a[i] * b[i];
    return s;
}

TL_CLONES void axpy_f32(float * y, const float * x, float a, int n) {
    for (int i = 0; i < n; ++i) y[i] += a * x[i];
}

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

KvCache::KvCache(int32_t n_layers, int32_t n_ctx, int32_t kv_dim)
    : n_layers_(n_layers), n_ctx_(n_ctx), kv_dim_(kv_dim),
      k_((size_t) n_layers * n_ctx * kv_dim), v_((size_t) n_layers * n_ctx * kv_dim) {}

LlamaModel::LlamaModel(LlamaHParams hp, LlamaWeights w, WeightsPolicy policy)
    : hp_(hp), w_(std::move(w)), policy_(policy), kernels_(cpu_kernels()) {}

std::vector<std::pair<std::string, size_t>> LlamaModel::weight_bytes() const {
    std::map<std::string, size_t> by;
    auto add = [&](const QMatrix & m) { if (m.rows) by[weight_type_name(m.type)] += m.bytes(); };
    add(w_.tok_embd);
    add(w_.output);
    size_t norms = w_.output_norm.size() * sizeof(float);
    for (const LlamaLayer & l : w_.layers) {
        for (const QMatrix * m : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) add(*m);
        norms += (l.attn_norm.size() + l.ffn_norm.size()) * sizeof(float);
    }
    by["f32"] += norms;
    return {by.begin(), by.end()};
}

size_t LlamaModel::weight_bytes_total() const {
    size_t total = 0;
    for (auto & [_, b] : weight_bytes()) total += b;
    return total;
}

int64_t LlamaModel::logits_rows(const std::vector<BatchEntry> & batch) {
    int64_t rows = 0;
    for (const BatchEntry & e : batch) rows += e.all_logits ? e.n_tokens : 1;
    return rows;
}

// Several products that share one input (Q/K/V, or gate/up) in one parallel region: one barrier instead of three,
// and the input is quantized once.
void LlamaModel::matmuls(ThreadPool & pool, const float * x, int n, int64_t cols,
                         std::initializer_list<std::pair<const QMatrix *, float *>> outs) {
    auto t0 = Clock::now();
    const QActs * xq = nullptr;
    for (auto & [m, y] : outs) {
        if (m->type == WeightType::I8 || m->type == WeightType::I4) {
            qacts_quantize(xq_, x, n, cols, m->cols_padded);
            xq = &xq_;
            break;
        }
    }
    // Rows are handed out in tiles of 16 so that each thread streams a contiguous part of every matrix.
    pool.run([&](int idx, int nth) {
        for (auto & [m, y] : outs) {
            int64_t tiles = (m->rows + 15) / 16;
            int64_t b = tiles * idx / nth * 16, e = std::min<int64_t>(m->rows, tiles * (idx + 1) / nth * 16);
            if (b < e) kernels_.matmul(*m, x, xq, y, m->rows, n, b, e);
        }
    });
    times_.matmul += seconds_since(t0);
}

void LlamaModel::forward(const std::vector<BatchEntry> & batch, float * logits, ThreadPool & pool) {
    const int dim = hp_.dim, q_dim = hp_.q_dim(), kv_dim = hp_.kv_dim(), hd = hp_.head_dim, ffn = hp_.ffn_dim;
    int n = 0;
    for (const BatchEntry & e : batch) n += e.n_tokens;
    if (n == 0) return;

    x_.resize((size_t) n * dim); xn_.resize((size_t) n * dim); tmp_.resize((size_t) n * dim);
    q_.resize((size_t) n * q_dim); k_.resize((size_t) n * kv_dim); v_.resize((size_t) n * kv_dim);
    att_.resize((size_t) n * q_dim); gate_.resize((size_t) n * ffn); up_.resize((size_t) n * ffn);
    pos_.resize(n);

    // Token rows: embedding lookup, and each token's position and cache.
    auto t0 = Clock::now();
    std::vector<KvCache *> tok_kv(n);
    {
        int t = 0;
        for (const BatchEntry & e : batch) {
            for (int i = 0; i < e.n_tokens; ++i, ++t) {
                qmatrix_get_row(w_.tok_embd, e.tokens[i], x_.data() + (size_t) t * dim);
                pos_[t] = e.pos0 + i;
                tok_kv[t] = e.kv;
            }
        }
    }
    // RoPE angles per token and rotated pair: pos * theta^(-2i / rope_dim).
    const int n_pairs = hp_.rope_dim / 2;
    rope_cos_.resize((size_t) n * n_pairs); rope_sin_.resize((size_t) n * n_pairs);
    for (int t = 0; t < n; ++t) {
        for (int i = 0; i < n_pairs; ++i) {
            double freq = std::pow((double) hp_.rope_theta, -2.0 * i / hp_.rope_dim);
            double a = pos_[t] * freq;
            rope_cos_[(size_t) t * n_pairs + i] = (float) std::cos(a);
            rope_sin_[(size_t) t * n_pairs + i] = (float) std::sin(a);
        }
    }
    times_.embed += seconds_since(t0);

    const float att_scale = 1.0f / std::sqrt((float) hd);
    const int group = hp_.n_heads / hp_.n_kv_heads;
    // Per-thread attention score scratch, [n_threads][max context seen in this batch].
    int max_ctx = 0;
    for (const BatchEntry & e : batch) max_ctx = std::max(max_ctx, e.pos0 + e.n_tokens);
    std::vector<float> scores((size_t) pool.size() * max_ctx);

    for (int l = 0; l < hp_.n_layers; ++l) {
        const LlamaLayer & L = w_.layers[l];
        t0 = Clock::now();
        for (int t = 0; t < n; ++t) rmsnorm(xn_.data() + (size_t) t * dim, x_.data() + (size_t) t * dim, L.attn_norm.data(), dim, hp_.rms_eps);
        times_.norm += seconds_since(t0);

        matmuls(pool, xn_.data(), n, dim, {{&L.wq, q_.data()}, {&L.wk, k_.data()}, {&L.wv, v_.data()}});

        t0 = Clock::now();
        for (int t = 0; t < n; ++t) {
            const float * cs = rope_cos_.data() + (size_t) t * n_pairs;
            const float * sn = rope_sin_.data() + (size_t) t * n_pairs;
            auto rotate = [&](float * v, int heads) {
                for (int h = 0; h < heads; ++h) {
                    float * p = v + (size_t) h * hd;
                    for (int i = 0; i < n_pairs; ++i) {
                        float a = p[2 * i], b = p[2 * i + 1];
                        p[2 * i] = a * cs[i] - b * sn[i];
                        p[2 * i + 1] = a * sn[i] + b * cs[i];
                    }
                }
            };
            rotate(q_.data() + (size_t) t * q_dim, hp_.n_heads);
            rotate(k_.data() + (size_t) t * kv_dim, hp_.n_kv_heads);
            std::memcpy(tok_kv[t]->k_at(l, pos_[t]), k_.data() + (size_t) t * kv_dim, sizeof(float) * kv_dim);
            std::memcpy(tok_kv[t]->v_at(l, pos_[t]), v_.data() + (size_t) t * kv_dim, sizeof(float) * kv_dim);
        }
        times_.rope += seconds_since(t0);

        // Causal attention: token t sees positions 0..pos_t of its own sequence. Work items are (token, head).
        t0 = Clock::now();
        const int64_t items = (int64_t) n * hp_.n_heads;
        pool.run([&](int idx, int nth) {
            float * sc = scores.data() + (size_t) idx * max_ctx;
            for (int64_t it = items * idx / nth; it < items * (idx + 1) / nth; ++it) {
                int t = (int) (it / hp_.n_heads), h = (int) (it % hp_.n_heads), g = h / group;
                const float * q = q_.data() + (size_t) t * q_dim + (size_t) h * hd;
                KvCache * kv = tok_kv[t];
                int n_ctx = pos_[t] + 1;
                float mx = -INFINITY;
                for (int j = 0; j < n_ctx; ++j) {
                    sc[j] = dot_f32(q, kv->k_at(l, j) + (size_t) g * hd, hd) * att_scale;
                    mx = std::max(mx, sc[j]);
                }
                float sum = 0.0f;
                for (int j = 0; j < n_ctx; ++j) { sc[j] = std::exp(sc[j] - mx); sum += sc[j]; }
                float * out = att_.data() + (size_t) t * q_dim + (size_t) h * hd;
                std::fill(out, out + hd, 0.0f);
                float inv = 1.0f / sum;
                for (int j = 0; j < n_ctx; ++j) axpy_f32(out, kv->v_at(l, j) + (size_t) g * hd, sc[j] * inv, hd);
            }
        });
        times_.attention += seconds_since(t0);

        matmuls(pool, att_.data(), n, q_dim, {{&L.wo, tmp_.data()}});
        add_inplace(x_.data(), tmp_.data(), (int64_t) n * dim);

        t0 = Clock::now();
        for (int t = 0; t < n; ++t) rmsnorm(xn_.data() + (size_t) t * dim, x_.data() + (size_t) t * dim, L.ffn_norm.data(), dim, hp_.rms_eps);
        times_.norm += seconds_since(t0);

        matmuls(pool, xn_.data(), n, dim, {{&L.w_gate, gate_.data()}, {&L.w_up, up_.data()}});
        t0 = Clock::now();
        swiglu(gate_.data(), up_.data(), (int64_t) n * ffn);
        times_.ffn_act += seconds_since(t0);
        matmuls(pool, gate_.data(), n, ffn, {{&L.w_down, tmp_.data()}});
        add_inplace(x_.data(), tmp_.data(), (int64_t) n * dim);
    }

    // Output head only for the rows the caller wants.
    t0 = Clock::now();
    int rows = 0;
    {
        int t = 0;
        for (const BatchEntry & e : batch) {
            for (int i = 0; i < e.n_tokens; ++i, ++t) {
                if (e.all_logits || i == e.n_tokens - 1) {
                    rmsnorm(xn_.data() + (size_t) rows * dim, x_.data() + (size_t) t * dim, w_.output_norm.data(), dim, hp_.rms_eps);
                    ++rows;
                }
            }
        }
    }
    times_.norm += seconds_since(t0);
    t0 = Clock::now();
    matmuls(pool, xn_.data(), rows, dim, {{&w_.output_matrix(), logits}});
    times_.output += seconds_since(t0);
}

} // namespace tl
