// A memory-read probe for the roofline of the benchmarks: its own small C++ program (AVX-512/AVX2 loads by T
// persistent threads over a buffer, best of its repeats), built into the benchmark's cache at first use. It reads
// ~10% above the engine's own probe (native().measureBandwidth) on this machine; benchmarks take the higher of the
// two. bench/quant.ts and bench/moe.ts both use it.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const PROBE_SOURCE = String.raw`
#include <immintrin.h>
#include <sys/mman.h>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>
// Sum of 64-byte lines by OR: four independent accumulators, so the loop is bound by loads alone.
__attribute__((noinline)) static unsigned long long read_all(const char * p, size_t n) {
#if defined(__AVX512F__)
    __m512i a = _mm512_setzero_si512(), b = a, c = a, d = a;
    for (size_t i = 0; i < n; i += 256) {
        a = _mm512_or_si512(a, _mm512_load_si512(p + i));
        b = _mm512_or_si512(b, _mm512_load_si512(p + i + 64));
        c = _mm512_or_si512(c, _mm512_load_si512(p + i + 128));
        d = _mm512_or_si512(d, _mm512_load_si512(p + i + 192));
    }
    return _mm512_reduce_or_epi64(_mm512_or_si512(_mm512_or_si512(a, b), _mm512_or_si512(c, d)));
#else
    __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
    for (size_t i = 0; i < n; i += 128) {
        a = _mm256_or_si256(a, _mm256_load_si256((const __m256i *) (p + i)));
        b = _mm256_or_si256(b, _mm256_load_si256((const __m256i *) (p + i + 32)));
        c = _mm256_or_si256(c, _mm256_load_si256((const __m256i *) (p + i + 64)));
        d = _mm256_or_si256(d, _mm256_load_si256((const __m256i *) (p + i + 96)));
    }
    a = _mm256_or_si256(_mm256_or_si256(a, b), _mm256_or_si256(c, d));
    return _mm256_extract_epi64(a, 0) | _mm256_extract_epi64(a, 1) | _mm256_extract_epi64(a, 2) | _mm256_extract_epi64(a, 3);
#endif
}
int main(int argc, char ** argv) {
    if (argc < 4) return 2;
    const int T = std::max(1, atoi(argv[1]));
    const size_t per = (size_t(atoll(argv[2])) << 20) / T / 256 * 256;
    const int R = std::max(1, atoi(argv[3]));
    char * buf = static_cast<char *>(aligned_alloc(2 << 20, per * T));
    if (!buf) return 1;
    madvise(buf, per * T, MADV_HUGEPAGE);
    for (size_t i = 0; i < per * T; i += 8) *reinterpret_cast<unsigned long long *>(buf + i) = i * 0x9E3779B97F4A7C15ull;
    // Persistent threads released together each round (no thread start-up inside the timing). The main thread reads
    // slice 0 itself: a main thread spinning while T workers read would put T + 1 busy threads on T cores and measure
    // the time-slicing, not the memory (that made this probe read ~40% low on the 2-core machine).
    std::atomic<int> go{0}, ready{0}, done{0};
    std::vector<unsigned long long> out(T);
    std::vector<std::thread> ts;
    for (int t = 1; t < T; t++)
        ts.emplace_back([&, t] {
            for (int r = 1; r <= R; r++) {
                ready.fetch_add(1);
                while (go.load(std::memory_order_acquire) < r) {}
                out[t] ^= read_all(buf + per * t, per);
                done.fetch_add(1);
            }
        });
    double best = 0;
    for (int r = 1; r <= R; r++) {
        while (ready.load() < (T - 1) * r) {}
        const auto t0 = std::chrono::steady_clock::now();
        go.store(r, std::memory_order_release);
        out[0] ^= read_all(buf, per);
        while (done.load() < (T - 1) * r) {}
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        best = std::max(best, double(per * T) / s / 1e9);
    }
    for (auto & t : ts) t.join();
    unsigned long long sink = 0;
    for (auto v : out) sink ^= v;
    std::printf("%.2f %llu\n", best, sink & 1);
    return 0;
}
`;

function probeBinary(cacheDir: string): string {
  const key = createHash('sha256').update(PROBE_SOURCE).digest('hex').slice(0, 12);
  const bin = join(cacheDir, `membw-${key}`);
  if (!existsSync(bin)) {
    mkdirSync(cacheDir, { recursive: true });
    const src = join(cacheDir, `membw-${key}.cpp`);
    writeFileSync(src, PROBE_SOURCE);
    execFileSync(process.env['CXX'] ?? 'g++', ['-std=c++17', '-O2', '-march=native', '-pthread', src, '-o', `${bin}.tmp`], { stdio: 'inherit' });
    renameSync(`${bin}.tmp`, bin);
  }
  return bin;
}

/** Best read bandwidth in GB/s of `threads` threads over `megabytes` MiB, best of `repeats` passes. */
export function readBandwidth(cacheDir: string, threads: number, megabytes = 1024, repeats = 5): number {
  const out = execFileSync(probeBinary(cacheDir), [String(threads), String(megabytes), String(repeats)], { encoding: 'utf8' });
  const gbs = Number(out.split(' ')[0]);
  if (!Number.isFinite(gbs) || gbs <= 0) throw new Error(`memory probe printed '${out.trim()}'`);
  return gbs;
}
