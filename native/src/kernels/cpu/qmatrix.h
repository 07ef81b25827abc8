// Weight matrices as the engine holds them, and the quantized activations the int8 / int4 kernels multiply.
//
// A QMatrix holds W with shape [rows = out features, cols = in features], row-major (y = W x). Its values are those of
// one GGUF tensor type (`qtype`: whatever the file holds, or what the weights policy re-quantized to), in one of these
// layouts:
//   BLOCKS  the GGUF blocks themselves, rows back to back (row stride quant::row_bytes(qtype, cols)); multiplied by
//           quant::matmul (native/src/quant) with activations in traits(qtype)->act_type. Every type but the four
//           below: F16, Q4_1, Q5_0, Q5_1, the K-quants, IQ4_NL, IQ4_XS.
// and the layouts of this folder's kernels (kernels.h), which are faster than the quant library's for these types
// (prefill ~2-4x: they pack row x token tiles for VPDPBUSD), so F32, BF16, Q8_0 and Q4_0 are held in them:
//   F32   data: float[rows][cols]
//   BF16  data: uint16 bf16[rows][cols]
//   I8    Q8_0 repacked (the same bits): group-wise symmetric int8, groups of QK = 32 along a row. Stored offset-binary: u8 = q + 128, so that the
//         VNNI instruction (u8 x s8) can take weights as its unsigned operand. scales: float[rows][n_groups].
//   I4    Q4_0 repacked (the same bits): group-wise symmetric int4, groups of 32: nibble = q + 8 (q in [-8, 7]). Per group 16 bytes; byte i holds
//         element i in its low nibble and element i + 16 in its high nibble (the Q4_0 layout). scales as I8.
// The f16 scale of a Q8_0 / Q4_0 block becomes the float in `scales` exactly. (Built from f32 directly, I8 / I4 rows
// whose length is not a multiple of 32 are zero-padded to cols_padded, a "ragged last group"; the engine's loader
// never does that: GGUF rows are whole blocks.)
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "quant/types.h"

namespace tl {

constexpr int QK = 32; // group size of the int8 / int4 formats

enum class WeightType { F32 = 0, BF16 = 1, I8 = 2, I4 = 3, BLOCKS = 4 };
const char * weight_type_name(WeightType t); // the layout: "f32", "bf16", "int8", "int4", "blocks"

// 64-byte aligned owning buffer.
struct AlignedBuffer {
    std::unique_ptr<uint8_t, void (*)(void *)> ptr{nullptr, nullptr};
    size_t size = 0;
    void allocate(size_t n_bytes); // zero-filled
    uint8_t * data() { return ptr.get(); }
    const uint8_t * data() const { return ptr.get(); }
};

struct QMatrix {
    WeightType type = WeightType::F32; // layout
    quant::Type qtype =
        quant::Type::F32; // GGUF type of the values (F32, BF16, Q8_0 for I8, Q4_0 for I4, any for BLOCKS)
    int64_t rows = 0;
    int64_t cols = 0;
    int64_t cols_padded = 0; // cols rounded up to QK for I8/I4; == cols otherwise
    AlignedBuffer data;
    AlignedBuffer scales; // I8/I4 only: float[rows][cols_padded / QK]
    // Provenance, for stats: the GGUF tensor, and the type the weights policy asked for (!= qtype after a fallback).
    std::string name;
    quant::Type requested = quant::Type::F32;

    int64_t n_groups() const { return cols_padded / QK; }
    size_t row_bytes() const; // bytes of `data` per row
    size_t bytes() const { return data.size + scales.size; }
};

// Activations quantized for I8/I4 products: int8 per group of 32 with a float scale, plus the group's sum of q
// (needed to undo the weights' zero point: sum((w_u8 - zp) * a) = dot(w_u8, a) - zp * sum(a)).
struct QActs {
    int n = 0; // rows (tokens)
    int64_t cols_padded = 0;
    AlignedBuffer q;      // int8[n][cols_padded]
    AlignedBuffer scales; // float[n][cols_padded / QK]
    AlignedBuffer sums;   // int32[n][cols_padded / QK]
};

} // namespace tl
