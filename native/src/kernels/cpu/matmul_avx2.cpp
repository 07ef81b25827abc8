// AVX2 + FMA kernels (for x86-64 CPUs without AVX-512). Compiled on its own with -mavx2 -mfma -mf16c (see
// binding.gyp); only called after dispatch.cpp has checked the CPU. No std:: templates here (see matmul_impl.h).
//
// Tiles of up to 4 rows x 2 tokens (16 ymm registers). I8: VPMADDUBSW would saturate with u8 weights up to 255, so
// the weights are turned back into s8 (xor 0x80) and multiplied as |w| * sign(a, w) (the ggml trick; every pair sum
// stays <= 2 * 128 * 127 < 32767). I4: nibbles <= 15 are safe as the unsigned operand; the zero point is undone
// per int16 lane by subtracting 8 * (a[2i] + a[2i+1]) (one VPMADDUBSW per token, shared by the rows), so every lane
// holds its exact signed partial dot.
#include <immintrin.h>

#include "matmul_impl.h"

namespace tl {
namespace {

constexpr int TMAX = 2;
// Software prefetch (into L2) of the weights PF_ROWS rows ahead by the first token tile of each block (see the note
// in matmul_avx512.cpp).
constexpr int PF_ROWS = 8;
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

inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

template <int R, int T>
inline void store_tile(const Ctx & c, int64_t r0, int t0, __m256 (&acc)[R][T]) {
    for (int t = 0; t < T; t++)
        for (int r = 0; r < R; r++) c.y[(int64_t) (t0 + t) * c.ys + r0 + r] = hsum(acc[r][t]);
}

inline __m256i tail_mask(int64_t left) { // left in [1, 7]: lanes < left set
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int) left), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
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
        __m256 acc[R][T];
        for (int r = 0; r < R; r++)
            for (int t = 0; t < T; t++) acc[r][t] = _mm256_setzero_ps();
        int64_t k = 0;
        for (; k + 8 <= cols; k += 8) {
            __m256 wv[R];
            if (pf)
                for (int r = 0; r < R; r++) _mm_prefetch((const char *) (w[r] + k + PF_ROWS * cols), _MM_HINT_T1);
            for (int r = 0; r < R; r++) wv[r] = _mm256_loadu_ps(w[r] + k);
            for (int t = 0; t < T; t++) {
                __m256 xv = _mm256_loadu_ps(x[t] + k);
                for (int r = 0; r < R; r++) acc[r][t] = _mm256_fmadd_ps(wv[r], xv, acc[r][t]);
            }
        }
        if (k < cols) {
            const __m256i m = tail_mask(cols - k);
            __m256 wv[R];
            for (int r = 0; r < R; r++) wv[r] = _mm256_maskload_ps(w[r] + k, m);
            for (int t = 0; t < T; t++) {
                __m256 xv = _mm256_maskload_ps(x[t] + k, m);
                for (int r = 0; r < R; r++) acc[r][t] = _mm256_fmadd_ps(wv[r], xv, acc[r][t]);
            }
        }
        store_tile<R, T>(c, r0, t0, acc);
    }
};

inline __m256 bf16x8_to_f32(__m128i v) { return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(v), 16)); }

struct KBF16 {
    template <int R, int T>
    static void tile(const Ctx & c, int64_t r0, int t0) {
        const int64_t cols = c.W->cols;
        const bool pf = t0 % TOK_BLOCK == 0;
        const uint16_t * w[R];
        const float * x[T];
        for (int r = 0; r < R; r++) w[r] = (const uint16_t *) c.W->data.data() + (r0 + r) * cols;
        for (int t = 0; t < T; t++) x[t] = c.x + (int64_t) (t0 + t) * cols;
        __m256 acc[R][T];
        for (int r = 0; r < R; r++)
            for (int t = 0; t < T; t++) acc[r][t] = _mm256_setzero_ps();
        int64_t k = 0;
        for (; k + 8 <= cols; k += 8) {
            __m256 wv[R];
            if (pf && (k & 31) == 0)
                for (int r = 0; r < R; r++) _mm_prefetch((const char *) (w[r] + k + PF_ROWS * cols), _MM_HINT_T1);
            for (int r = 0; r < R; r++) wv[r] = bf16x8_to_f32(_mm_loadu_si128((const __m128i *) (w[r] + k)));
            for (int t = 0; t < T; t++) {
                __m256 xv = _mm256_loadu_ps(x[t] + k);
                for (int r = 0; r < R; r++) acc[r][t] = _mm256_fmadd_ps(wv[r], xv, acc[r][t]);
            }
        }
        if (k < cols) {
            const int64_t left = cols - k;
            const __m256i m = tail_mask(left);
            __m256 wv[R];
            for (int r = 0; r < R; r++) {
                alignas(16) uint16_t tmp[8] = {0, 0, 0, 0, 0, 0, 0, 0};
                for (int64_t i = 0; i < left; i++) tmp[i] = w[r][k + i];
                wv[r] = bf16x8_to_f32(_mm_load_si128((const __m128i *) tmp));
            }
            for (int t = 0; t < T; t++) {
                __m256 xv = _mm256_maskload_ps(x[t] + k, m);
                for (int r = 0; r < R; r++) acc[r][t] = _mm256_fmadd_ps(wv[r], xv, acc[r][t]);
            }
        }
        store_tile<R, T>(c, r0, t0, acc);
    }
};

// ---------------------------------------------------------------------------------------------------- I8 / I4

template <bool I4>
struct KQ {
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
        __m256 acc[R][T];
        for (int r = 0; r < R; r++)
            for (int t = 0; t < T; t++) acc[r][t] = _mm256_setzero_ps();
        const __m256i ones16 = _mm256_set1_epi16(1);
        const int64_t pf = t0 % TOK_BLOCK == 0 ? PF_ROWS * (int64_t) rbytes : 0; // prefetch offset (0: none)
        int64_t g = 0;
        if (I4) {
            // 2 groups per step: the 32 stored bytes give lo = [g.lo | g+1.lo] and hi = [g.hi | g+1.hi]; the activations
            // are split to match (one VPERM2I128 each, shared by the rows); both products are summed in int16
            // (|sum| <= 2 * 2 * 15 * 127), so the conversion and scaling happen once per 2 groups.
            const __m256i m4 = _mm256_set1_epi8(0x0F);
            const __m256i zp = _mm256_set1_epi8(kern::ZP_I4);
            for (; g + 2 <= ng; g += 2) {
                __m256i alo[T], ahi[T], bv[T];
                __m256 sav[T];
                for (int t = 0; t < T; t++) {
                    const __m256i a0 = _mm256_loadu_si256((const __m256i *) (ap[t] + g * QK));
                    const __m256i a1 = _mm256_loadu_si256((const __m256i *) (ap[t] + g * QK + QK));
                    alo[t] = _mm256_permute2x128_si256(a0, a1, 0x20);
                    ahi[t] = _mm256_permute2x128_si256(a0, a1, 0x31);
                    bv[t] = _mm256_add_epi16(_mm256_maddubs_epi16(zp, alo[t]), _mm256_maddubs_epi16(zp, ahi[t]));
                    sav[t] = _mm256_set_m128(_mm_broadcast_ss(sa[t] + g + 1), _mm_broadcast_ss(sa[t] + g));
                }
                if (pf && (g & 3) == 0)
                    for (int r = 0; r < R; r++) _mm_prefetch((const char *) (wp[r] + g * (QK / 2) + pf), _MM_HINT_T1);
                for (int r = 0; r < R; r++) {
                    const __m256i b = _mm256_loadu_si256((const __m256i *) (wp[r] + g * (QK / 2)));
                    const __m256i lo = _mm256_and_si256(b, m4);
                    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(b, 4), m4);
                    const __m256 swv = _mm256_set_m128(_mm_broadcast_ss(sw[r] + g + 1), _mm_broadcast_ss(sw[r] + g));
                    for (int t = 0; t < T; t++) {
                        __m256i p =
                            _mm256_add_epi16(_mm256_maddubs_epi16(lo, alo[t]), _mm256_maddubs_epi16(hi, ahi[t]));
                        const __m256i d = _mm256_madd_epi16(_mm256_sub_epi16(p, bv[t]), ones16);
                        acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), _mm256_mul_ps(swv, sav[t]), acc[r][t]);
                    }
                }
            }
        }
        for (; g < ng; g++) {
            __m256i av[T];
            __m256 sav[T];
            __m256i bv[T];
            for (int t = 0; t < T; t++) {
                av[t] = _mm256_loadu_si256((const __m256i *) (ap[t] + g * QK));
                sav[t] = _mm256_broadcast_ss(sa[t] + g);
                if (I4) bv[t] = _mm256_maddubs_epi16(_mm256_set1_epi8(kern::ZP_I4), av[t]); // 8 * (a[2i] + a[2i+1])
            }
            if (pf && (I4 ? (g & 3) == 0 : (g & 1) == 0))
                for (int r = 0; r < R; r++)
                    _mm_prefetch((const char *) (wp[r] + g * (I4 ? QK / 2 : QK) + pf), _MM_HINT_T1);
            for (int r = 0; r < R; r++) {
                const __m256 swv = _mm256_broadcast_ss(sw[r] + g);
                if (I4) {
                    const __m128i b = _mm_loadu_si128((const __m128i *) (wp[r] + g * (QK / 2)));
                    const __m128i m4 = _mm_set1_epi8(0x0F);
                    const __m256i w = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(b, 4), m4), _mm_and_si128(b, m4));
                    for (int t = 0; t < T; t++) {
                        const __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(w, av[t]), bv[t]);
                        const __m256i d = _mm256_madd_epi16(p, ones16);
                        acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), _mm256_mul_ps(swv, sav[t]), acc[r][t]);
                    }
                } else {
                    const __m256i ws = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *) (wp[r] + g * QK)),
                                                        _mm256_set1_epi8((char) 0x80));
                    const __m256i wa = _mm256_abs_epi8(ws);
                    for (int t = 0; t < T; t++) {
                        __m256i d = _mm256_madd_epi16(_mm256_maddubs_epi16(wa, _mm256_sign_epi8(av[t], ws)), ones16);
                        acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), _mm256_mul_ps(swv, sav[t]), acc[r][t]);
                    }
                }
            }
        }
        store_tile<R, T>(c, r0, t0, acc);
    }
};

// ---------------------------------------------------------------------------------------------- tile driver

template <class K>
inline void call_tile(int R, int T, const Ctx & c, int64_t r0, int t0) {
    switch ((R - 1) * 2 + (T - 1)) {
        case 0: K::template tile<1, 1>(c, r0, t0); break;
        case 1: K::template tile<1, 2>(c, r0, t0); break;
        case 2: K::template tile<2, 1>(c, r0, t0); break;
        case 3: K::template tile<2, 2>(c, r0, t0); break;
        case 4: K::template tile<3, 1>(c, r0, t0); break;
        case 5: K::template tile<3, 2>(c, r0, t0); break;
        case 6: K::template tile<4, 1>(c, r0, t0); break;
        default: K::template tile<4, 2>(c, r0, t0); break;
    }
}

template <class K>
void drive(const Ctx & c, int n, int64_t rb, int64_t re) {
    for (int64_t b0 = rb; b0 < re; b0 += ROW_BLOCK) {
        const int64_t b1 = imin(b0 + ROW_BLOCK, re);
        for (int tb = 0; tb < n; tb += TOK_BLOCK) {
            const int te = (int) imin(tb + TOK_BLOCK, n);
            for (int64_t r0 = b0; r0 < b1; r0 += 4) {
                const int R = (int) imin(4, b1 - r0);
                for (int t0 = tb; t0 < te; t0 += TMAX) call_tile<K>(R, (int) imin(TMAX, te - t0), c, r0, t0);
            }
        }
    }
}

void matmul_avx2(const QMatrix & W, const float * x, const QActs * xq, float * y, int64_t y_stride, int n,
                 int64_t row_begin, int64_t row_end) {
    if (n <= 0 || row_end <= row_begin) return;
    Ctx c{&W, x, xq, y, y_stride};
    switch (W.type) {
        case WeightType::F32: drive<KF32>(c, n, row_begin, row_end); break;
        case WeightType::BF16: drive<KBF16>(c, n, row_begin, row_end); break;
        case WeightType::I8: drive<KQ<false>>(c, n, row_begin, row_end); break;
        case WeightType::I4: drive<KQ<true>>(c, n, row_begin, row_end); break;
        case WeightType::BLOCKS: break; // GGUF blocks: quant::matmul (layers.cpp)
    }
}

} // namespace

namespace kern {
const CpuKernels & avx2_kernels() {
    static const CpuKernels k{"avx2", matmul_avx2, attend_avx2, silu_mul_avx2};
    return k;
}
} // namespace kern

} // namespace tl
