// Reference dequantization: the value each block encodes, written as directly from the layout (types.h) as possible.
// It is the definition the tests hold every quantizer and dot product to, so it favours clarity over speed.
#include <cstring>

#include "quant/block_scales.h"
#include "quant/half.h"
#include "quant/quant.h"

namespace tl {
namespace quant {

namespace {

void deq_q4_0(const BlockQ4_0 * b, float * y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, y += QK) {
        const float d = f16_to_f32(b[i].d);
        for (int j = 0; j < 16; j++) {
            y[j] = d * (float) ((b[i].qs[j] & 0x0f) - 8);
            y[j + 16] = d * (float) ((b[i].qs[j] >> 4) - 8);
        }
    }
}

void deq_q4_1(const BlockQ4_1 * b, float * y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, y += QK) {
        const float d = f16_to_f32(b[i].d), m = f16_to_f32(b[i].m);
        for (int j = 0; j < 16; j++) {
            y[j] = d * (float) (b[i].qs[j] & 0x0f) + m;
            y[j + 16] = d * (float) (b[i].qs[j] >> 4) + m;
        }
    }
}

uint32_t load_qh(const uint8_t qh[4]) {
    uint32_t v;
    std::memcpy(&v, qh, 4); // little-endian, as GGUF
    return v;
}

void deq_q5_0(const BlockQ5_0 * b, float * y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, y += QK) {
        const float d = f16_to_f32(b[i].d);
        const uint32_t qh = load_qh(b[i].qh);
        for (int j = 0; j < 16; j++) {
            const int lo = (b[i].qs[j] & 0x0f) | (int) (((qh >> j) & 1u) << 4);
            const int hi = (b[i].qs[j] >> 4) | (int) (((qh >> (j + 16)) & 1u) << 4);
            y[j] = d * (float) (lo - 16);
            y[j + 16] = d * (float) (hi - 16);
        }
    }
}

void deq_q5_1(const BlockQ5_1 * b, float * y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, y += QK) {
        const float d = f16_to_f32(b[i].d), m = f16_to_f32(b[i].m);
        const uint32_t qh = load_qh(b[i].qh);
        for (int j = 0; j < 16; j++) {
            const int lo = (b[i].qs[j] & 0x0f) | (int) (((qh >> j) & 1u) << 4);
            const int hi = (b[i].qs[j] >> 4) | (int) (((qh >> (j + 16)) & 1u) << 4);
            y[j] = d * (float) lo + m;
            y[j + 16] = d * (float) hi + m;
        }
    }
}

void deq_q8_0(const BlockQ8_0 * b, float * y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, y += QK) {
        const float d = f16_to_f32(b[i].d);
        for (int j = 0; j < QK; j++) y[j] = d * (float) b[i].qs[j];
    }
}

void deq_q8_1(const BlockQ8_1 * b, float * y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, y += QK) {
        const float d = f16_to_f32(b[i].d);
        for (int j = 0; j < QK; j++) y[j] = d * (float) b[i].qs[j];
    }
}

void deq_q2_k(const BlockQ2_K * b, float * y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, y += QK_K) {
        const float d = f16_to_f32(b[i].d), dmin = f16_to_f32(b[i].dmin);
        for (int e = 0; e < QK_K; e++) {
            const int half = e / 128, j = (e % 128) / 32, l = e % 32;
            const int q = (b[i].qs[32 * half + l] >> (2 * j)) & 3;
            const int s = b[i].scales[e / 16];
            y[e] = d * (float) (s & 0x0f) * (float) q - dmin * (float) (s >> 4);
        }
    }
}

void deq_q3_k(const BlockQ3_K * b, float * y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, y += QK_K) {
        const float d = f16_to_f32(b[i].d);
        for (int e = 0; e < QK_K; e++) {
            const int half = e / 128, j = (e % 128) / 32, l = e % 32;
            const int lo = (b[i].qs[32 * half + l] >> (2 * j)) & 3;
            const int hbit = (b[i].hmask[l] >> (4 * half + j)) & 1;
            const int q = lo - (hbit ? 0 : 4);
            y[e] = d * (float) k3_scale(b[i].scales, e / 16) * (float) q;
        }
    }
}

void deq_q4_k(const BlockQ4_K * b, float * y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, y += QK_K) {
        const float d = f16_to_f32(b[i].d), dmin = f16_to_f32(b[i].dmin);
        for (int e = 0; e < QK_K; e++) {
            const int c = e / 64, l = e % 32, high = (e % 64) / 32;
            const int q = high ? (b[i].qs[32 * c + l] >> 4) : (b[i].qs[32 * c + l] & 0x0f);
            int sc, m;
            k4_scale_min(b[i].scales, e / 32, sc, m);
            y[e] = d * (float) sc * (float) q - dmin * (float) m;
        }
    }
}

void deq_q5_k(const BlockQ5_K * b, float * y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, y += QK_K) {
        const float d = f16_to_f32(b[i].d), dmin = f16_to_f32(b[i].dmin);
        for (int e = 0; e < QK_K; e++) {
            const int c = e / 64, l = e % 32, high = (e % 64) / 32;
            const int lo = high ? (b[i].qs[32 * c + l] >> 4) : (b[i].qs[32 * c + l] & 0x0f);
            const int q = lo | (((b[i].qh[l] >> (2 * c + high)) & 1) << 4);
            int sc, m;
            k4_scale_min(b[i].scales, e / 32, sc, m);
            y[e] = d * (float) sc * (float) q - dmin * (float) m;
        }
    }
}

void deq_q6_k(const BlockQ6_K * b, float * y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, y += QK_K) {
        const float d = f16_to_f32(b[i].d);
        for (int e = 0; e < QK_K; e++) {
            const int h = e / 128, r = e % 128, quarter = r / 32, l = r % 32;
            const uint8_t qlb = b[i].ql[64 * h + 32 * (quarter & 1) + l];
            const int lo = (quarter < 2) ? (qlb & 0x0f) : (qlb >> 4);
            const int hi = (b[i].qh[32 * h + l] >> (2 * quarter)) & 3;
            const int q = (lo | (hi << 4)) - 32;
            y[e] = d * (float) b[i].scales[e / 16] * (float) q;
        }
    }
}

void deq_q8_k(const BlockQ8_K * b, float * y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, y += QK_K)
        for (int e = 0; e < QK_K; e++) y[e] = b[i].d * (float) b[i].qs[e];
}

void deq_iq4_nl(const BlockIQ4_NL * b, float * y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, y += QK) {
        const float d = f16_to_f32(b[i].d);
        for (int j = 0; j < 16; j++) {
            y[j] = d * (float) kIQ4NLValues[b[i].qs[j] & 0x0f];
            y[j + 16] = d * (float) kIQ4NLValues[b[i].qs[j] >> 4];
        }
    }
}

void deq_iq4_xs(const BlockIQ4_XS * b, float * y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = f16_to_f32(b[i].d);
        for (int s = 0; s < 8; s++, y += 32) {
            const float dl = d * (float) iq4xs_scale(b[i].scales_h, b[i].scales_l, s);
            const uint8_t * qs = b[i].qs + 16 * s;
            for (int j = 0; j < 16; j++) {
                y[j] = dl * (float) kIQ4NLValues[qs[j] & 0x0f];
                y[j + 16] = dl * (float) kIQ4NLValues[qs[j] >> 4];
            }
        }
    }
}

} // namespace

void dequantize_row(Type t, const void * src, float * dst, int64_t n) {
    switch (t) {
    case Type::F32: std::memcpy(dst, src, (size_t) n * 4); return;
    case Type::F16: {
        const uint16_t * s = static_cast<const uint16_t *>(src);
        for (int64_t i = 0; i < n; i++) dst[i] = f16_to_f32(s[i]);
        return;
    }
    case Type::BF16: {
        const uint16_t * s = static_cast<const uint16_t *>(src);
        for (int64_t i = 0; i < n; i++) dst[i] = bf16_to_f32(s[i]);
        return;
    }
    case Type::Q4_0: return deq_q4_0(static_cast<const BlockQ4_0 *>(src), dst, n / QK);
    case Type::Q4_1: return deq_q4_1(static_cast<const BlockQ4_1 *>(src), dst, n / QK);
    case Type::Q5_0: return deq_q5_0(static_cast<const BlockQ5_0 *>(src), dst, n / QK);
    case Type::Q5_1: return deq_q5_1(static_cast<const BlockQ5_1 *>(src), dst, n / QK);
    case Type::Q8_0: return deq_q8_0(static_cast<const BlockQ8_0 *>(src), dst, n / QK);
    case Type::Q8_1: return deq_q8_1(static_cast<const BlockQ8_1 *>(src), dst, n / QK);
    case Type::Q2_K: return deq_q2_k(static_cast<const BlockQ2_K *>(src), dst, n / QK_K);
    case Type::Q3_K: return deq_q3_k(static_cast<const BlockQ3_K *>(src), dst, n / QK_K);
    case Type::Q4_K: return deq_q4_k(static_cast<const BlockQ4_K *>(src), dst, n / QK_K);
    case Type::Q5_K: return deq_q5_k(static_cast<const BlockQ5_K *>(src), dst, n / QK_K);
    case Type::Q6_K: return deq_q6_k(static_cast<const BlockQ6_K *>(src), dst, n / QK_K);
    case Type::Q8_K: return deq_q8_k(static_cast<const BlockQ8_K *>(src), dst, n / QK_K);
    case Type::IQ4_NL: return deq_iq4_nl(static_cast<const BlockIQ4_NL *>(src), dst, n / QK);
    case Type::IQ4_XS: return deq_iq4_xs(static_cast<const BlockIQ4_XS *>(src), dst, n / QK_K);
    default:
        // No reference for this type (see formats.cpp Support): callers check is_native_weight_type() first.
        for (int64_t i = 0; i < n; i++) dst[i] = 0.0f;
        return;
    }
}

} // namespace quant
} // namespace tl
