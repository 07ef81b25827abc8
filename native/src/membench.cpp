#include "membench.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

namespace tl {

namespace {
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
uint64_t
sum_words(const uint64_t * p, size_t n) {
    // Four independent accumulators so the loop is bound by loads, not by the add chain.
    uint64_t a = 0, b = 0, c = 0, d = 0;
    for (size_t i = 0; i + 4 <= n; i += 4) {
        a ^= p[i];
        b ^= p[i + 1];
        c ^= p[i + 2];
        d ^= p[i + 3];
    }
    return a ^ b ^ c ^ d;
}
} // namespace

double measure_read_bandwidth(int threads, size_t bytes, int repeats) {
    threads = std::max(1, threads);
    size_t words = bytes / 8 / threads / 4 * 4 * threads;
    uint64_t * buf = static_cast<uint64_t *>(std::aligned_alloc(64, words * 8));
    if (!buf) return 0.0;
    // Touch every page (and make the content non-zero) so the pass measures DRAM, not page faults.
    for (size_t i = 0; i < words; ++i) buf[i] = i * 0x9E3779B97F4A7C15ull;
    double best = 0.0;
    volatile uint64_t sink = 0;
    for (int r = 0; r < repeats; ++r) {
        std::vector<std::thread> ts;
        std::vector<uint64_t> out(threads);
        auto t0 = std::chrono::steady_clock::now();
        size_t per = words / threads;
        for (int t = 0; t < threads; ++t) ts.emplace_back([&, t] { out[t] = sum_words(buf + per * t, per); });
        for (auto & t : ts) t.join();
        double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        for (uint64_t v : out) sink = sink ^ v;
        best = std::max(best, (double) (per * threads * 8) / s / 1e9);
    }
    std::free(buf);
    return best;
}

} // namespace tl
