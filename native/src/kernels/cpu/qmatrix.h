// Weight matrices in the engine's own storage formats, and the quantized activations they multiply.
//
// A QMatrix holds W with shape [rows = out features, cols = in features], row-major (y = W x).
// Formats:
//   F32   data: float[rows][cols]
//   BF16  data: uint16 bf16[rows][cols]
//   I8    group-wise symmetric int8, groups of QK = 32 along a row. Stored offset-binary: u8 = q + 128, so that the
//         VNNI instruction (u8 x s8) can take weights as its unsigned operand. scales: float[rows][n_groups].
//   I4    group-wise symmetric int4, groups of 32: nibble = q + 8 (q in [-8, 7]). Per group 16 bytes; byte i holds
//         element i in its low nibble and element i + 16 in its high nibble (the Q4_0 layout). scales as I8.
// Rows whose length is not a multiple of 32 (e.g. 172) are zero-padded to cols_padded; the padding of weights and
// activations is zero, so it adds nothing to a dot product ("ragged last group").
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace tl {

constexpr int QK = 32; // group size of the int8 / int4 formats

enum class WeightType { F32 = 0, BF16 = 1, I8 = 2, I4 = 3 };
const char * weight_type_name(WeightType t);

// 64-byte aligned owning buffer.
struct AlignedBuffer {
    std::unique_ptr<uint8_t, void (*)(void *)> ptr{nullptr, nullptr};
    size_t size = 0;
    void allocate(size_t n_bytes); // zero-filled
    uint8_t * data() { return ptr.get(); }
    const uint8_t * data() const { return ptr.get(); }
};

struct QMatrix {
    WeightType type = WeightType::F32;
    int64_t rows = 0;
    int64_t cols = 0;
    int64_t cols_padded = 0; // cols rounded up to QK for I8/I4; == cols otherwise
    AlignedBuffer data;
    AlignedBuffer scales; // I8/I4 only: float[rows][cols_padded / QK]

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
