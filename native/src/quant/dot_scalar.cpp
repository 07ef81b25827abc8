// Portable dot products: the reference the SIMD kernel sets are tested against, and the fallback on CPUs without
// AVX2. Each block's integer sum is exact (int32); the float part is one multiply-add per block (two with a min /
// offset term), in block order. The algebra, per weight format (w = weight quants, a = activation quants):
//
//   Q8_0, Q4_0, Q5_0, IQ4_NL (x Q8_0):  dw * da * sum (w - offset) a
//   Q4_1, Q5_1 (x Q8_1):                dw * da * sum w a + m * s            (s = da * sum a, stored)
//   Q2_K, Q4_K, Q5_K (x Q8_K):          d * da * sum_j sc_j sum w a - dmin * da * sum_j m_j bsum_j
//   Q3_K, Q6_K, IQ4_XS (x Q8_K):        d * da * sum_j sc_j sum w a          (signed levels)
//   F32, F16 (x F32), BF16 (x BF16):    sum w a in f32, 8 partial sums
#include <cstring>

#include "quant/block_scales.h"
#include "quant/half.h"
#include "quant/kernels.h"

namespace tl {
namespace quant {

namespace {

// ---------------------------------------------------------------------------------------------- float rows

float dot_f32(int64_t n, const void * w, const void * a) {
    const float * x = static_cast<const float *>(w);
    const float * y = static_cast<const float *>(a);
    float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) s[k] += x[i + k] * y[i + k];
    for (; i < n; i++) s[0] += x[i] * y[i];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

float dot_f16(int64_t n, const void * w, const void * a) {
    const uint16_t * x = static_cast<const uint16_t *>(w);
    const float * y = static_cast<const float *>(a);
    float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) s[k] += f16_to_f32(x[i + k]) * y[i + k];
    for (; i < n; i++) s[0] += f16_to_f32(x[i]) * y[i];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

float dot_bf16(int64_t n, const void * w, const void * a) {
    const uint16_t * x = static_cast<const uint16_t *>(w);
    const uint16_t * y = static_cast<const uint16_t *>(a);
    float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) s[k] += bf16_to_f32(x[i + k]) * bf16_to_f32(y[i + k]);
    for (; i < n; i++) s[0] += bf16_to_f32(x[i]) * bf16_to_f32(y[i]);
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

// ---------------------------------------------------------------------------------------------- 32-element blocks

uint32_t load_u32(const uint8_t * p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

float dot_q8_0(int64_t n, const void * w, const void * a) {
    const BlockQ8_0 * x = static_cast<const BlockQ8_0 *>(w);
    const BlockQ8_0 * y = static_cast<const BlockQ8_0 *>(a);
    float sum = 0;
    for (int64_t i = 0; i < n / QK; i++) {
        int s = 0;
        for (int j = 0; j < QK; j++) s += x[i].qs[j] * y[i].qs[j];
        sum += f16_to_f32(x[i].d) * f16_to_f32(y[i].d) * (float) s;
    }
    return sum;
}

float dot_q4_0(int64_t n, const void * w, const void * a) {
    const BlockQ4_0 * x = static_cast<const BlockQ4_0 *>(w);
    const BlockQ8_0 * y = static_cast<const BlockQ8_0 *>(a);
    float sum = 0;
    for (int64_t i = 0; i < n / QK; i++) {
        int s = 0;
        for (int j = 0; j < 16; j++)
            s += ((x[i].qs[j] & 15) - 8) * y[i].qs[j] + ((x[i].qs[j] >> 4) - 8) * y[i].qs[j + 16];
        sum += f16_to_f32(x[i].d) * f16_to_f32(y[i].d) * (float) s;
    }
    return sum;
}

float dot_q5_0(int64_t n, const void * w, const void * a) {
    const BlockQ5_0 * x = static_cast<const BlockQ5_0 *>(w);
    const BlockQ8_0 * y = static_cast<const BlockQ8_0 *>(a);
    float sum = 0;
    for (int64_t i = 0; i < n / QK; i++) {
        const uint32_t qh = load_u32(x[i].qh);
        int s = 0;
        for (int j = 0; j < 16; j++) {
            const int lo = (x[i].qs[j] & 15) | (int) (((qh >> j) & 1u) << 4);
            const int hi = (x[i].qs[j] >> 4) | (int) (((qh >> (j + 16)) & 1u) << 4);
            s += (lo - 16) * y[i].qs[j] + (hi - 16) * y[i].qs[j + 16];
        }
        sum += f16_to_f32(x[i].d) * f16_to_f32(y[i].d) * (float) s;
    }
    return sum;
}

float dot_iq4_nl(int64_t n, const void * w, const void * a) {
    const BlockIQ4_NL * x = static_cast<const BlockIQ4_NL *>(w);
    const BlockQ8_0 * y = static_cast<const BlockQ8_0 *>(a);
    float sum = 0;
    for (int64_t i = 0; i < n / QK; i++) {
        int s = 0;
        for (int j = 0; j < 16; j++)
            s += kIQ4NLValues[x[i].qs[j] & 15] * y[i].qs[j] + kIQ4NLValues[x[i].qs[j] >> 4] * y[i].qs[j + 16];
        sum += f16_to_f32(x[i].d) * f16_to_f32(y[i].d) * (float) s;
    }
    return sum;
}

float dot_q4_1(int64_t n, const void * w, const void * a) {
    const BlockQ4_1 * x = static_cast<const BlockQ4_1 *>(w);
    const BlockQ8_1 * y = static_cast<const BlockQ8_1 *>(a);
    float sum = 0;
    for (int64_t i = 0; i < n / QK; i++) {
        int s = 0;
        for (int j = 0; j < 16; j++) s += (x[i].qs[j] & 15) * y[i].qs[j] + (x[i].qs[j] >> 4) * y[i].qs[j + 16];
        sum += f16_to_f32(x[i].d) * f16_to_f32(y[i].d) * (float) s + f16_to_f32(x[i].m) * f16_to_f32(y[i].s);
    }
    return sum;
}

float dot_q5_1(int64_t n, const void * w, const void * a) {
    const BlockQ5_1 * x = static_cast<const BlockQ5_1 *>(w);
    const BlockQ8_1 * y = static_cast<const BlockQ8_1 *>(a);
    float sum = 0;
    for (int64_t i = 0; i < n / QK; i++) {
        const uint32_t qh = load_u32(x[i].qh);
        int s = 0;
        for (int j = 0; j < 16; j++) {
            const int lo = (x[i].qs[j] & 15) | (int) (((qh >> j) & 1u) << 4);
            const int hi = (x[i].qs[j] >> 4) | (int) (((qh >> (j + 16)) & 1u) << 4);
            s += lo * y[i].qs[j] + hi * y[i].qs[j + 16];
        }
        sum += f16_to_f32(x[i].d) * f16_to_f32(y[i].d) * (float) s + f16_to_f32(x[i].m) * f16_to_f32(y[i].s);
    }
    return sum;
}

// ---------------------------------------------------------------------------------------------- super-blocks

float dot_q2_k(int64_t n, const void * w, const void * a) {
    const BlockQ2_K * x = static_cast<const BlockQ2_K *>(w);
    const BlockQ8_K * y = static_cast<const BlockQ8_K *>(a);
    float sum = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int isum = 0, msum = 0;
        for (int sb = 0; sb < 16; sb++) {
            const int half = sb / 8, j = (sb % 8) / 2, l0 = 16 * (sb % 2);
            int s = 0;
            for (int l = l0; l < l0 + 16; l++) s += ((x[i].qs[32 * half + l] >> (2 * j)) & 3) * y[i].qs[16 * sb + l - l0];
            isum += (x[i].scales[sb] & 15) * s;
            msum += (x[i].scales[sb] >> 4) * y[i].bsums[sb];
        }
        sum += y[i].d * (f16_to_f32(x[i].d) * (float) isum - f16_to_f32(x[i].dmin) * (float) msum);
    }
    return sum;
}

float dot_q3_k(int64_t n, const void * w, const void * a) {
    const BlockQ3_K * x = static_cast<const BlockQ3_K *>(w);
    const BlockQ8_K * y = static_cast<const BlockQ8_K *>(a);
    float sum = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int isum = 0;
        for (int sb = 0; sb < 16; sb++) {
            const int half = sb / 8, j = (sb % 8) / 2, l0 = 16 * (sb % 2);
            int s = 0;
            for (int l = l0; l < l0 + 16; l++) {
                const int lo = (x[i].qs[32 * half + l] >> (2 * j)) & 3;
                const int q = lo - (((x[i].hmask[l] >> (4 * half + j)) & 1) ? 0 : 4);
                s += q * y[i].qs[16 * sb + l - l0];
            }
            isum += k3_scale(x[i].scales, sb) * s;
        }
        sum += y[i].d * f16_to_f32(x[i].d) * (float) isum;
    }
    return sum;
}

float dot_q4_k(int64_t n, const void * w, const void * a) {
    const BlockQ4_K * x = static_cast<const BlockQ4_K *>(w);
    const BlockQ8_K * y = static_cast<const BlockQ8_K *>(a);
    float sum = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int isum = 0, msum = 0;
        for (int sb = 0; sb < 8; sb++) {
            const int c = sb / 2, shift = 4 * (sb % 2);
            int s = 0;
            for (int l = 0; l < 32; l++) s += ((x[i].qs[32 * c + l] >> shift) & 15) * y[i].qs[32 * sb + l];
            int sc, m;
            k4_scale_min(x[i].scales, sb, sc, m);
            isum += sc * s;
            msum += m * (y[i].bsums[2 * sb] + y[i].bsums[2 * sb + 1]);
        }
        sum += y[i].d * (f16_to_f32(x[i].d) * (float) isum - f16_to_f32(x[i].dmin) * (float) msum);
    }
    return sum;
}

float dot_q5_k(int64_t n, const void * w, const void * a) {
    const BlockQ5_K * x = static_cast<const BlockQ5_K *>(w);
    const BlockQ8_K * y = static_cast<const BlockQ8_K *>(a);
    float sum = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int isum = 0, msum = 0;
        for (int sb = 0; sb < 8; sb++) {
            const int c = sb / 2, shift = 4 * (sb % 2);
            int s = 0;
            for (int l = 0; l < 32; l++) {
                const int q = ((x[i].qs[32 * c + l] >> shift) & 15) | (((x[i].qh[l] >> sb) & 1) << 4);
                s += q * y[i].qs[32 * sb + l];
            }
            int sc, m;
            k4_scale_min(x[i].scales, sb, sc, m);
            isum += sc * s;
            msum += m * (y[i].bsums[2 * sb] + y[i].bsums[2 * sb + 1]);
        }
        sum += y[i].d * (f16_to_f32(x[i].d) * (float) isum - f16_to_f32(x[i].dmin) * (float) msum);
    }
    return sum;
}

float dot_q6_k(int64_t n, const void * w, const void * a) {
    const BlockQ6_K * x = static_cast<const BlockQ6_K *>(w);
    const BlockQ8_K * y = static_cast<const BlockQ8_K *>(a);
    float sum = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int isum = 0;
        for (int sb = 0; sb < 16; sb++) {
            const int h = sb / 8, quarter = (sb % 8) / 2, l0 = 16 * (sb % 2);
            int s = 0;
            for (int l = l0; l < l0 + 16; l++) {
                const uint8_t qlb = x[i].ql[64 * h + 32 * (quarter & 1) + l];
                const int lo = quarter < 2 ? (qlb & 15) : (qlb >> 4);
                const int hi = (x[i].qh[32 * h + l] >> (2 * quarter)) & 3;
                s += ((lo | (hi << 4)) - 32) * y[i].qs[16 * sb + l - l0];
            }
            isum += x[i].scales[sb] * s;
        }
        sum += y[i].d * f16_to_f32(x[i].d) * (float) isum;
    }
    return sum;
}

float dot_iq4_xs(int64_t n, const void * w, const void * a) {
    const BlockIQ4_XS * x = static_cast<const BlockIQ4_XS *>(w);
    const BlockQ8_K * y = static_cast<const BlockQ8_K *>(a);
    float sum = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int isum = 0;
        for (int sb = 0; sb < 8; sb++) {
            const uint8_t * qs = x[i].qs + 16 * sb;
            const int8_t * q8 = y[i].qs + 32 * sb;
            int s = 0;
            for (int j = 0; j < 16; j++) s += kIQ4NLValues[qs[j] & 15] * q8[j] + kIQ4NLValues[qs[j] >> 4] * q8[j + 16];
            isum += iq4xs_scale(x[i].scales_h, x[i].scales_l, sb) * s;
        }
        sum += y[i].d * f16_to_f32(x[i].d) * (float) isum;
    }
    return sum;
}

// ---------------------------------------------------------------------------------------------- table

template <float (*Dot)(int64_t, const void *, const void *)>
void gemm(int64_t n, const void * w, size_t w_stride, int64_t nrows, const void * a, size_t a_stride, int ntok,
          float * y, int64_t y_stride) {
    const uint8_t * wb = static_cast<const uint8_t *>(w);
    const uint8_t * ab = static_cast<const uint8_t *>(a);
    for (int64_t r = 0; r < nrows; r++)
        for (int j = 0; j < ntok; j++) y[j * y_stride + r] = Dot(n, wb + r * w_stride, ab + j * a_stride);
}

Kernels make_scalar() {
    Kernels k{};
    k.name = "scalar";
    k.gemm[(int) Type::F32] = gemm<dot_f32>;
    k.gemm[(int) Type::F16] = gemm<dot_f16>;
    k.gemm[(int) Type::BF16] = gemm<dot_bf16>;
    k.gemm[(int) Type::Q4_0] = gemm<dot_q4_0>;
    k.gemm[(int) Type::Q4_1] = gemm<dot_q4_1>;
    k.gemm[(int) Type::Q5_0] = gemm<dot_q5_0>;
    k.gemm[(int) Type::Q5_1] = gemm<dot_q5_1>;
    k.gemm[(int) Type::Q8_0] = gemm<dot_q8_0>;
    k.gemm[(int) Type::Q2_K] = gemm<dot_q2_k>;
    k.gemm[(int) Type::Q3_K] = gemm<dot_q3_k>;
    k.gemm[(int) Type::Q4_K] = gemm<dot_q4_k>;
    k.gemm[(int) Type::Q5_K] = gemm<dot_q5_k>;
    k.gemm[(int) Type::Q6_K] = gemm<dot_q6_k>;
    k.gemm[(int) Type::IQ4_NL] = gemm<dot_iq4_nl>;
    k.gemm[(int) Type::IQ4_XS] = gemm<dot_iq4_xs>;
    return k;
}

} // namespace

const Kernels & kernels_scalar() {
    static const Kernels k = make_scalar();
    return k;
}

} // namespace quant
} // namespace tl
