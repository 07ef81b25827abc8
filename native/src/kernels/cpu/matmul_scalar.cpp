// Portable reference kernels for all weight formats. Also the fallback on CPUs without AVX2.
// Accumulates in double so that it can serve as the reference the vector kernels are tested against.
#include "matmul_impl.h"

namespace tl {
namespace {

void mm_f32(const QMatrix & W, const float * x, float * y, int64_t ys, int n, int64_t rb, int64_t re) {
    const int64_t cols = W.cols;
    for (int64_t r = rb; r < re; r++) {
        const float * w = (const float *) W.data.data() + r * cols;
        for (int t = 0; t < n; t++) {
            const float * xt = x + (int64_t) t * cols;
            double acc = 0.0;
            for (int64_t c = 0; c < cols; c++) acc += (double) w[c] * (double) xt[c];
            y[(int64_t) t * ys + r] = (float) acc;
        }
    }
}

void mm_bf16(const QMatrix & W, const float * x, float * y, int64_t ys, int n, int64_t rb, int64_t re) {
    const int64_t cols = W.cols;
    for (int64_t r = rb; r < re; r++) {
        const uint16_t * w = (const uint16_t *) W.data.data() + r * cols;
        for (int t = 0; t < n; t++) {
            const float * xt = x + (int64_t) t * cols;
            double acc = 0.0;
            for (int64_t c = 0; c < cols; c++) acc += (double) kern::bf16_to_f32(w[c]) * (double) xt[c];
            y[(int64_t) t * ys + r] = (float) acc;
        }
    }
}

template <bool I4>
void mm_q(const QMatrix & W, const QActs & xq, float * y, int64_t ys, int n, int64_t rb, int64_t re) {
    const int64_t ng = W.n_groups(), cp = W.cols_padded;
    const size_t rbytes = W.row_bytes();
    const int zp = I4 ? kern::ZP_I4 : kern::ZP_I8;
    for (int64_t r = rb; r < re; r++) {
        const uint8_t * w = W.data.data() + (size_t) r * rbytes;
        const float * sw = (const float *) W.scales.data() + r * ng;
        for (int t = 0; t < n; t++) {
            const int8_t * a = (const int8_t *) xq.q.data() + (int64_t) t * cp;
            const float * sa = (const float *) xq.scales.data() + (int64_t) t * ng;
            const int32_t * sm = (const int32_t *) xq.sums.data() + (int64_t) t * ng;
            double acc = 0.0;
            for (int64_t g = 0; g < ng; g++) {
                int32_t d = 0;
                const int8_t * ag = a + g * QK;
                if (I4) {
                    const uint8_t * wg = w + g * (QK / 2);
                    for (int i = 0; i < QK / 2; i++)
                        d += (int32_t) (wg[i] & 0x0F) * ag[i] + (int32_t) (wg[i] >> 4) * ag[i + QK / 2];
                } else {
                    const uint8_t * wg = w + g * QK;
                    for (int i = 0; i < QK; i++) d += (int32_t) wg[i] * ag[i];
                }
                d -= zp * sm[g];
                acc += (double) (sw[g] * sa[g]) * (double) d;
            }
            y[(int64_t) t * ys + r] = (float) acc;
        }
    }
}

void matmul_scalar(const QMatrix & W, const float * x, const QActs * xq, float * y, int64_t y_stride, int n,
                   int64_t row_begin, int64_t row_end) {
    switch (W.type) {
        case WeightType::F32: mm_f32(W, x, y, y_stride, n, row_begin, row_end); break;
        case WeightType::BF16: mm_bf16(W, x, y, y_stride, n, row_begin, row_end); break;
        case WeightType::I8: mm_q<false>(W, *xq, y, y_stride, n, row_begin, row_end); break;
        case WeightType::I4: mm_q<true>(W, *xq, y, y_stride, n, row_begin, row_end); break;
        case WeightType::BLOCKS: break; // GGUF blocks: quant::matmul (layers.cpp)
    }
}

} // namespace

namespace kern {
const CpuKernels & scalar_kernels() {
    static const CpuKernels k{"scalar", matmul_scalar, attend_scalar, silu_mul_scalar};
    return k;
}
} // namespace kern

const CpuKernels & cpu_kernels_scalar() { return kern::scalar_kernels(); }

} // namespace tl
