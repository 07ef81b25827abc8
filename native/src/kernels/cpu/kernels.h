// CPU kernels for the weight formats of qmatrix.h. One implementation per instruction set (scalar, AVX2,
// AVX-512 VNNI/BF16), chosen once at run time by cpu_kernels(); all produce the same result to float rounding.
#pragma once
#include <cstdint>

#include "qmatrix.h"

namespace tl {

// Build a QMatrix of `type` from f32 rows: src is float[rows][cols] (row stride = cols).
void qmatrix_from_f32(QMatrix & out, WeightType type, const float * src, int64_t rows, int64_t cols);
// Same, but filling rows [row_begin, row_end) of an already-allocated matrix (for parallel loading).
void qmatrix_alloc(QMatrix & out, WeightType type, int64_t rows, int64_t cols);
void qmatrix_set_rows(QMatrix & out, const float * src, int64_t row_begin, int64_t row_end);
// Decode one row back to f32 (for tests and the reference path). dst has `cols` floats.
void qmatrix_get_row(const QMatrix & m, int64_t row, float * dst);

// Quantize n rows of activations (x: float[n][cols]) for an I8/I4 product.
void qacts_quantize(QActs & out, const float * x, int n, int64_t cols, int64_t cols_padded);

struct CpuKernels {
    const char * name;
    // y[t][r] = dot(W[r], x[t]) for t in [0, n), r in [row_begin, row_end).
    // x: float[n][cols] (used by F32/BF16); xq: quantized x (used by I8/I4, may be null otherwise).
    // y: float[n][y_stride]; row r of W writes y[t * y_stride + r].
    void (*matmul)(const QMatrix & W, const float * x, const QActs * xq, float * y, int64_t y_stride, int n,
                   int64_t row_begin, int64_t row_end);
};

const CpuKernels & cpu_kernels(); // best available on this CPU (TL_KERNELS env can force one)
const CpuKernels & cpu_kernels_scalar();
const CpuKernels * cpu_kernels_avx2();   // null if the CPU lacks AVX2+FMA
const CpuKernels * cpu_kernels_avx512(); // null if the CPU lacks AVX-512 F/BW/VL/VNNI

} // namespace tl
