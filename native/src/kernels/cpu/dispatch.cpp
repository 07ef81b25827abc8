// Run-time choice of the CPU kernel set. TL_KERNELS=scalar|avx2|avx512 forces one (if this CPU supports it).
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "matmul_impl.h"

namespace tl {
namespace {

bool have_avx2() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
#else
    return false;
#endif
}

bool have_avx512() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    // The AVX-512 file is compiled with F/BW/VL/DQ/VNNI/BF16; it only executes F/BW/VL/DQ/VNNI instructions (BF16
    // weights are widened with shifts), but the compiler may use any enabled extension, so require all but BF16
    // (absent on Ice Lake, which has the rest). libgcc also checks that the OS saves the ZMM state.
    return have_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vnni");
#else
    return false;
#endif
}

const CpuKernels & choose() {
    const CpuKernels * k512 = cpu_kernels_avx512();
    const CpuKernels * k2 = cpu_kernels_avx2();
    const char * env = std::getenv("TL_KERNELS");
    if (env && *env) {
        if (std::strcmp(env, "scalar") == 0) return cpu_kernels_scalar();
        if (std::strcmp(env, "avx2") == 0 && k2) return *k2;
        if (std::strcmp(env, "avx512") == 0 && k512) return *k512;
        std::fprintf(stderr, "tuneloop: TL_KERNELS=%s not available on this CPU; using the best available\n", env);
    }
    if (k512) return *k512;
    if (k2) return *k2;
    return cpu_kernels_scalar();
}

} // namespace

const CpuKernels * cpu_kernels_avx2() {
    static const bool ok = have_avx2();
    return ok ? &kern::avx2_kernels() : nullptr;
}

const CpuKernels * cpu_kernels_avx512() {
    static const bool ok = have_avx512();
    return ok ? &kern::avx512_kernels() : nullptr;
}

const CpuKernels & cpu_kernels() {
    static const CpuKernels & k = choose();
    return k;
}

} // namespace tl
