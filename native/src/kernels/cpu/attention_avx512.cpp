// AVX-512 attention and activation kernels: attention_impl.h with 16 float lanes. Compiled with -mavx512* (binding.gyp),
// called only after dispatch.cpp's CPU check. head_dim must be a multiple of 16, else the portable kernel runs.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>

#include <cmath>

#include "matmul_impl.h"

namespace tl {
namespace {

struct O {
    using V = __m512;
    static constexpr int W = 16;
    static V zero() { return _mm512_setzero_ps(); }
    static V set1(float x) { return _mm512_set1_ps(x); }
    static V load(const float * p) { return _mm512_loadu_ps(p); }
    static void store(float * p, V v) { _mm512_storeu_ps(p, v); }
    static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
    static V add(V a, V b) { return _mm512_add_ps(a, b); }
    static V sub(V a, V b) { return _mm512_sub_ps(a, b); }
    static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
    static V div(V a, V b) { return _mm512_div_ps(a, b); }
    static V max(V a, V b) { return _mm512_max_ps(a, b); }
    static V neg_abs(V a) {
        return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(a), _mm512_set1_epi32(INT32_MIN)));
    }
    static V select_neg(V g, V a, V b) {
        return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(g, _mm512_setzero_ps(), _CMP_LT_OQ), a, b);
    }
    static float hsum(V a) { return _mm512_reduce_add_ps(a); }
    static float hmax(V a) { return _mm512_reduce_max_ps(a); }
    // e^x = 2^n * e^r, n = round(x / ln 2), |r| <= ln2 / 2, e^r by Cephes' degree-6 polynomial (~1 ulp).
    static V exp_neg(V x) {
        x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
        const V n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        V r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
        r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
        V p = _mm512_set1_ps(1.9875691500e-4f);
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
        const V y = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
        return _mm512_scalef_ps(y, n);
    }
    static V load_f16(const uint16_t * h) {
        return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(h)));
    }
    static V load_i8(const int8_t * q) {
        return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i *>(q))));
    }
};

#include "attention_impl.h"

} // namespace

namespace kern {
void attend_avx512(const AttnTask & t, float * scratch) {
    if (t.hd % O::W != 0 || t.hd_v % O::W != 0) return attend_scalar(t, scratch);
    attend_impl<O>(t, scratch);
}
void silu_mul_avx512(float * gate, const float * up, int64_t n) { silu_mul_impl<O>(gate, up, n); }
} // namespace kern
} // namespace tl
