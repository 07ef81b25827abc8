// IEEE fp16 and bfloat16 <-> f32, portable (no F16C), exact in the f16 -> f32 direction and round-to-nearest-even
// in the other, NaN kept NaN. Every function is `static inline` so that a copy compiled with -mavx512* in one file
// can never be picked by the linker for the portable files (see kernels.h).
#pragma once
#include <cstdint>
#include <cstring>

namespace tl {
namespace quant {

static inline float bits_to_f32(uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
static inline uint32_t f32_to_bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}

static inline float f16_to_f32(uint16_t h) {
    const uint32_t sign = (uint32_t) (h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1f;
    const uint32_t man = h & 0x3ffu;
    if (exp == 0x1f) return bits_to_f32(sign | 0x7f800000u | (man << 13)); // Inf / NaN (payload kept)
    if (exp != 0) return bits_to_f32(sign | ((exp + 112) << 23) | (man << 13));
    if (man == 0) return bits_to_f32(sign);
    // Subnormal: man * 2^-24, exact in f32.
    const float v = (float) man * (1.0f / 16777216.0f);
    return sign ? -v : v;
}

static inline uint16_t f32_to_f16(float f) {
    const uint32_t u = f32_to_bits(f);
    const uint16_t sign = (uint16_t) ((u >> 16) & 0x8000u);
    const uint32_t a = u & 0x7fffffffu;
    if (a >= 0x7f800000u) return (uint16_t) (sign | 0x7c00u | (a > 0x7f800000u ? 0x200u : 0u)); // Inf / NaN
    if (a >= 0x477ff000u) return (uint16_t) (sign | 0x7c00u); // rounds to >= 65520: overflow to Inf
    if (a >= 0x38800000u) {                                   // normal f16 range (>= 2^-14)
        // Re-bias the exponent, then round the 13 dropped mantissa bits to nearest even.
        const uint32_t v = a - 0x38000000u; // exponent 127 -> 15
        const uint32_t r = v + 0xfffu + ((v >> 13) & 1u);
        return (uint16_t) (sign | (r >> 13));
    }
    // Subnormal or zero: value / 2^-24 rounded to nearest even (may round up into the smallest normal, which the
    // bit pattern then already encodes correctly).
    const float scaled = bits_to_f32(a) * 16777216.0f; // exact (power of two)
    uint32_t m = (uint32_t) scaled;
    const float frac = scaled - (float) m;
    if (frac > 0.5f || (frac == 0.5f && (m & 1u))) m++;
    return (uint16_t) (sign | m);
}

static inline float bf16_to_f32(uint16_t h) { return bits_to_f32((uint32_t) h << 16); }

static inline uint16_t f32_to_bf16(float f) {
    const uint32_t u = f32_to_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t) ((u >> 16) | 0x40u); // quiet NaN, never rounds to Inf
    return (uint16_t) ((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

// True when an f16 bit pattern is Inf or NaN (exponent all ones).
static inline bool f16_is_nonfinite(uint16_t h) { return (h & 0x7c00u) == 0x7c00u; }
static inline bool bf16_is_nonfinite(uint16_t h) { return (h & 0x7f80u) == 0x7f80u; }
static inline bool f32_is_nonfinite(float f) { return (f32_to_bits(f) & 0x7f800000u) == 0x7f800000u; }

} // namespace quant
} // namespace tl
