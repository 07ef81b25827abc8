// AVX-512 kernels (F/BW/VL/DQ + VNNI, BF16 where the CPU has it). Compiled on its own with -mavx512* and only called
// after dispatch.cpp has checked the CPU. Everything is in an anonymous namespace and uses no std:: templates (ODR
// note in kernels.h).
//
// Shape of every kernel: one weight row at a time, tiles of T <= 4 tokens. A row's blocks are unpacked once per tile
// into registers of 64 unsigned or signed 8-bit levels (the nibble / bit-plane / codebook decoding, the expensive
// part) and each of the T tokens then costs only its multiply-accumulates; this is where prefill gains over one dot
// product per (row, token). Rows are contiguous in memory, so decode (T = 1) is one sequential stream
// (followed by the hardware prefetcher; see kPrefetchBytes).
//
// Integer products:
//  * unsigned levels x signed activations: VPDPBUSD (u8 x s8, 4 products per int32 lane, no saturation), or for the
//    K-quants VPMADDUBSW (u8 x s8 -> s16 pairs; the levels are <= 63 and the activations |a| <= 127, so a pair is
//    <= 16002 and never saturates) followed by VPDPWSSD with the sub-block scales as int16, which applies the scales
//    and accumulates in one instruction.
//  * signed levels (Q8_0, Q4_0 / Q5_0 re-centred, IQ4 codebook values): the sign moves onto the activation
//    (|w| x (a * sign w)), which needs |a| <= 127: the activation quantizers never produce -128.
//  * offsets (Q6_K's -32, Q3_K's -4) and mins (Q2_K / Q4_K / Q5_K) come from Q8_K's bsums: sum_j c_j * bsum_j is
//    one VPMADDWD per super-block.
#if defined(__GNUC__) && !defined(__clang__)
// GCC 12's avx512fintrin.h self-initialises _mm512_undefined_*(), which -Wmaybe-uninitialized reports.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>

#include <cstdlib>
#include <cstring>

#include "quant/half.h"
#include "quant/kernels.h"

// Block decoders must inline into the kernels (their output lives in registers); GCC declines for the bigger ones.
#define TL_INLINE inline __attribute__((always_inline))

namespace tl {
namespace quant {
namespace {

// Loops over tokens of a tile, registers of a super-block, etc. have constant trip counts and must be unrolled so
// that their vectors live in registers; -O2 does not unroll them by itself, hence the "#pragma GCC unroll"s.

// Software prefetch distance for the weight stream (0 = none). Rows are contiguous, so decode is one sequential
// stream that the hardware prefetcher follows; on the Zen 4 this was tuned on, prefetching 512 / 1536 / 3072 bytes
// ahead measured 5-25% slower than none (the extra load-port uops cost more than they hide). Kept as a build-time
// knob (-DTL_QUANT_PREFETCH_BYTES=N) for CPUs whose prefetchers behave differently.
#ifdef TL_QUANT_PREFETCH_BYTES // build-time override, for tuning on another machine
constexpr int kPrefetchBytes = TL_QUANT_PREFETCH_BYTES;
#else
constexpr int kPrefetchBytes = 0;
#endif

TL_INLINE void prefetch(const void * p) {
    if (kPrefetchBytes > 0) _mm_prefetch(static_cast<const char *>(p) + kPrefetchBytes, _MM_HINT_T0);
}

TL_INLINE float h2f(uint16_t h) { return _cvtsh_ss(h); }

// [s0 x 8 | s1 x 8]: per-lane scale for a register holding two 32-element blocks' int32 sums.
TL_INLINE __m512 scale2(float s0, float s1) { return _mm512_insertf32x8(_mm512_set1_ps(s0), _mm256_set1_ps(s1), 1); }

TL_INLINE float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// Two blocks' 32 activation quants (Q8_0 / Q8_1 layouts: qs at byte offset 2 / 4, block stride 34 / 36).
TL_INLINE __m512i load_2x32(const int8_t * q0, const int8_t * q1) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *) q0)),
                              _mm256_loadu_si256((const __m256i *) q1), 1);
}
TL_INLINE __m512i load_1x32(const int8_t * q0) {
    return _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *) q0));
}

// [q0 | q0 | q1 | q1] from two blocks' 16-byte nibble arrays, shifted by [0 | 4 | 0 | 4] and masked: every element in
// activation order (low nibbles are elements 0..15 of a block, high nibbles 16..31).
TL_INLINE __m512i nibbles_2x16(const uint8_t * q0, const uint8_t * q1) {
    const __m512i z = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *) q0));
    const __m512i both = _mm512_mask_broadcast_i32x4(z, 0xff00, _mm_loadu_si128((const __m128i *) q1));
    const __m512i sh =
        _mm512_set_epi64(0x0004000400040004, 0x0004000400040004, 0, 0, 0x0004000400040004, 0x0004000400040004, 0, 0);
    return _mm512_and_si512(_mm512_srlv_epi16(both, sh), _mm512_set1_epi8(0x0f));
}

// Bit 4 of each element from two blocks' 32-bit qh words (bit j = element j), as 0x10 bytes.
TL_INLINE __m512i fifth_bits(const uint8_t * qh0, const uint8_t * qh1) {
    uint32_t h0, h1;
    std::memcpy(&h0, qh0, 4);
    std::memcpy(&h1, qh1, 4);
    return _mm512_maskz_mov_epi8((__mmask64) h0 | ((__mmask64) h1 << 32), _mm512_set1_epi8(0x10));
}

// ---------------------------------------------------------------------------------------------- driver

template <class K>
void gemm(int64_t n, const void * w, size_t ws, int64_t nrows, const void * a, size_t as, int ntok, float * y,
          int64_t ys) {
    const uint8_t * wb = static_cast<const uint8_t *>(w);
    const uint8_t * ab = static_cast<const uint8_t *>(a);
    for (int64_t r = 0; r < nrows; r++) {
        const uint8_t * wr = wb + r * (int64_t) ws;
        int j = 0;
        for (; j + 4 <= ntok; j += 4) K::template run<4>(n, wr, ab + j * (int64_t) as, as, y + j * ys + r, ys);
        switch (ntok - j) {
            case 3: K::template run<3>(n, wr, ab + j * (int64_t) as, as, y + j * ys + r, ys); break;
            case 2: K::template run<2>(n, wr, ab + j * (int64_t) as, as, y + j * ys + r, ys); break;
            case 1: K::template run<1>(n, wr, ab + j * (int64_t) as, as, y + j * ys + r, ys); break;
            default: break;
        }
    }
}

// ---------------------------------------------------------------------------------------------- float rows

TL_INLINE __mmask16 tail16(int64_t left) { return left >= 16 ? (__mmask16) 0xffff : (__mmask16) ((1u << left) - 1); }
TL_INLINE __mmask32 tail32(int64_t left) {
    return left >= 32 ? (__mmask32) 0xffffffffu : (__mmask32) ((1u << left) - 1);
}

struct F32 {
    template <int T>
    static void run(int64_t n, const uint8_t * w, const uint8_t * a, size_t as, float * out, int64_t ys) {
        const float * x = reinterpret_cast<const float *>(w);
        const float * v[T];
#pragma GCC unroll 16
        for (int t = 0; t < T; t++) v[t] = reinterpret_cast<const float *>(a + t * as);
        __m512 acc[T][2];
#pragma GCC unroll 16
        for (int t = 0; t < T; t++) acc[t][0] = acc[t][1] = _mm512_setzero_ps();
        int64_t i = 0;
        for (; i + 32 <= n; i += 32) {
            prefetch(x + i);
            const __m512 w0 = _mm512_loadu_ps(x + i), w1 = _mm512_loadu_ps(x + i + 16);
#pragma GCC unroll 16
            for (int t = 0; t < T; t++) {
                acc[t][0] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(v[t] + i), acc[t][0]);
                acc[t][1] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(v[t] + i + 16), acc[t][1]);
            }
        }
        for (; i < n; i += 16) {
            const __mmask16 m = tail16(n - i);
            const __m512 w0 = _mm512_maskz_loadu_ps(m, x + i);
#pragma GCC unroll 16
            for (int t = 0; t < T; t++) acc[t][0] = _mm512_fmadd_ps(w0, _mm512_maskz_loadu_ps(m, v[t] + i), acc[t][0]);
        }
#pragma GCC unroll 16
        for (int t = 0; t < T; t++) out[t * ys] = _mm512_reduce_add_ps(_mm512_add_ps(acc[t][0], acc[t][1]));
    }
};

struct F16 {
    template <int T>
    static void run(int64_t n, const uint8_t * w, const uint8_t * a, size_t as, float * out, int64_t ys) {
        const uint16_t * x = reinterpret_cast<const uint16_t *>(w);
        const float * v[T];
#pragma GCC unroll 16
        for (int t = 0; t < T; t++) v[t] = reinterpret_cast<const float *>(a + t * as);
        __m512 acc[T][2];
#pragma GCC unroll 16
        for (int t = 0; t < T; t++) acc[t][0] = acc[t][1] = _mm512_setzero_ps();
        int64_t i = 0;
        for (; i + 32 <= n; i += 32) {
            prefetch(x + i);
            const __m512 w0 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *) (x + i)));
            const __m512 w1 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *) (x + i + 16)));
#pragma GCC unroll 16
            for (int t = 0; t < T; t++) {
                acc[t][0] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(v[t] + i), acc[t][0]);
                acc[t][1] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(v[t] + i + 16), acc[t][1]);
            }
        }
        for (; i < n; i += 16) {
            const __mmask16 m = tail16(n - i);
            const __m512 w0 = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, x + i));
#pragma GCC unroll 16
            for (int t = 0; t < T; t++) acc[t][0] = _mm512_fmadd_ps(w0, _mm512_maskz_loadu_ps(m, v[t] + i), acc[t][0]);
        }
#pragma GCC unroll 16
        for (int t = 0; t < T; t++) out[t * ys] = _mm512_reduce_add_ps(_mm512_add_ps(acc[t][0], acc[t][1]));
    }
};

// bf16 x bf16. Widening is exact (bf16 is the top half of an f32), so without AVX512_BF16 two FMAs per 32 elements
// compute the same products; VDPBF16PS does the pair in one instruction.
TL_INLINE __m512 bf16_lo(__m512i v) { return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)); }
TL_INLINE __m512 bf16_hi(__m512i v) {
    return _mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32((int) 0xffff0000u)));
}

template <bool kDp>
struct BF16 {
    // acc += w * a over 32 elements (one register of bf16 pairs).
    TL_INLINE static void step(__m512i wv, __m512i av, __m512 & acc0, __m512 & acc1) {
        if (kDp) {
            acc0 = _mm512_dpbf16_ps(acc0, (__m512bh) wv, (__m512bh) av);
        } else {
            acc0 = _mm512_fmadd_ps(bf16_lo(wv), bf16_lo(av), acc0);
            acc1 = _mm512_fmadd_ps(bf16_hi(wv), bf16_hi(av), acc1);
        }
    }
    template <int T>
    static void run(int64_t n, const uint8_t * w, const uint8_t * a, size_t as, float * out, int64_t ys) {
        const uint16_t * x = reinterpret_cast<const uint16_t *>(w);
        const uint16_t * v[T];
#pragma GCC unroll 16
        for (int t = 0; t < T; t++) v[t] = reinterpret_cast<const uint16_t *>(a + t * as);
        // Four accumulators per token: VDPBF16PS has a multi-cycle latency, and one chain per token would bound decode.
        __m512 acc[T][4];
#pragma GCC unroll 16
        for (int t = 0; t < T; t++) acc[t][0] = acc[t][1] = acc[t][2] = acc[t][3] = _mm512_setzero_ps();
        int64_t i = 0;
        for (; i + 64 <= n; i += 64) {
            prefetch(x + i);
            const __m512i w0 = _mm512_loadu_si512(x + i), w1 = _mm512_loadu_si512(x + i + 32);
#pragma GCC unroll 16
            for (int t = 0; t < T; t++) {
                step(w0, _mm512_loadu_si512(v[t] + i), acc[t][0], acc[t][1]);
                step(w1, _mm512_loadu_si512(v[t] + i + 32), acc[t][2], acc[t][3]);
            }
        }
        for (; i < n; i += 32) {
            const __mmask32 m = tail32(n - i);
            const __m512i wv = _mm512_maskz_loadu_epi16(m, x + i);
#pragma GCC unroll 16
            for (int t = 0; t < T; t++) step(wv, _mm512_maskz_loadu_epi16(m, v[t] + i), acc[t][0], acc[t][1]);
        }
#pragma GCC unroll 16
        for (int t = 0; t < T; t++)
            out[t * ys] = _mm512_reduce_add_ps(
                _mm512_add_ps(_mm512_add_ps(acc[t][0], acc[t][1]), _mm512_add_ps(acc[t][2], acc[t][3])));
    }
};

// ---------------------------------------------------------------------------------------------- 32-element blocks
// These formats carry an f16 scale per 32 elements, and turning per-block integer sums into floats was most of the
// work (two scale conversions, a multiply and a broadcast per block). So:
//  * the activations are prepared once per call (they are shared by every row): quants copied to 64-byte aligned
//    pairs of blocks, their scales as f32, and for formats with an offset (Q4_0's 8, Q5_0's 16, and 128 for Q8_0 /
//    IQ4_NL whose signed levels are made unsigned by +128) a per-lane bias -offset * (sum of the lane's 4 quants), the
//    start value of VPDPBUSD; so every format runs unsigned levels x signed activations with no sign tricks;
//  * the weight scales of 16 blocks come in with one gather (the blocks are 18..34 bytes apart), are multiplied by the
//    16 activation scales in one instruction, and each pair of blocks picks its two scales with one VPERMPS.
// Per pair of blocks the token side is then: VPDPBUSD, VCVTDQ2PS, VPERMPS, VFMADD.

struct Prep {
    const int8_t * qs;    // [pairs][64]
    const int32_t * bias; // [pairs][16], or null when the format has no offset
    const float * d;      // [groups * 16] activation scales (0 past the last block)
    const float * s;      // [groups * 16] Q8_1 s = d * sum(q) (null for Q8_0)
};

// Bytes of one token's prepared activations for nb blocks.
TL_INLINE int64_t prep_bytes(int64_t nb) {
    const int64_t pairs = (nb + 1) / 2, groups = (nb + 15) / 16;
    return pairs * 64 + pairs * 64 + groups * 64 * 2;
}

template <class A> // BlockQ8_0 or BlockQ8_1
void prepare(const A * v, int64_t nb, int offset, uint8_t * buf, Prep & p) {
    const int64_t pairs = (nb + 1) / 2, groups = (nb + 15) / 16;
    int8_t * qs = reinterpret_cast<int8_t *>(buf);
    int32_t * bias = reinterpret_cast<int32_t *>(buf + pairs * 64);
    float * d = reinterpret_cast<float *>(buf + pairs * 128);
    float * s = d + groups * 16;
    for (int64_t k = 0; k < pairs; k++) {
        const int64_t i0 = 2 * k, i1 = 2 * k + 1;
        const __m512i q = i1 < nb ? load_2x32(v[i0].qs, v[i1].qs) : load_1x32(v[i0].qs);
        _mm512_store_si512(qs + 64 * k, q);
        const __m512i sum4 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(1), q);
        _mm512_store_si512(bias + 16 * k, _mm512_mullo_epi32(sum4, _mm512_set1_epi32(-offset)));
    }
    for (int64_t i = 0; i < groups * 16; i++) {
        d[i] = i < nb ? h2f(v[i].d) : 0.0f;
        s[i] = 0.0f;
    }
    p.qs = qs;
    p.bias = offset ? bias : nullptr;
    p.d = d;
    p.s = s;
}
template <>
void prepare<BlockQ8_1>(const BlockQ8_1 * v, int64_t nb, int offset, uint8_t * buf, Prep & p) {
    // Q8_1 is only paired with offset-free formats; reuse the Q8_0 path on the quants and add s.
    const int64_t pairs = (nb + 1) / 2, groups = (nb + 15) / 16;
    int8_t * qs = reinterpret_cast<int8_t *>(buf);
    float * d = reinterpret_cast<float *>(buf + pairs * 128);
    float * s = d + groups * 16;
    for (int64_t k = 0; k < pairs; k++) {
        const int64_t i0 = 2 * k, i1 = 2 * k + 1;
        _mm512_store_si512(qs + 64 * k, i1 < nb ? load_2x32(v[i0].qs, v[i1].qs) : load_1x32(v[i0].qs));
    }
    for (int64_t i = 0; i < groups * 16; i++) {
        d[i] = i < nb ? h2f(v[i].d) : 0.0f;
        s[i] = i < nb ? h2f(v[i].s) : 0.0f;
    }
    p.qs = qs;
    p.bias = nullptr;
    p.d = d;
    p.s = s;
    (void) offset;
}

// W: Block, kOffset (the bias), kHasMin (Q4_1 / Q5_1: + m * s per block), levels(b0, b1) -> 64 unsigned levels.
template <class W>
struct Blocks32 {
    template <int T>
    TL_INLINE static void pair(const typename W::Block & b0, const typename W::Block & b1, int64_t k, int kk,
                               const Prep * p, const __m512 * s16, __m512 * acc) {
        const __m512i q = W::levels(b0, b1);
        const __m512i idx = _mm512_add_epi32(_mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0),
                                             _mm512_set1_epi32(2 * kk));
#pragma GCC unroll 16
        for (int t = 0; t < T; t++) {
            const __m512i a = _mm512_load_si512(p[t].qs + 64 * k);
            const __m512i start = W::kOffset ? _mm512_load_si512(p[t].bias + 16 * k) : _mm512_setzero_si512();
            const __m512i dot = _mm512_dpbusd_epi32(start, q, a);
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_permutexvar_ps(idx, s16[t]), acc[t]);
        }
    }

    template <int T>
    static void run(int64_t n, const uint8_t * w, const Prep * p, float * out, int64_t ys) {
        const typename W::Block * x = reinterpret_cast<const typename W::Block *>(w);
        const int64_t nb = n / QK;
        __m512 acc[T], macc[T];
#pragma GCC unroll 16
        for (int t = 0; t < T; t++) acc[t] = macc[t] = _mm512_setzero_ps();
        const __m512i vindex =
            _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                               _mm512_set1_epi32((int) sizeof(typename W::Block)));
        for (int64_t g = 0; g < nb; g += 16) {
            const int64_t cnt = nb - g < 16 ? nb - g : 16;
            // d (and m, the next 16 bits) of 16 blocks; lanes past the row are not read and come back 0.
            const __mmask16 live = cnt == 16 ? (__mmask16) 0xffff : (__mmask16) ((1u << cnt) - 1);
            const __m512i raw = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), live, vindex, &x[g], 1);
            const __m512 dw = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(raw));
            __m512 s16[T];
#pragma GCC unroll 16
            for (int t = 0; t < T; t++) s16[t] = _mm512_mul_ps(dw, _mm512_loadu_ps(p[t].d + g));
            if (W::kHasMin) {
                const __m512 mw = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(raw, 16)));
#pragma GCC unroll 16
                for (int t = 0; t < T; t++) macc[t] = _mm512_fmadd_ps(mw, _mm512_loadu_ps(p[t].s + g), macc[t]);
            }
            if (cnt == 16) {
#pragma GCC unroll 8
                for (int kk = 0; kk < 8; kk++) {
                    prefetch(x + g + 2 * kk);
                    pair<T>(x[g + 2 * kk], x[g + 2 * kk + 1], (g >> 1) + kk, kk, p, s16, acc);
                }
            } else {
                for (int kk = 0; 2 * kk < cnt; kk++) {
                    const int64_t i0 = g + 2 * kk, i1 = i0 + 1 < nb ? i0 + 1 : i0; // odd tail: duplicate, scale 0
                    pair<T>(x[i0], x[i1], (g >> 1) + kk, kk, p, s16, acc);
                }
            }
        }
#pragma GCC unroll 16
        for (int t = 0; t < T; t++)
            out[t * ys] = _mm512_reduce_add_ps(acc[t]) + (W::kHasMin ? _mm512_reduce_add_ps(macc[t]) : 0.0f);
    }
};

// gemm for the 32-element formats: prepare the activations of up to 64 tokens at a time, then rows x token tiles.
template <class W, class A>
void gemm32(int64_t n, const void * w, size_t ws, int64_t nrows, const void * a, size_t as, int ntok, float * y,
            int64_t ys) {
    const int64_t nb = n / QK, per = prep_bytes(nb);
    const int chunk = ntok < 64 ? ntok : 64;
    uint8_t * buf = static_cast<uint8_t *>(std::aligned_alloc(64, (size_t) (per * chunk)));
    if (!buf) return;
    Prep prep[64];
    const uint8_t * wb = static_cast<const uint8_t *>(w);
    for (int j0 = 0; j0 < ntok; j0 += 64) {
        const int nt = ntok - j0 < 64 ? ntok - j0 : 64;
        const uint8_t * ab = static_cast<const uint8_t *>(a) + j0 * (int64_t) as;
        float * yb = y + j0 * ys;
        for (int t = 0; t < nt; t++)
            prepare<A>(reinterpret_cast<const A *>(ab + t * (int64_t) as), nb, W::kOffset, buf + t * per, prep[t]);
        for (int64_t r = 0; r < nrows; r++) {
            const uint8_t * wr = wb + r * (int64_t) ws;
            int j = 0;
            for (; j + 4 <= nt; j += 4) Blocks32<W>::template run<4>(n, wr, prep + j, yb + j * ys + r, ys);
            switch (nt - j) {
                case 3: Blocks32<W>::template run<3>(n, wr, prep + j, yb + j * ys + r, ys); break;
                case 2: Blocks32<W>::template run<2>(n, wr, prep + j, yb + j * ys + r, ys); break;
                case 1: Blocks32<W>::template run<1>(n, wr, prep + j, yb + j * ys + r, ys); break;
                default: break;
            }
        }
    }
    std::free(buf);
}

struct WQ8_0 {
    using Block = BlockQ8_0;
    static constexpr int kOffset = 128;
    static constexpr bool kHasMin = false;
    TL_INLINE static __m512i levels(const Block & b0, const Block & b1) {
        return _mm512_xor_si512(load_2x32(b0.qs, b1.qs), _mm512_set1_epi8((char) 0x80)); // w + 128
    }
};
struct WQ4_0 {
    using Block = BlockQ4_0;
    static constexpr int kOffset = 8;
    static constexpr bool kHasMin = false;
    TL_INLINE static __m512i levels(const Block & b0, const Block & b1) { return nibbles_2x16(b0.qs, b1.qs); }
};
struct WQ5_0 {
    using Block = BlockQ5_0;
    static constexpr int kOffset = 16;
    static constexpr bool kHasMin = false;
    TL_INLINE static __m512i levels(const Block & b0, const Block & b1) {
        return _mm512_or_si512(nibbles_2x16(b0.qs, b1.qs), fifth_bits(b0.qh, b1.qh));
    }
};
struct WIQ4_NL {
    using Block = BlockIQ4_NL;
    static constexpr int kOffset = 128;
    static constexpr bool kHasMin = false;
    TL_INLINE static __m512i levels(const Block & b0, const Block & b1) {
        const __m128i kv = _mm_xor_si128(_mm_loadu_si128((const __m128i *) kIQ4NLValues), _mm_set1_epi8((char) 0x80));
        return _mm512_shuffle_epi8(_mm512_broadcast_i32x4(kv), nibbles_2x16(b0.qs, b1.qs)); // value + 128
    }
};
struct WQ4_1 {
    using Block = BlockQ4_1;
    static constexpr int kOffset = 0;
    static constexpr bool kHasMin = true;
    TL_INLINE static __m512i levels(const Block & b0, const Block & b1) { return nibbles_2x16(b0.qs, b1.qs); }
};
struct WQ5_1 {
    using Block = BlockQ5_1;
    static constexpr int kOffset = 0;
    static constexpr bool kHasMin = true;
    TL_INLINE static __m512i levels(const Block & b0, const Block & b1) {
        return _mm512_or_si512(nibbles_2x16(b0.qs, b1.qs), fifth_bits(b0.qh, b1.qh));
    }
};

// ---------------------------------------------------------------------------------------------- super-blocks x Q8_K
// W::unpack decodes one super-block into four registers of 64 levels (elements 64z..64z+63, unsigned unless
// W::kSigned), the int16 scale for every VPMADDUBSW output lane (sc[z]), and the coefficients of Q8_K's 16 bsums
// with their float factor (min / offset term). Then per token:
//   acc += d * da * sum_z dpwssd(maddubs(q_z, a_z), sc_z)      bacc += dc * da * madd(bsums, c16)

struct Unpacked {
    __m512i q[4];
    __m512i sc[4];
    __mmask64 neg[4];
    __m256i c16;  // per 16-element group: the min / offset multiplier (times dc)
    __m256i sc16; // per 16-element group: the integer scale (times d); the packed batch kernel's form of sc
    float d, dc;
};

// pshufb control broadcasting, in 128-bit lane l, 16-bit word k_l of that lane.
TL_INLINE __m512i word_ctrl(int k0, int k1, int k2, int k3) {
    auto w = [](int k) { return (short) (((2 * k + 1) << 8) | (2 * k)); };
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set_m128i(_mm_set1_epi16(w(k1)), _mm_set1_epi16(w(k0)))),
                              _mm256_set_m128i(_mm_set1_epi16(w(k3)), _mm_set1_epi16(w(k2))), 1);
}

// Scales of 32-element sub-blocks (Q4_K, Q5_K, IQ4_XS): 8 int16 in s8x16; register z covers sub-blocks 2z (lower
// 256 bits) and 2z + 1 (upper).
TL_INLINE void scales_32(__m128i s8x16, __m512i * sc) {
    const __m512i b = _mm512_broadcast_i32x4(s8x16);
#pragma GCC unroll 16
    for (int z = 0; z < 4; z++) sc[z] = _mm512_shuffle_epi8(b, word_ctrl(2 * z, 2 * z, 2 * z + 1, 2 * z + 1));
}

// Scales of 16-element sub-blocks (Q2_K, Q3_K, Q6_K): 16 int16; register z covers sub-blocks 4z..4z+3, one per
// 128-bit lane.
TL_INLINE void scales_16(__m256i s16, __m512i * sc) {
    const __m512i lo = _mm512_broadcast_i32x4(_mm256_castsi256_si128(s16));
    const __m512i hi = _mm512_broadcast_i32x4(_mm256_extracti128_si256(s16, 1));
    sc[0] = _mm512_shuffle_epi8(lo, word_ctrl(0, 1, 2, 3));
    sc[1] = _mm512_shuffle_epi8(lo, word_ctrl(4, 5, 6, 7));
    sc[2] = _mm512_shuffle_epi8(hi, word_ctrl(0, 1, 2, 3));
    sc[3] = _mm512_shuffle_epi8(hi, word_ctrl(4, 5, 6, 7));
}

// Per 256-bit half: [a x 16 | b x 16] 16-bit shift counts / byte masks.
TL_INLINE __m512i halves16(short a, short b) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16(a)), _mm256_set1_epi16(b), 1);
}
TL_INLINE __m512i halves8(char a, char b) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi8(a)), _mm256_set1_epi8(b), 1);
}
TL_INLINE __m512i bcast256(const uint8_t * p) {
    return _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *) p));
}

TL_INLINE uint32_t le32(const uint8_t * p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

// Q4_K / Q5_K: 6-bit scales and mins (layout in block_scales.h) decoded four at a time in 32-bit words.
TL_INLINE void k4_scales(const uint8_t * s, Unpacked & u) {
    const uint32_t w0 = le32(s), w1 = le32(s + 4), w2 = le32(s + 8);
    const uint32_t sc03 = w0 & 0x3f3f3f3fu, m03 = w1 & 0x3f3f3f3fu;
    const uint32_t sc47 = (w2 & 0x0f0f0f0fu) | (((w0 >> 6) & 0x03030303u) << 4);
    const uint32_t m47 = ((w2 >> 4) & 0x0f0f0f0fu) | (((w1 >> 6) & 0x03030303u) << 4);
    const __m256i sm16 = _mm256_cvtepu8_epi16(_mm_set_epi32((int) m47, (int) m03, (int) sc47, (int) sc03));
    scales_32(_mm256_castsi256_si128(sm16), u.sc);
    const __m128i m = _mm256_extracti128_si256(sm16, 1); // each min covers two bsums (32 elements)
    u.c16 = _mm256_set_m128i(_mm_unpackhi_epi16(m, m), _mm_unpacklo_epi16(m, m));
    const __m128i sc = _mm256_castsi256_si128(sm16);
    u.sc16 = _mm256_set_m128i(_mm_unpackhi_epi16(sc, sc), _mm_unpacklo_epi16(sc, sc));
}

struct KQ4 {
    using Block = BlockQ4_K;
    static constexpr bool kSigned = false, kBsums = true;
    TL_INLINE static void unpack(const Block & b, Unpacked & u) {
        k4_scales(b.scales, u);
        const __m512i sh = halves16(0, 4);
#pragma GCC unroll 16
        for (int c = 0; c < 4; c++)
            u.q[c] = _mm512_and_si512(_mm512_srlv_epi16(bcast256(b.qs + 32 * c), sh), _mm512_set1_epi8(0x0f));
        u.d = h2f(b.d);
        u.dc = -h2f(b.dmin);
    }
};

struct KQ5 {
    using Block = BlockQ5_K;
    static constexpr bool kSigned = false, kBsums = true;
    TL_INLINE static void unpack(const Block & b, Unpacked & u) {
        k4_scales(b.scales, u);
        const __m512i sh = halves16(0, 4);
        const __m512i h = bcast256(b.qh);
#pragma GCC unroll 16
        for (int c = 0; c < 4; c++) {
            const __m512i q = _mm512_and_si512(_mm512_srlv_epi16(bcast256(b.qs + 32 * c), sh), _mm512_set1_epi8(0x0f));
            // fifth bit: qh[l] bit 2c for the low nibbles (lower half), bit 2c + 1 for the high nibbles
            const __mmask64 m = _mm512_test_epi8_mask(h, halves8((char) (1 << (2 * c)), (char) (1 << (2 * c + 1))));
            u.q[c] = _mm512_mask_add_epi8(q, m, q, _mm512_set1_epi8(16));
        }
        u.d = h2f(b.d);
        u.dc = -h2f(b.dmin);
    }
};

struct KQ6 {
    using Block = BlockQ6_K;
    static constexpr bool kSigned = false, kBsums = true;
    TL_INLINE static void unpack(const Block & b, Unpacked & u) {
        const __m256i s16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *) b.scales));
        scales_16(s16, u.sc);
        u.c16 = u.sc16 = s16; // levels are stored + 32: subtract 32 * sum_i sc_i * bsum_i
        const __m512i m0f = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30);
#pragma GCC unroll 16
        for (int h = 0; h < 2; h++) {
            const __m512i l = _mm512_loadu_si512(b.ql + 64 * h);
            const __m512i qh = bcast256(b.qh + 32 * h);
            // 2 high bits of element 128h + 32k + l are bits 2k..2k+1 of qh[l]; move them to bits 4..5.
            const __m512i h01 = _mm512_and_si512(_mm512_sllv_epi16(qh, halves16(4, 2)), m30); // k = 0 | 1
            const __m512i h23 = _mm512_and_si512(_mm512_srlv_epi16(qh, halves16(0, 2)), m30); // k = 2 | 3
            u.q[2 * h] = _mm512_ternarylogic_epi32(l, m0f, h01, 0xea);                        // (l & 15) | h
            u.q[2 * h + 1] = _mm512_ternarylogic_epi32(_mm512_srli_epi16(l, 4), m0f, h23, 0xea);
        }
        u.d = h2f(b.d);
        u.dc = -32.0f * u.d;
    }
};

// Q2_K / Q3_K low 2 bits: element 128h + 32j + l in bits 2j of qs[32h + l]; register z = 2h + zz holds j = 2zz
// (lower half) and 2zz + 1 (upper half).
TL_INLINE __m512i two_bits(const uint8_t * qs, int z) {
    const int h = z / 2, j0 = 2 * (z % 2);
    return _mm512_and_si512(_mm512_srlv_epi16(bcast256(qs + 32 * h), halves16((short) (2 * j0), (short) (2 * j0 + 2))),
                            _mm512_set1_epi8(3));
}

struct KQ3 {
    using Block = BlockQ3_K;
    static constexpr bool kSigned = false, kBsums = true;
    TL_INLINE static void unpack(const Block & b, Unpacked & u) {
        const uint32_t w0 = le32(b.scales), w1 = le32(b.scales + 4), w2 = le32(b.scales + 8);
        const uint32_t a0 = (w0 & 0x0f0f0f0fu) | ((w2 & 0x03030303u) << 4);
        const uint32_t a1 = (w1 & 0x0f0f0f0fu) | (((w2 >> 2) & 0x03030303u) << 4);
        const uint32_t a2 = ((w0 >> 4) & 0x0f0f0f0fu) | (((w2 >> 4) & 0x03030303u) << 4);
        const uint32_t a3 = ((w1 >> 4) & 0x0f0f0f0fu) | (((w2 >> 6) & 0x03030303u) << 4);
        const __m128i s8 = _mm_sub_epi8(_mm_set_epi32((int) a3, (int) a2, (int) a1, (int) a0), _mm_set1_epi8(32));
        const __m256i s16 = _mm256_cvtepi8_epi16(s8);
        scales_16(s16, u.sc);
        u.c16 = u.sc16 = s16; // levels stored + 4 (0..7): subtract 4 * sum_i sc_i * bsum_i
        const __m512i hm = bcast256(b.hmask);
#pragma GCC unroll 16
        for (int z = 0; z < 4; z++) {
            const __m512i lo = two_bits(b.qs, z);
            const int h = z / 2, j0 = 2 * (z % 2);
            // high bit of element 128h + 32j + l: bit 4h + j of hmask[l]; set means level = lo, clear lo - 4
            const __mmask64 m =
                _mm512_test_epi8_mask(hm, halves8((char) (1 << (4 * h + j0)), (char) (1 << (4 * h + j0 + 1))));
            u.q[z] = _mm512_mask_add_epi8(lo, m, lo, _mm512_set1_epi8(4));
        }
        u.d = h2f(b.d);
        u.dc = -4.0f * u.d;
    }
};

struct KQ2 {
    using Block = BlockQ2_K;
    static constexpr bool kSigned = false, kBsums = true;
    TL_INLINE static void unpack(const Block & b, Unpacked & u) {
        const __m128i s = _mm_loadu_si128((const __m128i *) b.scales);
        const __m128i m0f = _mm_set1_epi8(0x0f);
        u.sc16 = _mm256_cvtepu8_epi16(_mm_and_si128(s, m0f));
        scales_16(u.sc16, u.sc);
        u.c16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(s, 4), m0f));
#pragma GCC unroll 16
        for (int z = 0; z < 4; z++) u.q[z] = two_bits(b.qs, z);
        u.d = h2f(b.d);
        u.dc = -h2f(b.dmin);
    }
};

struct KIQ4XS {
    using Block = BlockIQ4_XS;
    static constexpr bool kSigned = true, kBsums = false;
    TL_INLINE static void unpack(const Block & b, Unpacked & u) {
        // 6-bit scales: low nibbles from scales_l (two per byte), top 2 bits from scales_h (2 per sub-block).
        const __m128i l = _mm_cvtsi32_si128((int) le32(b.scales_l));
        const __m128i m0f = _mm_set1_epi8(0x0f);
        const __m128i lo = _mm_unpacklo_epi8(_mm_and_si128(l, m0f), _mm_and_si128(_mm_srli_epi16(l, 4), m0f));
        const __m128i hi =
            _mm_and_si128(_mm_srlv_epi16(_mm_set1_epi16((short) b.scales_h), _mm_set_epi16(14, 12, 10, 8, 6, 4, 2, 0)),
                          _mm_set1_epi16(3));
        const __m128i ls = _mm_or_si128(_mm_cvtepu8_epi16(lo), _mm_slli_epi16(hi, 4));
        scales_32(_mm_sub_epi16(ls, _mm_set1_epi16(32)), u.sc);
        const __m512i table = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *) kIQ4NLValues));
#pragma GCC unroll 16
        for (int z = 0; z < 4; z++) {
            const __m512i w = _mm512_shuffle_epi8(table, nibbles_2x16(b.qs + 32 * z, b.qs + 32 * z + 16));
            u.neg[z] = _mm512_movepi8_mask(w);
            u.q[z] = _mm512_abs_epi8(w);
        }
        u.c16 = u.sc16 = _mm256_setzero_si256(); // (IQ4_XS has no packed batch kernel)
        u.d = h2f(b.d);
        u.dc = 0.0f;
    }
};

template <class W>
struct Q8KActs {
    template <int T>
    static void run(int64_t n, const uint8_t * w, const uint8_t * a, size_t as, float * out, int64_t ys) {
        const typename W::Block * x = reinterpret_cast<const typename W::Block *>(w);
        const BlockQ8_K * v[T];
#pragma GCC unroll 16
        for (int t = 0; t < T; t++) v[t] = reinterpret_cast<const BlockQ8_K *>(a + t * as);
        __m512 acc[T];
        __m256 bacc[T];
#pragma GCC unroll 16
        for (int t = 0; t < T; t++) acc[t] = _mm512_setzero_ps(), bacc[t] = _mm256_setzero_ps();
        const int64_t nb = n / QK_K;
        for (int64_t i = 0; i < nb; i++) {
#pragma GCC unroll 16
            for (int o = 0; o < (int) sizeof(typename W::Block); o += 64)
                prefetch(reinterpret_cast<const uint8_t *>(x + i) + o);
            Unpacked u;
            W::unpack(x[i], u);
#pragma GCC unroll 16
            for (int t = 0; t < T; t++) {
                const int8_t * aq = v[t][i].qs;
                __m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
#pragma GCC unroll 16
                for (int z = 0; z < 4; z++) {
                    __m512i av = _mm512_loadu_si512(aq + 64 * z);
                    if (W::kSigned) av = _mm512_mask_sub_epi8(av, u.neg[z], _mm512_setzero_si512(), av);
                    const __m512i p = _mm512_maddubs_epi16(u.q[z], av);
                    if (z & 1) s1 = _mm512_dpwssd_epi32(s1, p, u.sc[z]);
                    else s0 = _mm512_dpwssd_epi32(s0, p, u.sc[z]);
                }
                const float da = v[t][i].d;
                acc[t] =
                    _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1)), _mm512_set1_ps(u.d * da), acc[t]);
                if (W::kBsums) {
                    const __m256i bs = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *) v[t][i].bsums), u.c16);
                    bacc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(bs), _mm256_set1_ps(u.dc * da), bacc[t]);
                }
            }
        }
#pragma GCC unroll 16
        for (int t = 0; t < T; t++) out[t * ys] = _mm512_reduce_add_ps(acc[t]) + (W::kBsums ? hsum256(bacc[t]) : 0.0f);
    }
};

// ------------------------------------------------------------------------------- K-quant batches (prefill)
//
// For a batch of kPackMinTokens or more, the K-quants take another route: each row's super-blocks are unpacked once
// (the same unpack as above) and transposed so that 32-bit lane j of a register holds four levels of 16-element
// group j; the activations get the same transposition once per call. Then one VPDPBUSD per 64 products accumulates
// whole group dots per lane, and the group scales and offsets apply as float vectors once per super-block:
//   y += sum_g (d * sc_g) * da * (q_g . a_g)  +  (dc * c_g) * da * bsum_g
// The result equals the per-row kernel's to float rounding (~3e-7 relative; the scales are applied per group in
// float rather than per super-block in integers). Integer scales (VPMULLD) measured 30% slower.
// About 9 instructions per row x token x super-block, against ~21 for the per-row kernel (whose VPMADDUBSW +
// VPDPWSSD pair and scale shuffles run per token). Tiles of 4 rows x 4 tokens keep the accumulators in registers
// (measured per thread on a 4096 x 4096 Q4_K matrix x 64 tokens: 131 / 174 / 201 G multiply-adds/s with 2 / 3 / 4 rows).
constexpr int kPackMinTokens = 8;
constexpr int kPackRows = 4; // gemm_k's switch has a case per row count up to this

// A super-block's four registers of levels in element order (group g = 128-bit lane g % 4 of register g / 4) to group
// lanes: out[k] dword j = elements 16j + 4k .. 16j + 4k + 3.
TL_INLINE void to_group_lanes(const __m512i * in, __m512i * out) {
    const __m512i idx = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
    __m512i t[4];
#pragma GCC unroll 4
    for (int z = 0; z < 4; z++) t[z] = _mm512_permutexvar_epi32(idx, in[z]); // lane k: dword k of each group
    const __m512i a = _mm512_shuffle_i32x4(t[0], t[1], 0x44), b = _mm512_shuffle_i32x4(t[0], t[1], 0xee);
    const __m512i c = _mm512_shuffle_i32x4(t[2], t[3], 0x44), d = _mm512_shuffle_i32x4(t[2], t[3], 0xee);
    out[0] = _mm512_shuffle_i32x4(a, c, 0x88);
    out[1] = _mm512_shuffle_i32x4(a, c, 0xdd);
    out[2] = _mm512_shuffle_i32x4(b, d, 0x88);
    out[3] = _mm512_shuffle_i32x4(b, d, 0xdd);
}

struct alignas(64) PackedW { // one row's super-block
    __m512i q[4];
    __m512 s, o; // per group: d * sc_g, dc * c_g
};
struct alignas(64) PackedA { // one token's super-block
    __m512i q[4];
    __m512 bs; // per group: da * bsum_g
    float d;
};

// Per-thread scratch for the packed rows and activations, grown as needed (freed when the thread ends).
struct PackScratch {
    void * p = nullptr;
    size_t cap = 0;
    ~PackScratch() { std::free(p); }
    void * get(size_t bytes) {
        if (bytes > cap) {
            std::free(p);
            cap = (bytes + 4095) & ~(size_t) 4095;
            p = std::aligned_alloc(64, cap);
            if (!p) std::abort();
        }
        return p;
    }
};
thread_local PackScratch g_pack;

template <int R, int T>
TL_INLINE void packed_tile(int nsb, const PackedW * w, const PackedA * a, int64_t a_stride, float * y, int64_t ys) {
    __m512 acc[R][T];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) acc[r][t] = _mm512_setzero_ps();
    for (int i = 0; i < nsb; i++) {
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) {
            const PackedA & A = a[t * a_stride + i];
            const __m512 dt = _mm512_set1_ps(A.d);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                const PackedW & W = w[r * nsb + i];
                __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), W.q[0], A.q[0]);
                s = _mm512_dpbusd_epi32(s, W.q[1], A.q[1]);
                s = _mm512_dpbusd_epi32(s, W.q[2], A.q[2]);
                s = _mm512_dpbusd_epi32(s, W.q[3], A.q[3]);
                acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(W.s, dt), acc[r][t]);
                acc[r][t] = _mm512_fmadd_ps(W.o, A.bs, acc[r][t]);
            }
        }
    }
#pragma GCC unroll 2
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) y[t * ys + r] = _mm512_reduce_add_ps(acc[r][t]);
}

template <int R>
void packed_rows(int nsb, const PackedW * w, const PackedA * a, int ntok, float * y, int64_t ys) {
    int t = 0;
    for (; t + 4 <= ntok; t += 4) packed_tile<R, 4>(nsb, w, a + (int64_t) t * nsb, nsb, y + t * ys, ys);
    switch (ntok - t) {
        case 3: packed_tile<R, 3>(nsb, w, a + (int64_t) t * nsb, nsb, y + t * ys, ys); break;
        case 2: packed_tile<R, 2>(nsb, w, a + (int64_t) t * nsb, nsb, y + t * ys, ys); break;
        case 1: packed_tile<R, 1>(nsb, w, a + (int64_t) t * nsb, nsb, y + t * ys, ys); break;
        default: break;
    }
}

template <class W>
void gemm_k(int64_t n, const void * w, size_t ws, int64_t nrows, const void * a, size_t as, int ntok, float * y,
            int64_t ys) {
    if (ntok < kPackMinTokens) return gemm<Q8KActs<W>>(n, w, ws, nrows, a, as, ntok, y, ys);
    const int nsb = (int) (n / QK_K);
    uint8_t * buf =
        static_cast<uint8_t *>(g_pack.get(sizeof(PackedA) * (size_t) ntok * nsb + sizeof(PackedW) * kPackRows * nsb));
    PackedA * pa = reinterpret_cast<PackedA *>(buf);
    PackedW * pw = reinterpret_cast<PackedW *>(buf + sizeof(PackedA) * (size_t) ntok * nsb);
    for (int t = 0; t < ntok; t++) {
        const BlockQ8_K * v = reinterpret_cast<const BlockQ8_K *>(static_cast<const uint8_t *>(a) + t * (int64_t) as);
        for (int i = 0; i < nsb; i++) {
            PackedA & A = pa[(int64_t) t * nsb + i];
            __m512i q[4];
#pragma GCC unroll 4
            for (int z = 0; z < 4; z++) q[z] = _mm512_loadu_si512(v[i].qs + 64 * z);
            to_group_lanes(q, A.q);
            const __m512 bs =
                _mm512_cvtepi32_ps(_mm512_cvtepi16_epi32(_mm256_loadu_si256((const __m256i *) v[i].bsums)));
            A.bs = _mm512_mul_ps(bs, _mm512_set1_ps(v[i].d));
            A.d = v[i].d;
        }
    }
    const uint8_t * wb = static_cast<const uint8_t *>(w);
    for (int64_t r = 0; r < nrows; r += kPackRows) {
        const int rn = nrows - r >= kPackRows ? kPackRows : (int) (nrows - r);
        for (int k = 0; k < rn; k++) {
            const typename W::Block * x = reinterpret_cast<const typename W::Block *>(wb + (r + k) * (int64_t) ws);
            for (int i = 0; i < nsb; i++) {
                Unpacked u;
                W::unpack(x[i], u);
                PackedW & P = pw[k * nsb + i];
                to_group_lanes(u.q, P.q);
                P.s = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi16_epi32(u.sc16)), _mm512_set1_ps(u.d));
                P.o = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi16_epi32(u.c16)), _mm512_set1_ps(u.dc));
            }
        }
        switch (rn) {
            case 4: packed_rows<4>(nsb, pw, pa, ntok, y + r, ys); break;
            case 3: packed_rows<3>(nsb, pw, pa, ntok, y + r, ys); break;
            case 2: packed_rows<2>(nsb, pw, pa, ntok, y + r, ys); break;
            default: packed_rows<1>(nsb, pw, pa, ntok, y + r, ys); break;
        }
    }
}

// ------------------------------------------------------------------------------- float batches (prefill)
//
// F16 weights x f32 activations for kPackMinTokens or more tokens: tiles of 4 rows x 4 tokens, 16 register
// accumulators, so each weight vector is loaded once per 4 tokens and each activation vector once per 4 rows (the
// per-row kernel loads an activation vector per FMA). Rows are widened once per call into a per-thread f32 buffer
// (Zen 4 has no f16 arithmetic: these products are f32 FMAs either way). Same products as the per-row kernel; the
// sums differ by float summation order only. 4096 x 4096 x 64 tokens, one thread: 24.5 -> 52 G multiply-adds/s.
// (F32 and BF16 files run on the kernels/cpu layouts, which keep f32 activations; they do not come here.)
template <int R, int T>
TL_INLINE void float_tile(int64_t n, const float * const * w, const uint8_t * a, size_t as, float * y, int64_t ys) {
    __m512 acc[R][T];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) acc[r][t] = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = tail16(n - i);
        __m512 wv[R];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) wv[r] = _mm512_maskz_loadu_ps(m, w[r] + i);
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) {
            const __m512 av = _mm512_maskz_loadu_ps(m, reinterpret_cast<const float *>(a + t * as) + i);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) acc[r][t] = _mm512_fmadd_ps(wv[r], av, acc[r][t]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) y[t * ys + r] = _mm512_reduce_add_ps(acc[r][t]);
}

template <int R>
void float_rows(int64_t n, const float * const * w, const uint8_t * a, size_t as, int ntok, float * y, int64_t ys) {
    int t = 0;
    for (; t + 4 <= ntok; t += 4) float_tile<R, 4>(n, w, a + t * as, as, y + t * ys, ys);
    switch (ntok - t) {
        case 3: float_tile<R, 3>(n, w, a + t * as, as, y + t * ys, ys); break;
        case 2: float_tile<R, 2>(n, w, a + t * as, as, y + t * ys, ys); break;
        case 1: float_tile<R, 1>(n, w, a + t * as, as, y + t * ys, ys); break;
        default: break;
    }
}

void gemm_f16(int64_t n, const void * w, size_t ws, int64_t nrows, const void * a, size_t as, int ntok, float * y,
              int64_t ys) {
    if (ntok < kPackMinTokens) return gemm<F16>(n, w, ws, nrows, a, as, ntok, y, ys);
    const uint8_t * wb = static_cast<const uint8_t *>(w);
    const uint8_t * ab = static_cast<const uint8_t *>(a);
    float * buf = static_cast<float *>(g_pack.get(sizeof(float) * 4 * (size_t) n));
    for (int64_t r = 0; r < nrows; r += 4) {
        const int rn = nrows - r >= 4 ? 4 : (int) (nrows - r);
        const float * rows[4];
        for (int k = 0; k < rn; k++) {
            const uint16_t * h = reinterpret_cast<const uint16_t *>(wb + (r + k) * (int64_t) ws);
            float * dst = buf + (size_t) k * n;
            for (int64_t i = 0; i < n; i += 16) {
                const __mmask16 m = tail16(n - i);
                _mm512_mask_storeu_ps(dst + i, m, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, h + i)));
            }
            rows[k] = dst;
        }
        switch (rn) {
            case 4: float_rows<4>(n, rows, ab, as, ntok, y + r, ys); break;
            case 3: float_rows<3>(n, rows, ab, as, ntok, y + r, ys); break;
            case 2: float_rows<2>(n, rows, ab, as, ntok, y + r, ys); break;
            default: float_rows<1>(n, rows, ab, as, ntok, y + r, ys); break;
        }
    }
}

Kernels make(bool has_bf16) {
    Kernels k{};
    k.name = "avx512";
    k.gemm[(int) Type::F32] = gemm<F32>;
    k.gemm[(int) Type::F16] = gemm_f16;
    k.gemm[(int) Type::BF16] = has_bf16 ? gemm<BF16<true>> : gemm<BF16<false>>;
    k.gemm[(int) Type::Q8_0] = gemm32<WQ8_0, BlockQ8_0>;
    k.gemm[(int) Type::Q4_0] = gemm32<WQ4_0, BlockQ8_0>;
    k.gemm[(int) Type::Q5_0] = gemm32<WQ5_0, BlockQ8_0>;
    k.gemm[(int) Type::IQ4_NL] = gemm32<WIQ4_NL, BlockQ8_0>;
    k.gemm[(int) Type::Q4_1] = gemm32<WQ4_1, BlockQ8_1>;
    k.gemm[(int) Type::Q5_1] = gemm32<WQ5_1, BlockQ8_1>;
    k.gemm[(int) Type::Q2_K] = gemm_k<KQ2>;
    k.gemm[(int) Type::Q3_K] = gemm_k<KQ3>;
    k.gemm[(int) Type::Q4_K] = gemm_k<KQ4>;
    k.gemm[(int) Type::Q5_K] = gemm_k<KQ5>;
    k.gemm[(int) Type::Q6_K] = gemm_k<KQ6>;
    k.gemm[(int) Type::IQ4_XS] = gemm<Q8KActs<KIQ4XS>>;
    return k;
}

} // namespace

namespace detail {
const Kernels & avx512_kernels(bool has_bf16) {
    // Two tables built on first use (after the CPU check): no code from this file runs at static-init time.
    static const Kernels with = make(true);
    static const Kernels without = make(false);
    return has_bf16 ? with : without;
}
} // namespace detail

} // namespace quant
} // namespace tl
