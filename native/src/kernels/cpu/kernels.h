// CPU kernels for the weight formats of qmatrix.h. One implementation per instruction set (scalar, AVX2,
// AVX-512 VNNI/BF16), chosen once at run time by cpu_kernels(); all produce the same result to float rounding.
#pragma once
#include <cstdint>

#include "qmatrix.h"

namespace tl {

// Build a QMatrix of layout `type` (not BLOCKS) from f32 rows: src is float[rows][cols] (row stride = cols).
void qmatrix_from_f32(QMatrix & out, WeightType type, const float * src, int64_t rows, int64_t cols);
// Same, but filling rows [row_begin, row_end) of an already-allocated matrix (any layout: BLOCKS rows are quantized
// with quant::quantize_row, I8 / I4 with the group quantizers below).
void qmatrix_alloc(QMatrix & out, WeightType type, int64_t rows, int64_t cols);
void qmatrix_set_rows(QMatrix & out, const float * src, int64_t row_begin, int64_t row_end);
// The layout that holds values of GGUF type t: F32, BF16, I8 (Q8_0), I4 (Q4_0), BLOCKS for the others.
WeightType layout_for(quant::Type t);
// Allocate for values of GGUF type t in layout_for(t) (qtype = t). cols must be whole blocks of t.
void qmatrix_alloc_typed(QMatrix & out, quant::Type t, int64_t rows, int64_t cols);
// Row `row` from `n_blocks`-worth of GGUF data of type src (cols elements): copied when src is the matrix's qtype
// (repacked, bit for bit, into I8 / I4), else dequantized and quantized to qtype. A matrix built with
// qmatrix_alloc_typed accepts any src the quant library can decode.
void qmatrix_set_row_from(QMatrix & m, int64_t row, quant::Type src, const void * src_row);
// Decode one row back to f32 (the embedding lookup, tests). dst has `cols` floats. Any layout.
void qmatrix_get_row(const QMatrix & m, int64_t row, float * dst);

// Quantize n rows of activations (x: float[n][cols]) for an I8/I4 product.
void qacts_quantize(QActs & out, const float * x, int n, int64_t cols, int64_t cols_padded);

// One causal-attention task: `rows` query heads sharing one KV head (GQA) attend over key positions [kv0, n_ctx) of a
// sequence in the paged KV cache (kv_cache.h fills the KV fields). Query row r is q + r * row_stride (hd floats), its
// output out + r * out_stride (hd_v floats; out_stride 0: row_stride). Values are hd_v wide (0: hd): a value row may be
// the first hd_v elements of its key row (MLA's latent, kv_cache.h), v then points at the keys. Key/value position j lives at slot block_table[j / block_size] * block_size +
// j % block_size, at k / v + slot * kv_row_bytes; kv_dtype 0 = f32, 1 = f16, 2 = int8 with one float scale per slot at
// k_scale / v_scale + slot * scale_stride.
struct AttnTask {
    int hd = 0, rows = 0, n_ctx = 0;
    int hd_v = 0; // value width (0: hd), at most hd
    int kv0 = 0;  // first key position read (a sliding window: keys kv0 .. n_ctx - 1)
    float scale = 1.0f;
    float softcap = 0.0f; // > 0: scores -> softcap * tanh(scores / softcap) before the softmax (Gemma 2)
    const float * q = nullptr;
    float * out = nullptr;
    int64_t row_stride = 0;
    int64_t out_stride = 0; // 0: row_stride
    int kv_dtype = 0;
    const uint8_t * k = nullptr;
    const uint8_t * v = nullptr;
    int64_t kv_row_bytes = 0;
    const float * k_scale = nullptr;
    const float * v_scale = nullptr;
    int64_t scale_stride = 0;
    const int32_t * block_table = nullptr;
    int block_size = 1;
};
constexpr int ATTN_MAX_ROWS = 64; // a task's rows (callers split larger query groups)
// Scratch floats one attend() call needs (per thread).
size_t attn_scratch_floats(int rows, int n_ctx, int hd);

struct CpuKernels {
    const char * name;
    // y[t][r] = dot(W[r], x[t]) for t in [0, n), r in [row_begin, row_end). Layouts F32, BF16, I8, I4 (BLOCKS
    // matrices are multiplied by quant::matmul: layers.cpp).
    // x: float[n][cols] (used by F32/BF16); xq: quantized x (used by I8/I4, may be null otherwise).
    // y: float[n][y_stride]; row r of W writes y[t * y_stride + r].
    void (*matmul)(const QMatrix & W, const float * x, const QActs * xq, float * y, int64_t y_stride, int n,
                   int64_t row_begin, int64_t row_end);
    // Causal attention of one task (above). scratch: attn_scratch_floats(rows, n_ctx, hd) floats.
    void (*attend)(const AttnTask & task, float * scratch);
    // gate[i] = silu(gate[i]) * up[i] (the SwiGLU activation).
    void (*silu_mul)(float * gate, const float * up, int64_t n);
};

const CpuKernels & cpu_kernels(); // best available on this CPU (TL_KERNELS env can force one)
const CpuKernels & cpu_kernels_scalar();
const CpuKernels * cpu_kernels_avx2();   // null if the CPU lacks AVX2+FMA
const CpuKernels * cpu_kernels_avx512(); // null if the CPU lacks AVX-512 F/BW/VL/VNNI

} // namespace tl
