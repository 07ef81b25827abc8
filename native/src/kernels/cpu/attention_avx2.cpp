// AVX2 attention and activation kernels: attention_impl.h with 8 float lanes. Compiled with -mavx2 -mfma -mf16c
// (binding.gyp), called only after dispatch.cpp's CPU check. head_dim must be a multiple of 8, else the portable
// kernel runs.
#include <immintrin.h>

#include <cmath>

#include "matmul_impl.h"

namespace tl {
namespace {

struct O {
    using V = __m256;
    static constexpr int W = 8;
    static V zero() { return _mm256_setzero_ps(); }
    static V set1(float x) { return _mm256_set1_ps(x); }
    static V load(const float * p) { return _mm256_loadu_ps(p); }
    static void store(float * p, V v) { _mm256_storeu_ps(p, v); }
    static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
    static V add(V a, V b) { return _mm256_add_ps(a, b); }
    static V sub(V a, V b) { return _mm256_sub_ps(a, b); }
    static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
    static V div(V a, V b) { return _mm256_div_ps(a, b); }
    static V max(V a, V b) { return _mm256_max_ps(a, b); }
    static V neg_abs(V a) { return _mm256_or_ps(a, _mm256_set1_ps(-0.0f)); }
    static V select_neg(V g, V a, V b) {
        return _mm256_blendv_ps(a, b, _mm256_cmp_ps(g, _mm256_setzero_ps(), _CMP_LT_OQ));
    }
    static float hsum(V a) {
        __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
        s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        s = _mm_add_ss(s, _mm_movehdup_ps(s));
        return _mm_cvtss_f32(s);
    }
    static float hmax(V a) {
        __m128 s = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
        s = _mm_max_ps(s, _mm_movehl_ps(s, s));
        s = _mm_max_ss(s, _mm_movehdup_ps(s));
        return _mm_cvtss_f32(s);
    }
    // As the AVX-512 kernel, with 2^n built in the exponent bits (n >= -126 after the clamp, so always normal).
    static V exp_neg(V x) {
        x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
        const V n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        V r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
        r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
        V p = _mm256_set1_ps(1.9875691500e-4f);
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
        const V y = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
        const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
        return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
    }
    static V load_f16(const uint16_t * h) {
        return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(h)));
    }
    static V load_i8(const int8_t * q) {
        return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i *>(q))));
    }
};

#include "attention_impl.h"

} // namespace

namespace kern {
void attend_avx2(const AttnTask & t, float * scratch) {
    if (t.hd % O::W != 0 || t.hd_v % O::W != 0) return attend_scalar(t, scratch);
    attend_impl<O>(t, scratch);
}
void silu_mul_avx2(float * gate, const float * up, int64_t n) { silu_mul_impl<O>(gate, up, n); }
} // namespace kern
} // namespace tl
