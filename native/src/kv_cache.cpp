#include "kv_cache.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "tensor_convert.h"

namespace tl {

const char * kv_dtype_name(KvDtype t) {
    switch (t) {
        case KvDtype::F32: return "f32";
        case KvDtype::F16: return "f16";
        case KvDtype::I8: return "int8";
    }
    return "f32";
}

bool parse_kv_dtype(const std::string & s, KvDtype * out) {
    if (s == "f32") {
        *out = KvDtype::F32;
        return true;
    }
    if (s == "f16") {
        *out = KvDtype::F16;
        return true;
    }
    if (s == "int8") {
        *out = KvDtype::I8;
        return true;
    }
    return false;
}

KvStorage::KvStorage(int32_t n_layers, int32_t n_blocks, int32_t block_size, int32_t n_kv_heads_local, int32_t head_dim,
                     KvDtype dtype)
    : n_layers_(n_layers), n_blocks_(n_blocks), block_size_(block_size), n_heads_(n_kv_heads_local),
      head_dim_(head_dim), row_(n_kv_heads_local * head_dim), dtype_(dtype) {
    const size_t rows = (size_t) n_layers * n_blocks * block_size;
    const size_t elem = dtype == KvDtype::F32 ? 4 : dtype == KvDtype::F16 ? 2 : 1;
    k_.allocate(rows * row_ * elem);
    v_.allocate(rows * row_ * elem);
    if (dtype == KvDtype::I8) {
        k_scale_.allocate(rows * n_heads_ * sizeof(float));
        v_scale_.allocate(rows * n_heads_ * sizeof(float));
    }
}

void KvStorage::write(int32_t layer, int32_t block, int32_t slot, const float * k, const float * v) {
    const size_t r = row_index(layer, block, slot);
    switch (dtype_) {
        case KvDtype::F32:
            std::memcpy(reinterpret_cast<float *>(k_.data()) + r * row_, k, sizeof(float) * row_);
            std::memcpy(reinterpret_cast<float *>(v_.data()) + r * row_, v, sizeof(float) * row_);
            return;
        case KvDtype::F16: {
            uint16_t * kd = reinterpret_cast<uint16_t *>(k_.data()) + r * row_;
            uint16_t * vd = reinterpret_cast<uint16_t *>(v_.data()) + r * row_;
            for (int32_t i = 0; i < row_; ++i) {
                kd[i] = f32_to_fp16(k[i]);
                vd[i] = f32_to_fp16(v[i]);
            }
            return;
        }
        case KvDtype::I8: {
            // Symmetric int8 per token per head: the head's absmax maps to 127.
            auto quant = [&](const float * src, AlignedBuffer & data, AlignedBuffer & scales) {
                int8_t * d = reinterpret_cast<int8_t *>(data.data()) + r * row_;
                float * s = reinterpret_cast<float *>(scales.data()) + r * n_heads_;
                for (int32_t h = 0; h < n_heads_; ++h) {
                    const float * x = src + (size_t) h * head_dim_;
                    float amax = 0.0f;
                    for (int32_t i = 0; i < head_dim_; ++i) amax = std::max(amax, std::fabs(x[i]));
                    float scale = amax / 127.0f, inv = scale > 0 ? 1.0f / scale : 0.0f;
                    s[h] = scale;
                    for (int32_t i = 0; i < head_dim_; ++i)
                        d[(size_t) h * head_dim_ + i] = (int8_t) std::lrintf(x[i] * inv);
                }
            };
            quant(k, k_, k_scale_);
            quant(v, v_, v_scale_);
            return;
        }
    }
}

void KvStorage::fill_task(AttnTask & t, int32_t layer, const int32_t * block_table, int32_t kv_head) const {
    const size_t elem = dtype_ == KvDtype::F32 ? 4 : dtype_ == KvDtype::F16 ? 2 : 1;
    const size_t layer_row0 = row_index(layer, 0, 0);
    t.hd = head_dim_;
    t.kv_dtype = (int) dtype_;
    t.kv_row_bytes = (int64_t) (row_ * elem);
    t.k = k_.data() + (layer_row0 * row_ + (size_t) kv_head * head_dim_) * elem;
    t.v = v_.data() + (layer_row0 * row_ + (size_t) kv_head * head_dim_) * elem;
    if (dtype_ == KvDtype::I8) {
        t.k_scale = reinterpret_cast<const float *>(k_scale_.data()) + layer_row0 * n_heads_ + kv_head;
        t.v_scale = reinterpret_cast<const float *>(v_scale_.data()) + layer_row0 * n_heads_ + kv_head;
        t.scale_stride = n_heads_;
    }
    t.block_table = block_table;
    t.block_size = block_size_;
}

} // namespace tl
