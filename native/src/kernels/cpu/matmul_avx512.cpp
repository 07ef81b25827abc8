// AVX-512 kernels (F/BW/VL/DQ + VNNI). Compiled on its own with -mavx512* (see binding.gyp); only called after
// dispatch.cpp has checked the CPU. No std:: templates here (see the ODR note in matmul_impl.h).
//
// Layout of the work: rows of W are processed in tiles of up to 4 rows x 4 tokens with register accumulators, so
// that every weight load is shared by the tile's tokens and every activation load by its rows. Rows are the outer
// loop (a row tile's weights stay in L1/L2 while all token tiles of a block go by), in blocks of 64 rows x 64 tokens.
// Decode (n = 1) is memory-bound: the kernels prefetch the rows 8 ahead into L2 (PF_ROWS).
//
// I8 / I4 (weights u8 offset-binary, activations s8 per group of 32 with a float scale):
//  * n < PACK_MIN_N (decode, small batches): "direct", on the stored layout. I8: one zmm = 2 groups; I4: one zmm
//    load = 4 groups, split into low / high nibbles. VPDPBUSD starts from a per-lane bias -zp * (sum of that lane's
//    activations), computed once per tile column and shared by the rows, so every int32 lane holds an exact signed
//    partial dot; lanes are then converted and scaled by w_scale * a_scale once per 2 (I8) or 4 (I4) groups.
//  * n >= PACK_MIN_N (prefill / larger batches): "packed". The activations, and each row tile just before its first
//    use, are transposed into "16 groups per zmm" order (int32 lane j = group j, 8 registers per 16 groups; I4
//    nibbles unpacked to bytes on the way). Then 8 VPDPBUSD accumulate whole group dots per lane and the float
//    conversion / scaling happens once per 16 groups: the inner loop is almost pure VPDPBUSD (4 x 3 tiles).
#if defined(__GNUC__) && !defined(__clang__)
// GCC 12's avx512fintrin.h self-initialises _mm512_undefined_*(), which -Wmaybe-uninitialized reports at -O3.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>

#include <cstdlib>

#include "matmul_impl.h"

namespace tl {
namespace {

// Software prefetch (into L2) of the weights PF_ROWS rows ahead, issued by the first token tile of each block. The
// L2 streamer alone leaves single-core gemv at ~60-75% of the plain-read bandwidth (it restarts at every 4 KiB page
// and tracks the 4 interleaved row streams poorly); with this, 85-100%.
constexpr int PF_ROWS = 8;
// Batches of at least PACK_MIN_N tokens use the packed path (measured: below it the direct kernel is as fast or
// faster, the weights being streamed from DRAM either way).
constexpr int PACK_MIN_N = 8;
// Packed tiles are 4 rows x 3 tokens: 12 int32 + 12 float accumulators + 4 weights + 1 activation fit the 32 zmm
// registers (4 x 4 spills and measured ~25% slower). Token blocks are a multiple of 3.
constexpr int PACK_T = 3;
constexpr int PACK_TOK_BLOCK = 63;
constexpr int64_t ROW_BLOCK = 64;
constexpr int TOK_BLOCK = 64;

struct Ctx {
    const QMatrix * W;
    const float * x;
    const QActs * xq;
    float * y;
    int64_t ys;
};

inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }

template <int R, int T>
inline void store_tile(const Ctx & c, int64_t r0, int t0, __m512 (&acc)[R][T]) {
    for (int t = 0; t < T; t++)
        for (int r = 0; r < R; r++) c.y[(int64_t) (t0 + t) * c.ys + r0 + r] = _mm512_reduce_add_ps(acc[r][t]);
}

// ------------------------------------------------------------------------------------------------- F32 / BF16

struct KF32 {
    template <int R, int T>
    static void tile(const Ctx & c, int64_t r0, int t0) {
        const int64_t cols = c.W->cols;
        const bool pf = t0 % TOK_BLOCK == 0;
        const float * w[R];
        const float * x[T];
        for (int r = 0; r < R; r++) w[r] = (const float *) c.W->data.data() + (r0 + r) * cols;
        for (int t = 0; t < T; t++) x[t] = c.x + (int64_t) (t0 + t) * cols;
        __m512 acc[R][T];
        for (int r = 0; r < R; r++)
            for (int t = 0; t < T; t++) acc[r][t] = _mm512_setzero_ps();
        int64_t k = 0;
        for (; k + 16 <= cols; k += 16) {
            __m512 wv[R];
            if (pf)
                for (int r = 0; r < R; r++) _mm_prefetch((const char *) (w[r] + k + PF_ROWS * cols), _MM_HINT_T1);
            for (int r = 0; r < R; r++) wv[r] = _mm512_loadu_ps(w[r] + k);
            for (int t = 0; t < T; t++) {
                __m512 xv = _mm512_loadu_ps(x[t] + k);
                for (int r = 0; r < R; r++) acc[r][t] = _mm512_fmadd_ps(wv[r], xv, acc[r][t]);
            }
        }
        if (k < cols) {
            __mmask16 m = (__mmask16) ((1u << (cols - k)) - 1);
            __m512 wv[R];
            for (int r = 0; r < R; r++) wv[r] = _mm512_maskz_loadu_ps(m, w[r] + k);
            for (int t = 0; t < T; t++) {
                __m512 xv = _mm512_maskz_loadu_ps(m, x[t] + k);
                for (int r = 0; r < R; r++) acc[r][t] = _mm512_fmadd_ps(wv[r], xv, acc[r][t]);
            }
        }
        store_tile<R, T>(c, r0, t0, acc);
    }
};

inline __m512 bf16x16_to_f32(__m256i v) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16)); }

struct KBF16 {
    template <int R, int T>
    static void tile(const Ctx & c, int64_t r0, int t0) {
        const int64_t cols = c.W->cols;
        const bool pf = t0 % TOK_BLOCK == 0;
        const uint16_t * w[R];
        const float * x[T];
        for (int r = 0; r < R; r++) w[r] = (const uint16_t *) c.W->data.data() + (r0 + r) * cols;
        for (int t = 0; t < T; t++) x[t] = c.x + (int64_t) (t0 + t) * cols;
        __m512 acc[R][T];
        for (int r = 0; r < R; r++)
            for (int t = 0; t < T; t++) acc[r][t] = _mm512_setzero_ps();
        int64_t k = 0;
        for (; k + 16 <= cols; k += 16) {
            __m512 wv[R];
            if (pf)
                for (int r = 0; r < R; r++) _mm_prefetch((const char *) (w[r] + k + PF_ROWS * cols), _MM_HINT_T1);
            for (int r = 0; r < R; r++) wv[r] = bf16x16_to_f32(_mm256_loadu_si256((const __m256i *) (w[r] + k)));
            for (int t = 0; t < T; t++) {
                __m512 xv = _mm512_loadu_ps(x[t] + k);
                for (int r = 0; r < R; r++) acc[r][t] = _mm512_fmadd_ps(wv[r], xv, acc[r][t]);
            }
        }
        if (k < cols) {
            __mmask16 m = (__mmask16) ((1u << (cols - k)) - 1);
            __m512 wv[R];
            for (int r = 0; r < R; r++) wv[r] = bf16x16_to_f32(_mm256_maskz_loadu_epi16(m, w[r] + k));
            for (int t = 0; t < T; t++) {
                __m512 xv = _mm512_maskz_loadu_ps(m, x[t] + k);
                for (int r = 0; r < R; r++) acc[r][t] = _mm512_fmadd_ps(wv[r], xv, acc[r][t]);
            }
        }
        store_tile<R, T>(c, r0, t0, acc);
    }
};

// ------------------------------------------------------------------------------------------ I8 / I4, direct

// I8, 2 groups (g, g+1) per step: the zmm holds the 64 bytes as stored, group g in int32 lanes 0-7, g+1 in 8-15.
// Zero point: VPDPBUSD starts from a per-lane bias -128 * (sum of the lane's 4 activations), computed once per tile
// column with one VPDPBUSD of the activations against 0x80 bytes (shared by the rows). Every int32 lane then holds
// its exact signed partial dot, so no large offsets reach the float accumulation (a single -zp * sum(a) lane bias
// would, and loses ~1e-4 relative accuracy for activations with a large mean).
// ONE: only group g exists; masked loads zero the rest.
template <bool ONE>
struct Q8Step2 {
    template <int R, int T>
    static inline void run(int64_t g, int64_t pf, const uint8_t * const * wp, const float * const * sw,
                           const int8_t * const * ap, const float * const * sa, __m512 (&acc)[R][T]) {
        const __m512i idx_sc = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
        __m512i av[T], bv[T];
        __m512 sav[T];
        for (int t = 0; t < T; t++) {
            av[t] = ONE ? _mm512_maskz_loadu_epi8(0xFFFFFFFFull, ap[t] + g * QK)
                        : _mm512_loadu_si512((const void *) (ap[t] + g * QK));
            bv[t] = _mm512_sub_epi32(_mm512_setzero_si512(),
                                     _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8((char) 0x80), av[t]));
            __m128 f =
                ONE ? _mm_maskz_loadu_ps(1, sa[t] + g) : _mm_castpd_ps(_mm_load_sd((const double *) (sa[t] + g)));
            sav[t] = _mm512_permutexvar_ps(idx_sc, _mm512_castps128_ps512(f));
        }
        if (pf && !ONE)
            for (int r = 0; r < R; r++) _mm_prefetch((const char *) (wp[r] + g * QK + pf), _MM_HINT_T1);
        for (int r = 0; r < R; r++) {
            const __m512i w = ONE ? _mm512_maskz_loadu_epi8(0xFFFFFFFFull, wp[r] + g * QK)
                                  : _mm512_loadu_si512((const void *) (wp[r] + g * QK));
            __m128 f =
                ONE ? _mm_maskz_loadu_ps(1, sw[r] + g) : _mm_castpd_ps(_mm_load_sd((const double *) (sw[r] + g)));
            const __m512 swv = _mm512_permutexvar_ps(idx_sc, _mm512_castps128_ps512(f));
            for (int t = 0; t < T; t++) {
                const __m512i d = _mm512_dpbusd_epi32(bv[t], w, av[t]);
                acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), _mm512_mul_ps(swv, sav[t]), acc[r][t]);
            }
        }
    }
};

// I4, 4 groups (g .. g+3) per step: the 64 stored bytes give lo = b & 0x0F and hi = (b >> 4) & 0x0F, both with group
// g+k in 128-bit lane k; the activations are split into a_lo (elements 0-15 of each group) and a_hi (16-31) by two
// permutes shared by the rows. Both VPDPBUSD chain into one accumulator, so the int32 -> float conversion and the
// scaling happen once per 4 groups, with scale vectors [s0 x4, s1 x4, s2 x4, s3 x4].
// TAIL: only n_valid (1..3) groups exist; masked loads zero the rest.
template <bool TAIL>
struct Q4Step4 {
    template <int R, int T>
    static inline void run(int64_t g, int64_t n_valid, int64_t pf, const uint8_t * const * wp, const float * const * sw,
                           const int8_t * const * ap, const float * const * sa, __m512 (&acc)[R][T]) {
        const __m512i idx_sc = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
        const __m512i idx_lo = _mm512_setr_epi64(0, 1, 4, 5, 8, 9, 12, 13);
        const __m512i idx_hi = _mm512_setr_epi64(2, 3, 6, 7, 10, 11, 14, 15);
        const __m512i m4 = _mm512_set1_epi8(0x0F);
        const __m512i zp = _mm512_set1_epi8(kern::ZP_I4);
        const __mmask64 ma = !TAIL || n_valid >= 2 ? ~0ull : 0xFFFFFFFFull;
        const __mmask64 mb = !TAIL ? ~0ull : n_valid >= 4 ? ~0ull : n_valid == 3 ? 0xFFFFFFFFull : 0ull;
        const __mmask64 mw = !TAIL ? ~0ull : (n_valid >= 4 ? ~0ull : ((1ull << (16 * n_valid)) - 1));
        const __mmask8 ms = (__mmask8) ((1u << (TAIL ? n_valid : 4)) - 1);
        __m512i alo[T], ahi[T], bv[T];
        __m512 sav[T];
        for (int t = 0; t < T; t++) {
            const int8_t * p = ap[t] + g * QK;
            __m512i A = TAIL ? _mm512_maskz_loadu_epi8(ma, p) : _mm512_loadu_si512((const void *) p);
            __m512i B = TAIL ? _mm512_maskz_loadu_epi8(mb, p + 64) : _mm512_loadu_si512((const void *) (p + 64));
            alo[t] = _mm512_permutex2var_epi64(A, idx_lo, B);
            ahi[t] = _mm512_permutex2var_epi64(A, idx_hi, B);
            __m512i z = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), zp, alo[t]), zp, ahi[t]);
            bv[t] = _mm512_sub_epi32(_mm512_setzero_si512(), z); // per-lane zero-point bias, as in Q8Step2
            __m128 f = TAIL ? _mm_maskz_loadu_ps(ms, sa[t] + g) : _mm_loadu_ps(sa[t] + g);
            sav[t] = _mm512_permutexvar_ps(idx_sc, _mm512_castps128_ps512(f));
        }
        if (pf && !TAIL)
            for (int r = 0; r < R; r++) _mm_prefetch((const char *) (wp[r] + g * (QK / 2) + pf), _MM_HINT_T1);
        for (int r = 0; r < R; r++) {
            const uint8_t * p = wp[r] + g * (QK / 2);
            __m512i b = TAIL ? _mm512_maskz_loadu_epi8(mw, p) : _mm512_loadu_si512((const void *) p);
            __m512i lo = _mm512_and_si512(b, m4);
            __m512i hi = _mm512_and_si512(_mm512_srli_epi16(b, 4), m4);
            __m128 f = TAIL ? _mm_maskz_loadu_ps(ms, sw[r] + g) : _mm_loadu_ps(sw[r] + g);
            __m512 swv = _mm512_permutexvar_ps(idx_sc, _mm512_castps128_ps512(f));
            for (int t = 0; t < T; t++) {
                __m512i d = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(bv[t], lo, alo[t]), hi, ahi[t]);
                acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), _mm512_mul_ps(swv, sav[t]), acc[r][t]);
            }
        }
    }
};

template <bool I4>
struct KQDirect {
    template <int R, int T>
    static void tile(const Ctx & c, int64_t r0, int t0) {
        const QMatrix & W = *c.W;
        const QActs & xq = *c.xq;
        const int64_t ng = W.n_groups(), cp = W.cols_padded;
        const size_t rbytes = W.row_bytes();
        const uint8_t * wp[R];
        const float * sw[R];
        const int8_t * ap[T];
        const float * sa[T];
        for (int r = 0; r < R; r++) {
            wp[r] = W.data.data() + (size_t) (r0 + r) * rbytes;
            sw[r] = (const float *) W.scales.data() + (r0 + r) * ng;
        }
        for (int t = 0; t < T; t++) {
            ap[t] = (const int8_t *) xq.q.data() + (int64_t) (t0 + t) * cp;
            sa[t] = (const float *) xq.scales.data() + (int64_t) (t0 + t) * ng;
        }
        __m512 acc[R][T];
        for (int r = 0; r < R; r++)
            for (int t = 0; t < T; t++) acc[r][t] = _mm512_setzero_ps();
        // prefetch offset in bytes (0: none)
        const int64_t pf = t0 % TOK_BLOCK == 0 ? PF_ROWS * (int64_t) rbytes : 0;
        int64_t g = 0;
        if (I4) {
            for (; g + 4 <= ng; g += 4) Q4Step4<false>::template run<R, T>(g, 4, pf, wp, sw, ap, sa, acc);
            if (g < ng) Q4Step4<true>::template run<R, T>(g, ng - g, pf, wp, sw, ap, sa, acc);
        } else {
            for (; g + 2 <= ng; g += 2) Q8Step2<false>::template run<R, T>(g, pf, wp, sw, ap, sa, acc);
            if (g < ng) Q8Step2<true>::template run<R, T>(g, pf, wp, sw, ap, sa, acc);
        }
        store_tile<R, T>(c, r0, t0, acc);
    }
};

// ---------------------------------------------------------------------------------------------- tile driver

template <class K>
inline void call_tile(int R, int T, const Ctx & c, int64_t r0, int t0) {
    switch ((R - 1) * 4 + (T - 1)) {
        case 0: K::template tile<1, 1>(c, r0, t0); break;
        case 1: K::template tile<1, 2>(c, r0, t0); break;
        case 2: K::template tile<1, 3>(c, r0, t0); break;
        case 3: K::template tile<1, 4>(c, r0, t0); break;
        case 4: K::template tile<2, 1>(c, r0, t0); break;
        case 5: K::template tile<2, 2>(c, r0, t0); break;
        case 6: K::template tile<2, 3>(c, r0, t0); break;
        case 7: K::template tile<2, 4>(c, r0, t0); break;
        case 8: K::template tile<3, 1>(c, r0, t0); break;
        case 9: K::template tile<3, 2>(c, r0, t0); break;
        case 10: K::template tile<3, 3>(c, r0, t0); break;
        case 11: K::template tile<3, 4>(c, r0, t0); break;
        case 12: K::template tile<4, 1>(c, r0, t0); break;
        case 13: K::template tile<4, 2>(c, r0, t0); break;
        case 14: K::template tile<4, 3>(c, r0, t0); break;
        default: K::template tile<4, 4>(c, r0, t0); break;
    }
}

template <class K>
void drive(const Ctx & c, int n, int64_t rb, int64_t re) {
    const int tmax = 4;
    for (int64_t b0 = rb; b0 < re; b0 += ROW_BLOCK) {
        const int64_t b1 = imin(b0 + ROW_BLOCK, re);
        for (int tb = 0; tb < n; tb += TOK_BLOCK) {
            const int te = (int) imin(tb + TOK_BLOCK, n);
            for (int64_t r0 = b0; r0 < b1; r0 += 4) {
                const int R = (int) imin(4, b1 - r0);
                for (int t0 = tb; t0 < te; t0 += tmax) call_tile<K>(R, (int) imin(tmax, te - t0), c, r0, t0);
            }
        }
    }
}

// ------------------------------------------------------------------------------------------ I8 / I4, packed

// Packed layout of 16 groups ("block") of one row / one token: 8 zmm, register k lane j = bytes 4k..4k+3 of
// group j. A token's block is followed by 16 int32 biases (-zp * sum) and 16 float scales: 640 bytes.
constexpr int64_t WBLK = 512;
constexpr int64_t ABLK = 640;

struct TIdx {
    __m512i v[3][2];
};

// Position of dword d (0..7) of group g (0..15) after `stage` steps of the transpose: register, lane.
inline void tpos(int stage, int g, int d, int & reg, int & lane) {
    const int g0 = g & 1, g1 = (g >> 1) & 1, g2 = (g >> 2) & 1, g3 = (g >> 3) & 1;
    const int d0 = d & 1, d1 = (d >> 1) & 1, d2 = (d >> 2) & 1;
    switch (stage) {
        case 0:
            reg = g >> 1;
            lane = g0 * 8 + d;
            break;
        case 1:
            reg = d2 * 4 + g2 * 2 + g1;
            lane = g0 * 8 + g3 * 4 + d1 * 2 + d0;
            break;
        case 2:
            reg = d2 * 4 + d1 * 2 + g1;
            lane = g0 * 8 + g3 * 4 + g2 * 2 + d0;
            break;
        default:
            reg = d;
            lane = g;
            break;
    }
}

void make_tidx(TIdx & ti) {
    alignas(64) int32_t idx[3][2][16];
    for (int s = 1; s <= 3; s++) {
        const int sb = 4 >> (s - 1);
        for (int g = 0; g < 16; g++)
            for (int d = 0; d < 8; d++) {
                int ro, lo, rs, ls;
                tpos(s, g, d, ro, lo);
                tpos(s - 1, g, d, rs, ls);
                if ((ro & ~sb) != 0 && ro != sb) continue; // only output registers 0 and sb define the indices
                idx[s - 1][(ro & sb) ? 1 : 0][lo] = ls + ((rs & sb) ? 16 : 0);
            }
    }
    for (int s = 0; s < 3; s++)
        for (int v = 0; v < 2; v++) ti.v[s][v] = _mm512_load_si512((const void *) idx[s][v]);
}

// z[i] holds groups 2i, 2i+1 (32 bytes each, natural order); writes the packed block to out (8 x 64 bytes).
inline void transpose_store(__m512i (&z)[8], const TIdx & ti, uint8_t * out) {
    for (int s = 0; s < 3; s++) {
        const int sb = 4 >> s;
        __m512i o[8];
        for (int r = 0; r < 8; r++) o[r] = _mm512_permutex2var_epi32(z[r & ~sb], ti.v[s][(r & sb) ? 1 : 0], z[r | sb]);
        for (int r = 0; r < 8; r++) z[r] = o[r];
    }
    for (int k = 0; k < 8; k++) _mm512_store_si512((void *) (out + k * 64), z[k]);
}

// Load groups [g, g + 2) of a row (n_valid of them exist), as 64 bytes of u8 / s8 values in natural order.
template <bool I4>
inline __m512i load_pair_unpacked(const uint8_t * row, int64_t g, int64_t n_valid) {
    if (I4) {
        __mmask32 m = n_valid >= 2 ? 0xFFFFFFFFu : (n_valid == 1 ? 0xFFFFu : 0u);
        __m256i b = _mm256_maskz_loadu_epi8(m, row + g * (QK / 2));
        __m512i w = _mm512_permutexvar_epi64(_mm512_setr_epi64(0, 1, 0, 1, 2, 3, 2, 3), _mm512_castsi256_si512(b));
        w = _mm512_srlv_epi64(w, _mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4));
        return _mm512_and_si512(w, _mm512_set1_epi8(0x0F));
    }
    __mmask64 m = n_valid >= 2 ? ~0ull : (n_valid == 1 ? 0xFFFFFFFFull : 0ull);
    return _mm512_maskz_loadu_epi8(m, row + g * QK);
}

template <bool I4>
void pack_weight_rows(const QMatrix & W, int64_t r0, int64_t r1, int64_t nb, const TIdx & ti, uint8_t * out) {
    const int64_t ng = W.n_groups();
    const size_t rbytes = W.row_bytes();
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t * row = W.data.data() + (size_t) r * rbytes;
        uint8_t * o = out + (r - r0) * nb * WBLK;
        for (int64_t b = 0; b < nb; b++) {
            __m512i z[8];
            for (int i = 0; i < 8; i++) {
                const int64_t g = b * 16 + 2 * i;
                z[i] = load_pair_unpacked<I4>(row, g, ng - g);
            }
            transpose_store(z, ti, o + b * WBLK);
        }
    }
}

void pack_acts(const QActs & xq, int n, int64_t ng, int64_t nb, int zp, const TIdx & ti, uint8_t * out) {
    const int64_t cp = xq.cols_padded;
    for (int t = 0; t < n; t++) {
        const uint8_t * q = xq.q.data() + (int64_t) t * cp;
        const int32_t * sm = (const int32_t *) xq.sums.data() + (int64_t) t * ng;
        const float * sa = (const float *) xq.scales.data() + (int64_t) t * ng;
        uint8_t * o = out + (int64_t) t * nb * ABLK;
        for (int64_t b = 0; b < nb; b++) {
            __m512i z[8];
            for (int i = 0; i < 8; i++) {
                const int64_t g = b * 16 + 2 * i;
                z[i] = load_pair_unpacked<false>(q, g, ng - g);
            }
            uint8_t * ob = o + b * ABLK;
            transpose_store(z, ti, ob);
            const int64_t left = ng - b * 16;
            const __mmask16 m = left >= 16 ? (__mmask16) 0xFFFF : (__mmask16) ((1u << left) - 1);
            __m512i s = _mm512_maskz_loadu_epi32(m, sm + b * 16);
            s = _mm512_mullo_epi32(s, _mm512_set1_epi32(-zp));
            _mm512_store_si512((void *) (ob + 512), s);
            _mm512_store_ps((void *) (ob + 576), _mm512_maskz_loadu_ps(m, sa + b * 16));
        }
    }
}

struct PackCtx {
    const QMatrix * W;
    const uint8_t * wpack; // packed rows of the current row block
    int64_t wrow0;         // first row of wpack
    const uint8_t * apack;
    int64_t nb;
    float * y;
    int64_t ys;
    // Stored (unpacked) rows to prefetch into L2 while this tile computes (the next row tile), or null.
    const uint8_t * pf_rows;
    int64_t pf_n;         // number of rows at pf_rows
    int64_t pf_blk_bytes; // stored bytes per 16 groups (512 for I8, 256 for I4)
};

struct KQPacked {
    template <int R, int T>
    static void tile(const PackCtx & c, int64_t r0, int t0) {
        const int64_t ng = c.W->n_groups(), nb = c.nb;
        const uint8_t * wr[R];
        const float * sw[R];
        const uint8_t * at[T];
        for (int r = 0; r < R; r++) {
            wr[r] = c.wpack + (r0 + r - c.wrow0) * nb * WBLK;
            sw[r] = (const float *) c.W->scales.data() + (r0 + r) * ng;
        }
        for (int t = 0; t < T; t++) at[t] = c.apack + (int64_t) (t0 + t) * nb * ABLK;
        __m512 acc[R][T];
        for (int r = 0; r < R; r++)
            for (int t = 0; t < T; t++) acc[r][t] = _mm512_setzero_ps();
        const size_t rbytes = c.W->row_bytes();
        for (int64_t b = 0; b < nb; b++) {
            if (c.pf_rows)
                for (int64_t r = 0; r < c.pf_n; r++)
                    for (int64_t i = 0; i < c.pf_blk_bytes; i += 64)
                        _mm_prefetch((const char *) (c.pf_rows + r * rbytes + b * c.pf_blk_bytes + i), _MM_HINT_T1);
            __m512i ia[R][T];
            for (int t = 0; t < T; t++) {
                __m512i bias = _mm512_load_si512((const void *) (at[t] + b * ABLK + 512));
                for (int r = 0; r < R; r++) ia[r][t] = bias;
            }
            for (int k = 0; k < 8; k++) {
                __m512i wk[R];
                for (int r = 0; r < R; r++) wk[r] = _mm512_load_si512((const void *) (wr[r] + b * WBLK + k * 64));
                for (int t = 0; t < T; t++) {
                    __m512i av = _mm512_load_si512((const void *) (at[t] + b * ABLK + k * 64));
                    for (int r = 0; r < R; r++) ia[r][t] = _mm512_dpbusd_epi32(ia[r][t], wk[r], av);
                }
            }
            const int64_t left = ng - b * 16;
            const __mmask16 m = left >= 16 ? (__mmask16) 0xFFFF : (__mmask16) ((1u << left) - 1);
            for (int r = 0; r < R; r++) {
                __m512 swv = _mm512_maskz_loadu_ps(m, sw[r] + b * 16);
                for (int t = 0; t < T; t++) {
                    __m512 sav = _mm512_load_ps((const void *) (at[t] + b * ABLK + 576));
                    acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ia[r][t]), _mm512_mul_ps(swv, sav), acc[r][t]);
                }
            }
        }
        for (int t = 0; t < T; t++)
            for (int r = 0; r < R; r++) c.y[(int64_t) (t0 + t) * c.ys + r0 + r] = _mm512_reduce_add_ps(acc[r][t]);
    }
};

template <bool I4>
void matmul_packed(const QMatrix & W, const QActs & xq, float * y, int64_t ys, int n, int64_t rb, int64_t re) {
    const int64_t ng = W.n_groups();
    const int64_t nb = (ng + 15) / 16;
    const int64_t rows_blk = imin(ROW_BLOCK, re - rb);
    const size_t abytes = (size_t) n * (size_t) nb * ABLK;
    const size_t wbytes = (size_t) rows_blk * (size_t) nb * WBLK;
    uint8_t * buf = (uint8_t *) std::aligned_alloc(64, (abytes + wbytes + 63) & ~(size_t) 63);
    if (!buf) { // out of memory for scratch: fall back to the direct kernel (no allocation)
        Ctx c{&W, nullptr, &xq, y, ys};
        drive<KQDirect<I4>>(c, n, rb, re);
        return;
    }
    TIdx ti;
    make_tidx(ti);
    uint8_t * apack = buf;
    uint8_t * wpack = buf + abytes;
    pack_acts(xq, n, ng, nb, I4 ? kern::ZP_I4 : kern::ZP_I8, ti, apack);
    const size_t rbytes = W.row_bytes();
    PackCtx c{&W, wpack, 0, apack, nb, y, ys, nullptr, 0, I4 ? 256 : 512};
    // Rows are packed one row tile at a time, just before the tile's first use; while the first token tile of a row
    // tile computes, it prefetches the next row tile's stored rows, so that the DRAM stream overlaps the compute.
    for (int64_t b0 = rb; b0 < re; b0 += ROW_BLOCK) {
        const int64_t b1 = imin(b0 + ROW_BLOCK, re);
        c.wrow0 = b0;
        for (int tb = 0; tb < n; tb += PACK_TOK_BLOCK) {
            const int te = (int) imin(tb + PACK_TOK_BLOCK, n);
            for (int64_t r0 = b0; r0 < b1; r0 += 4) {
                const int R = (int) imin(4, b1 - r0);
                if (tb == 0) pack_weight_rows<I4>(W, r0, r0 + R, nb, ti, wpack + (r0 - b0) * nb * WBLK);
                for (int t0 = tb, T; t0 < te; t0 += T) {
                    const int left = te - t0;
                    T = left == 4 ? 2 : (int) imin(PACK_T, left); // 4 left: 2 + 2 rather than 3 + 1
                    const bool pf = tb == 0 && t0 == 0 && r0 + R < re;
                    c.pf_rows = pf ? W.data.data() + (size_t) (r0 + R) * rbytes : nullptr;
                    c.pf_n = pf ? imin(4, re - r0 - R) : 0;
                    switch ((R - 1) * 4 + (T - 1)) {
                        case 0: KQPacked::tile<1, 1>(c, r0, t0); break;
                        case 1: KQPacked::tile<1, 2>(c, r0, t0); break;
                        case 2: KQPacked::tile<1, 3>(c, r0, t0); break;
                        case 3: KQPacked::tile<1, 4>(c, r0, t0); break;
                        case 4: KQPacked::tile<2, 1>(c, r0, t0); break;
                        case 5: KQPacked::tile<2, 2>(c, r0, t0); break;
                        case 6: KQPacked::tile<2, 3>(c, r0, t0); break;
                        case 7: KQPacked::tile<2, 4>(c, r0, t0); break;
                        case 8: KQPacked::tile<3, 1>(c, r0, t0); break;
                        case 9: KQPacked::tile<3, 2>(c, r0, t0); break;
                        case 10: KQPacked::tile<3, 3>(c, r0, t0); break;
                        case 11: KQPacked::tile<3, 4>(c, r0, t0); break;
                        case 12: KQPacked::tile<4, 1>(c, r0, t0); break;
                        case 13: KQPacked::tile<4, 2>(c, r0, t0); break;
                        case 14: KQPacked::tile<4, 3>(c, r0, t0); break;
                        default: KQPacked::tile<4, 4>(c, r0, t0); break;
                    }
                }
            }
        }
    }
    std::free(buf);
}

void matmul_avx512(const QMatrix & W, const float * x, const QActs * xq, float * y, int64_t y_stride, int n,
                   int64_t row_begin, int64_t row_end) {
    if (n <= 0 || row_end <= row_begin) return;
    Ctx c{&W, x, xq, y, y_stride};
    switch (W.type) {
        case WeightType::F32: drive<KF32>(c, n, row_begin, row_end); break;
        case WeightType::BF16: drive<KBF16>(c, n, row_begin, row_end); break;
        case WeightType::I8:
            if (n >= PACK_MIN_N) matmul_packed<false>(W, *xq, y, y_stride, n, row_begin, row_end);
            else drive<KQDirect<false>>(c, n, row_begin, row_end);
            break;
        case WeightType::I4:
            if (n >= PACK_MIN_N) matmul_packed<true>(W, *xq, y, y_stride, n, row_begin, row_end);
            else drive<KQDirect<true>>(c, n, row_begin, row_end);
            break;
        case WeightType::BLOCKS: break; // GGUF blocks: quant::matmul (layers.cpp)
    }
}

} // namespace

namespace kern {
const CpuKernels & avx512_kernels() {
    static const CpuKernels k{"avx512", matmul_avx512, attend_avx512, silu_mul_avx512};
    return k;
}
} // namespace kern

} // namespace tl
