#include "kv_cache.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "errors.h"
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

size_t kv_dtype_bytes(KvDtype t) { return t == KvDtype::F32 ? 4 : t == KvDtype::F16 ? 2 : 1; }

size_t KvLayerShape::bytes_per_token(KvDtype dtype) const {
    const size_t k = (size_t) heads * k_width, v = v_in_k ? 0 : (size_t) heads * v_width;
    size_t b = (k + v) * kv_dtype_bytes(dtype);
    if (dtype == KvDtype::I8) b += (size_t) heads * (v_in_k ? 1 : 2) * sizeof(float);
    return b;
}

KvStorage::KvStorage(std::vector<KvLayerShape> shapes, int32_t n_blocks, int32_t block_size, KvDtype dtype)
    : n_blocks_(n_blocks), block_size_(block_size), dtype_(dtype) {
    const size_t slots = (size_t) n_blocks * block_size;
    size_t k_elems = 0, v_elems = 0, scales = 0;
    for (const KvLayerShape & s : shapes) {
        // fill_task gives keys and values one row stride: values apart must be as wide as the keys.
        if (!s.v_in_k && s.v_width != s.k_width) fail(ErrorCode::INTERNAL, "KV layer shape: v_width != k_width");
        Layer L;
        L.shape = s;
        L.k_row = s.heads * s.k_width;
        L.v_row = s.v_in_k ? 0 : s.heads * s.v_width;
        L.k_off = k_elems;
        L.v_off = v_elems;
        L.s_off = scales;
        k_elems += slots * L.k_row;
        v_elems += slots * L.v_row;
        scales += slots * s.heads;
        layers_.push_back(L);
    }
    const size_t elem = kv_dtype_bytes(dtype);
    k_.allocate(k_elems * elem);
    if (v_elems) v_.allocate(v_elems * elem);
    if (dtype == KvDtype::I8) {
        k_scale_.allocate(scales * sizeof(float));
        if (v_elems) v_scale_.allocate(scales * sizeof(float));
    }
}

namespace {

// Symmetric int8 per token per head: the head's absmax maps to 127.
void quantize_heads(const float * src, int8_t * d, float * s, int32_t heads, int32_t width) {
    for (int32_t h = 0; h < heads; ++h) {
        const float * x = src + (size_t) h * width;
        float amax = 0.0f;
        for (int32_t i = 0; i < width; ++i) amax = std::max(amax, std::fabs(x[i]));
        float scale = amax / 127.0f, inv = scale > 0 ? 1.0f / scale : 0.0f;
        s[h] = scale;
        for (int32_t i = 0; i < width; ++i) d[(size_t) h * width + i] = (int8_t) std::lrintf(x[i] * inv);
    }
}

} // namespace

void KvStorage::write(int32_t layer, int32_t block, int32_t slot, const float * k, const float * v) {
    const Layer & L = layers_[layer];
    const size_t r = slot_index(block, slot);
    const size_t ko = L.k_off + r * L.k_row, vo = L.v_off + r * L.v_row;
    switch (dtype_) {
        case KvDtype::F32:
            std::memcpy(reinterpret_cast<float *>(k_.data()) + ko, k, sizeof(float) * L.k_row);
            if (L.v_row) std::memcpy(reinterpret_cast<float *>(v_.data()) + vo, v, sizeof(float) * L.v_row);
            return;
        case KvDtype::F16: {
            uint16_t * kd = reinterpret_cast<uint16_t *>(k_.data()) + ko;
            for (int32_t i = 0; i < L.k_row; ++i) kd[i] = f32_to_fp16(k[i]);
            uint16_t * vd = L.v_row ? reinterpret_cast<uint16_t *>(v_.data()) + vo : nullptr;
            for (int32_t i = 0; i < L.v_row; ++i) vd[i] = f32_to_fp16(v[i]);
            return;
        }
        case KvDtype::I8: {
            const size_t so = L.s_off + r * L.shape.heads;
            quantize_heads(k, reinterpret_cast<int8_t *>(k_.data()) + ko,
                           reinterpret_cast<float *>(k_scale_.data()) + so, L.shape.heads, L.shape.k_width);
            if (L.v_row)
                quantize_heads(v, reinterpret_cast<int8_t *>(v_.data()) + vo,
                               reinterpret_cast<float *>(v_scale_.data()) + so, L.shape.heads, L.shape.v_width);
            return;
        }
    }
}

void KvStorage::copy_block(int32_t src, int32_t dst) {
    if (src == dst) return;
    const size_t elem = kv_dtype_bytes(dtype_);
    // One block of one layer is contiguous in each buffer (layout in kv_cache.h's header comment).
    for (const Layer & L : layers_) {
        const size_t rows = (size_t) block_size_;
        const size_t s0 = slot_index(src, 0), d0 = slot_index(dst, 0);
        std::memcpy(k_.data() + (L.k_off + d0 * L.k_row) * elem, k_.data() + (L.k_off + s0 * L.k_row) * elem,
                    rows * L.k_row * elem);
        if (L.v_row)
            std::memcpy(v_.data() + (L.v_off + d0 * L.v_row) * elem, v_.data() + (L.v_off + s0 * L.v_row) * elem,
                        rows * L.v_row * elem);
        if (dtype_ == KvDtype::I8) {
            const size_t h = (size_t) L.shape.heads, fs = sizeof(float);
            std::memcpy(k_scale_.data() + (L.s_off + d0 * h) * fs, k_scale_.data() + (L.s_off + s0 * h) * fs,
                        rows * h * fs);
            if (L.v_row)
                std::memcpy(v_scale_.data() + (L.s_off + d0 * h) * fs, v_scale_.data() + (L.s_off + s0 * h) * fs,
                            rows * h * fs);
        }
    }
}

void KvStorage::fill_task(AttnTask & t, int32_t layer, const int32_t * block_table, int32_t kv_head) const {
    const Layer & L = layers_[layer];
    const size_t elem = kv_dtype_bytes(dtype_);
    t.hd = L.shape.k_width;
    t.hd_v = L.shape.v_width;
    t.kv_dtype = (int) dtype_;
    t.kv_row_bytes = (int64_t) (L.k_row * elem);
    t.k = k_.data() + (L.k_off + (size_t) kv_head * L.shape.k_width) * elem;
    // Values apart have rows as wide as the keys' (k_width == v_width there), so one row stride serves both.
    t.v = L.shape.v_in_k ? t.k : v_.data() + (L.v_off + (size_t) kv_head * L.shape.v_width) * elem;
    if (dtype_ == KvDtype::I8) {
        t.k_scale = reinterpret_cast<const float *>(k_scale_.data()) + L.s_off + kv_head;
        t.v_scale = L.shape.v_in_k ? t.k_scale : reinterpret_cast<const float *>(v_scale_.data()) + L.s_off + kv_head;
        t.scale_stride = L.shape.heads;
    }
    t.block_table = block_table;
    t.block_size = block_size_;
}

} // namespace tl
