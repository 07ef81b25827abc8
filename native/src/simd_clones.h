// TL_CLONES: on GCC/x86-64, emit AVX-512, AVX2 and baseline versions of a function, picked at load time, so that the
// portable build still vectorises norms and element-wise loops on the CPU it runs on.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define TL_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define TL_CLONES
#endif
