// The causal-attention kernel over the paged KV cache, written once over a tiny vector abstraction `O` and instantiated
// per instruction set (attention_scalar.cpp: O::W = 1; attention_avx2.cpp: 8; attention_avx512.cpp: 16).
//
// One task is one KV head and the `rows` query heads that share it (GQA) for one token: every key and value row is
// read (and widened from f16 / int8) once per task, not once per query head. Two passes over the keys:
//   1. scores s[r][j] = q_r . k_j * scale, keys in chunks of KV_CHUNK whose rows are widened into an L1 buffer;
//      four keys at a time per query row so the FMA chains overlap;
//   2. per row, softmax over s[r][*] (vectorised exp, keys in lanes), then out_r = sum_j p[r][j] v_j with out_r's
//      hd_v lanes in registers, again chunk by chunk (values may be the first hd_v elements of the key rows: MLA).
// Two passes rather than an online softmax: scores are rows x n_ctx floats (L2-sized for any context we serve), and
// the exact maximum keeps the result equal to the reference softmax to float rounding.
//
// ODR: included only by the per-ISA files, inside their anonymous namespace (see matmul_impl.h's note).
#pragma once

// Requires, in the including file: struct O { using V; static constexpr int W; zero, set1, load, store, fma, add, sub,
// mul, div, max, neg_abs (-|x|), select_neg(g, a, b) (b where g < 0, else a), hsum, hmax, exp_neg (e^x for x <= 0, at
// least -87 is exact to ~1 ulp; below, a denormal or 0), load_f16, load_i8 }. Also the AttnTask type.

constexpr int KV_CHUNK = 32;

// Row j's first `width` values as floats (widened into buf unless the cache holds f32).
template <class O>
inline const float * kv_row(const AttnTask & t, const uint8_t * base, const float * scales, int j, float * buf,
                            int width) {
    const int64_t slot = (int64_t) t.block_table[j / t.block_size] * t.block_size + j % t.block_size;
    const uint8_t * p = base + slot * t.kv_row_bytes;
    if (t.kv_dtype == 0) return reinterpret_cast<const float *>(p);
    if (t.kv_dtype == 1) {
        const uint16_t * h = reinterpret_cast<const uint16_t *>(p);
        for (int d = 0; d < width; d += O::W) O::store(buf + d, O::load_f16(h + d));
    } else {
        const typename O::V s = O::set1(scales[slot * t.scale_stride]);
        const int8_t * q = reinterpret_cast<const int8_t *>(p);
        for (int d = 0; d < width; d += O::W) O::store(buf + d, O::mul(O::load_i8(q + d), s));
    }
    return buf;
}

template <class O>
void attend_impl(const AttnTask & t, float * scratch) {
    using V = typename O::V;
    constexpr int W = O::W;
    // Keys j0 .. n_ctx - 1 (j0 > 0 under a sliding window): score column c is key j0 + c.
    const int hd = t.hd, hdv = t.hd_v > 0 ? t.hd_v : t.hd, R = t.rows, j0 = t.kv0, n = t.n_ctx - t.kv0;
    const int64_t os = t.out_stride > 0 ? t.out_stride : t.row_stride;
    float * s = scratch;               // [R][n]
    float * kbuf = s + (size_t) R * n; // [KV_CHUNK][hd]
    const float * rows[KV_CHUNK];

    // Pass 1: scores.
    for (int c0 = 0; c0 < n; c0 += KV_CHUNK) {
        const int cn = n - c0 < KV_CHUNK ? n - c0 : KV_CHUNK;
        for (int c = 0; c < cn; ++c) rows[c] = kv_row<O>(t, t.k, t.k_scale, j0 + c0 + c, kbuf + (size_t) c * hd, hd);
        for (int r = 0; r < R; ++r) {
            const float * q = t.q + (size_t) r * t.row_stride;
            float * sr = s + (size_t) r * n + c0;
            int c = 0;
            for (; c + 4 <= cn; c += 4) {
                V a0 = O::zero(), a1 = O::zero(), a2 = O::zero(), a3 = O::zero();
                const float *k0 = rows[c], *k1 = rows[c + 1], *k2 = rows[c + 2], *k3 = rows[c + 3];
                for (int d = 0; d < hd; d += W) {
                    const V qv = O::load(q + d);
                    a0 = O::fma(qv, O::load(k0 + d), a0);
                    a1 = O::fma(qv, O::load(k1 + d), a1);
                    a2 = O::fma(qv, O::load(k2 + d), a2);
                    a3 = O::fma(qv, O::load(k3 + d), a3);
                }
                sr[c] = O::hsum(a0) * t.scale;
                sr[c + 1] = O::hsum(a1) * t.scale;
                sr[c + 2] = O::hsum(a2) * t.scale;
                sr[c + 3] = O::hsum(a3) * t.scale;
            }
            for (; c < cn; ++c) {
                V a = O::zero();
                for (int d = 0; d < hd; d += W) a = O::fma(O::load(q + d), O::load(rows[c] + d), a);
                sr[c] = O::hsum(a) * t.scale;
            }
        }
    }

    // Logit soft-capping (Gemma 2), as llama.cpp applies it to the scaled scores: c * tanh(s / c).
    if (t.softcap > 0.0f) {
        const float cap = t.softcap, inv_cap = 1.0f / t.softcap;
        for (size_t i = 0; i < (size_t) R * n; ++i) s[i] = cap * std::tanh(s[i] * inv_cap);
    }

    // Softmax per row: p = exp(s - max) / sum. The 1/sum is applied to the output at the end.
    float inv[ATTN_MAX_ROWS]; // callers split larger groups (kernels.h)
    for (int r = 0; r < R; ++r) {
        float * sr = s + (size_t) r * n;
        int j = 0;
        float m = sr[0];
        if (n >= W) {
            V mv = O::load(sr);
            for (j = W; j + W <= n; j += W) mv = O::max(mv, O::load(sr + j));
            m = O::hmax(mv);
        } else {
            j = 1;
        }
        for (; j < n; ++j) m = sr[j] > m ? sr[j] : m;
        const V mv = O::set1(m);
        V sum = O::zero();
        for (j = 0; j + W <= n; j += W) {
            const V e = O::exp_neg(O::sub(O::load(sr + j), mv));
            O::store(sr + j, e);
            sum = O::add(sum, e);
        }
        float total = O::hsum(sum);
        if (j < n) { // the tail through the same vector code, so a score's weight never depends on where n ends
            float buf[W];
            for (int i = 0; i < W; ++i) buf[i] = j + i < n ? sr[j + i] : m;
            O::store(buf, O::exp_neg(O::sub(O::load(buf), mv)));
            for (int i = 0; j + i < n; ++i) total += (sr[j + i] = buf[i]);
        }
        inv[r] = 1.0f / total;
    }

    // Pass 2: out_r = sum_j p[r][j] v_j, head_dim in lanes, four vectors of it per sweep over a chunk.
    for (int r = 0; r < R; ++r) {
        float * o = t.out + (size_t) r * os;
        for (int d = 0; d < hdv; ++d) o[d] = 0.0f;
    }
    for (int c0 = 0; c0 < n; c0 += KV_CHUNK) {
        const int cn = n - c0 < KV_CHUNK ? n - c0 : KV_CHUNK;
        for (int c = 0; c < cn; ++c) rows[c] = kv_row<O>(t, t.v, t.v_scale, j0 + c0 + c, kbuf + (size_t) c * hd, hdv);
        for (int r = 0; r < R; ++r) {
            float * o = t.out + (size_t) r * os;
            const float * p = s + (size_t) r * n + c0;
            int d = 0;
            for (; d + 4 * W <= hdv; d += 4 * W) {
                V a0 = O::load(o + d), a1 = O::load(o + d + W), a2 = O::load(o + d + 2 * W),
                  a3 = O::load(o + d + 3 * W);
                for (int c = 0; c < cn; ++c) {
                    const V pv = O::set1(p[c]);
                    const float * vr = rows[c] + d;
                    a0 = O::fma(pv, O::load(vr), a0);
                    a1 = O::fma(pv, O::load(vr + W), a1);
                    a2 = O::fma(pv, O::load(vr + 2 * W), a2);
                    a3 = O::fma(pv, O::load(vr + 3 * W), a3);
                }
                O::store(o + d, a0);
                O::store(o + d + W, a1);
                O::store(o + d + 2 * W, a2);
                O::store(o + d + 3 * W, a3);
            }
            for (; d < hdv; d += W) {
                V a = O::load(o + d);
                for (int c = 0; c < cn; ++c) a = O::fma(O::set1(p[c]), O::load(rows[c] + d), a);
                O::store(o + d, a);
            }
        }
    }
    for (int r = 0; r < R; ++r) {
        float * o = t.out + (size_t) r * os;
        const V iv = O::set1(inv[r]);
        for (int d = 0; d < hdv; d += W) O::store(o + d, O::mul(O::load(o + d), iv));
    }
}

// out[i] = silu(gate[i]) * up[i], in place in gate.
template <class O>
void silu_mul_impl(float * gate, const float * up, int64_t n) {
    using V = typename O::V;
    constexpr int W = O::W;
    int64_t i = 0;
    const V one = O::set1(1.0f);
    for (; i + W <= n; i += W) {
        const V g = O::load(gate + i);
        // e^-|g| never overflows; silu(g) = g / (1 + e^-g) = g * e / (1 + e) for g < 0.
        const V e = O::exp_neg(O::neg_abs(g));
        const V sig = O::select_neg(g, O::div(one, O::add(one, e)), O::div(e, O::add(one, e)));
        O::store(gate + i, O::mul(O::mul(g, sig), O::load(up + i)));
    }
    if (i < n) { // the tail through the same vector code: a value's result never depends on where a range ends
        float g[W], u[W];
        for (int k = 0; k < W; ++k) g[k] = i + k < n ? gate[i + k] : 0.0f, u[k] = i + k < n ? up[i + k] : 0.0f;
        silu_mul_impl<O>(g, u, W);
        for (int k = 0; i + k < n; ++k) gate[i + k] = g[k];
    }
}
