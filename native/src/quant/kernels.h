// Kernel sets of the quant library: one per instruction set (scalar, AVX2, AVX-512 VNNI), each a table of product
// functions indexed by weight type id. dispatch.cpp picks one at run time (__builtin_cpu_supports); every set
// computes the same integer sums per block and differs from the others only in float summation order.
//
// ODR caution (as in kernels/cpu/matmul_impl.h): dot_avx2.cpp and dot_avx512.cpp are compiled with -mavx2 /
// -mavx512*. An inline function or template with external linkage instantiated there could be picked by the linker
// for the portable files too and execute AVX-512 on a CPU without it. So the ISA files put everything in an anonymous
// namespace, use no std:: templates, and include only headers whose functions are static (types.h, half.h, this).
#pragma once
#include <cstddef>
#include <cstdint>

#include "quant/types.h"

namespace tl {
namespace quant {

// y[j * y_stride + r] = dot(W row r, activation row j) for r in [0, nrows), j in [0, ntok).
// w: first row, w_stride bytes apart; a: first activation row (in the type's act format), a_stride bytes apart.
// n: elements per row (a multiple of the block size).
using GemmFn = void (*)(int64_t n, const void * w, size_t w_stride, int64_t nrows, const void * a, size_t a_stride,
                        int ntok, float * y, int64_t y_stride);

struct Kernels {
    const char * name;            // "scalar", "avx2", "avx512"
    GemmFn gemm[kTypeCount];      // null where the type has no product
};

const Kernels & kernels();             // best on this CPU; TL_QUANT_KERNELS=scalar|avx2|avx512 forces one
const Kernels & kernels_scalar();
const Kernels * kernels_avx2();        // null when the CPU lacks AVX2 + FMA + F16C
const Kernels * kernels_avx512();      // null when the CPU lacks AVX-512 F/BW/VL/DQ/VNNI

namespace detail {
// Defined in the ISA files, called only by dispatch.cpp after the CPU check.
const Kernels & avx2_kernels();
const Kernels & avx512_kernels(bool has_bf16);
} // namespace detail

} // namespace quant
} // namespace tl
