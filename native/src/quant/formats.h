// What the engine needs to know about each GGUF tensor type before touching its bytes: block geometry, which
// activation format its dot product consumes, and checks that let the loader refuse a malformed or hostile file
// with a message instead of computing garbage (or NaN) later.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "quant/types.h"

namespace tl {
namespace quant {

// Level of support for a type in this library.
enum class Support : uint8_t {
    None,      // unknown id, or a type this library cannot read (integer tensors, IQ1_M, ...)
    Recognised,// geometry known (row_bytes works), no dequantization: a loader can skip or refuse it by name
    Dequant,   // dequantize_row only (codebook types that are not executed natively)
    Full,      // dequantize_row, quantize_row, vec_dot / matmul on every kernel set
    Activation,// an activation format (Q8_0/Q8_1/Q8_K used for activations; F32/BF16 are weights too)
};

struct TypeTraits {
    Type type;
    const char * name;   // ggml's name ("q4_K", "bf16", ...)
    int block_elems;     // elements per block (1 for F32/F16/BF16)
    int block_bytes;     // bytes per block in the file
    Type act_type;       // activation format that vec_dot(type, ...) consumes (== type for activation formats)
    bool is_quantized;   // block format with scales (false for F32/F16/BF16 and integer types)
    Support support;
};

// Traits of a GGUF type id; nullptr for an id this library has never heard of.
const TypeTraits * traits(uint32_t id);
inline const TypeTraits * traits(Type t) { return traits((uint32_t) t); }
const char * type_name(Type t); // "unknown" when traits() is null

// Whether `t` is a weight type with native dot products (the engine can execute it in place).
bool is_native_weight_type(Type t);

// A row of `n` elements must be a whole number of blocks (GGUF stores rows back to back without padding).
// Returns true, or false with a reason in *why (when non-null).
bool check_row_length(Type t, int64_t n, std::string * why = nullptr);

// Bytes of a row of n elements, or -1 when n is not a whole number of blocks or the type is unknown.
int64_t row_bytes(Type t, int64_t n);

// Scan n_blocks blocks of type t for non-finite scales (f16 / f32 NaN or Inf in d, dmin, m, s) and, for the float
// types, non-finite elements. One NaN scale poisons every dot product that touches the row, so a loader calls this
// once per tensor and refuses the file with *why ("q4_K block 1234: d is NaN"). Returns true when clean.
// Integer fields (quants, 6-bit scales, indices) have no invalid values and are not checked.
bool validate_blocks(Type t, const void * data, int64_t n_blocks, std::string * why = nullptr);

} // namespace quant
} // namespace tl
