// Run-time choice of the quant kernel set, once per process. TL_QUANT_KERNELS=scalar|avx2|avx512 forces one (when
// this CPU can run it), for tests and for comparing sets on one machine.
#include "cpu_features.h"
#include "quant/kernels.h"

namespace tl {
namespace quant {

namespace {

const Kernels & choose() {
    return choose_kernel_set("TL_QUANT_KERNELS", kernels_scalar(), kernels_avx2(), kernels_avx512());
}

} // namespace

const Kernels * kernels_avx2() {
    static const bool ok = cpu_has_avx2();
    return ok ? &detail::avx2_kernels() : nullptr;
}

const Kernels * kernels_avx512() {
    static const bool ok = cpu_has_avx512();
    static const bool bf16 = cpu_has_avx512_bf16();
    return ok ? &detail::avx512_kernels(bf16) : nullptr;
}

const Kernels & kernels() {
    static const Kernels & k = choose();
    return k;
}

} // namespace quant
} // namespace tl
