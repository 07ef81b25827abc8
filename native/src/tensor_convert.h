// Scalar f16 / bf16 conversions, and decoding GGUF tensor rows to f32 (the type geometry and the block decoders are
// the quant library's: quant/formats.h, quant/quant.h).
#pragma once
#include <cstdint>

#include "gguf.h"

namespace tl {

float fp16_to_f32(uint16_t h);
uint16_t f32_to_fp16(float f);
float bf16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f); // round to nearest even

// Decode `n` consecutive elements of GGUF type `type` starting at `src` (block-aligned; n whole blocks) to f32: F16
// rows with F16C where the CPU has it (loading a large F16 file decodes a billion halves), everything else through
// quant::dequantize_row (native/src/quant: every type the engine can run). The caller has checked the type.
void dequantize_row(uint32_t type, const uint8_t * src, float * dst, int64_t n);

} // namespace tl
