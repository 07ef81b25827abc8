#include "tensor_convert.h"

#include <cstring>

#include "quant/quant.h"

// clang before 16 does not know __builtin_cpu_supports("f16c"): there (the libFuzzer build, native/fuzz/run.sh)
// F16 rows take the portable path.
#if defined(__x86_64__) && defined(__GNUC__) && !(defined(__clang__) && __clang_major__ < 16)
#include <immintrin.h>
#define TL_HAVE_F16C_PATH 1
#endif

namespace tl {

#ifdef TL_HAVE_F16C_PATH
// Loading a 1.1B-parameter F16 file decodes ~1.1e9 halves: the F16C instruction does 8 per cycle where the portable
// path takes a few ns each. Compiled for F16C only here and chosen at run time.
__attribute__((target("avx,f16c"))) static void f16_row_f16c(const uint8_t * src, float * dst, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i *>(src + 2 * i));
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
    }
    for (; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = fp16_to_f32(h);
    }
}

static bool cpu_has_f16c() {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx") && __builtin_cpu_supports("f16c");
}
#endif

float fp16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t) (h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else { // subnormal: normalise
            exp = 127 - 15 + 1;
            while ((mant & 0x400) == 0) {
                mant <<= 1;
                --exp;
            }
            mant &= 0x3ff;
            bits = sign | (exp << 23) | (mant << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000 | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

uint16_t f32_to_fp16(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    int32_t exp = (int32_t) ((x >> 23) & 0xff) - 127 + 15;
    uint32_t mant = x & 0x7fffff;
    if (((x >> 23) & 0xff) == 0xff) return (uint16_t) (sign | 0x7c00 | (mant ? 0x200 : 0));
    if (exp >= 31) return (uint16_t) (sign | 0x7c00);
    if (exp <= 0) {
        if (exp < -10) return (uint16_t) sign;
        mant |= 0x800000;
        uint32_t shift = (uint32_t) (14 - exp);
        uint32_t half = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) ++half;
        return (uint16_t) (sign | half);
    }
    uint32_t half = sign | ((uint32_t) exp << 10) | (mant >> 13);
    uint32_t rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) ++half; // may carry into the exponent: still correct
    return (uint16_t) half;
}

float bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t) h << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

uint16_t f32_to_bf16(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    if ((x & 0x7fffffff) > 0x7f800000) return (uint16_t) ((x >> 16) | 0x40); // quiet NaN
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t) (x >> 16);
}

void dequantize_row(uint32_t type, const uint8_t * src, float * dst, int64_t n) {
    switch ((quant::Type) type) {
        case quant::Type::F32: std::memcpy(dst, src, 4 * n); return;
        case quant::Type::F16:
#ifdef TL_HAVE_F16C_PATH
        {
            static const bool f16c = cpu_has_f16c();
            if (f16c) return f16_row_f16c(src, dst, n);
        }
#endif
            for (int64_t i = 0; i < n; ++i) {
                uint16_t h;
                std::memcpy(&h, src + 2 * i, 2);
                dst[i] = fp16_to_f32(h);
            }
            return;
        default:
            if (!quant::is_native_weight_type((quant::Type) type))
                fail(ErrorCode::UNSUPPORTED_TENSOR_TYPE,
                     std::string("cannot decode ggml type id ") + std::to_string(type));
            quant::dequantize_row((quant::Type) type, src, dst, n);
            return;
    }
}

} // namespace tl
