// Decoding GGUF tensor rows to f32, whatever type the file holds. Quantizing to the engine's own weight formats
// happens after this, in kernels/cpu/quantize.cpp.
#pragma once
#include <cstdint>

#include "gguf.h"

namespace tl {

float fp16_to_f32(uint16_t h);
uint16_t f32_to_fp16(float f);
float bf16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f); // round to nearest even

bool ggml_type_supported(uint32_t type);
const char * ggml_type_name(uint32_t type);
// Bytes for n elements of `type` (n must be a multiple of the block size for block types). 0 if unsupported.
uint64_t ggml_row_bytes(uint32_t type, int64_t n);
int64_t ggml_block_size(uint32_t type);

// Decode `n` consecutive elements starting at element index 0 of `src` (which must be block-aligned).
void dequantize_row(uint32_t type, const uint8_t * src, float * dst, int64_t n);

} // namespace tl
