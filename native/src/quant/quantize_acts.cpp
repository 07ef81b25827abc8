// Activation quantization: symmetric per block, quants in -127..127. -128 is never produced because the SIMD
// kernels move the sign of a signed weight onto the activation (VPDPBUSD / PMADDUBSW take one unsigned operand),
// and -(-128) does not fit an int8.
//
// The scale is rounded to its stored precision first (f16 for Q8_0 / Q8_1; Q8_K keeps a float) and the quants are
// computed against the rounded scale, so the activation error is that of the stored scale, not of the unrounded one.
#include <cmath>
#include <cstring>

#include "quant/half.h"
#include "quant/quant.h"

namespace tl {
namespace quant {

namespace {

inline int round_clamp127(float v) {
    // Clamp before converting (a NaN activation becomes -127 instead of undefined behaviour), then round half to
    // even (the default rounding mode).
    const float c = v >= -127.0f ? (v <= 127.0f ? v : 127.0f) : -127.0f;
    return (int) std::nearbyint(c);
}

// Quantize 32 values; returns the f16 scale and the sum of the quants.
inline uint16_t q8_block(const float * x, int8_t * qs, int & sum) {
    float amax = 0.0f;
    for (int j = 0; j < QK; j++) amax = std::fmax(amax, std::fabs(x[j]));
    const uint16_t dh = f32_to_f16(amax / 127.0f);
    const float d = f16_to_f32(dh);
    const float id = d > 0.0f ? 1.0f / d : 0.0f;
    sum = 0;
    for (int j = 0; j < QK; j++) {
        const int q = round_clamp127(x[j] * id);
        qs[j] = (int8_t) q;
        sum += q;
    }
    return dh;
}

} // namespace

void quantize_acts_q8_0(const float * x, void * dst, int64_t n) {
    BlockQ8_0 * y = static_cast<BlockQ8_0 *>(dst);
    for (int64_t i = 0; i < n / QK; i++) {
        int sum;
        y[i].d = q8_block(x + i * QK, y[i].qs, sum);
    }
}

void quantize_acts_q8_1(const float * x, void * dst, int64_t n) {
    BlockQ8_1 * y = static_cast<BlockQ8_1 *>(dst);
    for (int64_t i = 0; i < n / QK; i++) {
        int sum;
        y[i].d = q8_block(x + i * QK, y[i].qs, sum);
        // s is d * sum(qs) with the stored d: the sum of the dequantized activations, to f16 precision.
        y[i].s = f32_to_f16(f16_to_f32(y[i].d) * (float) sum);
    }
}

void quantize_acts_q8_k(const float * x, void * dst, int64_t n) {
    BlockQ8_K * y = static_cast<BlockQ8_K *>(dst);
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        float amax = 0.0f;
        for (int j = 0; j < QK_K; j++) amax = std::fmax(amax, std::fabs(x[j]));
        const float d = amax / 127.0f;
        const float id = d > 0.0f ? 1.0f / d : 0.0f;
        y[i].d = d;
        for (int g = 0; g < QK_K / 16; g++) {
            int sum = 0;
            for (int j = 16 * g; j < 16 * g + 16; j++) {
                const int q = round_clamp127(x[j] * id);
                y[i].qs[j] = (int8_t) q;
                sum += q;
            }
            y[i].bsums[g] = (int16_t) sum;
        }
    }
}

void quantize_acts(Type act_type, const float * x, void * dst, int64_t n) {
    switch (act_type) {
    case Type::Q8_0: return quantize_acts_q8_0(x, dst, n);
    case Type::Q8_1: return quantize_acts_q8_1(x, dst, n);
    case Type::Q8_K: return quantize_acts_q8_k(x, dst, n);
    case Type::F32: std::memcpy(dst, x, (size_t) n * sizeof(float)); return;
    case Type::BF16: {
        uint16_t * y = static_cast<uint16_t *>(dst);
        for (int64_t i = 0; i < n; i++) y[i] = f32_to_bf16(x[i]);
        return;
    }
    default: return; // not an activation format (traits(t)->act_type never names one)
    }
}

} // namespace quant
} // namespace tl
