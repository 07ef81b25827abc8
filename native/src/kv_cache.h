// Paged KV-cache storage of one tensor-parallel rank: for every layer, block and token slot, the keys and values of
// the rank's KV heads. Which block belongs to which sequence is the block pool's and the scheduler's business; this
// class stores and reads rows, in f32, f16 or int8 (one scale per token per head).
//
// Layout per layer: k[block][slot][kv_dim_local] (and v alike), so one block of one layer is contiguous.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/cpu/kernels.h"
#include "kernels/cpu/qmatrix.h"

namespace tl {

enum class KvDtype { F32 = 0, F16 = 1, I8 = 2 };
const char * kv_dtype_name(KvDtype t);
bool parse_kv_dtype(const std::string & s, KvDtype * out);

class KvStorage {
public:
    KvStorage(int32_t n_layers, int32_t n_blocks, int32_t block_size, int32_t n_kv_heads_local, int32_t head_dim,
              KvDtype dtype);

    KvDtype dtype() const { return dtype_; }
    size_t bytes() const { return k_.size + v_.size + k_scale_.size + v_scale_.size; }

    // Store the K and V rows (float[n_kv_heads_local * head_dim] each) of the token at `slot` of `block`.
    void write(int32_t layer, int32_t block, int32_t slot, const float * k, const float * v);

    // The KV fields of an attention task (kernels.h: dtype, row addresses, scales, block table) for KV head `kv_head`
    // of layer `layer` of the sequence whose blocks are `block_table`; the caller sets the query side.
    void fill_task(AttnTask & t, int32_t layer, const int32_t * block_table, int32_t kv_head) const;

private:
    int32_t n_layers_, n_blocks_, block_size_, n_heads_, head_dim_, row_;
    KvDtype dtype_;
    AlignedBuffer k_, v_;             // element size by dtype
    AlignedBuffer k_scale_, v_scale_; // I8 only: float per token per head

    size_t row_index(int32_t layer, int32_t block, int32_t slot) const {
        return (((size_t) layer * n_blocks_ + block) * block_size_ + slot);
    }
};

} // namespace tl
