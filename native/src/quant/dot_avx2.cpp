// AVX2 kernels (AVX2 + FMA + F16C; no VNNI): the same structure as dot_avx512.cpp with 256-bit registers, for CPUs
// without AVX-512. Compiled on its own with -mavx2 -mfma -mf16c; anonymous namespace, no std:: templates (ODR note in
// kernels.h).
//
// Integer products: VPMADDUBSW (u8 x s8 -> s16 pairs) then VPMADDWD, either with ones (plain sum) or with the
// sub-block scales as int16 (scale and widen in one instruction). No pair saturates: unsigned levels are <= 63, and
// signed levels move their sign onto the activation (VPSIGNB) with |w| <= 128 and |a| <= 127, so a pair is at most
// 2 * 128 * 127 = 32512.
#include <immintrin.h>

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

#ifdef TL_QUANT_PREFETCH_BYTES // build-time override, for tuning on another machine
constexpr int kPrefetchBytes = TL_QUANT_PREFETCH_BYTES;
#else
constexpr int kPrefetchBytes = 0;
#endif // see dot_avx512.cpp

TL_INLINE void prefetch(const void * p) {
    if (kPrefetchBytes > 0) _mm_prefetch(static_cast<const char *>(p) + kPrefetchBytes, _MM_HINT_T0);
}
TL_INLINE float h2f(uint16_t h) { return _cvtsh_ss(h); }

TL_INLINE float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

TL_INLINE uint32_t le32(const uint8_t * p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

TL_INLINE __m256i loadu(const void * p) { return _mm256_loadu_si256(static_cast<const __m256i *>(p)); }

// 16 nibble bytes -> 32 levels in activation order (low nibbles = elements 0..15, high = 16..31).
TL_INLINE __m256i nibbles16(const uint8_t * q) {
    const __m128i x = _mm_loadu_si128((const __m128i *) q);
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(x, 4), x), _mm256_set1_epi8(0x0f));
}

// Bit j of a 32-bit word -> byte j as 0x10 or 0.
TL_INLINE __m256i fifth_bits(const uint8_t * qh) {
    const __m256i b = _mm256_set1_epi32((int) le32(qh));
    // byte j takes byte j / 8 of the word, then tests bit j % 8
    const __m256i spread = _mm256_shuffle_epi8(
        b, _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0x0000000000000000));
    const __m256i bit = _mm256_set1_epi64x((long long) 0x8040201008040201ull);
    const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
    return _mm256_and_si256(set, _mm256_set1_epi8(0x10));
}

// pshufb control broadcasting 16-bit word k0 in the lower 128-bit lane and k1 in the upper.
TL_INLINE __m256i word_ctrl(int k0, int k1) {
    auto w = [](int k) { return (short) (((2 * k + 1) << 8) | (2 * k)); };
    return _mm256_set_m128i(_mm_set1_epi16(w(k1)), _mm_set1_epi16(w(k0)));
}

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
// W::load8(x, i) gives 8 weights as floats; activations are f32 (F32, F16) or bf16 (BF16).

struct WF32 {
    using Elem = float;
    TL_INLINE static __m256 load8(const float * x) { return _mm256_loadu_ps(x); }
    TL_INLINE static float one(float v) { return v; }
};
struct WF16 {
    using Elem = uint16_t;
    TL_INLINE static __m256 load8(const uint16_t * x) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) x)); }
    TL_INLINE static float one(uint16_t v) { return h2f(v); }
};
struct WBF16 {
    using Elem = uint16_t;
    TL_INLINE static __m256 load8(const uint16_t * x) {
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *) x)), 16));
    }
    TL_INLINE static float one(uint16_t v) { return bf16_to_f32(v); }
};

template <class W, class A>
struct FloatRow {
    template <int T>
    static void run(int64_t n, const uint8_t * w, const uint8_t * a, size_t as, float * out, int64_t ys) {
        const typename W::Elem * x = reinterpret_cast<const typename W::Elem *>(w);
        const typename A::Elem * v[T];
        #pragma GCC unroll 16
        for (int t = 0; t < T; t++) v[t] = reinterpret_cast<const typename A::Elem *>(a + t * as);
        __m256 acc[T][2];
        #pragma GCC unroll 16
        for (int t = 0; t < T; t++) acc[t][0] = acc[t][1] = _mm256_setzero_ps();
        int64_t i = 0;
        for (; i + 16 <= n; i += 16) {
            prefetch(x + i);
            const __m256 w0 = W::load8(x + i), w1 = W::load8(x + i + 8);
            #pragma GCC unroll 16
            for (int t = 0; t < T; t++) {
                acc[t][0] = _mm256_fmadd_ps(w0, A::load8(v[t] + i), acc[t][0]);
                acc[t][1] = _mm256_fmadd_ps(w1, A::load8(v[t] + i + 8), acc[t][1]);
            }
        }
        #pragma GCC unroll 16
        for (int t = 0; t < T; t++) {
            float s = hsum(_mm256_add_ps(acc[t][0], acc[t][1]));
            for (int64_t k = i; k < n; k++) s += W::one(x[k]) * A::one(v[t][k]);
            out[t * ys] = s;
        }
    }
};

// ---------------------------------------------------------------------------------------------- 32-element blocks

template <class W>
struct Q8_0Acts { // signed levels x Q8_0 activations
    template <int T>
    static void run(int64_t n, const uint8_t * w, const uint8_t * a, size_t as, float * out, int64_t ys) {
        const typename W::Block * x = reinterpret_cast<const typename W::Block *>(w);
        const BlockQ8_0 * v[T];
        #pragma GCC unroll 16
        for (int t = 0; t < T; t++) v[t] = reinterpret_cast<const BlockQ8_0 *>(a + t * as);
        __m256 acc[T];
        #pragma GCC unroll 16
        for (int t = 0; t < T; t++) acc[t] = _mm256_setzero_ps();
        const __m256i ones = _mm256_set1_epi16(1);
        for (int64_t i = 0; i < n / QK; i++) {
            prefetch(x + i);
            const __m256i q = W::levels(x[i]);
            const __m256i aq = _mm256_sign_epi8(q, q); // |q|
            const float d = h2f(x[i].d);
            #pragma GCC unroll 16
            for (int t = 0; t < T; t++) {
                const __m256i p = _mm256_maddubs_epi16(aq, _mm256_sign_epi8(loadu(v[t][i].qs), q));
                const __m256 f = _mm256_cvtepi32_ps(_mm256_madd_epi16(p, ones));
                acc[t] = _mm256_fmadd_ps(f, _mm256_set1_ps(d * h2f(v[t][i].d)), acc[t]);
            }
        }
        #pragma GCC unroll 16
        for (int t = 0; t < T; t++) out[t * ys] = hsum(acc[t]);
    }
};

template <class W>
struct Q8_1Acts { // unsigned levels + m x Q8_1 activations
    template <int T>
    static void run(int64_t n, const uint8_t * w, const uint8_t * a, size_t as, float * out, int64_t ys) {
        const typename W::Block * x = reinterpret_cast<const typename W::Block *>(w);
        const BlockQ8_1 * v[T];
        #pragma GCC unroll 16
        for (int t = 0; t < T; t++) v[t] = reinterpret_cast<const BlockQ8_1 *>(a + t * as);
        __m256 acc[T];
        float ms[T];
        #pragma GCC unroll 16
        for (int t = 0; t < T; t++) acc[t] = _mm256_setzero_ps(), ms[t] = 0.0f;
        const __m256i ones = _mm256_set1_epi16(1);
        for (int64_t i = 0; i < n / QK; i++) {
            prefetch(x + i);
            const __m256i q = W::levels(x[i]);
            const float d = h2f(x[i].d), m = h2f(x[i].m);
            #pragma GCC unroll 16
            for (int t = 0; t < T; t++) {
                const __m256i p = _mm256_maddubs_epi16(q, loadu(v[t][i].qs));
                const __m256 f = _mm256_cvtepi32_ps(_mm256_madd_epi16(p, ones));
                acc[t] = _mm256_fmadd_ps(f, _mm256_set1_ps(d * h2f(v[t][i].d)), acc[t]);
                ms[t] += m * h2f(v[t][i].s);
            }
        }
        #pragma GCC unroll 16
        for (int t = 0; t < T; t++) out[t * ys] = hsum(acc[t]) + ms[t];
    }
};

struct WQ8_0 {
    using Block = BlockQ8_0;
    TL_INLINE static __m256i levels(const Block & b) { return loadu(b.qs); }
};
struct WQ4_0 {
    using Block = BlockQ4_0;
    TL_INLINE static __m256i levels(const Block & b) { return _mm256_sub_epi8(nibbles16(b.qs), _mm256_set1_epi8(8)); }
};
struct WQ5_0 {
    using Block = BlockQ5_0;
    TL_INLINE static __m256i levels(const Block & b) {
        return _mm256_sub_epi8(_mm256_or_si256(nibbles16(b.qs), fifth_bits(b.qh)), _mm256_set1_epi8(16));
    }
};
struct WIQ4_NL {
    using Block = BlockIQ4_NL;
    TL_INLINE static __m256i levels(const Block & b) {
        const __m256i table = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *) kIQ4NLValues));
        return _mm256_shuffle_epi8(table, nibbles16(b.qs));
    }
};
struct WQ4_1 {
    using Block = BlockQ4_1;
    TL_INLINE static __m256i levels(const Block & b) { return nibbles16(b.qs); }
};
struct WQ5_1 {
    using Block = BlockQ5_1;
    TL_INLINE static __m256i levels(const Block & b) { return _mm256_or_si256(nibbles16(b.qs), fifth_bits(b.qh)); }
};

// ---------------------------------------------------------------------------------------------- super-blocks x Q8_K
// W::unpack: eight registers of 32 levels (elements 32k..32k+31; for signed formats |level| in q and the signs in
// sg), the int16 scale of every VPMADDUBSW output lane (sc[k]), the bsum coefficients c16 and their factor dc.

struct Unpacked {
    __m256i q[8];
    __m256i sg[8];
    __m256i sc[8];
    __m256i c16;
    float d, dc;
};

// Sub-blocks of 32 (Q4_K, Q5_K, IQ4_XS): s16 = 8 int16 scales; register k uses scale k throughout.
TL_INLINE void scales_32(__m128i s16, __m256i * sc) {
    const __m256i b = _mm256_broadcastsi128_si256(s16);
    #pragma GCC unroll 16
    for (int k = 0; k < 8; k++) sc[k] = _mm256_shuffle_epi8(b, word_ctrl(k, k));
}
// Sub-blocks of 16 (Q2_K, Q3_K, Q6_K): register k holds sub-blocks 2k (lower lane) and 2k + 1 (upper lane). s8 =
// 16 int8 scales; reordering them evens-then-odds before widening puts scale 2k at word k of the lower lane and
// 2k + 1 at word k of the upper lane.
TL_INLINE void scales_16(__m128i s8, bool is_signed, __m256i * sc) {
    const __m128i eo = _mm_shuffle_epi8(s8, _mm_set_epi8(15, 13, 11, 9, 7, 5, 3, 1, 14, 12, 10, 8, 6, 4, 2, 0));
    const __m256i e = is_signed ? _mm256_cvtepi8_epi16(eo) : _mm256_cvtepu8_epi16(eo);
    #pragma GCC unroll 16
    for (int k = 0; k < 8; k++) sc[k] = _mm256_shuffle_epi8(e, word_ctrl(k, k));
}

TL_INLINE void k4_scales(const uint8_t * s, Unpacked & u) {
    const uint32_t w0 = le32(s), w1 = le32(s + 4), w2 = le32(s + 8);
    const uint32_t sc03 = w0 & 0x3f3f3f3fu, m03 = w1 & 0x3f3f3f3fu;
    const uint32_t sc47 = (w2 & 0x0f0f0f0fu) | (((w0 >> 6) & 0x03030303u) << 4);
    const uint32_t m47 = ((w2 >> 4) & 0x0f0f0f0fu) | (((w1 >> 6) & 0x03030303u) << 4);
    const __m256i sm16 = _mm256_cvtepu8_epi16(_mm_set_epi32((int) m47, (int) m03, (int) sc47, (int) sc03));
    scales_32(_mm256_castsi256_si128(sm16), u.sc);
    const __m128i m = _mm256_extracti128_si256(sm16, 1);
    u.c16 = _mm256_set_m128i(_mm_unpackhi_epi16(m, m), _mm_unpacklo_epi16(m, m));
}

struct KQ4 {
    using Block = BlockQ4_K;
    static constexpr bool kSigned = false, kBsums = true;
    TL_INLINE static void unpack(const Block & b, Unpacked & u) {
        k4_scales(b.scales, u);
        const __m256i m0f = _mm256_set1_epi8(0x0f);
        #pragma GCC unroll 16
        for (int c = 0; c < 4; c++) {
            const __m256i x = loadu(b.qs + 32 * c);
            u.q[2 * c] = _mm256_and_si256(x, m0f);
            u.q[2 * c + 1] = _mm256_and_si256(_mm256_srli_epi16(x, 4), m0f);
        }
        u.d = h2f(b.d);
        u.dc = -h2f(b.dmin);
    }
};

struct KQ5 {
    using Block = BlockQ5_K;
    static constexpr bool kSigned = false, kBsums = true;
    TL_INLINE static void unpack(const Block & b, Unpacked & u) {
        k4_scales(b.scales, u);
        const __m256i m0f = _mm256_set1_epi8(0x0f), one = _mm256_set1_epi8(1);
        const __m256i h = loadu(b.qh);
        #pragma GCC unroll 16
        for (int c = 0; c < 4; c++) {
            const __m256i x = loadu(b.qs + 32 * c);
            // bit 2c (low nibbles) / 2c + 1 (high nibbles) of qh[l] -> 16
            const __m256i h0 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2 * c), one), 4);
            const __m256i h1 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2 * c + 1), one), 4);
            u.q[2 * c] = _mm256_or_si256(_mm256_and_si256(x, m0f), h0);
            u.q[2 * c + 1] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(x, 4), m0f), h1);
        }
        u.d = h2f(b.d);
        u.dc = -h2f(b.dmin);
    }
};

struct KQ6 {
    using Block = BlockQ6_K;
    static constexpr bool kSigned = false, kBsums = true;
    TL_INLINE static void unpack(const Block & b, Unpacked & u) {
        const __m128i s8 = _mm_loadu_si128((const __m128i *) b.scales);
        scales_16(s8, true, u.sc);
        u.c16 = _mm256_cvtepi8_epi16(s8); // levels stored + 32
        const __m256i m0f = _mm256_set1_epi8(0x0f), m3 = _mm256_set1_epi8(3);
        #pragma GCC unroll 16
        for (int h = 0; h < 2; h++) {
            const __m256i l0 = loadu(b.ql + 64 * h), l1 = loadu(b.ql + 64 * h + 32), qh = loadu(b.qh + 32 * h);
            auto hb = [&](int k) { return _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * k), m3), 4); };
            u.q[4 * h + 0] = _mm256_or_si256(_mm256_and_si256(l0, m0f), hb(0));
            u.q[4 * h + 1] = _mm256_or_si256(_mm256_and_si256(l1, m0f), hb(1));
            u.q[4 * h + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m0f), hb(2));
            u.q[4 * h + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m0f), hb(3));
        }
        u.d = h2f(b.d);
        u.dc = -32.0f * u.d;
    }
};

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
        scales_16(s8, true, u.sc);
        u.c16 = _mm256_cvtepi8_epi16(s8); // levels stored + 4
        const __m256i m3 = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
        const __m256i hm = loadu(b.hmask);
        #pragma GCC unroll 16
        for (int h = 0; h < 2; h++) {
            const __m256i x = loadu(b.qs + 32 * h);
            #pragma GCC unroll 16
            for (int j = 0; j < 4; j++) {
                const __m256i lo = _mm256_and_si256(_mm256_srli_epi16(x, 2 * j), m3);
                const __m256i hb = _mm256_and_si256(_mm256_srli_epi16(hm, 4 * h + j), one);
                u.q[4 * h + j] = _mm256_or_si256(lo, _mm256_slli_epi16(hb, 2));
            }
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
        scales_16(_mm_and_si128(s, m0f), false, u.sc);
        u.c16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(s, 4), m0f));
        const __m256i m3 = _mm256_set1_epi8(3);
        #pragma GCC unroll 16
        for (int h = 0; h < 2; h++) {
            const __m256i x = loadu(b.qs + 32 * h);
            #pragma GCC unroll 16
            for (int j = 0; j < 4; j++) u.q[4 * h + j] = _mm256_and_si256(_mm256_srli_epi16(x, 2 * j), m3);
        }
        u.d = h2f(b.d);
        u.dc = -h2f(b.dmin);
    }
};

struct KIQ4XS {
    using Block = BlockIQ4_XS;
    static constexpr bool kSigned = true, kBsums = false;
    TL_INLINE static void unpack(const Block & b, Unpacked & u) {
        int16_t ls[8];
        #pragma GCC unroll 16
        for (int j = 0; j < 8; j++)
            ls[j] = (int16_t) ((((b.scales_l[j / 2] >> (4 * (j % 2))) & 15) | (((b.scales_h >> (2 * j)) & 3) << 4)) - 32);
        scales_32(_mm_loadu_si128((const __m128i *) ls), u.sc);
        const __m256i table = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *) kIQ4NLValues));
        #pragma GCC unroll 16
        for (int k = 0; k < 8; k++) {
            const __m256i w = _mm256_shuffle_epi8(table, nibbles16(b.qs + 16 * k));
            u.sg[k] = w;
            u.q[k] = _mm256_sign_epi8(w, w);
        }
        u.c16 = _mm256_setzero_si256();
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
        __m256 acc[T], bacc[T];
        #pragma GCC unroll 16
        for (int t = 0; t < T; t++) acc[t] = bacc[t] = _mm256_setzero_ps();
        for (int64_t i = 0; i < n / QK_K; i++) {
            #pragma GCC unroll 16
            for (int o = 0; o < (int) sizeof(typename W::Block); o += 64) prefetch(reinterpret_cast<const uint8_t *>(x + i) + o);
            Unpacked u;
            W::unpack(x[i], u);
            #pragma GCC unroll 16
            for (int t = 0; t < T; t++) {
                __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
                #pragma GCC unroll 16
                for (int k = 0; k < 8; k++) {
                    __m256i av = loadu(v[t][i].qs + 32 * k);
                    if (W::kSigned) av = _mm256_sign_epi8(av, u.sg[k]);
                    const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(u.q[k], av), u.sc[k]);
                    if (k & 1) s1 = _mm256_add_epi32(s1, p);
                    else s0 = _mm256_add_epi32(s0, p);
                }
                const float da = v[t][i].d;
                acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(s0, s1)), _mm256_set1_ps(u.d * da), acc[t]);
                if (W::kBsums) {
                    const __m256i bs = _mm256_madd_epi16(loadu(v[t][i].bsums), u.c16);
                    bacc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(bs), _mm256_set1_ps(u.dc * da), bacc[t]);
                }
            }
        }
        #pragma GCC unroll 16
        for (int t = 0; t < T; t++) out[t * ys] = hsum(_mm256_add_ps(acc[t], bacc[t]));
    }
};

Kernels make() {
    Kernels k{};
    k.name = "avx2";
    k.gemm[(int) Type::F32] = gemm<FloatRow<WF32, WF32>>;
    k.gemm[(int) Type::F16] = gemm<FloatRow<WF16, WF32>>;
    k.gemm[(int) Type::BF16] = gemm<FloatRow<WBF16, WBF16>>;
    k.gemm[(int) Type::Q8_0] = gemm<Q8_0Acts<WQ8_0>>;
    k.gemm[(int) Type::Q4_0] = gemm<Q8_0Acts<WQ4_0>>;
    k.gemm[(int) Type::Q5_0] = gemm<Q8_0Acts<WQ5_0>>;
    k.gemm[(int) Type::IQ4_NL] = gemm<Q8_0Acts<WIQ4_NL>>;
    k.gemm[(int) Type::Q4_1] = gemm<Q8_1Acts<WQ4_1>>;
    k.gemm[(int) Type::Q5_1] = gemm<Q8_1Acts<WQ5_1>>;
    k.gemm[(int) Type::Q2_K] = gemm<Q8KActs<KQ2>>;
    k.gemm[(int) Type::Q3_K] = gemm<Q8KActs<KQ3>>;
    k.gemm[(int) Type::Q4_K] = gemm<Q8KActs<KQ4>>;
    k.gemm[(int) Type::Q5_K] = gemm<Q8KActs<KQ5>>;
    k.gemm[(int) Type::Q6_K] = gemm<Q8KActs<KQ6>>;
    k.gemm[(int) Type::IQ4_XS] = gemm<Q8KActs<KIQ4XS>>;
    return k;
}

} // namespace

namespace detail {
const Kernels & avx2_kernels() {
    static const Kernels k = make(); // built on first use, after the CPU check
    return k;
}
} // namespace detail

} // namespace quant
} // namespace tl
