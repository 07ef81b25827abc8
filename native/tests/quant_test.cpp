// Test + microbenchmark of the GGUF block-format library (native/src/quant).
//
// Build (from the repo root; outside build/, which node-gyp owns). tests/native/quant-formats.test.ts does the same:
//   R=$PWD; mkdir -p /tmp/qt && cd /tmp/qt; F="-std=c++17 -O2 -I$R/native/src"; Q=$R/native/src/quant
//   g++ $F -c $Q/dot_avx512.cpp -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx512bf16 -mfma -mf16c -mavx2
//   g++ $F -c $Q/dot_avx2.cpp -mavx2 -mfma -mf16c
//   g++ $F $R/native/tests/quant_test.cpp $Q/formats.cpp $Q/dequantize.cpp $Q/quantize_weights.cpp
//       $Q/quantize_acts.cpp $Q/dot_scalar.cpp $Q/dispatch.cpp $Q/matmul.cpp dot_avx512.o dot_avx2.o -lpthread
//       -o quant_test                                                                        (one command)
// Run:  ./quant_test               correctness (prints "N passed, 0 failed")
//       ./quant_test --rmse        also the quantize -> dequantize RMSE table on Gaussian data (n = 2^20 per type)
//       ./quant_test --bench       also the decode bandwidth table (GB/s of weight bytes vs a plain read probe, 1 and
//                                  2 threads, matrix >> L3) and prefill throughput; --bench-only skips the tests;
//                                  --mb N sets the matrix size (default 768 MiB), --types q4_K,q8_0 restricts.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "quant/half.h"
#include "quant/kernels.h"
#include "quant/quant.h"

using namespace tl::quant;

// ------------------------------------------------------------------------------------------------ harness

static int g_passed = 0, g_failed = 0;
#define CHECK(cond, ...)                                                                                               \
    do {                                                                                                               \
        if (cond) {                                                                                                    \
            g_passed++;                                                                                                \
        } else {                                                                                                       \
            g_failed++;                                                                                                \
            if (g_failed < 40) {                                                                                       \
                std::printf("FAIL %s:%d: ", __FILE__, __LINE__);                                                     \
                std::printf(__VA_ARGS__);                                                                              \
                std::printf("\n");                                                                                     \
            }                                                                                                          \
        }                                                                                                              \
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

// Every weight type with native products, in the order of the tables printed below.
static const Type kWeightTypes[] = {Type::F32,  Type::F16,  Type::BF16, Type::Q8_0, Type::Q4_0,
                                    Type::Q4_1, Type::Q5_0, Type::Q5_1, Type::Q2_K, Type::Q3_K,
                                    Type::Q4_K, Type::Q5_K, Type::Q6_K, Type::IQ4_NL, Type::IQ4_XS};

static std::vector<uint8_t> quantize(Type t, const float * x, int64_t n) {
    std::vector<uint8_t> b((size_t) row_bytes(t, n));
    quantize_row(t, x, b.data(), n);
    return b;
}
static std::vector<float> dequantize(Type t, const void * b, int64_t n) {
    std::vector<float> y((size_t) n);
    dequantize_row(t, b, y.data(), n);
    return y;
}

// Every kernel set this CPU can run (QT_SETS=scalar,avx512 restricts, for debugging one set).
static std::vector<const Kernels *> kernel_sets() {
    std::vector<const Kernels *> all{&kernels_scalar()}, v;
    if (kernels_avx2()) all.push_back(kernels_avx2());
    if (kernels_avx512()) all.push_back(kernels_avx512());
    const char * only = std::getenv("QT_SETS");
    for (const Kernels * k : all)
        if (!only || std::string(",") .append(only).append(",").find(std::string(",") + k->name + ",") != std::string::npos)
            v.push_back(k);
    return v;
}

// ------------------------------------------------------------------------------------------------ traits

static void test_traits() {
    // Independent copy of ggml's table (ggml.h ggml_type / ggml-common.h block structs): id, name, block, bytes, act.
    struct Row {
        uint32_t id;
        const char * name;
        int elems, bytes;
        Type act;
        Support support;
    };
    const Row rows[] = {
        {0, "f32", 1, 4, Type::F32, Support::Full},          {1, "f16", 1, 2, Type::F32, Support::Full},
        {2, "q4_0", 32, 18, Type::Q8_0, Support::Full},      {3, "q4_1", 32, 20, Type::Q8_1, Support::Full},
        {6, "q5_0", 32, 22, Type::Q8_0, Support::Full},      {7, "q5_1", 32, 24, Type::Q8_1, Support::Full},
        {8, "q8_0", 32, 34, Type::Q8_0, Support::Full},      {9, "q8_1", 32, 36, Type::Q8_1, Support::Activation},
        {10, "q2_K", 256, 84, Type::Q8_K, Support::Full},    {11, "q3_K", 256, 110, Type::Q8_K, Support::Full},
        {12, "q4_K", 256, 144, Type::Q8_K, Support::Full},   {13, "q5_K", 256, 176, Type::Q8_K, Support::Full},
        {14, "q6_K", 256, 210, Type::Q8_K, Support::Full},   {15, "q8_K", 256, 292, Type::Q8_K, Support::Activation},
        {16, "iq2_xxs", 256, 66, Type::Q8_K, Support::Recognised}, {17, "iq2_xs", 256, 74, Type::Q8_K, Support::Recognised},
        {18, "iq3_xxs", 256, 98, Type::Q8_K, Support::Recognised}, {19, "iq1_s", 256, 50, Type::Q8_K, Support::Recognised},
        {20, "iq4_nl", 32, 18, Type::Q8_0, Support::Full},   {21, "iq3_s", 256, 110, Type::Q8_K, Support::Recognised},
        {22, "iq2_s", 256, 82, Type::Q8_K, Support::Recognised}, {23, "iq4_xs", 256, 136, Type::Q8_K, Support::Full},
        {29, "iq1_m", 256, 56, Type::Q8_K, Support::Recognised}, {30, "bf16", 1, 2, Type::BF16, Support::Full},
    };
    for (const Row & r : rows) {
        const TypeTraits * t = traits(r.id);
        CHECK(t != nullptr, "traits(%u) missing", r.id);
        if (!t) continue;
        CHECK((uint32_t) t->type == r.id, "%s id", r.name);
        CHECK(std::strcmp(t->name, r.name) == 0, "id %u name %s != %s", r.id, t->name, r.name);
        CHECK(t->block_elems == r.elems, "%s block elems %d", r.name, t->block_elems);
        CHECK(t->block_bytes == r.bytes, "%s block bytes %d", r.name, t->block_bytes);
        CHECK(t->support == r.support, "%s support", r.name);
        if (r.support == Support::Full || r.support == Support::Activation)
            CHECK(t->act_type == r.act, "%s act type %s", r.name, type_name(t->act_type));
        CHECK(t->is_quantized == (r.elems > 1), "%s is_quantized", r.name);
        // row_bytes and the row-length check
        CHECK(row_bytes(t->type, 4096) == 4096 / r.elems * r.bytes, "%s row_bytes(4096)", r.name);
        CHECK(row_bytes(t->type, 7 * r.elems) == 7 * r.bytes, "%s row_bytes(7 blocks)", r.name);
        std::string why;
        CHECK(check_row_length(t->type, 3 * r.elems, &why), "%s 3 blocks ok", r.name);
        if (r.elems > 1) {
            CHECK(!check_row_length(t->type, 3 * r.elems + 1, &why) && why.find("multiple") != std::string::npos,
                  "%s refuses a partial block (%s)", r.name, why.c_str());
            CHECK(row_bytes(t->type, r.elems + 16) == -1, "%s row_bytes of a partial block", r.name);
        }
        CHECK(!check_row_length(t->type, 0, &why), "%s refuses n = 0", r.name);
        CHECK(is_native_weight_type(t->type) == (r.support == Support::Full), "%s native", r.name);
    }
    for (uint32_t id : {4u, 5u, 31u, 39u, 1000u, 0xffffffffu}) CHECK(traits(id) == nullptr, "id %u is unknown", id);
    std::string why;
    CHECK(!check_row_length(Type(4), 32, &why) && why.find("unknown") != std::string::npos, "unknown id refused");
    CHECK(row_bytes(Type(77), 256) == -1, "row_bytes of an unknown id");
}

// ------------------------------------------------------------------------------------------------ half floats

static void test_half() {
    CHECK(f32_to_f16(1.0f) == 0x3c00, "f16 1.0");
    CHECK(f32_to_f16(-2.0f) == 0xc000, "f16 -2");
    CHECK(f32_to_f16(65504.0f) == 0x7bff, "f16 max");
    CHECK(f32_to_f16(65519.0f) == 0x7bff, "f16 65519 rounds down");
    CHECK(f32_to_f16(65520.0f) == 0x7c00, "f16 65520 overflows to Inf");
    CHECK(f32_to_f16(std::ldexp(1.0f, -24)) == 0x0001, "f16 smallest subnormal");
    CHECK(f32_to_f16(std::ldexp(1.0f, -25)) == 0x0000, "f16 tie to even at 2^-25");
    CHECK(f32_to_f16(std::ldexp(3.0f, -25)) == 0x0002, "f16 subnormal tie up to even");
    CHECK(f32_to_f16(std::ldexp(1.0f, -14)) == 0x0400, "f16 smallest normal");
    CHECK(f32_to_f16(1.0f + std::ldexp(1.0f, -11)) == 0x3c00, "f16 tie to even (down)");
    CHECK(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3c02, "f16 tie to even (up)");
    CHECK(f16_is_nonfinite(f32_to_f16(NAN)) && (f32_to_f16(NAN) & 0x3ff), "f16 NaN stays NaN");
    CHECK(f16_to_f32(0x3555) == 0.333251953125f, "f16 -> f32 exact");
    CHECK(f16_to_f32(0x0001) == std::ldexp(1.0f, -24), "f16 subnormal -> f32");
    CHECK(std::isinf(f16_to_f32(0x7c00)) && std::isnan(f16_to_f32(0x7e00)), "f16 Inf / NaN -> f32");
    int bad = 0; // every finite f16 survives f16 -> f32 -> f16
    for (uint32_t h = 0; h < 65536; h++)
        if (!f16_is_nonfinite((uint16_t) h) && f32_to_f16(f16_to_f32((uint16_t) h)) != h) bad++;
    CHECK(bad == 0, "f16 round trip: %d patterns differ", bad);
    CHECK(f32_to_bf16(1.0f) == 0x3f80, "bf16 1.0");
    CHECK(f32_to_bf16(bits_to_f32(0x3f808000u)) == 0x3f80, "bf16 tie to even (down)");
    CHECK(f32_to_bf16(bits_to_f32(0x3f818000u)) == 0x3f82, "bf16 tie to even (up)");
    CHECK(bf16_is_nonfinite(f32_to_bf16(NAN)) && (f32_to_bf16(NAN) & 0x7f), "bf16 NaN stays NaN");
}

// ------------------------------------------------------------------------------------------------ golden blocks
// Blocks written byte by byte from the layout description (ggml-common.h and dequantize_row_* in ggml-quants.c),
// with the expected values worked out by hand. A layout mistake shared by this library's quantizer and dequantizer
// round-trips fine but fails here.

static void put_f16(uint8_t * p, uint16_t h) { std::memcpy(p, &h, 2); }

static void test_golden() {
    const uint16_t ONE = 0x3c00, HALF = 0x3800, TWO = 0x4000, QUARTER = 0x3400;
    { // Q4_0: d = 2; qs[0] = 0x9F -> element 0 = 15 - 8 = 7 -> 14; element 16 = 9 - 8 = 1 -> 2; others q = 8 -> 0.
        uint8_t b[18];
        put_f16(b, TWO);
        std::memset(b + 2, 0x88, 16);
        b[2] = 0x9f;
        b[2 + 15] = 0x08; // element 15 = 8 -> 0, element 31 = 0 - 8 = -8 -> -16
        auto y = dequantize(Type::Q4_0, b, 32);
        CHECK(y[0] == 14 && y[16] == 2 && y[15] == 0 && y[31] == -16 && y[1] == 0, "golden q4_0: %g %g %g %g", y[0],
              y[16], y[15], y[31]);
    }
    { // Q5_0: d = 1; qh bit 0 (element 0) and bit 17 (element 17) set. qs[0] = 0x00, qs[1] = 0x30.
        uint8_t b[22] = {};
        put_f16(b, ONE);
        const uint32_t qh = (1u << 0) | (1u << 17);
        std::memcpy(b + 2, &qh, 4);
        b[6 + 1] = 0x30; // element 1: low nibble 0 -> -16; element 17: 3 | 16 = 19 -> 3
        auto y = dequantize(Type::Q5_0, b, 32);
        CHECK(y[0] == 0 && y[1] == -16 && y[17] == 3 && y[16] == -16, "golden q5_0: %g %g %g %g", y[0], y[1], y[17],
              y[16]);
    }
    { // Q4_1: d = 0.5, m = -1; qs[3] = 0xA2: element 3 = 2 * 0.5 - 1 = 0; element 19 = 10 * 0.5 - 1 = 4.
        uint8_t b[20] = {};
        put_f16(b, HALF);
        put_f16(b + 2, 0xbc00); // -1
        b[4 + 3] = 0xa2;
        auto y = dequantize(Type::Q4_1, b, 32);
        CHECK(y[3] == 0 && y[19] == 4 && y[0] == -1, "golden q4_1");
    }
    { // Q4_K: d = 1, dmin = 0.5. Scales (6-bit) sc = {1,2,3,4, 5,6,7,63}, mins m = {0,1,2,3, 4,5,6,33}.
        // bytes 0..3: sc0..3 | top 2 bits of sc4..7 in bits 6-7: sc4..6 < 16 (top 0), sc7 = 63 -> top 3.
        // bytes 4..7: m0..3  | top 2 bits of m4..7: m7 = 33 = 0b10'0001 -> top 2.
        // bytes 8..11: low nibble sc(4+k) | low nibble m(4+k) << 4.
        uint8_t b[144] = {};
        put_f16(b, ONE);
        put_f16(b + 2, HALF);
        const uint8_t sc[12] = {1, 2, 3, 4 | (3 << 6), 0, 1, 2, 3 | (2 << 6), 5 | (4 << 4), 6 | (5 << 4), 7 | (6 << 4), 15 | (1 << 4)};
        std::memcpy(b + 4, sc, 12);
        uint8_t * qs = b + 16;
        qs[0] = 0x21;       // element 0 (sub 0): q 1 -> 1*1*1 - 0.5*0 = 1;   element 32 (sub 1): q 2 -> 1*2*2 - 0.5*1 = 3.5
        qs[32 + 5] = 0x43;  // element 69 (sub 2): q 3 -> 3*3 - 0.5*2 = 8;    element 101 (sub 3): q 4 -> 4*4 - 1.5 = 14.5
        qs[96 + 31] = 0xf7; // element 223 (sub 6): q 7 -> 7*7 - 3 = 46;      element 255 (sub 7): q 15 -> 63*15 - 16.5
        auto y = dequantize(Type::Q4_K, b, 256);
        CHECK(y[0] == 1 && y[32] == 3.5f && y[69] == 8 && y[101] == 14.5f && y[223] == 46 && y[255] == 928.5f,
              "golden q4_K: %g %g %g %g %g %g", y[0], y[32], y[69], y[101], y[223], y[255]);
        CHECK(y[1] == 0 && y[33] == -0.5f && y[200] == -3 && y[250] == -16.5f, "golden q4_K mins: %g %g %g %g", y[1],
              y[33], y[200], y[250]);
    }
    { // Q5_K: as Q4_K's header with all sc = 1, m = 0 (d = 1); qh[l] bit 2c (+1 for the high nibble) adds 16.
        uint8_t b[176] = {};
        put_f16(b, ONE);
        for (int j = 0; j < 4; j++) b[4 + j] = 1;  // sc0..3 = 1, m0..3 = 0
        for (int j = 0; j < 4; j++) b[12 + j] = 1; // sc4..7 low nibble 1, m4..7 = 0
        uint8_t * qh = b + 16;
        uint8_t * qs = b + 48;
        qh[3] = (1 << 0) | (1 << 5);          // element 3 (chunk 0, low) +16; element 64*2+32+3 = 163 (chunk 2 high) +16
        qs[3] = 0x52;                          // element 3 = 2 | 16 = 18; element 35 = 5
        qs[64 + 3] = 0x70;                     // element 131 = 0; element 163 = 7 | 16 = 23
        auto y = dequantize(Type::Q5_K, b, 256);
        CHECK(y[3] == 18 && y[35] == 5 && y[131] == 0 && y[163] == 23, "golden q5_K: %g %g %g %g", y[3], y[35],
              y[131], y[163]);
    }
    { // Q6_K: d = 0.25, scales[i] = i + 1 (sub-block i = elements 16i..16i+15). Element 128h + 32k + l:
        // low nibble from ql[64h + 32(k&1) + l] (k < 2: low, else high), 2 high bits from qh[32h + l] bits 2k.
        uint8_t b[210] = {};
        uint8_t * ql = b;
        uint8_t * qh = b + 128;
        int8_t * scales = (int8_t *) (b + 192);
        for (int i = 0; i < 16; i++) scales[i] = (int8_t) (i + 1);
        put_f16(b + 208, QUARTER);
        // element 5 (h0,k0): q = 0x3 | (2 << 4) = 35 -> 0.25 * 1 * 3 = 0.75
        ql[5] = 0x03;
        qh[5] = 2 << 0;
        // element 64 + 17 = 81 (h0,k2, l=17, sub 5): q = ql[17] high nibble 0xF | (qh[17] bits 4-5 = 3) << 4 = 63
        //   -> 0.25 * 6 * 31 = 46.5
        ql[17] = 0xf0;
        qh[17] = 3 << 4;
        // element 128 + 96 + 1 = 225 (h1,k3, l=1, sub 14): ql[64 + 32 + 1] high nibble 0, qh[33] bits 6-7 = 0 -> q = -32
        //   -> 0.25 * 15 * -32 = -120
        auto y = dequantize(Type::Q6_K, b, 256);
        CHECK(y[5] == 0.75f && y[81] == 46.5f && y[225] == -120 && y[17] == -16,
              "golden q6_K: %g %g %g %g", y[5], y[81], y[225], y[17]);
    }
    { // Q3_K: d = 1. Scale bytes: low nibbles of bytes 0..7 = scales 0..7, high nibbles = scales 8..15, top 2 bits
        // of scale i in byte 8 + i%4, bits 2(i/4). Choose scale 0 = 33 (stored; -> 1), scale 9 = 40 (-> 8):
        // scale 0: low 1 in byte 0 low nibble, top 2 (=2, 33 = 0b10'0001) in byte 8 bits 0-1.
        // scale 9: 40 = 0b10'1000: low 8 in byte 1 high nibble, top 2 in byte 9 bits 4-5 (9 % 4 = 1, 9 / 4 = 2).
        // every other scale stored 0 -> -32.
        uint8_t b[110] = {};
        uint8_t * hmask = b;
        uint8_t * qs = b + 32;
        uint8_t * sc = b + 96;
        sc[0] = 0x01;
        sc[8] = 0x02;
        sc[1] = 0x80;
        sc[9] = 0x02 << 4;
        put_f16(b + 108, ONE);
        // element 2 (sub 0; half 0, j 0, l 2): low bits 3, hmask[2] bit 0 set -> q = 3 -> 1 * 3 = 3
        qs[2] = 0x03;
        hmask[2] = 0x01;
        // element 128 + 16 + 4 = 148 (sub 9; half 1, j 0, l 20): low bits 1 (qs[32 + 20] bits 0-1), hmask[20] bit 4
        //   clear -> q = 1 - 4 = -3 -> 8 * -3 = -24
        qs[32 + 20] = 0x01;
        // element 1 (sub 0): low 0, hmask clear -> q = -4 -> -4
        auto y = dequantize(Type::Q3_K, b, 256);
        CHECK(y[2] == 3 && y[148] == -24 && y[1] == -4 && y[16] == 128, "golden q3_K: %g %g %g %g", y[2], y[148], y[1],
              y[16]);
    }
    { // Q2_K: d = 1, dmin = 1. scales[i] = sc | m << 4. Element 128h + 32j + l: qs[32h + l] bits 2j; sub = e / 16.
        uint8_t b[84] = {};
        uint8_t * scales = b;
        uint8_t * qs = b + 16;
        put_f16(b + 80, ONE);
        put_f16(b + 82, ONE);
        scales[2] = 3 | (1 << 4);  // sub 2 = elements 32..47 (h0, j1, l 0..15)
        scales[13] = 5 | (2 << 4); // sub 13 = elements 208..223 (h1, j2, l 16..31)
        qs[7] = 2 << 2;            // element 39: q 2 -> 3 * 2 - 1 = 5
        qs[32 + 20] = 3 << 4;      // element 128 + 64 + 20 = 212: q 3 -> 5 * 3 - 2 = 13
        auto y = dequantize(Type::Q2_K, b, 256);
        CHECK(y[39] == 5 && y[212] == 13 && y[40] == -1 && y[0] == 0, "golden q2_K: %g %g %g %g", y[39], y[212], y[40],
              y[0]);
    }
    { // IQ4_NL: d = 1, qs[0] = 0xF0 -> element 0 = kv[0] = -127, element 16 = kv[15] = 113.
        uint8_t b[18] = {};
        put_f16(b, ONE);
        b[2] = 0xf0;
        auto y = dequantize(Type::IQ4_NL, b, 32);
        CHECK(y[0] == -127 && y[16] == 113 && y[1] == -127, "golden iq4_nl");
    }
    { // IQ4_XS: d = 0.5; sub-block 3 scale = scales_l[1] high nibble | (scales_h bits 6-7) << 4; choose 34 (-> 2):
        // low nibble 2, top 2 bits 2. All other scales 0 (-> -32). qs of sub 3 start at byte 48 of qs.
        uint8_t b[136] = {};
        put_f16(b, HALF);
        const uint16_t sh = 2 << 6;
        std::memcpy(b + 2, &sh, 2);
        b[4 + 1] = 0x20;
        uint8_t * qs = b + 8;
        qs[48 + 2] = 0x9c; // element 96 + 2 = 98: kv[12] = 53 -> 0.5 * 2 * 53 = 53; element 114: kv[9] = 13 -> 13
        auto y = dequantize(Type::IQ4_XS, b, 256);
        CHECK(y[98] == 53 && y[114] == 13 && y[96] == -127 && y[0] == 0.5f * -32 * -127, "golden iq4_xs: %g %g %g %g",
              y[98], y[114], y[96], y[0]);
    }
    { // Q8_K activation block: d float, qs, bsums; dequant = d * q.
        BlockQ8_K b{};
        b.d = 0.5f;
        b.qs[255] = -7;
        auto y = dequantize(Type::Q8_K, &b, 256);
        CHECK(y[255] == -3.5f && y[0] == 0, "golden q8_K");
    }
}

// ------------------------------------------------------------------------------------------------ round trips

// Relative RMSE bound per type (quantize -> dequantize of N(0, 1) data): about 1.15x of what this quantizer measures
// (--rmse prints the figures), so a regression of the scale search fails while float noise does not.
static double rmse_bound(Type t) {
    switch (t) {
    case Type::F32: return 0;
    case Type::F16: return 3e-4;
    case Type::BF16: return 2.5e-3;
    case Type::Q8_0: return 0.0062;
    case Type::Q4_0: return 0.093;
    case Type::Q4_1: return 0.080;
    case Type::Q5_0: return 0.046;
    case Type::Q5_1: return 0.039;
    case Type::Q2_K: return 0.31;
    case Type::Q3_K: return 0.165;
    case Type::Q4_K: return 0.081;
    case Type::Q5_K: return 0.041;
    case Type::Q6_K: return 0.019;
    case Type::IQ4_NL: return 0.084;
    case Type::IQ4_XS: return 0.085;
    default: return 0;
    }
}

static double rel_rmse(const float * a, const float * b, int64_t n) {
    double se = 0, ss = 0;
    for (int64_t i = 0; i < n; i++) {
        se += ((double) a[i] - b[i]) * ((double) a[i] - b[i]);
        ss += (double) b[i] * b[i];
    }
    return std::sqrt(se / (ss + 1e-300));
}

static void test_roundtrip() {
    const int64_t n = 1 << 16;
    const auto x = gaussian(n, 11);
    for (Type t : kWeightTypes) {
        auto b = quantize(t, x.data(), n);
        auto y = dequantize(t, b.data(), n);
        const double e = rel_rmse(y.data(), x.data(), n);
        CHECK(e <= rmse_bound(t), "%s round trip rel RMSE %.5f > %.5f", type_name(t), e, rmse_bound(t));
        std::string why;
        CHECK(validate_blocks(t, b.data(), n / traits(t)->block_elems, &why), "%s: own output invalid: %s",
              type_name(t), why.c_str());
        // Scale invariance: a row scaled by 1000 (or 1e-3) quantizes to the same relative error.
        for (float s : {1e3f, 1e-3f}) {
            std::vector<float> xs(4096);
            for (int i = 0; i < 4096; i++) xs[i] = x[i] * s;
            auto ys = dequantize(t, quantize(t, xs.data(), 4096).data(), 4096);
            const double es = rel_rmse(ys.data(), xs.data(), 4096);
            CHECK(es <= rmse_bound(t) * 1.25 + 1e-6, "%s scaled by %g: rel RMSE %.5f", type_name(t), s, es);
        }
        // All zeros decode to exact zeros; a constant row and one outlier stay finite and bounded.
        std::vector<float> z(512, 0.0f);
        auto yz = dequantize(t, quantize(t, z.data(), 512).data(), 512);
        bool zeros = true;
        for (float v : yz) zeros = zeros && v == 0.0f;
        CHECK(zeros, "%s: zeros do not decode to zeros", type_name(t));
        std::vector<float> c(512, 0.75f);
        c[300] = -40.0f;
        auto yc = dequantize(t, quantize(t, c.data(), 512).data(), 512);
        bool finite = true;
        double worst = 0;
        for (int i = 0; i < 512; i++) {
            finite = finite && std::isfinite(yc[i]);
            worst = std::fmax(worst, std::fabs(yc[i] - c[i]));
        }
        // Coarsest grid: Q2_K's 4 levels over a sub-block holding -40 and 0.75 (plus scale rounding).
        CHECK(finite && worst <= 14.0, "%s: constant row with outlier: worst abs error %g", type_name(t), worst);
        // The outlier itself must be represented closely (it sets its block's scale).
        CHECK(std::fabs(yc[300] + 40.0f) <= 40.0f * 0.06f, "%s: outlier decodes to %g", type_name(t), yc[300]);
    }
}

static void print_rmse_table() {
    const int64_t n = 1 << 20;
    const auto x = gaussian(n, 12);
    std::printf("\nquantize -> dequantize, N(0,1), n = 2^20: relative RMSE, quantize speed (1 thread)\n");
    for (Type t : kWeightTypes) {
        std::vector<uint8_t> b((size_t) row_bytes(t, n));
        const double t0 = now_s();
        quantize_row(t, x.data(), b.data(), n);
        const double s = now_s() - t0;
        auto y = dequantize(t, b.data(), n);
        std::printf("  %-7s %8.5f   %6.1f bits/w   %7.1f M weights/s\n", type_name(t), rel_rmse(y.data(), x.data(), n),
                    8.0 * traits(t)->block_bytes / traits(t)->block_elems, n / s / 1e6);
    }
}

// ------------------------------------------------------------------------------------------------ activations

static void test_acts() {
    const int64_t n = 2048;
    auto x = gaussian(n, 21);
    x[5] = 1e-30f; // tiny values and an all-zero block
    for (int i = 64; i < 96; i++) x[i] = 0.0f;
    { // Q8_0
        std::vector<BlockQ8_0> q(n / 32);
        quantize_acts_q8_0(x.data(), q.data(), n);
        auto y = dequantize(Type::Q8_0, q.data(), n);
        bool range = true, err = true;
        for (int64_t b = 0; b < n / 32; b++) {
            float amax = 0;
            for (int j = 0; j < 32; j++) amax = std::fmax(amax, std::fabs(x[b * 32 + j]));
            const float d = f16_to_f32(q[b].d);
            for (int j = 0; j < 32; j++) {
                range = range && q[b].qs[j] >= -127;
                err = err && std::fabs(y[b * 32 + j] - x[b * 32 + j]) <= 0.5f * d * 1.001f + amax * 1e-3f;
            }
        }
        CHECK(range && err, "q8_0 acts: range %d, error within half a step %d", range, err);
        CHECK(q[2].d == 0 && y[70] == 0, "q8_0 acts: zero block");
    }
    { // Q8_1: s = d * sum(qs) to f16 precision
        std::vector<BlockQ8_1> q(n / 32);
        quantize_acts_q8_1(x.data(), q.data(), n);
        bool ok = true;
        for (int64_t b = 0; b < n / 32; b++) {
            int s = 0;
            for (int j = 0; j < 32; j++) s += q[b].qs[j];
            const float want = f16_to_f32(q[b].d) * (float) s;
            ok = ok && std::fabs(f16_to_f32(q[b].s) - want) <= std::fabs(want) * 1e-3f + 1e-7f;
        }
        CHECK(ok, "q8_1 acts: s = d * sum(qs)");
        auto y = dequantize(Type::Q8_1, q.data(), n);
        CHECK(rel_rmse(y.data(), x.data(), n) < 0.01, "q8_1 acts error");
    }
    { // Q8_K: bsums, range, float d
        std::vector<BlockQ8_K> q(n / 256);
        quantize_acts_q8_k(x.data(), q.data(), n);
        bool sums = true, range = true;
        for (auto & b : q)
            for (int g = 0; g < 16; g++) {
                int s = 0;
                for (int j = 0; j < 16; j++) {
                    s += b.qs[16 * g + j];
                    range = range && b.qs[16 * g + j] >= -127;
                }
                sums = sums && s == b.bsums[g];
            }
        CHECK(sums && range, "q8_K acts: bsums %d range %d", sums, range);
        auto y = dequantize(Type::Q8_K, q.data(), n);
        CHECK(rel_rmse(y.data(), x.data(), n) < 0.01, "q8_K acts error");
    }
    { // BF16 and F32 through the generic entry point
        std::vector<uint16_t> h(n);
        quantize_acts(Type::BF16, x.data(), h.data(), n);
        CHECK(h[0] == f32_to_bf16(x[0]) && h[n - 1] == f32_to_bf16(x[n - 1]), "bf16 acts");
        std::vector<float> f(n);
        quantize_acts(Type::F32, x.data(), f.data(), n);
        CHECK(std::memcmp(f.data(), x.data(), n * 4) == 0, "f32 acts copy");
    }
}

// ------------------------------------------------------------------------------------------------ dot products

struct QRow {
    std::vector<uint8_t> w, a;    // blocks
    std::vector<float> wd, ad;    // dequantized
};

static QRow make_row(Type t, int64_t n, uint64_t seed, float act_mean = 0.0f) {
    QRow r;
    auto x = gaussian(n, seed, 0.05f);
    auto v = gaussian(n, seed + 1000);
    for (auto & f : v) f += act_mean;
    const Type at = traits(t)->act_type;
    r.w = quantize(t, x.data(), n);
    r.a.resize((size_t) row_bytes(at, n));
    quantize_acts(at, v.data(), r.a.data(), n);
    r.wd = dequantize(t, r.w.data(), n);
    r.ad = dequantize(at, r.a.data(), n);
    return r;
}

// Error allowed between a product and the dequantized reference (or between two kernel sets): every set computes the
// same exact integer sum per block; the float part (one or two multiplies per block and a sum over blocks, or f32
// FMAs for the float types) rounds at ~1e-7 relative to the magnitudes involved, so 4e-5 of sum |w_i a_i| covers a
// 4096-long row with margin (the min/offset terms of the affine types are of the same magnitude on real data).
// With Q8_1 activations the product uses the stored f16 s = d * sum(a): add its rounding, |m| * |s| * 2^-11 per block.
static double dot_tolerance(Type t, const QRow & r, int64_t n) {
    double mag = 0;
    for (int64_t i = 0; i < n; i++) mag += std::fabs((double) r.wd[i] * r.ad[i]);
    double tol = 4e-5 * mag + 1e-30;
    if (traits(t)->act_type == Type::Q8_1) {
        for (int64_t b = 0; b < n / 32; b++) {
            const BlockQ8_1 & ab = reinterpret_cast<const BlockQ8_1 *>(r.a.data())[b];
            const uint16_t m = t == Type::Q4_1 ? reinterpret_cast<const BlockQ4_1 *>(r.w.data())[b].m
                                               : reinterpret_cast<const BlockQ5_1 *>(r.w.data())[b].m;
            tol += std::fabs(f16_to_f32(m) * f16_to_f32(ab.s)) * std::ldexp(1.0, -10);
        }
    }
    return tol;
}

static double ref_dot(const QRow & r, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double) r.wd[i] * r.ad[i];
    return s;
}

static float kdot(const Kernels & k, Type t, int64_t n, const void * w, const void * a) {
    float y = NAN;
    if (k.gemm[(int) t]) k.gemm[(int) t](n, w, 0, 1, a, 0, 1, &y, 0);
    return y;
}

static void test_dot_vs_reference() {
    const auto sets = kernel_sets();
    for (Type t : kWeightTypes) {
        const int be = traits(t)->block_elems;
        const int64_t unit = be == 1 ? 32 : be;
        // Block counts 1, 2, 3, 5, 16 and a 4096-long row; float types also odd lengths (no block constraint).
        std::vector<int64_t> ns = {unit, 2 * unit, 3 * unit, 5 * unit, 16 * unit, 4096};
        if (be == 1) ns.insert(ns.end(), {1, 7, 31, 33, 100, 1001});
        for (int64_t n : ns) {
            for (float mean : {0.0f, 2.0f}) { // mean 2: activations far from zero stress the offset terms
                QRow r = make_row(t, n, 31 + n + (mean != 0), mean);
                const double ref = ref_dot(r, n);
                const double tol = dot_tolerance(t, r, n);
                for (const Kernels * k : sets) {
                    CHECK(k->gemm[(int) t] != nullptr, "%s lacks %s", k->name, type_name(t));
                    if (!k->gemm[(int) t]) continue;
                    const float got = kdot(*k, t, n, r.w.data(), r.a.data());
                    CHECK(std::fabs(got - ref) <= tol, "%s %s n=%lld mean=%g: dot %.7g vs reference %.7g (tol %.3g)",
                          k->name, type_name(t), (long long) n, mean, got, ref, tol);
                }
                CHECK(std::fabs(vec_dot(t, n, r.w.data(), r.a.data()) - ref) <= tol, "vec_dot %s n=%lld",
                      type_name(t), (long long) n);
            }
        }
    }
}

// Blocks of random bytes (every quant, index and integer scale pattern, including Q8_0's -128, Q6_K's -128 scales
// and all-ones high bits) with finite random f16 scales, against activations at full scale (+-127): SIMD sums that
// saturate or overflow (PMADDUBSW, int16 partials) show here even where quantized Gaussian data never reaches.
static void test_random_blocks() {
    const auto sets = kernel_sets();
    std::mt19937_64 rng(77);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (Type t : kWeightTypes) {
        const TypeTraits * tt = traits(t);
        if (!tt->is_quantized) continue;
        const int64_t n = 2048, nb = n / tt->block_elems;
        std::vector<uint8_t> w((size_t) row_bytes(t, n));
        for (auto & b : w) b = (uint8_t) rng();
        // Replace the f16 fields by finite values: every f16 field of these formats sits at offset 0/2 except Q2_K's
        // d/dmin (80/82), Q3_K's d (108) and Q6_K's d (208).
        for (int64_t b = 0; b < nb; b++) {
            uint8_t * p = w.data() + b * tt->block_bytes;
            auto put = [&](int off) { put_f16(p + off, f32_to_f16(u(rng))); };
            switch (t) {
            case Type::Q2_K: put(80), put(82); break;
            case Type::Q3_K: put(108); break;
            case Type::Q6_K: put(208); break;
            case Type::Q4_1: case Type::Q5_1: case Type::Q4_K: case Type::Q5_K: put(0), put(2); break;
            default: put(0); break;
            }
        }
        // Activations with many +-127 (uniform in [-1, 1] per block, plus a block of all -max / +max).
        std::vector<float> v(n);
        for (auto & f : v) f = u(rng);
        for (int i = 0; i < 256; i++) v[i] = (i % 3) ? -1.0f : 1.0f;
        const Type at = tt->act_type;
        std::vector<uint8_t> a((size_t) row_bytes(at, n));
        quantize_acts(at, v.data(), a.data(), n);
        QRow r;
        r.w = w;
        r.a = a;
        r.wd = dequantize(t, w.data(), n);
        r.ad = dequantize(at, a.data(), n);
        // Here offsets are not tied to the data: allow 4e-5 of sum |w| |a| plus the min / offset magnitudes.
        double mag = 0, amax_w = 0;
        for (int64_t i = 0; i < n; i++) {
            mag += std::fabs((double) r.wd[i] * r.ad[i]);
            amax_w = std::fmax(amax_w, std::fabs(r.wd[i]));
        }
        double asum = 0;
        for (float f : r.ad) asum += std::fabs(f);
        const double tol = dot_tolerance(t, r, n) + 4e-5 * (mag + amax_w * asum);
        const double ref = ref_dot(r, n);
        for (const Kernels * k : sets) {
            const float got = kdot(*k, t, n, w.data(), a.data());
            CHECK(std::fabs(got - ref) <= tol, "%s %s random blocks: %.7g vs %.7g (tol %.3g)", k->name, type_name(t),
                  got, ref, tol);
        }
    }
}

// matmul (tiles of rows x tokens, any row range, token counts across the tile and token-block edges) == vec_dot.
static void test_matmul() {
    const auto sets = kernel_sets();
    const int64_t rows = 13;
    const int ntoks[] = {1, 2, 3, 4, 5, 7, 8, 9, 67};
    struct Range {
        int64_t b, e;
    };
    const Range ranges[] = {{0, 13}, {3, 10}, {5, 6}, {12, 13}};
    for (Type t : kWeightTypes) {
        const int64_t n = traits(t)->block_elems == QK_K ? 512 : 96;
        const int64_t wb = row_bytes(t, n), ab = row_bytes(traits(t)->act_type, n);
        auto x = gaussian(rows * n, 50, 0.05f);
        std::vector<uint8_t> W(rows * wb);
        for (int64_t r = 0; r < rows; r++) quantize_row(t, x.data() + r * n, W.data() + r * wb, n);
        auto v = gaussian(67 * n, 51);
        std::vector<uint8_t> A(67 * ab);
        for (int j = 0; j < 67; j++) quantize_acts(traits(t)->act_type, v.data() + j * n, A.data() + j * ab, n);
        // Reference: scalar vec_dot per (row, token), and its tolerance.
        std::vector<float> ref(67 * rows);
        std::vector<double> tol(67 * rows);
        for (int j = 0; j < 67; j++)
            for (int64_t r = 0; r < rows; r++) {
                ref[j * rows + r] = kdot(kernels_scalar(), t, n, W.data() + r * wb, A.data() + j * ab);
                QRow q;
                q.w.assign(W.begin() + r * wb, W.begin() + (r + 1) * wb);
                q.a.assign(A.begin() + j * ab, A.begin() + (j + 1) * ab);
                q.wd = dequantize(t, q.w.data(), n);
                q.ad = dequantize(traits(t)->act_type, q.a.data(), n);
                tol[j * rows + r] = dot_tolerance(t, q, n);
            }
        for (const Kernels * k : sets)
            for (int nt : ntoks)
                for (const Range & rg : ranges) {
                    const int64_t ys = rows + 2;
                    std::vector<float> y(nt * ys, -777.0f);
                    matmul(t, W.data(), wb, n, rg.b, rg.e, A.data(), ab, nt, y.data(), ys, k);
                    int bad = 0, outside = 0;
                    for (int j = 0; j < nt; j++)
                        for (int64_t r = 0; r < ys; r++) {
                            const float got = y[j * ys + r];
                            if (r < rg.b || r >= rg.e) outside += got != -777.0f;
                            else bad += !(std::fabs(got - ref[j * rows + r]) <= tol[j * rows + r]);
                        }
                    CHECK(bad == 0 && outside == 0, "%s %s matmul rows [%lld,%lld) x %d tokens: %d wrong, %d outside",
                          k->name, type_name(t), (long long) rg.b, (long long) rg.e, nt, bad, outside);
                }
    }
}

// ------------------------------------------------------------------------------------------------ validation

static void test_validate() {
    for (Type t : kWeightTypes) {
        const TypeTraits * tt = traits(t);
        const int64_t n = 1024, nb = n / tt->block_elems;
        auto x = gaussian(n, 5);
        auto b = quantize(t, x.data(), n);
        std::string why;
        CHECK(validate_blocks(t, b.data(), nb, &why), "%s clean blocks refused: %s", tt->name, why.c_str());
        // Offsets of the f16 / f32 fields to poison, per type (the float types: element 5).
        std::vector<std::pair<int, const char *>> fields;
        switch (t) {
        case Type::F32: case Type::F16: case Type::BF16: fields = {{5 * tt->block_bytes, "element"}}; break;
        case Type::Q2_K: fields = {{80, "d"}, {82, "dmin"}}; break;
        case Type::Q3_K: fields = {{108, "d"}}; break;
        case Type::Q6_K: fields = {{208, "d"}}; break;
        case Type::Q4_1: case Type::Q5_1: fields = {{0, "d"}, {2, "m"}}; break;
        case Type::Q4_K: case Type::Q5_K: fields = {{0, "d"}, {2, "dmin"}}; break;
        default: fields = {{0, "d"}}; break;
        }
        for (auto & f : fields)
            for (int kind = 0; kind < 2; kind++) {
                auto bad = b;
                const int64_t blk = tt->is_quantized ? nb - 1 : 0;
                uint8_t * p = bad.data() + blk * tt->block_bytes + f.first;
                if (t == Type::F32) {
                    const float v = kind ? INFINITY : NAN;
                    std::memcpy(p, &v, 4);
                } else if (t == Type::BF16) {
                    put_f16(p, kind ? 0x7f80 : 0x7fc1);
                } else {
                    put_f16(p, kind ? 0xfc00 : 0x7e01); // -Inf, NaN
                }
                why.clear();
                const bool ok = validate_blocks(t, bad.data(), nb, &why);
                const char * want = kind ? "Inf" : "NaN";
                CHECK(!ok && why.find(want) != std::string::npos && why.find(f.second) != std::string::npos,
                      "%s %s %s not detected (%s)", tt->name, f.second, want, why.c_str());
                if (tt->is_quantized)
                    CHECK(why.find(std::to_string(blk)) != std::string::npos, "%s: message names the block: %s",
                          tt->name, why.c_str());
            }
    }
    BlockQ8_K k{};
    k.d = NAN;
    std::string why;
    CHECK(!validate_blocks(Type::Q8_K, &k, 1, &why), "q8_K NaN d");
    CHECK(!validate_blocks(Type(4), nullptr, 1, &why), "unknown type refused");
    CHECK(validate_blocks(Type::Q4_0, nullptr, 0, &why), "no blocks is clean");
}

// ------------------------------------------------------------------------------------------------ benchmark

#if defined(__x86_64__) && defined(__GNUC__)
#if !defined(__clang__)
// GCC 12's avx512fintrin.h self-initialises _mm512_undefined_*(), which -Wuninitialized reports.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
__attribute__((target("avx512f"))) static double sum_avx512(const float * p, size_t n) {
    __m512 a = _mm512_setzero_ps(), b = a, c = a, d = a;
    for (size_t i = 0; i + 64 <= n; i += 64) {
        a = _mm512_add_ps(a, _mm512_loadu_ps(p + i));
        b = _mm512_add_ps(b, _mm512_loadu_ps(p + i + 16));
        c = _mm512_add_ps(c, _mm512_loadu_ps(p + i + 32));
        d = _mm512_add_ps(d, _mm512_loadu_ps(p + i + 48));
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a, b), _mm512_add_ps(c, d)));
}
#endif
static double sum_plain(const float * p, size_t n) {
    float s[8] = {};
    for (size_t i = 0; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) s[k] += p[i + k];
    return s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
}

// Run f(thread index) on `threads` threads; returns the wall time.
template <class F>
static double timed(int threads, F f) {
    const double t0 = now_s();
    if (threads == 1) {
        f(0);
    } else {
        std::vector<std::thread> ts;
        for (int i = 0; i < threads; i++) ts.emplace_back(f, i);
        for (auto & t : ts) t.join();
    }
    return now_s() - t0;
}

static double probe_bandwidth(const uint8_t * buf, size_t bytes, int threads, int reps) {
    const size_t nf = bytes / 4 / threads / 64 * 64;
    bool avx512 = false;
#if defined(__x86_64__) && defined(__GNUC__)
    avx512 = __builtin_cpu_supports("avx512f");
#endif
    double best = 1e30;
    volatile double sink = 0;
    for (int r = 0; r < reps; r++)
        best = std::min(best, timed(threads, [&](int i) {
                            const float * p = reinterpret_cast<const float *>(buf) + nf * i;
#if defined(__x86_64__) && defined(__GNUC__)
                            double v = avx512 ? sum_avx512(p, nf) : sum_plain(p, nf);
#else
                            double v = sum_plain(p, nf);
#endif
                            sink = sink + v;
                        }));
    return (double) nf * 4 * threads / best / 1e9;
}

static void bench(size_t mb, const std::vector<std::string> & only) {
    const int64_t n = 4096;
    const size_t bytes = mb << 20;
    // One buffer reused for every type (and the probe): page faults are paid once, before any timing.
    uint8_t * buf = static_cast<uint8_t *>(std::aligned_alloc(64, bytes));
    for (size_t i = 0; i < bytes; i += 4096) buf[i] = 1;
    {
        auto noise = gaussian(1 << 16, 3);
        for (size_t i = 0; i < bytes / 4; i++) reinterpret_cast<float *>(buf)[i] = noise[i & 0xffff];
    }
    const auto sets = kernel_sets();
    std::printf("\ndecode: y = W x for one token, W = %zu MiB of weights (n = %lld), best of 5; plain read probe in "
                "the same run\n", mb, (long long) n);
    double probe[3] = {0, 0, 0};
    for (int th = 1; th <= 2; th++) probe[th] = probe_bandwidth(buf, bytes, th, 5);
    std::printf("  read probe (AVX-512 sum): 1 thread %.1f GB/s, 2 threads %.1f GB/s\n", probe[1], probe[2]);
    std::printf("  %-7s %-7s %10s %7s %10s %7s\n", "type", "set", "1T GB/s", "ratio", "2T GB/s", "ratio");
    std::vector<uint8_t> acts;
    std::vector<float> y;
    for (Type t : kWeightTypes) {
        if (!only.empty() && std::find(only.begin(), only.end(), type_name(t)) == only.end()) continue;
        const int64_t wb = row_bytes(t, n);
        const int64_t rows = (int64_t) (bytes / wb) / 2 * 2;
        // Fill W by repeating 64 quantized rows (the content does not matter to the memory system).
        {
            auto x = gaussian(64 * n, 9, 0.05f);
            std::vector<uint8_t> q(64 * wb);
            for (int r = 0; r < 64; r++) quantize_row(t, x.data() + r * n, q.data() + r * wb, n);
            for (int64_t r = 0; r < rows; r++) std::memcpy(buf + r * wb, q.data() + (r % 64) * wb, wb);
        }
        const Type at = traits(t)->act_type;
        acts.resize(row_bytes(at, n));
        auto v = gaussian(n, 4);
        quantize_acts(at, v.data(), acts.data(), n);
        y.assign(rows, 0.0f);
        for (const Kernels * k : sets) {
            if (k == &kernels_scalar() && t != Type::Q4_K) continue; // scalar: one type, for scale
            double gbs[3] = {0, 0, 0};
            // The machine is shared and figures drift: re-measure the probe beside each kernel, report the ratio to it.
            probe[1] = probe[2] = 0;
            for (int th = 1; th <= 2; th++) probe[th] = probe_bandwidth(buf + bytes / 2, bytes / 2, th, 3);
            for (int th = 1; th <= 2; th++) {
                double best = 1e30;
                for (int rep = 0; rep < 5; rep++)
                    best = std::min(best, timed(th, [&](int i) {
                                        const int64_t r0 = rows * i / th, r1 = rows * (i + 1) / th;
                                        matmul(t, buf, wb, n, r0, r1, acts.data(), 0, 1, y.data(), 0, k);
                                    }));
                gbs[th] = (double) rows * wb / best / 1e9;
            }
            std::printf("  %-7s %-7s %10.1f %6.0f%% %10.1f %6.0f%%   (probe %.1f / %.1f)\n", type_name(t), k->name,
                        gbs[1], 100 * gbs[1] / probe[1], gbs[2], 100 * gbs[2] / probe[2], probe[1], probe[2]);
            std::fflush(stdout);
        }
    }
    std::free(buf);

    // Prefill: 64 tokens through a 4096 x 4096 matrix, tiled matmul vs one vec_dot per (row, token) pair.
    std::printf("\nprefill: 4096 x 4096 weights x 64 tokens, 1 thread: G multiply-adds/s (tiled matmul vs per-pair "
                "vec_dot)\n");
    const int64_t rows = 4096;
    const int ntok = 64;
    auto x = gaussian(64 * n, 19, 0.05f);
    auto v = gaussian(ntok * n, 20);
    for (Type t : kWeightTypes) {
        if (!only.empty() && std::find(only.begin(), only.end(), type_name(t)) == only.end()) continue;
        const int64_t wb = row_bytes(t, n), ab = row_bytes(traits(t)->act_type, n);
        std::vector<uint8_t> W(rows * wb), q(64 * wb), A(ntok * ab);
        for (int r = 0; r < 64; r++) quantize_row(t, x.data() + r * n, q.data() + r * wb, n);
        for (int64_t r = 0; r < rows; r++) std::memcpy(W.data() + r * wb, q.data() + (r % 64) * wb, wb);
        for (int j = 0; j < ntok; j++) quantize_acts(traits(t)->act_type, v.data() + j * n, A.data() + j * ab, n);
        std::vector<float> Y(ntok * rows);
        const Kernels & k = kernels();
        double tiled = 1e30, pairs = 1e30;
        for (int rep = 0; rep < 3; rep++) {
            tiled = std::min(tiled, timed(1, [&](int) { matmul(t, W.data(), wb, n, 0, rows, A.data(), ab, ntok, Y.data(), rows, &k); }));
            pairs = std::min(pairs, timed(1, [&](int) {
                                 for (int j = 0; j < ntok; j++)
                                     matmul(t, W.data(), wb, n, 0, rows, A.data() + j * ab, ab, 1, Y.data() + j * rows, rows, &k);
                             }));
        }
        const double macs = (double) rows * n * ntok;
        std::printf("  %-7s %-7s %8.1f  vs %8.1f   (x%.2f)\n", type_name(t), k.name, macs / tiled / 1e9,
                    macs / pairs / 1e9, pairs / tiled);
        std::fflush(stdout);
    }
}

int main(int argc, char ** argv) {
    bool do_tests = true, do_bench = false, do_rmse = false;
    size_t mb = 768;
    std::vector<std::string> only;
    for (int i = 1; i < argc; i++) {
        const std::string a = argv[i];
        if (a == "--bench") do_bench = true;
        else if (a == "--bench-only") do_bench = true, do_tests = false;
        else if (a == "--rmse") do_rmse = true;
        else if (a == "--mb" && i + 1 < argc) mb = std::strtoul(argv[++i], nullptr, 10);
        else if (a == "--types" && i + 1 < argc) {
            std::string s = argv[++i];
            for (size_t p = 0; p <= s.size();) {
                size_t q = s.find(',', p);
                if (q == std::string::npos) q = s.size();
                only.push_back(s.substr(p, q - p));
                p = q + 1;
            }
        }
    }
    std::printf("quant kernel sets:");
    for (const Kernels * k : kernel_sets()) std::printf(" %s", k->name);
    std::printf("; kernels() = %s\n", kernels().name);
    if (do_tests) {
        test_traits();
        test_half();
        test_golden();
        test_roundtrip();
        test_acts();
        test_dot_vs_reference();
        test_random_blocks();
        test_matmul();
        test_validate();
    }
    if (do_rmse) print_rmse_table();
    if (do_bench) bench(mb, only);
    if (do_tests) std::printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed ? 1 : 0;
}
