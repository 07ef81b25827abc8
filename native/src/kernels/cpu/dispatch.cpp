// Run-time choice of the CPU kernel set. TL_KERNELS=scalar|avx2|avx512 forces one (if this CPU supports it).
#include "cpu_features.h"
#include "matmul_impl.h"

namespace tl {
namespace {

const CpuKernels & choose() {
    return choose_kernel_set("TL_KERNELS", cpu_kernels_scalar(), cpu_kernels_avx2(), cpu_kernels_avx512());
}

} // namespace

const CpuKernels * cpu_kernels_avx2() {
    static const bool ok = cpu_has_avx2();
    return ok ? &kern::avx2_kernels() : nullptr;
}

const CpuKernels * cpu_kernels_avx512() {
    static const bool ok = cpu_has_avx512();
    return ok ? &kern::avx512_kernels() : nullptr;
}

const CpuKernels & cpu_kernels() {
    static const CpuKernels & k = choose();
    return k;
}

} // namespace tl
