// Storage of the engine's weight formats: allocation, quantization from f32, decoding, and activation quantization.
// Portable C++ (no ISA-specific code here; see matmul_*.cpp for the kernels).
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>

#include "../../errors.h"
#include "matmul_impl.h"
#include "quant/half.h"
#include "quant/quant.h"

namespace tl {

// ---------------------------------------------------------------------------------------------------------------
// AlignedBuffer / QMatrix basics

void AlignedBuffer::allocate(size_t n_bytes) {
    ptr.reset();
    size = 0;
    if (n_bytes == 0) return;
    size_t alloc = (n_bytes + 63) & ~(size_t) 63;
    void * p = std::aligned_alloc(64, alloc);
    if (!p) fail(ErrorCode::OUT_OF_MEMORY, "cannot allocate " + std::to_string(n_bytes) + " bytes");
    std::memset(p, 0, alloc);
    ptr = std::unique_ptr<uint8_t, void (*)(void *)>((uint8_t *) p, std::free);
    size = n_bytes;
}

const char * weight_type_name(WeightType t) {
    switch (t) {
        case WeightType::F32: return "f32";
        case WeightType::BF16: return "bf16";
        case WeightType::I8: return "int8";
        case WeightType::I4: return "int4";
        case WeightType::BLOCKS: return "blocks";
    }
    return "unknown";
}

size_t QMatrix::row_bytes() const {
    switch (type) {
        case WeightType::F32: return (size_t) cols * 4;
        case WeightType::BF16: return (size_t) cols * 2;
        case WeightType::I8: return (size_t) cols_padded;
        case WeightType::I4: return (size_t) cols_padded / 2;
        case WeightType::BLOCKS: return (size_t) quant::row_bytes(qtype, cols);
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------------------------
// Group quantizers

namespace kern {

// Round to nearest (ties to even) for |v| < 2^22 without libm, so that loops vectorize with plain SSE2.
static inline float round_ne(float v) {
    const float magic = 12582912.0f; // 1.5 * 2^23
    return (v + magic) - magic;
}

float quantize_group_i8(const float * x, uint8_t * out32) {
    float amax = 0.0f;
    for (int i = 0; i < QK; i++) {
        float a = std::fabs(x[i]);
        amax = a > amax ? a : amax;
    }
    float d = amax / 127.0f;
    float id = d > 0.0f ? 1.0f / d : 0.0f;
    for (int i = 0; i < QK; i++) {
        float q = round_ne(x[i] * id);
        q = q < -127.0f ? -127.0f : (q > 127.0f ? 127.0f : q);
        out32[i] = (uint8_t) ((int) q + ZP_I8);
    }
    return d;
}

// Quantize with scale d to q in [qmin, qmax]; returns the squared error. q written as nibble q + 8 into qv.
static float i4_try(const float * x, float d, float qmin, float qmax, int8_t * qv) {
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    float err = 0.0f;
    for (int i = 0; i < QK; i++) {
        float q = round_ne(x[i] * id);
        q = q < qmin ? qmin : (q > qmax ? qmax : q);
        float e = x[i] - q * d;
        err += e * e;
        qv[i] = (int8_t) q;
    }
    return err;
}

float quantize_group_i4(const float * x, uint8_t * out16, I4Mode mode) {
    float amax = 0.0f, vmax = 0.0f;
    for (int i = 0; i < QK; i++) {
        float a = std::fabs(x[i]);
        if (a > amax) {
            amax = a;
            vmax = x[i];
        }
    }
    int8_t qa[QK], qb[QK];
    float d = 0.0f;
    const int8_t * q = qa;
    if (amax == 0.0f) {
        std::memset(qa, 0, sizeof qa);
    } else if (mode == I4Mode::Q4_0) {
        d = vmax / -8.0f;
        i4_try(x, d, -8.0f, 7.0f, qa);
    } else if (mode == I4Mode::ABSMAX7) {
        d = amax / 7.0f;
        i4_try(x, d, -7.0f, 7.0f, qa);
    } else {
        float da = vmax / -8.0f, db = amax / 7.0f;
        float ea = i4_try(x, da, -8.0f, 7.0f, qa);
        float eb = i4_try(x, db, -7.0f, 7.0f, qb);
        if (eb < ea) {
            d = db;
            q = qb;
        } else {
            d = da;
        }
    }
    for (int i = 0; i < QK / 2; i++) out16[i] = (uint8_t) ((q[i] + ZP_I4) | ((q[i + QK / 2] + ZP_I4) << 4));
    return d;
}

} // namespace kern

// ---------------------------------------------------------------------------------------------------------------
// QMatrix construction / decoding

void qmatrix_alloc(QMatrix & out, WeightType type, int64_t rows, int64_t cols) {
    if (rows < 0 || cols <= 0 || type == WeightType::BLOCKS)
        fail(ErrorCode::INVALID_ARGUMENT, "qmatrix_alloc: bad shape or layout");
    out.type = type;
    out.qtype = type == WeightType::F32    ? quant::Type::F32
                : type == WeightType::BF16 ? quant::Type::BF16
                : type == WeightType::I8   ? quant::Type::Q8_0
                                           : quant::Type::Q4_0;
    out.requested = out.qtype;
    out.rows = rows;
    out.cols = cols;
    bool grouped = type == WeightType::I8 || type == WeightType::I4;
    out.cols_padded = grouped ? (cols + QK - 1) / QK * QK : cols;
    out.data.allocate((size_t) rows * out.row_bytes());
    if (grouped) out.scales.allocate((size_t) rows * (size_t) out.n_groups() * sizeof(float));
    else out.scales.allocate(0);
}

WeightType layout_for(quant::Type t) {
    switch (t) {
        case quant::Type::F32: return WeightType::F32;
        case quant::Type::BF16: return WeightType::BF16;
        case quant::Type::Q8_0: return WeightType::I8;
        case quant::Type::Q4_0: return WeightType::I4;
        default: return WeightType::BLOCKS;
    }
}

void qmatrix_alloc_typed(QMatrix & out, quant::Type t, int64_t rows, int64_t cols) {
    const WeightType layout = layout_for(t);
    if (layout != WeightType::BLOCKS) {
        qmatrix_alloc(out, layout, rows, cols);
        return;
    }
    if (rows < 0 || !quant::is_native_weight_type(t) || quant::row_bytes(t, cols) < 0)
        fail(ErrorCode::INVALID_ARGUMENT, std::string("qmatrix_alloc_typed: bad shape for ") + quant::type_name(t));
    out.type = WeightType::BLOCKS;
    out.qtype = out.requested = t;
    out.rows = rows;
    out.cols = out.cols_padded = cols;
    out.data.allocate((size_t) rows * out.row_bytes());
    out.scales.allocate(0);
}

void qmatrix_set_row_from(QMatrix & m, int64_t row, quant::Type src, const void * src_row) {
    if (row < 0 || row >= m.rows) fail(ErrorCode::INVALID_ARGUMENT, "qmatrix_set_row_from: bad row");
    const int64_t cols = m.cols;
    uint8_t * d = m.data.data() + (size_t) row * m.row_bytes();
    if (src != m.qtype) { // convert through f32; Q8_0 / Q4_0 by quant::quantize_row, then repacked
        std::unique_ptr<float[]> f(new float[(size_t) cols]);
        quant::dequantize_row(src, src_row, f.get(), cols);
        if (m.type == WeightType::I8 || m.type == WeightType::I4) {
            std::unique_ptr<uint8_t[]> blocks(new uint8_t[(size_t) quant::row_bytes(m.qtype, cols)]);
            quant::quantize_row(m.qtype, f.get(), blocks.get(), cols);
            qmatrix_set_row_from(m, row, m.qtype, blocks.get());
        } else {
            qmatrix_set_rows(m, f.get(), row, row + 1);
        }
        return;
    }
    const uint8_t * s = static_cast<const uint8_t *>(src_row);
    switch (m.type) {
        case WeightType::F32:
        case WeightType::BF16:
        case WeightType::BLOCKS: std::memcpy(d, s, m.row_bytes()); return;
        case WeightType::I8: { // Q8_0: [f16 d][32 x int8]
            float * sc = (float *) m.scales.data() + row * m.n_groups();
            for (int64_t g = 0; g < m.n_groups(); g++) {
                const auto * b = reinterpret_cast<const quant::BlockQ8_0 *>(s) + g;
                uint16_t h;
                std::memcpy(&h, &b->d, 2);
                sc[g] = quant::f16_to_f32(h);
                for (int i = 0; i < QK; i++) d[g * QK + i] = (uint8_t) ((int) b->qs[i] + kern::ZP_I8);
            }
            return;
        }
        case WeightType::I4: { // Q4_0: [f16 d][16 bytes of nibbles q + 8], the I4 nibble layout already
            float * sc = (float *) m.scales.data() + row * m.n_groups();
            for (int64_t g = 0; g < m.n_groups(); g++) {
                const auto * b = reinterpret_cast<const quant::BlockQ4_0 *>(s) + g;
                uint16_t h;
                std::memcpy(&h, &b->d, 2);
                sc[g] = quant::f16_to_f32(h);
                std::memcpy(d + g * (QK / 2), b->qs, QK / 2);
            }
            return;
        }
    }
}

void qmatrix_set_rows(QMatrix & m, const float * src, int64_t row_begin, int64_t row_end) {
    if (row_begin < 0 || row_end > m.rows || row_begin > row_end)
        fail(ErrorCode::INVALID_ARGUMENT, "qmatrix_set_rows: bad rows");
    const int64_t cols = m.cols, ng = m.n_groups();
    const size_t rb = m.row_bytes();
    for (int64_t r = row_begin; r < row_end; r++) {
        const float * s = src + (r - row_begin) * cols;
        uint8_t * d = m.data.data() + (size_t) r * rb;
        switch (m.type) {
            case WeightType::F32: std::memcpy(d, s, (size_t) cols * sizeof(float)); break;
            case WeightType::BF16: {
                uint16_t * o = (uint16_t *) d;
                for (int64_t c = 0; c < cols; c++) o[c] = kern::f32_to_bf16_rne(s[c]);
                break;
            }
            case WeightType::I8:
            case WeightType::I4: {
                float * sc = (float *) m.scales.data() + r * ng;
                const bool i4 = m.type == WeightType::I4;
                for (int64_t g = 0; g < ng; g++) {
                    float buf[QK];
                    const float * gx = s + g * QK;
                    int64_t left = cols - g * QK;
                    if (left < QK) { // ragged last group: zero padding
                        std::memset(buf, 0, sizeof buf);
                        std::memcpy(buf, gx, (size_t) left * sizeof(float));
                        gx = buf;
                    }
                    sc[g] = i4 ? kern::quantize_group_i4(gx, d + g * (QK / 2), kern::I4Mode::BEST)
                               : kern::quantize_group_i8(gx, d + g * QK);
                }
                break;
            }
            case WeightType::BLOCKS: quant::quantize_row(m.qtype, s, d, cols); break;
        }
    }
}

void qmatrix_from_f32(QMatrix & out, WeightType type, const float * src, int64_t rows, int64_t cols) {
    qmatrix_alloc(out, type, rows, cols);
    qmatrix_set_rows(out, src, 0, rows);
}

void qmatrix_get_row(const QMatrix & m, int64_t row, float * dst) {
    const int64_t cols = m.cols, ng = m.n_groups();
    const uint8_t * d = m.data.data() + (size_t) row * m.row_bytes();
    switch (m.type) {
        case WeightType::F32: std::memcpy(dst, d, (size_t) cols * sizeof(float)); break;
        case WeightType::BF16: {
            const uint16_t * s = (const uint16_t *) d;
            for (int64_t c = 0; c < cols; c++) dst[c] = kern::bf16_to_f32(s[c]);
            break;
        }
        case WeightType::I8: {
            const float * sc = (const float *) m.scales.data() + row * ng;
            for (int64_t c = 0; c < cols; c++) dst[c] = sc[c / QK] * (float) ((int) d[c] - kern::ZP_I8);
            break;
        }
        case WeightType::I4: {
            const float * sc = (const float *) m.scales.data() + row * ng;
            for (int64_t c = 0; c < cols; c++) {
                int64_t g = c / QK, i = c % QK;
                uint8_t b = d[g * (QK / 2) + (i & (QK / 2 - 1))];
                int nib = i < QK / 2 ? (b & 0x0F) : (b >> 4);
                dst[c] = sc[g] * (float) (nib - kern::ZP_I4);
            }
            break;
        }
        case WeightType::BLOCKS: quant::dequantize_row(m.qtype, d, dst, cols); break;
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Activations

void qacts_quantize(QActs & out, const float * x, int n, int64_t cols, int64_t cols_padded) {
    if (n < 0 || cols <= 0 || cols_padded < cols || cols_padded % QK != 0)
        fail(ErrorCode::INVALID_ARGUMENT, "qacts_quantize: bad shape");
    const int64_t ng = cols_padded / QK;
    const size_t need_q = (size_t) n * (size_t) cols_padded;
    const size_t need_s = (size_t) n * (size_t) ng * 4;
    // Reuse the buffers when they are large enough (this runs once per matmul input).
    if (out.q.size < need_q || !out.q.data()) out.q.allocate(need_q);
    if (out.scales.size < need_s || !out.scales.data()) out.scales.allocate(need_s);
    if (out.sums.size < need_s || !out.sums.data()) out.sums.allocate(need_s);
    out.n = n;
    out.cols_padded = cols_padded;
    for (int t = 0; t < n; t++) {
        const float * xt = x + (size_t) t * cols;
        int8_t * q = (int8_t *) out.q.data() + (size_t) t * cols_padded;
        float * sc = (float *) out.scales.data() + (size_t) t * ng;
        int32_t * sm = (int32_t *) out.sums.data() + (size_t) t * ng;
        for (int64_t g = 0; g < ng; g++) {
            float buf[QK];
            const float * gx = xt + g * QK;
            int64_t left = cols - g * QK;
            if (left < QK) {
                std::memset(buf, 0, sizeof buf);
                std::memcpy(buf, gx, (size_t) left * sizeof(float));
                gx = buf;
            }
            float amax = 0.0f;
            for (int i = 0; i < QK; i++) {
                float a = std::fabs(gx[i]);
                amax = a > amax ? a : amax;
            }
            float d = amax / 127.0f;
            float id = d > 0.0f ? 1.0f / d : 0.0f;
            int32_t sum = 0;
            int8_t * gq = q + g * QK;
            for (int i = 0; i < QK; i++) {
                float v = kern::round_ne(gx[i] * id);
                v = v < -127.0f ? -127.0f : (v > 127.0f ? 127.0f : v);
                int iv = (int) v;
                gq[i] = (int8_t) iv;
                sum += iv;
            }
            // The scale rounded to f16 as llama.cpp's Q8_0 activations store it (the integers above use the exact
            // 1 / d as it does), so that an int8 product equals its q8_0 x q8_0 dot up to summation order: a MoE
            // router fed by those products picks the same experts on near-ties.
            sc[g] = quant::f16_to_f32(quant::f32_to_f16(d));
            sm[g] = sum;
        }
    }
}

} // namespace tl
