// What this CPU can run, and the TL_*KERNELS override, shared by every kernel dispatcher (kernels/cpu/dispatch.cpp
// for the engine's own formats, quant/dispatch.cpp for the GGUF block formats), so both pick their sets by one rule.
#pragma once
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace tl {

// AVX2 + FMA + F16C: what the *_avx2.cpp files are compiled with.
inline bool cpu_has_avx2() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
#else
    return false;
#endif
}

// The AVX-512 files are compiled with F/BW/VL/DQ/VNNI (+BF16, which they execute only where cpu_has_avx512_bf16()
// says so), and the compiler may use any enabled extension anywhere in them: require all but BF16. libgcc also
// checks that the OS saves the ZMM state.
inline bool cpu_has_avx512() {
#if defined(__x86_64__) || defined(__i386__)
    return cpu_has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vnni");
#else
    return false;
#endif
}

inline bool cpu_has_avx512_bf16() {
#if defined(__x86_64__) || defined(__i386__)
    return cpu_has_avx512() && __builtin_cpu_supports("avx512bf16");
#else
    return false;
#endif
}

// The best of scalar / avx2 / avx512 (null where this CPU lacks it), unless the environment variable `env_name` asks
// for one by name (scalar|avx2|avx512): tests and side-by-side comparisons force a set that way.
template <class K>
const K & choose_kernel_set(const char * env_name, const K & scalar, const K * avx2, const K * avx512) {
    const char * env = std::getenv(env_name);
    if (env && *env) {
        if (std::strcmp(env, "scalar") == 0) return scalar;
        if (std::strcmp(env, "avx2") == 0 && avx2) return *avx2;
        if (std::strcmp(env, "avx512") == 0 && avx512) return *avx512;
        std::fprintf(stderr, "tuneloop: %s=%s not available on this CPU; using the best available\n", env_name, env);
    }
    if (avx512) return *avx512;
    if (avx2) return *avx2;
    return scalar;
}

} // namespace tl
