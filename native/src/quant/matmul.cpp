// Entry points over the kernel table: vec_dot for one pair of rows, matmul for a row range times a batch of tokens.
#include "quant/kernels.h"
#include "quant/quant.h"

namespace tl {
namespace quant {

namespace {
// Tokens per call into a kernel. The kernel walks rows in the outer loop and tiles of up to 4 tokens inside, so each
// weight row is fetched from memory once per token block and re-read from L1 by the block's tiles; 64 tokens of
// activations (e.g. 64 x 4096 x 1.06 bytes for Q8_K) stay in the 1 MiB L2 while all rows go by.
constexpr int kTokenBlock = 64;
} // namespace

float vec_dot(Type t, int64_t n, const void * w_row, const void * act_row) {
    float y = 0.0f;
    const GemmFn f = kernels().gemm[(int) t];
    if (f) f(n, w_row, 0, 1, act_row, 0, 1, &y, 0);
    return y;
}

void matmul(Type t, const void * W, size_t w_stride, int64_t n, int64_t row_begin, int64_t row_end,
            const void * acts, size_t act_stride, int n_tokens, float * y, int64_t y_stride, const Kernels * k) {
    if (!k) k = &kernels();
    const GemmFn f = ((unsigned) t < (unsigned) kTypeCount) ? k->gemm[(int) t] : nullptr;
    if (!f || row_end <= row_begin || n_tokens <= 0) return;
    const uint8_t * w = static_cast<const uint8_t *>(W) + row_begin * (int64_t) w_stride;
    const uint8_t * a = static_cast<const uint8_t *>(acts);
    for (int j0 = 0; j0 < n_tokens; j0 += kTokenBlock) {
        const int nt = n_tokens - j0 < kTokenBlock ? n_tokens - j0 : kTokenBlock;
        f(n, w, w_stride, row_end - row_begin, a + (int64_t) j0 * act_stride, act_stride, nt,
          y + (int64_t) j0 * y_stride + row_begin, y_stride);
    }
}

} // namespace quant
} // namespace tl
