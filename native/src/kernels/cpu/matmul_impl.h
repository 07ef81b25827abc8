// Internal declarations shared by the CPU kernel files (not part of the public kernels.h API).
//
// ODR caution: matmul_avx2.cpp and matmul_avx512.cpp are compiled with -mavx2 / -mavx512*. Any inline function or
// template that ends up out-of-line in one of them would be a weak symbol the linker may pick for the portable code
// too. So everything defined in this header has internal linkage (static), and the ISA files use no std:: templates.
#pragma once
#include <cstdint>
#include <cstring>

#include "kernels.h"

namespace tl {
namespace kern {

static inline float bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t) h << 16;
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}

// Round to nearest even; NaN stays a (quiet) NaN.
static inline uint16_t f32_to_bf16_rne(float f) {
    uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t) ((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t) (u >> 16);
}

// Zero points of the offset-binary weight formats.
constexpr int ZP_I8 = 128;
constexpr int ZP_I4 = 8;

// I4 group quantization variants (exposed for the accuracy test).
enum class I4Mode {
    Q4_0 = 0,    // scale = (signed value of max magnitude) / -8, q in [-8, 7] (ggml Q4_0)
    ABSMAX7 = 1, // scale = absmax / 7, q in [-7, 7]
    BEST = 2,    // per group, whichever of the two has the smaller squared error (the default)
};
// Quantize one group of 32 floats to 16 bytes of nibbles (Q4_0 layout) and return its scale.
float quantize_group_i4(const float * x, uint8_t * out16, I4Mode mode);
// Quantize one group of 32 floats to 32 offset-binary bytes (q + 128), scale = absmax / 127.
float quantize_group_i8(const float * x, uint8_t * out32);

// Attention and activation kernels, per ISA (attention_*.cpp).
void attend_scalar(const AttnTask & t, float * scratch);
void attend_avx2(const AttnTask & t, float * scratch);
void attend_avx512(const AttnTask & t, float * scratch);
void silu_mul_scalar(float * gate, const float * up, int64_t n);
void silu_mul_avx2(float * gate, const float * up, int64_t n);
void silu_mul_avx512(float * gate, const float * up, int64_t n);

// Kernel sets implemented in the ISA-specific files (only called after the CPU check in dispatch.cpp).
const CpuKernels & avx2_kernels();
const CpuKernels & avx512_kernels();
const CpuKernels & scalar_kernels();

} // namespace kern
} // namespace tl
