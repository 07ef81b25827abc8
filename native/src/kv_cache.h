// Paged KV-cache storage of one tensor-parallel rank: for every layer, block and token slot, the keys and values of
// the rank's KV heads. Which block belongs to which sequence is the block pool's and the scheduler's business; this
// class stores and reads rows, in f32, f16 or int8 (one scale per token per head).
//
// Each layer has its own row shape (KvLayerShape), so a token's bytes differ by layer and by architecture: a standard
// layer stores `heads` keys and `heads` values of head_dim each; an MLA layer (DeepSeek's Multi-head Latent Attention,
// mla.h) stores one row per token of kv_lora + rope values (the compressed latent, then the shared RoPE key part) and
// no separate values: the value read by attention is the latent, the first kv_lora values of that same row.
//
// Layout per layer: k[block][slot][heads * k_width] (and v[block][slot][heads * v_width] when values are stored
// apart), so one block of one layer is contiguous.
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
size_t kv_dtype_bytes(KvDtype t); // bytes per element: 4, 2, 1

// What one layer stores per token on one rank.
struct KvLayerShape {
    int32_t heads = 0;   // KV heads held (MLA: 1, the latent, replicated on every rank)
    int32_t k_width = 0; // per head
    int32_t v_width = 0; // per head
    bool v_in_k = false; // values are the first v_width elements of the key row (MLA): none stored apart

    // Bytes per token in `dtype`, int8 scales included (one float per token per head, per stored tensor).
    size_t bytes_per_token(KvDtype dtype) const;
};

class KvStorage {
public:
    KvStorage(std::vector<KvLayerShape> layers, int32_t n_blocks, int32_t block_size, KvDtype dtype);

    KvDtype dtype() const { return dtype_; }
    size_t bytes() const { return k_.size + v_.size + k_scale_.size + v_scale_.size; }
    const KvLayerShape & shape(int32_t layer) const { return layers_[layer].shape; }

    // Store the key row (float[heads * k_width]) and value row (float[heads * v_width]; ignored, may be null, when
    // v_in_k) of the token at `slot` of `block`.
    void write(int32_t layer, int32_t block, int32_t slot, const float * k, const float * v);

    // Copy every layer's rows (and int8 scales) of block `src` into block `dst`: the copy-on-write of a shared
    // partial block when a sequence forks (n > 1 choices of one prompt).
    void copy_block(int32_t src, int32_t dst);

    // The KV fields of an attention task (kernels.h: dtype, widths, row addresses, scales, block table) for KV head
    // `kv_head` of layer `layer` of the sequence whose blocks are `block_table`; the caller sets the query side.
    void fill_task(AttnTask & t, int32_t layer, const int32_t * block_table, int32_t kv_head) const;

private:
    struct Layer {
        KvLayerShape shape;
        int32_t k_row = 0, v_row = 0; // elements per token: heads * k_width, heads * v_width (0 when v_in_k)
        size_t k_off = 0, v_off = 0;  // elements before this layer's first row in k_ / v_
        size_t s_off = 0;             // scales before this layer's first row in k_scale_ / v_scale_
    };
    std::vector<Layer> layers_;
    int32_t n_blocks_, block_size_;
    KvDtype dtype_;
    AlignedBuffer k_, v_;             // element size by dtype
    AlignedBuffer k_scale_, v_scale_; // I8 only: float per token per head

    size_t slot_index(int32_t block, int32_t slot) const { return (size_t) block * block_size_ + slot; }
};

} // namespace tl
