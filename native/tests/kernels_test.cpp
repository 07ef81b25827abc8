// Standalone test + microbenchmark of the CPU matrix kernels (native/src/kernels/cpu).
//
// Build (from the repo root; outside build/, which node-gyp owns):
//   R=$PWD; mkdir -p /tmp/kt && cd /tmp/kt; F="-std=c++17 -O3 -I$R/native/src"; S=$R/native/src/kernels/cpu
//   g++ $F -c $S/matmul_avx512.cpp -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx512bf16
//       -mfma -mf16c -mavx2                                                        (one command)
//   g++ $F -c $S/matmul_avx2.cpp -mavx2 -mfma -mf16c
//   g++ $F -c $S/attention_avx512.cpp (AVX-512 flags as above); g++ $F -c $S/attention_avx2.cpp -mavx2 -mfma -mf16c
//   g++ $F $R/native/tests/kernels_test.cpp $S/quantize.cpp $S/matmul_scalar.cpp $S/attention_scalar.cpp $S/dispatch.cpp
//       $R/native/src/errors.cpp $R/native/src/quant/{formats,dequantize,quantize_weights,quantize_acts,dot_scalar,
//       dispatch,matmul}.cpp + dot_avx512.o dot_avx2.o (built as the kernels above, from native/src/quant)
//       matmul_avx512.o matmul_avx2.o attention_avx512.o attention_avx2.o -lpthread -o kernels_test   (one command)
// Run:  ./kernels_test            correctness + accuracy
//       ./kernels_test --bench    also the microbenchmark (GB/s for n = 1, GFLOP/s for n = 16 / 64)
//       ./kernels_test --bench-only [--mb 600] [--sets avx512,avx2,scalar]
#include <atomic>
#include <chrono>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "kernels/cpu/kernels.h"
#include "kernels/cpu/matmul_impl.h"
#include "quant/half.h"
#include "quant/quant.h"

using namespace tl;

static int g_failures = 0;
#define CHECK(cond, ...)                                         \
    do {                                                         \
        if (!(cond)) {                                           \
            g_failures++;                                        \
            if (g_failures < 30) {                               \
                std::printf("FAIL %s:%d: ", __FILE__, __LINE__); \
                std::printf(__VA_ARGS__);                        \
                std::printf("\n");                               \
            }                                                    \
        }                                                        \
    } while (0)

static double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

static std::vector<float> gaussian(size_t n, uint64_t seed, float sigma = 1.0f) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> d(0.0f, sigma);
    std::vector<float> v(n);
    for (auto & x : v) x = d(rng);
    return v;
}

static const WeightType kTypes[] = {WeightType::F32, WeightType::BF16, WeightType::I8, WeightType::I4};

static std::vector<const CpuKernels *> kernel_sets() {
    std::vector<const CpuKernels *> v{&cpu_kernels_scalar()};
    if (cpu_kernels_avx2()) v.push_back(cpu_kernels_avx2());
    if (cpu_kernels_avx512()) v.push_back(cpu_kernels_avx512());
    return v;
}

static bool is_q(WeightType t) { return t == WeightType::I8 || t == WeightType::I4; }

// ------------------------------------------------------------------------------------------------ unit checks

static void test_formats() {
    // bf16 round to nearest even
    CHECK(kern::f32_to_bf16_rne(1.0f) == 0x3f80, "bf16 1.0");
    float f;
    uint32_t u = 0x3f808000u; // exactly halfway between 0x3f80 and 0x3f81 -> even (0x3f80)
    std::memcpy(&f, &u, 4);
    CHECK(kern::f32_to_bf16_rne(f) == 0x3f80, "bf16 tie to even (down)");
    u = 0x3f818000u; // halfway between 0x3f81 and 0x3f82 -> 0x3f82
    std::memcpy(&f, &u, 4);
    CHECK(kern::f32_to_bf16_rne(f) == 0x3f82, "bf16 tie to even (up)");
    u = 0x3f808001u;
    std::memcpy(&f, &u, 4);
    CHECK(kern::f32_to_bf16_rne(f) == 0x3f81, "bf16 above half");
    CHECK((kern::f32_to_bf16_rne(NAN) & 0x7fc0) == 0x7fc0, "bf16 NaN");

    // Round trips and padding
    const int64_t rows = 5, cols = 172;
    auto src = gaussian(rows * cols, 7);
    for (WeightType t : kTypes) {
        QMatrix m;
        qmatrix_from_f32(m, t, src.data(), rows, cols);
        CHECK(m.cols_padded == (is_q(t) ? 192 : 172), "%s cols_padded", weight_type_name(t));
        CHECK(m.data.size == (size_t) rows * m.row_bytes(), "%s data size", weight_type_name(t));
        CHECK(((uintptr_t) m.data.data() & 63) == 0, "alignment");
        double max_rel = 0;
        std::vector<float> row(cols);
        for (int64_t r = 0; r < rows; r++) {
            qmatrix_get_row(m, r, row.data());
            float amax = 0;
            for (int64_t c = 0; c < cols; c++) amax = std::fmax(amax, std::fabs(src[r * cols + c]));
            for (int64_t c = 0; c < cols; c++)
                max_rel = std::fmax(max_rel, std::fabs(row[c] - src[r * cols + c]) / amax);
        }
        // I4: |err| <= d/2 = amax/14 with absmax/7, but Q4_0's scale (max/-8) can clip the opposite sign at 7/8 amax
        double tol = t == WeightType::F32    ? 0
                     : t == WeightType::BF16 ? 1.0 / 256
                     : t == WeightType::I8   ? 1.0 / 254 * 1.01
                                             : 1.0 / 8 * 1.01;
        CHECK(max_rel <= tol, "%s round trip max rel err %g > %g", weight_type_name(t), max_rel, tol);
        if (t == WeightType::I8) // padding bytes are the zero point, i.e. value 0
            for (int64_t r = 0; r < rows; r++)
                for (int64_t c = cols; c < m.cols_padded; c++)
                    CHECK(m.data.data()[r * m.row_bytes() + c] == 128, "I8 pad");
        if (t == WeightType::I4)
            for (int64_t r = 0; r < rows; r++) {
                const uint8_t * g = m.data.data() + r * m.row_bytes() + 5 * 16; // last group: elements 160..191
                for (int i = 0; i < 16; i++) {
                    int e_lo = 160 + i, e_hi = 176 + i;
                    if (e_lo >= cols) CHECK((g[i] & 0xF) == 8, "I4 pad lo");
                    if (e_hi >= cols) CHECK((g[i] >> 4) == 8, "I4 pad hi");
                }
            }
    }
    // Activations: group sums and padding
    QActs a;
    qacts_quantize(a, src.data(), 3, 172, 192);
    for (int t = 0; t < 3; t++)
        for (int g = 0; g < 6; g++) {
            const int8_t * q = (const int8_t *) a.q.data() + t * 192 + g * 32;
            int s = 0;
            for (int i = 0; i < 32; i++) s += q[i];
            CHECK(s == ((const int32_t *) a.sums.data())[t * 6 + g], "act sum");
            if (g == 5)
                for (int i = 12; i < 32; i++) CHECK(q[i] == 0, "act pad");
        }
    // All-zero groups
    std::vector<float> z(64, 0.0f);
    for (WeightType t : {WeightType::I8, WeightType::I4}) {
        QMatrix m;
        qmatrix_from_f32(m, t, z.data(), 1, 64);
        std::vector<float> row(64, 1.0f);
        qmatrix_get_row(m, 0, row.data());
        for (float v : row) CHECK(v == 0.0f, "zero group decodes to 0");
    }
}

// Relative comparison: |a - b| <= tol * (|b| + rms(ref)) for every element.
static double max_rel_diff(const float * a, const float * b, size_t n) {
    double ss = 0;
    for (size_t i = 0; i < n; i++) ss += (double) b[i] * b[i];
    double rms = std::sqrt(ss / (double) n) + 1e-30;
    double worst = 0;
    for (size_t i = 0; i < n; i++) worst = std::fmax(worst, std::fabs((double) a[i] - b[i]) / (std::fabs(b[i]) + rms));
    return worst;
}

static void test_matmul_vs_scalar() {
    const int ns[] = {1, 2, 3, 4, 5, 7, 8, 16};
    const int64_t colss[] = {32, 64, 172, 256, 2048, 5632};
    const int64_t rows = 45;
    struct Range {
        int64_t b, e;
    };
    const Range ranges[] = {{0, 45}, {3, 42}, {5, 6}, {1, 8}, {38, 45}};
    auto sets = kernel_sets();
    int n_cases = 0;
    double worst_all = 0;
    for (int64_t cols : colss) {
        auto w = gaussian(rows * cols, 100 + cols, 0.05f);
        auto x = gaussian(16 * cols, 200 + cols);
        // token 1: all-positive activations with a large mean (stresses the zero-point correction)
        for (int64_t c = 0; c < cols; c++) x[cols + c] = std::fabs(x[cols + c]) + 3.0f;
        for (WeightType t : kTypes) {
            QMatrix m;
            qmatrix_from_f32(m, t, w.data(), rows, cols);
            for (int n : ns) {
                QActs xq;
                if (is_q(t)) qacts_quantize(xq, x.data(), n, cols, m.cols_padded);
                const int64_t ys = rows + 3; // y stride larger than rows
                std::vector<float> ref(n * ys, -777.0f);
                cpu_kernels_scalar().matmul(m, x.data(), is_q(t) ? &xq : nullptr, ref.data(), ys, n, 0, rows);
                for (const CpuKernels * k : sets) {
                    if (k == &cpu_kernels_scalar()) continue;
                    for (const Range & rg : ranges) {
                        std::vector<float> y(n * ys, -777.0f);
                        k->matmul(m, x.data(), is_q(t) ? &xq : nullptr, y.data(), ys, n, rg.b, rg.e);
                        n_cases++;
                        // untouched outside the range
                        bool outside_ok = true;
                        for (int tt = 0; tt < n; tt++)
                            for (int64_t r = 0; r < ys; r++)
                                if ((r < rg.b || r >= rg.e) && y[tt * ys + r] != -777.0f) outside_ok = false;
                        CHECK(outside_ok, "%s %s n=%d cols=%lld: wrote outside [%lld,%lld)", k->name,
                              weight_type_name(t), n, (long long) cols, (long long) rg.b, (long long) rg.e);
                        std::vector<float> a, b;
                        for (int tt = 0; tt < n; tt++)
                            for (int64_t r = rg.b; r < rg.e; r++) {
                                a.push_back(y[tt * ys + r]);
                                b.push_back(ref[tt * ys + r]);
                            }
                        double d = max_rel_diff(a.data(), b.data(), a.size());
                        worst_all = std::fmax(worst_all, d);
                        if (std::getenv("KT_VERBOSE") && d > 1e-5)
                            std::printf("  %s %s n=%d cols=%lld rows [%lld,%lld): rel diff %g\n", k->name,
                                        weight_type_name(t), n, (long long) cols, (long long) rg.b, (long long) rg.e,
                                        d);
                        CHECK(d < 1e-4, "%s %s n=%d cols=%lld rows [%lld,%lld): rel diff %g", k->name,
                              weight_type_name(t), n, (long long) cols, (long long) rg.b, (long long) rg.e, d);
                    }
                }
            }
        }
    }
    // Larger n through the packed path with row blocks > 64 and token blocks > 64.
    {
        const int64_t r2 = 150, c2 = 1000;
        const int n2 = 70;
        auto w = gaussian(r2 * c2, 11, 0.05f);
        auto x = gaussian(n2 * c2, 12);
        for (WeightType t : kTypes) {
            QMatrix m;
            qmatrix_from_f32(m, t, w.data(), r2, c2);
            QActs xq;
            if (is_q(t)) qacts_quantize(xq, x.data(), n2, c2, m.cols_padded);
            std::vector<float> ref(n2 * r2), y(n2 * r2);
            cpu_kernels_scalar().matmul(m, x.data(), &xq, ref.data(), r2, n2, 0, r2);
            for (const CpuKernels * k : sets) {
                if (k == &cpu_kernels_scalar()) continue;
                std::fill(y.begin(), y.end(), 0.0f);
                k->matmul(m, x.data(), &xq, y.data(), r2, n2, 0, 77);
                k->matmul(m, x.data(), &xq, y.data(), r2, n2, 77, r2);
                double d = max_rel_diff(y.data(), ref.data(), y.size());
                worst_all = std::fmax(worst_all, d);
                n_cases++;
                CHECK(d < 1e-4, "%s %s big n=%d: rel diff %g", k->name, weight_type_name(t), n2, d);
            }
        }
    }
    std::printf("matmul vs scalar: %d cases over %zu kernel sets, worst rel diff %.3g\n", n_cases, sets.size(),
                worst_all);
}

// Concurrency: two threads on disjoint row halves give the same result as one call.
static void test_threads() {
    const int64_t rows = 301, cols = 2048;
    const int n = 9;
    auto w = gaussian(rows * cols, 5, 0.05f);
    auto x = gaussian(n * cols, 6);
    for (const CpuKernels * k : kernel_sets())
        for (WeightType t : kTypes) {
            QMatrix m;
            qmatrix_from_f32(m, t, w.data(), rows, cols);
            QActs xq;
            if (is_q(t)) qacts_quantize(xq, x.data(), n, cols, m.cols_padded);
            std::vector<float> y1(n * rows), y2(n * rows);
            k->matmul(m, x.data(), &xq, y1.data(), rows, n, 0, rows);
            for (int rep = 0; rep < 3; rep++) {
                std::thread th([&] { k->matmul(m, x.data(), &xq, y2.data(), rows, n, 0, 150); });
                k->matmul(m, x.data(), &xq, y2.data(), rows, n, 150, rows);
                th.join();
                CHECK(std::memcmp(y1.data(), y2.data(), y1.size() * 4) == 0, "%s %s threaded result differs", k->name,
                      weight_type_name(t));
            }
        }
    std::printf("threads: ok\n");
}

// ------------------------------------------------------------------------------------------------ accuracy

static double cosine(const float * a, const double * b, size_t n) {
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < n; i++) {
        ab += a[i] * b[i];
        aa += (double) a[i] * a[i];
        bb += b[i] * b[i];
    }
    return ab / std::sqrt(aa * bb);
}

static void test_accuracy() {
    const int64_t rows = 512, cols = 2048;
    const int n = 8;
    auto w = gaussian(rows * cols, 31, 0.02f);
    auto x = gaussian(n * cols, 32);
    std::vector<double> exact(n * rows);
    for (int t = 0; t < n; t++)
        for (int64_t r = 0; r < rows; r++) {
            double s = 0;
            for (int64_t c = 0; c < cols; c++) s += (double) w[r * cols + c] * x[t * cols + c];
            exact[t * rows + r] = s;
        }
    const CpuKernels & k = cpu_kernels();
    std::printf("accuracy vs exact f32 product (Gaussian W %lldx%lld, %d tokens), kernels %s:\n", (long long) rows,
                (long long) cols, n, k.name);
    for (WeightType t : kTypes) {
        QMatrix m;
        qmatrix_from_f32(m, t, w.data(), rows, cols);
        QActs xq;
        if (is_q(t)) qacts_quantize(xq, x.data(), n, cols, m.cols_padded);
        std::vector<float> y(n * rows);
        k.matmul(m, x.data(), &xq, y.data(), rows, n, 0, rows);
        // weight-only cosine (dequantized weights vs original)
        std::vector<float> row(cols);
        double ab = 0, aa = 0, bb = 0;
        for (int64_t r = 0; r < rows; r++) {
            qmatrix_get_row(m, r, row.data());
            for (int64_t c = 0; c < cols; c++) {
                ab += (double) row[c] * w[r * cols + c];
                aa += (double) row[c] * row[c];
                bb += (double) w[r * cols + c] * w[r * cols + c];
            }
        }
        double cw = ab / std::sqrt(aa * bb);
        double cy = cosine(y.data(), exact.data(), y.size());
        std::printf("  %-5s output cosine %.6f (1-cos %.2e)   weights cosine %.6f\n", weight_type_name(t), cy, 1 - cy,
                    cw);
        double min_cos = t == WeightType::F32    ? 0.9999999
                         : t == WeightType::BF16 ? 0.99999
                         : t == WeightType::I8   ? 0.9998
                                                 : 0.99;
        CHECK(cy > min_cos, "%s cosine %f too low", weight_type_name(t), cy);
    }
    // I4 scale choice: compare weight reconstruction error of the three variants.
    const char * names[] = {"Q4_0 (max/-8)", "absmax/7", "best of both"};
    for (int mode = 0; mode < 3; mode++) {
        double err = 0, ref = 0, ab = 0, aa = 0;
        for (size_t g = 0; g < w.size() / QK; g++) {
            uint8_t q[16];
            float d = kern::quantize_group_i4(&w[g * QK], q, (kern::I4Mode) mode);
            for (int i = 0; i < QK; i++) {
                int nib = i < 16 ? (q[i] & 15) : (q[i - 16] >> 4);
                double e = d * (nib - 8) - w[g * QK + i];
                err += e * e;
                ref += (double) w[g * QK + i] * w[g * QK + i];
                ab += d * (nib - 8) * (double) w[g * QK + i];
                aa += (double) d * (nib - 8) * d * (nib - 8);
            }
        }
        std::printf("  int4 scale %-14s weight rel RMSE %.5f  (cos %.6f)\n", names[mode], std::sqrt(err / ref),
                    ab / std::sqrt(aa * ref));
    }
}

// ------------------------------------------------------------------------------------------------ benchmark

struct BenchMat {
    std::vector<QMatrix> copies;
    size_t bytes_each = 0;
};

static BenchMat make_copies(WeightType t, int64_t rows, int64_t cols, size_t min_total_bytes) {
    BenchMat b;
    auto w = gaussian(rows * cols, 99, 0.02f);
    QMatrix m;
    qmatrix_from_f32(m, t, w.data(), rows, cols);
    b.bytes_each = m.bytes();
    size_t n = (min_total_bytes + b.bytes_each - 1) / b.bytes_each;
    if (n < 1) n = 1;
    b.copies.resize(n);
    for (auto & c : b.copies) {
        qmatrix_alloc(c, t, rows, cols);
        std::memcpy(c.data.data(), m.data.data(), m.data.size);
        if (m.scales.size) std::memcpy(c.scales.data(), m.scales.data(), m.scales.size);
    }
    return b;
}

// Runs matmul over all copies, with `threads` threads splitting rows; returns the best seconds per pass of `reps`.
static double time_pass(const CpuKernels & k, BenchMat & bm, const float * x, const QActs * xq, float * y, int n,
                        int threads, int reps) {
    const int64_t rows = bm.copies[0].rows;
    auto run_range = [&](int64_t b, int64_t e) {
        for (auto & m : bm.copies) k.matmul(m, x, xq, y, rows, n, b, e);
    };
    run_range(0, rows); // warm-up pass (also pages in)
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        if (threads == 1) {
            run_range(0, rows);
        } else {
            int64_t half = (rows / 2 + 3) / 4 * 4;
            std::thread th([&] { run_range(0, half); });
            run_range(half, rows);
            th.join();
        }
        best = std::fmin(best, now_s() - t0);
    }
    return best;
}

// Plain sequential read of the same bytes (data + scales of every copy), AVX2 loads with a software prefetch 4 KiB
// ahead (the fastest simple read measured on the dev machine): the bandwidth the machine gives right now.
static volatile uint64_t g_sink;
static uint64_t read_sum_portable(const uint8_t * p, size_t n) {
    const uint64_t * q = (const uint64_t *) p;
    uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (size_t i = 0; i + 4 <= n / 8; i += 4) a0 += q[i], a1 += q[i + 1], a2 += q[i + 2], a3 += q[i + 3];
    return a0 + a1 + a2 + a3;
}
#if defined(__x86_64__)
__attribute__((target("avx2"))) static uint64_t read_sum_avx2(const uint8_t * p, size_t n) {
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 128 <= n; i += 128) {
        _mm_prefetch((const char *) p + i + 4096, _MM_HINT_T1);
        _mm_prefetch((const char *) p + i + 4096 + 64, _MM_HINT_T1);
        a0 = _mm256_add_epi64(a0, _mm256_loadu_si256((const __m256i *) (p + i)));
        a1 = _mm256_add_epi64(a1, _mm256_loadu_si256((const __m256i *) (p + i + 32)));
        a2 = _mm256_add_epi64(a2, _mm256_loadu_si256((const __m256i *) (p + i + 64)));
        a3 = _mm256_add_epi64(a3, _mm256_loadu_si256((const __m256i *) (p + i + 96)));
    }
    a0 = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
    alignas(32) uint64_t t[4];
    _mm256_store_si256((__m256i *) t, a0);
    return t[0] + t[1] + t[2] + t[3] + read_sum_portable(p + i, n - i);
}
#endif
static uint64_t read_sum(const uint8_t * p, size_t n) {
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx2")) return read_sum_avx2(p, n);
#endif
    return read_sum_portable(p, n);
}
static double time_read(BenchMat & bm, int threads, int reps) {
    auto run = [&](int part, int parts) {
        uint64_t s = 0;
        for (auto & m : bm.copies) {
            size_t d0 = m.data.size / parts * part, d1 = m.data.size / parts * (part + 1);
            s += read_sum(m.data.data() + d0, d1 - d0);
            size_t s0 = m.scales.size / parts * part, s1 = m.scales.size / parts * (part + 1);
            if (m.scales.size) s += read_sum(m.scales.data() + s0, s1 - s0);
        }
        g_sink = s;
    };
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        if (threads == 1) {
            run(0, 1);
        } else {
            std::thread th([&] { run(0, 2); });
            run(1, 2);
            th.join();
        }
        best = std::fmin(best, now_s() - t0);
    }
    return best;
}

static void bench(size_t mb, const std::vector<std::string> & want_sets) {
    auto sets = kernel_sets();
    struct Shape {
        int64_t rows, cols;
    };
    const Shape shapes[] = {{2048, 5632}, {32000, 2048}};
    std::printf("\n== gemv n=1: weight bytes streamed (data + scales), >= %zu MB of distinct matrices per run ==\n",
                mb);
    std::printf("(read = plain read of the same bytes in the same run; %%read = kernel / read, 1 thread)\n");
    std::printf("%-7s %-6s %-12s %7s %8s %8s %8s %8s %6s %6s\n", "set", "format", "shape", "MB/mat", "1T GB/s",
                "read1T", "2T GB/s", "read2T", "%read", "%of25");
    for (const CpuKernels * k : sets) {
        bool want = false;
        for (auto & s : want_sets) want |= s == k->name;
        if (!want) continue;
        for (WeightType t : kTypes)
            for (const Shape & sh : shapes) {
                BenchMat bm = make_copies(t, sh.rows, sh.cols, mb << 20);
                auto x = gaussian(sh.cols, 3);
                QActs xq;
                if (is_q(t)) qacts_quantize(xq, x.data(), 1, sh.cols, bm.copies[0].cols_padded);
                std::vector<float> y(sh.rows);
                size_t total = bm.bytes_each * bm.copies.size();
                int reps = std::string(k->name) == "scalar" ? 1 : 5;
                double s1 = time_pass(*k, bm, x.data(), &xq, y.data(), 1, 1, reps);
                double r1 = time_read(bm, 1, 3);
                double s2 = time_pass(*k, bm, x.data(), &xq, y.data(), 1, 2, reps);
                double r2 = time_read(bm, 2, 3);
                double g1 = total / s1 / 1e9, g2 = total / s2 / 1e9;
                char shape[32];
                std::snprintf(shape, sizeof shape, "%lldx%lld", (long long) sh.rows, (long long) sh.cols);
                std::printf("%-7s %-6s %-12s %7.1f %8.2f %8.2f %8.2f %8.2f %5.0f%% %5.0f%%\n", k->name,
                            weight_type_name(t), shape, bm.bytes_each / 1e6, g1, total / r1 / 1e9, g2, total / r2 / 1e9,
                            s1 > 0 ? r1 / s1 * 100 : 0, g1 / 25.0 * 100);
                std::fflush(stdout);
            }
    }
    std::printf("\n== gemv n=1 in cache (256x2048, L2-resident): compute ceiling, GB/s of weight bytes ==\n");
    for (const CpuKernels * k : sets) {
        bool want = false;
        for (auto & s : want_sets) want |= s == k->name;
        if (!want) continue;
        std::printf("%-7s", k->name);
        for (WeightType t : kTypes) {
            BenchMat bm = make_copies(t, 256, 2048, 0);
            auto x = gaussian(2048, 3);
            QActs xq;
            if (is_q(t)) qacts_quantize(xq, x.data(), 1, 2048, bm.copies[0].cols_padded);
            std::vector<float> y(256);
            int reps = std::string(k->name) == "scalar" ? 20 : 2000;
            double s1 = time_pass(*k, bm, x.data(), &xq, y.data(), 1, 1, reps);
            std::printf("  %s %.1f", weight_type_name(t), bm.bytes_each / s1 / 1e9);
        }
        std::printf("\n");
    }
    std::printf("\n== batched n=16 / n=64 on 2048x5632 (in cache after warm-up; weights re-read per call) ==\n");
    std::printf("%-7s %-6s %4s %12s %12s\n", "set", "format", "n", "1T GFLOP/s", "2T GFLOP/s");
    for (const CpuKernels * k : sets) {
        bool want = false;
        for (auto & s : want_sets) want |= s == k->name;
        if (!want || std::string(k->name) == "scalar") continue;
        for (WeightType t : kTypes) {
            BenchMat bm = make_copies(t, 2048, 5632, 0);
            for (int n : {16, 64}) {
                auto x = gaussian((size_t) n * 5632, 4);
                QActs xq;
                if (is_q(t)) qacts_quantize(xq, x.data(), n, 5632, bm.copies[0].cols_padded);
                std::vector<float> y((size_t) n * 2048);
                double flop = 2.0 * 2048 * 5632 * n;
                int reps = n == 16 ? 6 : 2;
                double s1 = time_pass(*k, bm, x.data(), &xq, y.data(), n, 1, reps);
                double s2 = time_pass(*k, bm, x.data(), &xq, y.data(), n, 2, reps);
                std::printf("%-7s %-6s %4d %12.1f %12.1f\n", k->name, weight_type_name(t), n, flop / s1 / 1e9,
                            flop / s2 / 1e9);
                std::fflush(stdout);
            }
        }
    }
    // Host-side costs
    {
        const int64_t rows = 2048, cols = 5632;
        auto w = gaussian(rows * cols, 9, 0.02f);
        for (WeightType t : kTypes) {
            QMatrix m;
            double t0 = now_s();
            qmatrix_from_f32(m, t, w.data(), rows, cols);
            double s = now_s() - t0;
            std::printf("qmatrix_from_f32 %-5s: %.0f M weights/s (1 thread)\n", weight_type_name(t),
                        rows * cols / s / 1e6);
        }
        QActs xq;
        auto x = gaussian(64 * cols, 1);
        double t0 = now_s();
        for (int i = 0; i < 10; i++) qacts_quantize(xq, x.data(), 64, cols, cols);
        double s = (now_s() - t0) / 10;
        std::printf("qacts_quantize: %.0f M values/s (1 thread)\n", 64 * cols / s / 1e6);
    }
}

// GGUF blocks in the engine's layouts (qmatrix_alloc_typed / qmatrix_set_row_from): Q8_0 and Q4_0 repacked into
// I8 / I4 decode to exactly the values the blocks encode, and their products agree with quant::matmul on the blocks;
// other block types are held as they are (BLOCKS) and decode identically.
static void test_gguf_blocks() {
    const int64_t rows = 37, cols = 512;
    std::vector<float> w = gaussian((size_t) (rows * cols), 77, 0.05f);
    std::vector<float> x = gaussian((size_t) (3 * cols), 78);
    for (quant::Type t : {quant::Type::Q8_0, quant::Type::Q4_0, quant::Type::Q4_K, quant::Type::Q6_K, quant::Type::F16,
                          quant::Type::BF16, quant::Type::F32}) {
        const int64_t rb = quant::row_bytes(t, cols);
        std::vector<uint8_t> blocks((size_t) (rows * rb));
        for (int64_t r = 0; r < rows; r++)
            quant::quantize_row(t, &w[(size_t) (r * cols)], &blocks[(size_t) (r * rb)], cols);
        QMatrix m;
        qmatrix_alloc_typed(m, t, rows, cols);
        CHECK(m.qtype == t, "%s: qtype", quant::type_name(t));
        CHECK(m.type == layout_for(t), "%s: layout", quant::type_name(t));
        for (int64_t r = 0; r < rows; r++) qmatrix_set_row_from(m, r, t, &blocks[(size_t) (r * rb)]);
        std::vector<float> a((size_t) cols), b((size_t) cols);
        int bad = 0;
        for (int64_t r = 0; r < rows; r++) {
            quant::dequantize_row(t, &blocks[(size_t) (r * rb)], a.data(), cols);
            qmatrix_get_row(m, r, b.data());
            bad += std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) != 0;
        }
        CHECK(bad == 0, "%s: %d rows decode differently in the engine's layout", quant::type_name(t), bad);
        if (m.type == WeightType::BLOCKS) continue;
        // The int8 / int4 / f32 / bf16 kernels on the layout vs quant::matmul on the blocks (activations quantized
        // differently: QActs with float scales vs Q8_0 with f16 scales), so agreement to ~1e-2 of the scale.
        const quant::Type at = quant::traits(t)->act_type;
        const int64_t ab = quant::row_bytes(at, cols);
        std::vector<uint8_t> acts((size_t) (3 * ab));
        for (int j = 0; j < 3; j++) quant::quantize_acts(at, &x[(size_t) (j * cols)], &acts[(size_t) (j * ab)], cols);
        std::vector<float> yq((size_t) (3 * rows)), yk((size_t) (3 * rows));
        quant::matmul(t, blocks.data(), (size_t) rb, cols, 0, rows, acts.data(), (size_t) ab, 3, yq.data(), rows);
        QActs xq;
        if (m.type == WeightType::I8 || m.type == WeightType::I4) qacts_quantize(xq, x.data(), 3, cols, m.cols_padded);
        cpu_kernels().matmul(m, x.data(), &xq, yk.data(), rows, 3, 0, rows);
        double worst = 0, scale = 0;
        for (size_t i = 0; i < yq.size(); i++) {
            worst = std::fmax(worst, std::fabs(yq[i] - yk[i]));
            scale = std::fmax(scale, std::fabs(yq[i]));
        }
        CHECK(worst <= 2e-2 * scale, "%s: kernels/cpu vs quant::matmul differ by %g (scale %g)", quant::type_name(t),
              worst, scale);
    }
}

// Attention over a paged cache (AttnTask): every kernel set against a double-precision reference computed from the
// same stored (f16- / int8-rounded) keys and values; head dims that are and are not multiples of the vector width
// (the latter take the portable path), GQA row counts, contexts shorter and longer than a KV chunk, shuffled blocks;
// and with a sliding window (keys from kv0 on, a start that is not a chunk or block boundary) and Gemma-2's logit
// soft-capping (a cap small enough that tanh bends the scores).
static void test_attention() {
    const int block = 16, n_blocks = 12;
    for (int dtype = 0; dtype < 3; dtype++) {
        for (int hd : {64, 72, 128}) {
            for (int rows : {1, 8}) {
                for (int variant = 0; variant < 4; variant++)
                    for (int n_ctx : {1, 5, 33, 150}) {
                        const int kv0 = (variant & 1) ? n_ctx / 3 + (n_ctx > 40 ? 7 : 0) : 0;
                        const float softcap = (variant & 2) ? 1.5f : 0.0f;
                        const int heads = 2, kv_head = 1, row = heads * hd;
                        const size_t slots = (size_t) n_blocks * block, elem = dtype == 0 ? 4 : dtype == 1 ? 2 : 1;
                        std::vector<uint8_t> k(slots * row * elem), v(slots * row * elem);
                        std::vector<float> ks(slots * heads), vs(slots * heads);
                        std::vector<double> kd(slots * row), vd(slots * row); // the values as stored
                        auto kf = gaussian(slots * row, 100 + hd + n_ctx, 1.0f),
                             vf = gaussian(slots * row, 200 + hd, 1.0f);
                        for (size_t i = 0; i < slots * row; i++) {
                            const size_t slot = i / row, h = (i % row) / hd;
                            for (int which = 0; which < 2; which++) {
                                const float x = which ? vf[i] : kf[i];
                                std::vector<uint8_t> & dst = which ? v : k;
                                std::vector<double> & ref = which ? vd : kd;
                                if (dtype == 0) {
                                    std::memcpy(&dst[i * 4], &x, 4);
                                    ref[i] = x;
                                } else if (dtype == 1) {
                                    const uint16_t hb = quant::f32_to_f16(x);
                                    std::memcpy(&dst[i * 2], &hb, 2);
                                    ref[i] = quant::f16_to_f32(hb);
                                } else {
                                    const float sc = 3.0f / 127.0f;
                                    (which ? vs : ks)[slot * heads + h] = sc;
                                    const int q = (int) std::lrint(std::fmax(-127.0f, std::fmin(127.0f, x / sc)));
                                    dst[i] = (uint8_t) (int8_t) q;
                                    ref[i] = (double) q * sc;
                                }
                            }
                        }
                        std::vector<int32_t> table(n_blocks);
                        for (int b = 0; b < n_blocks; b++) table[b] = (b * 7 + 3) % n_blocks; // shuffled, a permutation
                        auto q = gaussian((size_t) rows * hd, 300 + rows, 0.5f);
                        const float scale = 1.0f / std::sqrt((float) hd);
                        std::vector<double> ref((size_t) rows * hd, 0.0);
                        for (int r = 0; r < rows; r++) {
                            std::vector<double> sc(n_ctx);
                            double m = -1e300, sum = 0;
                            for (int j = kv0; j < n_ctx; j++) {
                                const size_t slot = (size_t) table[j / block] * block + j % block;
                                double d = 0;
                                for (int i = 0; i < hd; i++)
                                    d += (double) q[(size_t) r * hd + i] * kd[slot * row + kv_head * hd + i];
                                sc[j] = d * scale;
                                if (softcap > 0) sc[j] = softcap * std::tanh(sc[j] / softcap);
                                m = std::fmax(m, sc[j]);
                            }
                            for (int j = kv0; j < n_ctx; j++) sum += (sc[j] = std::exp(sc[j] - m));
                            for (int j = kv0; j < n_ctx; j++) {
                                const size_t slot = (size_t) table[j / block] * block + j % block;
                                for (int i = 0; i < hd; i++)
                                    ref[(size_t) r * hd + i] += sc[j] / sum * vd[slot * row + kv_head * hd + i];
                            }
                        }
                        for (const CpuKernels * ks_ : kernel_sets()) {
                            AttnTask t;
                            t.hd = hd, t.rows = rows, t.n_ctx = n_ctx, t.scale = scale;
                            t.kv0 = kv0, t.softcap = softcap;
                            std::vector<float> out((size_t) rows * hd, NAN);
                            t.q = q.data(), t.out = out.data(), t.row_stride = hd;
                            t.kv_dtype = dtype;
                            t.k = k.data() + (size_t) kv_head * hd * elem,
                            t.v = v.data() + (size_t) kv_head * hd * elem;
                            t.kv_row_bytes = (int64_t) (row * elem);
                            t.k_scale = ks.data() + kv_head, t.v_scale = vs.data() + kv_head, t.scale_stride = heads;
                            t.block_table = table.data(), t.block_size = block;
                            std::vector<float> scratch(attn_scratch_floats(rows, n_ctx, hd));
                            ks_->attend(t, scratch.data());
                            double worst = 0;
                            for (size_t i = 0; i < out.size(); i++)
                                worst = std::fmax(worst, std::fabs(out[i] - ref[i]));
                            CHECK(worst < 2e-5,
                                  "attention %s dtype %d hd %d rows %d n_ctx %d kv0 %d softcap %g: max abs diff %g",
                                  ks_->name, dtype, hd, rows, n_ctx, kv0, softcap, worst);
                        }
                    }
            }
        }
    }
    // silu(g) * u, against double, over the range where exp matters (and a tail that is not a vector multiple).
    auto g = gaussian(1003, 7, 6.0f), u = gaussian(1003, 8, 1.0f);
    for (const CpuKernels * ks_ : kernel_sets()) {
        std::vector<float> y = g;
        ks_->silu_mul(y.data(), u.data(), (int64_t) y.size());
        double worst = 0;
        for (size_t i = 0; i < y.size(); i++) {
            const double e = (double) g[i] / (1.0 + std::exp(-(double) g[i])) * u[i];
            worst = std::fmax(worst, std::fabs(y[i] - e) / (1e-3 + std::fabs(e)));
        }
        CHECK(worst < 1e-5, "silu_mul %s: max rel diff %g", ks_->name, worst);
    }
}

// MLA's latent attention (mla.h): one KV "head" whose row is [latent (hd_v) | rope part], all query heads of a token
// in one task, the values being the first hd_v elements of the key rows (v points at the keys, one int8 scale per row
// serves both), and outputs written at their own stride (head-major o_lat). Against a double reference; the output
// gaps between rows stay untouched. Widths: the synthetic presets' (64 + 16), DeepSeek's (512 + 64), and one that is
// not a multiple of 16 (the AVX-512 set then takes the portable path).
static void test_attention_latent() {
    const int block = 16, n_blocks = 12;
    for (int dtype = 0; dtype < 3; dtype++) {
        for (auto [hd_v, rope] : {std::pair<int, int>{64, 16}, {512, 64}, {56, 16}}) {
            const int hd = hd_v + rope;
            for (int rows : {1, 16}) {
                for (int n_ctx : {1, 33, 150}) {
                    const size_t slots = (size_t) n_blocks * block, elem = dtype == 0 ? 4 : dtype == 1 ? 2 : 1;
                    std::vector<uint8_t> k(slots * hd * elem);
                    std::vector<float> ks(slots);
                    std::vector<double> kd(slots * hd);
                    auto kf = gaussian(slots * hd, 400 + hd + n_ctx, 1.0f);
                    for (size_t i = 0; i < slots * hd; i++) {
                        const float x = kf[i];
                        if (dtype == 0) {
                            std::memcpy(&k[i * 4], &x, 4);
                            kd[i] = x;
                        } else if (dtype == 1) {
                            const uint16_t hb = quant::f32_to_f16(x);
                            std::memcpy(&k[i * 2], &hb, 2);
                            kd[i] = quant::f16_to_f32(hb);
                        } else {
                            const float sc = 3.0f / 127.0f;
                            ks[i / hd] = sc;
                            const int q = (int) std::lrint(std::fmax(-127.0f, std::fmin(127.0f, x / sc)));
                            k[i] = (uint8_t) (int8_t) q;
                            kd[i] = (double) q * sc;
                        }
                    }
                    std::vector<int32_t> table(n_blocks);
                    for (int b = 0; b < n_blocks; b++) table[b] = (b * 5 + 2) % n_blocks;
                    auto q = gaussian((size_t) rows * hd, 500 + rows, 0.3f);
                    const float scale = 0.2f;
                    std::vector<double> ref((size_t) rows * hd_v, 0.0);
                    for (int r = 0; r < rows; r++) {
                        std::vector<double> sc(n_ctx);
                        double m = -1e300, sum = 0;
                        for (int j = 0; j < n_ctx; j++) {
                            const size_t slot = (size_t) table[j / block] * block + j % block;
                            double d = 0;
                            for (int i = 0; i < hd; i++) d += (double) q[(size_t) r * hd + i] * kd[slot * hd + i];
                            m = std::fmax(m, sc[j] = d * scale);
                        }
                        for (int j = 0; j < n_ctx; j++) sum += (sc[j] = std::exp(sc[j] - m));
                        for (int j = 0; j < n_ctx; j++) {
                            const size_t slot = (size_t) table[j / block] * block + j % block;
                            for (int i = 0; i < hd_v; i++)
                                ref[(size_t) r * hd_v + i] += sc[j] / sum * kd[slot * hd + i];
                        }
                    }
                    const int64_t out_stride = 3 * hd_v; // other tokens' rows in between, as o_lat's [head][token]
                    for (const CpuKernels * ks_ : kernel_sets()) {
                        AttnTask t;
                        t.hd = hd, t.hd_v = hd_v, t.rows = rows, t.n_ctx = n_ctx, t.scale = scale;
                        std::vector<float> out((size_t) rows * out_stride, NAN);
                        t.q = q.data(), t.row_stride = hd, t.out = out.data(), t.out_stride = out_stride;
                        t.kv_dtype = dtype;
                        t.k = t.v = k.data();
                        t.kv_row_bytes = (int64_t) (hd * elem);
                        t.k_scale = t.v_scale = ks.data(), t.scale_stride = 1;
                        t.block_table = table.data(), t.block_size = block;
                        std::vector<float> scratch(attn_scratch_floats(rows, n_ctx, hd));
                        ks_->attend(t, scratch.data());
                        double worst = 0;
                        bool gaps_kept = true;
                        for (int r = 0; r < rows; r++) {
                            for (int i = 0; i < hd_v; i++)
                                worst = std::fmax(
                                    worst, std::fabs(out[(size_t) r * out_stride + i] - ref[(size_t) r * hd_v + i]));
                            for (int64_t i = hd_v; i < out_stride; i++)
                                gaps_kept = gaps_kept && std::isnan(out[(size_t) r * out_stride + i]);
                        }
                        CHECK(worst < 2e-5 && gaps_kept,
                              "latent attention %s dtype %d hd %d (values %d) rows %d n_ctx %d: max abs diff %g, "
                              "gaps kept %d",
                              ks_->name, dtype, hd, hd_v, rows, n_ctx, worst, (int) gaps_kept);
                    }
                }
            }
        }
    }
}

int main(int argc, char ** argv) {
    bool do_bench = false, do_tests = true;
    size_t mb = 600;
    std::vector<std::string> want{"avx512", "avx2", "scalar"};
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        if (a == "--bench") do_bench = true;
        else if (a == "--bench-only") do_bench = true, do_tests = false;
        else if (a == "--mb" && i + 1 < argc) mb = std::strtoul(argv[++i], nullptr, 10);
        else if (a == "--sets" && i + 1 < argc) {
            want.clear();
            std::string s = argv[++i];
            size_t p = 0;
            while (p <= s.size()) {
                size_t q = s.find(',', p);
                if (q == std::string::npos) q = s.size();
                want.push_back(s.substr(p, q - p));
                p = q + 1;
            }
        }
    }
    std::printf("kernel sets:");
    for (auto * k : kernel_sets()) std::printf(" %s", k->name);
    std::printf("; cpu_kernels() = %s\n", cpu_kernels().name);
    if (do_tests) {
        test_formats();
        test_matmul_vs_scalar();
        test_threads();
        test_accuracy();
        test_gguf_blocks();
        test_attention();
        test_attention_latent();
        std::printf(g_failures ? "FAILED: %d check(s)\n" : "all checks passed\n", g_failures);
    }
    if (do_bench) bench(mb, want);
    return g_failures ? 1 : 0;
}
