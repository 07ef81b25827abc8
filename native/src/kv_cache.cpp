#include "kv_cache.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "errors.h"
#include "tensor_convert.h"

namespace tl {

namespace {
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define TL_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define TL_CLONES
#endif

TL_CLONES float dot_f32(const float * a, const float * b, int n) {
    float s = 0.0f;
    for (int i = 0; i < n; ++i) s += a[i] * b[i];
    return s;
}
TL_CLONES void axpy_f32(float * y, const float * x, float a, int n) {
    for (int i = 0; i < n; ++i) y[i] += a * x[i];
}
TL_CLONES float dot_i8(const float * a, const int8_t * b, int n) {
    float s = 0.0f;
    for (int i = 0; i < n; ++i) s += a[i] * (float) b[i];
    return s;
}
TL_CLONES void axpy_i8(float * y, const int8_t * x, float a, int n) {
    for (int i = 0; i < n; ++i) y[i] += a * (float) x[i];
}
// f16 rows are widened into a small buffer first: head_dim is 32..256, so this stays in L1.
void widen_f16(const uint16_t * src, float * dst, int n) {
    for (int i = 0; i < n; ++i) dst[i] = fp16_to_f32(src[i]);
}
} // namespace

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

void KvStorage::attend(int32_t layer, const int32_t * block_table, int32_t n_ctx, int32_t kv_head, const float * q,
                       float scale, float * out, float * scratch) const {
    const int hd = head_dim_;
    float mx = -INFINITY;
    float wide[512];
    if (hd > 512) fail(ErrorCode::INTERNAL, "head_dim above 512 is not supported");
    auto row_of = [&](int32_t j) { return row_index(layer, block_table[j / block_size_], j % block_size_); };
    for (int32_t j = 0; j < n_ctx; ++j) {
        size_t r = row_of(j);
        float s;
        switch (dtype_) {
            case KvDtype::F32:
                s = dot_f32(q, reinterpret_cast<const float *>(k_.data()) + r * row_ + (size_t) kv_head * hd, hd);
                break;
            case KvDtype::F16:
                widen_f16(reinterpret_cast<const uint16_t *>(k_.data()) + r * row_ + (size_t) kv_head * hd, wide, hd);
                s = dot_f32(q, wide, hd);
                break;
            default:
                s = dot_i8(q, reinterpret_cast<const int8_t *>(k_.data()) + r * row_ + (size_t) kv_head * hd, hd) *
                    reinterpret_cast<const float *>(k_scale_.data())[r * n_heads_ + kv_head];
        }
        scratch[j] = s * scale;
        mx = std::max(mx, scratch[j]);
    }
    float sum = 0.0f;
    for (int32_t j = 0; j < n_ctx; ++j) {
        scratch[j] = std::exp(scratch[j] - mx);
        sum += scratch[j];
    }
    const float inv = 1.0f / sum;
    std::fill(out, out + hd, 0.0f);
    for (int32_t j = 0; j < n_ctx; ++j) {
        size_t r = row_of(j);
        float p = scratch[j] * inv;
        switch (dtype_) {
            case KvDtype::F32:
                axpy_f32(out, reinterpret_cast<const float *>(v_.data()) + r * row_ + (size_t) kv_head * hd, p, hd);
                break;
            case KvDtype::F16:
                widen_f16(reinterpret_cast<const uint16_t *>(v_.data()) + r * row_ + (size_t) kv_head * hd, wide, hd);
                axpy_f32(out, wide, p, hd);
                break;
            default:
                axpy_i8(out, reinterpret_cast<const int8_t *>(v_.data()) + r * row_ + (size_t) kv_head * hd,
                        p * reinterpret_cast<const float *>(v_scale_.data())[r * n_heads_ + kv_head], hd);
        }
    }
}

} // namespace tl
