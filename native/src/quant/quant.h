// Public API of the GGUF block-format library (native/src/quant). Weights stay in the file's block layout (types.h);
// activations are quantized per block into the format each weight type pairs with (traits(t)->act_type), and the dot
// products run on integer sums per block, with AVX-512 VNNI, AVX2 or portable kernels chosen once at run time.
//
// Typical engine use, per weight matrix W (rows x n, row stride = row_bytes(t, n)) and a batch of tokens x[n_tok][n]:
//   const Type at = traits(t)->act_type;
//   std::vector<uint8_t> xa(n_tok * row_bytes(at, n));
//   for (tok) quantize_acts(at, x + tok * n, xa.data() + tok * row_bytes(at, n), n);      // once per layer input
//   matmul(t, W, row_bytes(t, n), n, r0, r1, xa.data(), row_bytes(at, n), n_tok, y, y_stride); // per thread slice
#pragma once
#include <cstddef>
#include <cstdint>

#include "quant/formats.h"
#include "quant/types.h"

namespace tl {
namespace quant {

// ---------------------------------------------------------------------------------------------- conversions
// n must be a whole number of blocks (check_row_length); these functions do not check it.

// Reference (scalar) dequantization of one row: dst[0..n) = the values the blocks encode. Every type with
// Support::Full or Support::Activation.
void dequantize_row(Type t, const void * src, float * dst, int64_t n);

// Quantize f32 values into blocks of weight type t (every Support::Full type). The blocks use ggml's layout and
// reconstruction formula (llama.cpp reads them correctly); the scales are chosen by this library's own search
// (quantize_weights.cpp). F16 / BF16 round to nearest even; F32 copies.
void quantize_row(Type t, const float * src, void * dst, int64_t n);

// Activation quantization (per block, symmetric, quants in -127..127 so the kernels' sign tricks never see -128).
void quantize_acts_q8_0(const float * x, void * dst, int64_t n); // BlockQ8_0[n / 32]
void quantize_acts_q8_1(const float * x, void * dst, int64_t n); // BlockQ8_1[n / 32], s = d * sum(qs)
void quantize_acts_q8_k(const float * x, void * dst, int64_t n); // BlockQ8_K[n / 256], with bsums
// Any activation format: Q8_0 / Q8_1 / Q8_K as above, F32 copies, BF16 rounds to nearest even.
void quantize_acts(Type act_type, const float * x, void * dst, int64_t n);

// ---------------------------------------------------------------------------------------------- products

// dot(row of weight type t, row of activations in traits(t)->act_type), n elements. Uses the best kernel set.
float vec_dot(Type t, int64_t n, const void * w_row, const void * act_row);

// Product for prefill and decode: for rows r in [row_begin, row_end) of W and tokens j in [0, n_tokens):
//   y[j * y_stride + r] = vec_dot(t, n, W + r * w_stride, acts + j * act_stride)
// Weight blocks are decoded once per tile of up to 4 tokens (the dot for each token reuses the unpacked
// registers), and tokens are processed in blocks of 64 whose activations stay in L2. With n_tokens = 1 it streams W
// once, sequentially. Threads call it on disjoint row ranges (each thread allocates its own scratch).
struct Kernels;
void matmul(Type t, const void * W, size_t w_stride, int64_t n, int64_t row_begin, int64_t row_end,
            const void * acts, size_t act_stride, int n_tokens, float * y, int64_t y_stride,
            const Kernels * k = nullptr /* null: best available */);

} // namespace quant
} // namespace tl
