// GGUF / ggml tensor types and their block layouts, byte for byte as they are stored in a GGUF file, so that a
// tensor's bytes can be used in place (mmap) by the dot products of this folder. The layouts follow ggml's
// ggml-common.h; every struct below is checked against the bytes-per-block figure of that format.
//
// Everything here is plain data (no functions), so this header is safe to include from the files compiled with
// -mavx2 / -mavx512* (see kernels.h for the ODR caution).
#pragma once
#include <cstdint>

namespace tl {
namespace quant {

// ggml_type ids as written in a GGUF tensor-info record. The numbers are part of the file format: never renumber.
// Ids 4 and 5 (Q4_2, Q4_3) were removed from ggml long ago; 24..28 are integer / f64 types; 29 is IQ1_M.
enum class Type : uint32_t {
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    Q8_K = 15,
    IQ2_XXS = 16,
    IQ2_XS = 17,
    IQ3_XXS = 18,
    IQ1_S = 19,
    IQ4_NL = 20,
    IQ3_S = 21,
    IQ2_S = 22,
    IQ4_XS = 23,
    I8 = 24,
    I16 = 25,
    I32 = 26,
    I64 = 27,
    F64 = 28,
    IQ1_M = 29,
    BF16 = 30,
};

// One past the largest id this library knows; tables indexed by id have this many entries.
constexpr int kTypeCount = 31;

// Elements per block of the 32-element formats and of the 256-element "K" super-blocks.
constexpr int QK = 32;
constexpr int QK_K = 256;

// fp16 / bf16 scalars are kept as their raw bit patterns: the blocks are read straight from the file, and
// conversions live in half.h.
using f16_t = uint16_t;

// x = d * (q - 8), q in 0..15. qs[j] holds element j in its low nibble and element j + 16 in its high nibble.
struct BlockQ4_0 {
    f16_t d;
    uint8_t qs[QK / 2];
};
// x = d * q + m, q in 0..15, same nibble order as Q4_0.
struct BlockQ4_1 {
    f16_t d;
    f16_t m;
    uint8_t qs[QK / 2];
};
// x = d * (q - 16), q in 0..31: the low 4 bits as in Q4_0, bit 4 of element j is bit j of the 32-bit qh.
struct BlockQ5_0 {
    f16_t d;
    uint8_t qh[4];
    uint8_t qs[QK / 2];
};
// x = d * q + m, q in 0..31, bits as in Q5_0.
struct BlockQ5_1 {
    f16_t d;
    f16_t m;
    uint8_t qh[4];
    uint8_t qs[QK / 2];
};
// x = d * q, q in -128..127 (the quantizers here use -127..127).
struct BlockQ8_0 {
    f16_t d;
    int8_t qs[QK];
};
// Activation format paired with Q4_1 / Q5_1: x = d * q, and s = d * sum(qs) so that the weights' "+ m" term costs
// one multiply per block (m * s) instead of a sum over the block.
struct BlockQ8_1 {
    f16_t d;
    f16_t s;
    int8_t qs[QK];
};

// Q2_K: 16 sub-blocks of 16. x = d * (scales[i] & 15) * q - dmin * (scales[i] >> 4), q in 0..3.
// qs: 2 halves of 128 elements, 32 bytes each; in a half, byte l bits 2j..2j+1 hold element 32j + l.
// Sub-block i covers elements 16i..16i+15.
struct BlockQ2_K {
    uint8_t scales[QK_K / 16];
    uint8_t qs[QK_K / 4];
    f16_t d;
    f16_t dmin;
};
// Q3_K: 16 sub-blocks of 16. x = d * (sc_i - 32) * (q - 4 * !hbit), q (low 2 bits) in 0..3, so x/d/sc in -4..3.
// qs as in Q2_K; the high bit of element e (half h = e / 128, j = (e % 128) / 32, l = e % 32) is bit 4h + j of
// hmask[l]. The sixteen 6-bit scales are packed in 12 bytes: low nibbles of bytes 0..7 are scales 0..7, their high
// nibbles scales 8..15; the top 2 bits of scale i are bits 2(i/4)..2(i/4)+1 of byte 8 + i % 4.
struct BlockQ3_K {
    uint8_t hmask[QK_K / 8];
    uint8_t qs[QK_K / 4];
    uint8_t scales[12];
    f16_t d;
};
// Q4_K: 8 sub-blocks of 32. x = d * sc_j * q - dmin * m_j, q in 0..15, sc/m 6-bit (packing in formats.cpp's
// k4_scale_min). qs: 4 chunks of 32 bytes; chunk c low nibbles = elements 64c..64c+31, high = 64c+32..64c+63.
struct BlockQ4_K {
    f16_t d;
    f16_t dmin;
    uint8_t scales[12];
    uint8_t qs[QK_K / 2];
};
// Q5_K: as Q4_K with a fifth bit: element 64c + l (l < 32) has it in bit 2c of qh[l], element 64c + 32 + l in bit
// 2c + 1 of qh[l]. q in 0..31.
struct BlockQ5_K {
    f16_t d;
    f16_t dmin;
    uint8_t scales[12];
    uint8_t qh[QK_K / 8];
    uint8_t qs[QK_K / 2];
};
// Q6_K: 16 sub-blocks of 16, x = d * scales[i] * (q - 32), q in 0..63. Two halves of 128 elements; in half h,
// for l < 32: element 128h + l     = ql[64h + l] low nibble      | (qh[32h + l] bits 0-1) << 4
//             element 128h + 32 + l = ql[64h + 32 + l] low nibble | (qh[32h + l] bits 2-3) << 4
//             element 128h + 64 + l = ql[64h + l] high nibble     | (qh[32h + l] bits 4-5) << 4
//             element 128h + 96 + l = ql[64h + 32 + l] high nibble| (qh[32h + l] bits 6-7) << 4
struct BlockQ6_K {
    uint8_t ql[QK_K / 2];
    uint8_t qh[QK_K / 4];
    int8_t scales[QK_K / 16];
    f16_t d;
};
// Activation format of the K-quants and IQ4_XS: a float scale (not f16: the dot products' precision rests on it),
// and the sum of every 16 quants so that "- dmin * m" and offset terms cost a few multiplies per super-block.
struct BlockQ8_K {
    float d;
    int8_t qs[QK_K];
    int16_t bsums[QK_K / 16];
};
// Non-linear 4-bit: x = d * kIQ4NLValues[q], q in 0..15, nibble order as Q4_0.
struct BlockIQ4_NL {
    f16_t d;
    uint8_t qs[QK / 2];
};
// IQ4_XS: 8 sub-blocks of 32 with 6-bit scales: ls_j = (scales_l[j/2] >> 4(j%2)) & 15 | ((scales_h >> 2j) & 3) << 4,
// x = d * (ls_j - 32) * kIQ4NLValues[q]. qs: 16 bytes per sub-block, nibble order as Q4_0 within the sub-block.
struct BlockIQ4_XS {
    f16_t d;
    uint16_t scales_h;
    uint8_t scales_l[QK_K / 64];
    uint8_t qs[QK_K / 2];
};

// The codebook types (only their sizes matter here: they are recognised, not executed).
struct BlockIQ2_XXS {
    f16_t d;
    uint16_t qs[QK_K / 8];
};
struct BlockIQ2_XS {
    f16_t d;
    uint16_t qs[QK_K / 8];
    uint8_t scales[QK_K / 32];
};
struct BlockIQ2_S {
    f16_t d;
    uint8_t qs[QK_K / 4];
    uint8_t qh[QK_K / 32];
    uint8_t scales[QK_K / 32];
};
struct BlockIQ3_XXS {
    f16_t d;
    uint8_t qs[3 * QK_K / 8];
};
struct BlockIQ3_S {
    f16_t d;
    uint8_t qs[QK_K / 4];
    uint8_t qh[QK_K / 32];
    uint8_t signs[QK_K / 8];
    uint8_t scales[QK_K / 64];
};
struct BlockIQ1_S {
    f16_t d;
    uint8_t qs[QK_K / 8];
    uint16_t qh[QK_K / 32];
};
struct BlockIQ1_M {
    uint8_t qs[QK_K / 8];
    uint8_t qh[QK_K / 16];
    uint8_t scales[QK_K / 32];
};

// The sizes ggml stores. A mismatch here would make every tensor of that type unreadable, so fail the build.
static_assert(sizeof(BlockQ4_0) == 18, "Q4_0 block");
static_assert(sizeof(BlockQ4_1) == 20, "Q4_1 block");
static_assert(sizeof(BlockQ5_0) == 22, "Q5_0 block");
static_assert(sizeof(BlockQ5_1) == 24, "Q5_1 block");
static_assert(sizeof(BlockQ8_0) == 34, "Q8_0 block");
static_assert(sizeof(BlockQ8_1) == 36, "Q8_1 block");
static_assert(sizeof(BlockQ2_K) == 84, "Q2_K block");
static_assert(sizeof(BlockQ3_K) == 110, "Q3_K block");
static_assert(sizeof(BlockQ4_K) == 144, "Q4_K block");
static_assert(sizeof(BlockQ5_K) == 176, "Q5_K block");
static_assert(sizeof(BlockQ6_K) == 210, "Q6_K block");
static_assert(sizeof(BlockQ8_K) == 292, "Q8_K block");
static_assert(sizeof(BlockIQ4_NL) == 18, "IQ4_NL block");
static_assert(sizeof(BlockIQ4_XS) == 136, "IQ4_XS block");
static_assert(sizeof(BlockIQ2_XXS) == 66, "IQ2_XXS block");
static_assert(sizeof(BlockIQ2_XS) == 74, "IQ2_XS block");
static_assert(sizeof(BlockIQ2_S) == 82, "IQ2_S block");
static_assert(sizeof(BlockIQ3_XXS) == 98, "IQ3_XXS block");
static_assert(sizeof(BlockIQ3_S) == 110, "IQ3_S block");
static_assert(sizeof(BlockIQ1_S) == 50, "IQ1_S block");
static_assert(sizeof(BlockIQ1_M) == 56, "IQ1_M block");

// The 16 levels of IQ4_NL / IQ4_XS (a non-uniform grid fitted to bell-shaped weights), part of the format.
// Indices 0..7 are exactly the negative levels, which the SIMD kernels rely on (sign from the index's bit 3).
static constexpr int8_t kIQ4NLValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

} // namespace quant
} // namespace tl
