// Portable attention and activation kernels (the W = 1 instance of attention_impl.h), and the scratch size.
#include <cmath>

#include "matmul_impl.h"
#include "quant/half.h"

namespace tl {
namespace {

struct O {
    using V = float;
    static constexpr int W = 1;
    static V zero() { return 0.0f; }
    static V set1(float x) { return x; }
    static V load(const float * p) { return *p; }
    static void store(float * p, V v) { *p = v; }
    static V fma(V a, V b, V c) { return a * b + c; }
    static V add(V a, V b) { return a + b; }
    static V sub(V a, V b) { return a - b; }
    static V mul(V a, V b) { return a * b; }
    static V div(V a, V b) { return a / b; }
    static V max(V a, V b) { return a > b ? a : b; }
    static V neg_abs(V a) { return -std::fabs(a); }
    static V select_neg(V g, V a, V b) { return g < 0 ? b : a; }
    static float hsum(V a) { return a; }
    static float hmax(V a) { return a; }
    static V exp_neg(V x) { return std::exp(x); }
    static V load_f16(const uint16_t * h) { return quant::f16_to_f32(*h); }
    static V load_i8(const int8_t * q) { return (float) *q; }
};

#include "attention_impl.h"

} // namespace

size_t attn_scratch_floats(int rows, int n_ctx, int hd) { return (size_t) rows * n_ctx + (size_t) KV_CHUNK * hd; }

namespace kern {
void attend_scalar(const AttnTask & t, float * scratch) { attend_impl<O>(t, scratch); }
void silu_mul_scalar(float * gate, const float * up, int64_t n) { silu_mul_impl<O>(gate, up, n); }
} // namespace kern
} // namespace tl
