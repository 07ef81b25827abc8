// Run-time choice of the quant kernel set, once per process. TL_QUANT_KERNELS=scalar|avx2|avx512 forces one (when
// this CPU can run it), for tests and for comparing sets on one machine.
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "quant/kernels.h"

namespace tl {
namespace quant {

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
    // dot_avx512.cpp is compiled with F/BW/VL/DQ/VNNI (+BF16, used only by the BF16 kernel when the CPU has it), so
    // the compiler may use any of those anywhere in the file: require all of them. libgcc also checks that the OS
    // saves the ZMM state.
    return have_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vnni");
#else
    return false;
#endif
}

bool have_avx512_bf16() {
#if defined(__x86_64__) || defined(__i386__)
    return have_avx512() && __builtin_cpu_supports("avx512bf16");
#else
    return false;
#endif
}

const Kernels & choose() {
    const Kernels * k512 = kernels_avx512();
    const Kernels * k2 = kernels_avx2();
    const char * env = std::getenv("TL_QUANT_KERNELS");
    if (env && *env) {
        if (std::strcmp(env, "scalar") == 0) return kernels_scalar();
        if (std::strcmp(env, "avx2") == 0 && k2) return *k2;
        if (std::strcmp(env, "avx512") == 0 && k512) return *k512;
        std::fprintf(stderr, "tuneloop: TL_QUANT_KERNELS=%s not available on this CPU; using the best available\n", env);
    }
    if (k512) return *k512;
    if (k2) return *k2;
    return kernels_scalar();
}

} // namespace

const Kernels * kernels_avx2() {
    static const bool ok = have_avx2();
    return ok ? &detail::avx2_kernels() : nullptr;
}

const Kernels * kernels_avx512() {
    static const bool ok = have_avx512();
    static const bool bf16 = have_avx512_bf16();
    return ok ? &detail::avx512_kernels(bf16) : nullptr;
}

const Kernels & kernels() {
    static const Kernels & k = choose();
    return k;
}

} // namespace quant
} // namespace tl
