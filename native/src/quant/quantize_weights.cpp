// Weight quantizers, f32 -> GGUF blocks. They write ggml's layouts and reconstruction formulas exactly (dequantize.cpp
// is the definition), but choose scales with this library's own search:
//
//  * one-level formats (Q4_0, Q5_0, Q4_1, Q5_1, IQ4_NL): for a dozen candidate scales around "largest value maps to
//    the extreme level", round every element, solve the least-squares scale (and offset) for those levels, keep the
//    best, then alternate rounding / least squares until it stops improving; finally round the scale to f16 and
//    re-round the elements against the stored scale.
//  * K-quants and IQ4_XS (two levels): fit each sub-block as above, quantize the sub-block scales (and mins) to their
//    4/6/8-bit codes against an f16 super-scale, re-round the elements against the coded scales, then refit the
//    super-scale(s) by least squares over the whole super-block with the codes and levels fixed, and keep that when
//    it lowers the error.
//
// The error minimised is the plain squared error (no importance weights). Relative RMSE on N(0, 1) data (64 rows of
// 4096; quant_test --rmse prints this library's column), beside llama.cpp's reference quantizer (ggml v0.5.0,
// ggml_quantize_chunk without an importance matrix) on the same data; ggml's to_float decodes this library's blocks
// bit-identically to dequantize_row, and this library decodes ggml's identically to ggml:
//
//   type     this     llama.cpp     type     this     llama.cpp     type     this     llama.cpp
//   q8_0    0.00534   0.00535       q2_K    0.2671    0.2958        q6_K    0.01656   0.01771
//   q4_0    0.0808    0.0858        q3_K    0.1433    0.1508        iq4_nl  0.0732    0.0761
//   q4_1    0.0695    0.0782        q4_K    0.0708    0.0713        iq4_xs  0.0738    0.0767
//   q5_0    0.0401    0.0427        q5_K    0.0355    0.0360        f16 2.1e-4, bf16 1.7e-3 (rounding)
//   q5_1    0.0336    0.0378
//
// Speed (1 thread, this machine): 5-25 M weights/s for the searched formats, ~300 M/s for Q8_0.
#include <cmath>
#include <cstring>

#include "quant/block_scales.h"
#include "quant/half.h"
#include "quant/quant.h"

namespace tl {
namespace quant {

namespace {

// Round half to even without a libm call (std::nearbyint is one unless SSE4.1 is enabled): adding 1.5 * 2^23 leaves
// no fraction bits (exact without -ffast-math, which this file must not use). Arguments here are levels (|v| < 2^22); larger ones and NaN are clamped first.
inline int iround(float v) {
    const float c = v >= -4194304.0f ? (v <= 4194304.0f ? v : 4194304.0f) : -4194304.0f;
    return (int) ((c + 12582912.0f) - 12582912.0f);
}
inline int clampi(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }
inline float round_f16(float v) { return f16_to_f32(f32_to_f16(v)); }

// Element of largest magnitude (signed); 0 for an all-zero block.
float signed_absmax(const float * x, int n) {
    float best = 0.0f;
    for (int i = 0; i < n; i++)
        if (std::fabs(x[i]) > std::fabs(best)) best = x[i];
    return best;
}

// ------------------------------------------------------------------------------------ symmetric: x ~ s * q
// Levels q in [qlo, qhi]. Returns the least-squares scale of the best level assignment found (not f16-rounded).
struct SymFit {
    float s;
    double score; // (sum x q)^2 / sum q^2: the squared error is sum x^2 - score, so larger is better
};

SymFit sym_eval(const float * x, int n, int qlo, int qhi, float s) {
    if (s == 0.0f) return {0.0f, 0.0};
    const float is = 1.0f / s;
    float sxq = 0, sqq = 0;
    for (int i = 0; i < n; i++) {
        const float q = (float) clampi(iround(x[i] * is), qlo, qhi);
        sxq += x[i] * q, sqq += q * q;
    }
    if (sqq == 0) return {0.0f, 0.0};
    return {sxq / sqq, (double) sxq * sxq / sqq};
}

float fit_symmetric(const float * x, int n, int qlo, int qhi) {
    const float vmax = signed_absmax(x, n);
    if (vmax == 0.0f) return 0.0f;
    SymFit best{0.0f, -1.0};
    // Map the largest element to (a fraction of) either extreme level. The negative extreme has the larger magnitude
    // in these formats (-8..7, -4..3, ...), which usually wins, but the other side sometimes fits the rest better.
    const int ends[2] = {qlo, qhi};
    for (int e : ends) {
        for (int k = 0; k <= 12; k++) {
            const float level = (float) e * (0.55f + 0.05f * (float) k); // 0.55 .. 1.15 of the extreme
            const SymFit f = sym_eval(x, n, qlo, qhi, vmax / level);
            if (f.score > best.score) best = f;
        }
    }
    // Alternate: round against the current scale, then least squares for those levels.
    for (int it = 0; it < 4; it++) {
        const SymFit f = sym_eval(x, n, qlo, qhi, best.s);
        if (f.score <= best.score * (1.0 + 1e-7)) break;
        best = f;
    }
    return best.s;
}

// ------------------------------------------------------------------------------------ affine: x ~ a * q + b
struct AffFit {
    float a, b;
    double err;
};

// Least-squares (a, b) for the levels summarised by the sums, and the squared error it leaves. With b_nonpos the
// offset is constrained to b <= 0 (the K-quants store it as -dmin * m with unsigned m); a >= 0 always (unsigned
// scales). At the least-squares point the residual is orthogonal to the fitted columns, so the error is
// sxx - a sxq - b sx: no second pass over the data.
AffFit affine_ls(int n, float sx, float sxx, float sq, float sxq, float sqq, bool b_nonpos) {
    const double det = (double) n * sqq - (double) sq * sq;
    double A = 0, B = (double) sx / n;
    if (det > 0) {
        A = ((double) n * sxq - (double) sq * sx) / det;
        B = (sx - A * sq) / n;
    }
    if (b_nonpos && B > 0) {
        B = 0;
        A = sqq > 0 ? sxq / sqq : 0;
    }
    if (A < 0) { // levels anti-correlated with the data: the best constant
        A = 0;
        B = (double) sx / n;
        if (b_nonpos && B > 0) B = 0;
        return {0.0f, (float) B, sxx - 2 * B * sx + n * B * B};
    }
    return {(float) A, (float) B, sxx - A * sxq - B * sx};
}

// Round against (a, b), accumulate the level sums, and refit.
AffFit affine_step(const float * x, int n, int nmax, float sx, float sxx, float a, float b, bool b_nonpos) {
    const float ia = a > 0 ? 1.0f / a : 0.0f;
    float sq = 0, sxq = 0, sqq = 0;
    for (int i = 0; i < n; i++) {
        const float q = (float) clampi(iround((x[i] - b) * ia), 0, nmax);
        sq += q, sxq += x[i] * q, sqq += q * q;
    }
    return affine_ls(n, sx, sxx, sq, sxq, sqq, b_nonpos);
}

AffFit fit_affine(const float * x, int n, int nmax, bool b_nonpos) {
    float mn = x[0], mx = x[0], sx = 0, sxx = 0;
    for (int i = 0; i < n; i++) {
        mn = std::fmin(mn, x[i]);
        mx = std::fmax(mx, x[i]);
        sx += x[i], sxx += x[i] * x[i];
    }
    if (b_nonpos) mn = std::fmin(mn, 0.0f);
    if (mx <= mn) return {0.0f, mn, 0.0};
    // Candidate level spacings around (max - min) / nmax, each followed by least squares for its levels.
    AffFit best{0.0f, mn, 1e300};
    for (int k = -5; k <= 5; k++) {
        const float a = (mx - mn) / ((float) nmax + 0.2f * (float) k);
        const AffFit f = affine_step(x, n, nmax, sx, sxx, a, mn, b_nonpos);
        if (f.err < best.err) best = f;
    }
    // Alternate rounding and least squares while the error drops.
    for (int it = 0; it < 4; it++) {
        const AffFit f = affine_step(x, n, nmax, sx, sxx, best.a, best.b, b_nonpos);
        if (!(f.err < best.err * (1.0 - 1e-7))) break;
        best = f;
    }
    return best;
}

// ------------------------------------------------------------------------------------ IQ4 levels: x ~ s * kv[q]
// Nearest level index by table: every midpoint between two levels is a multiple of 0.5, so floor(2 v) decides it
// (a value exactly on a midpoint is equally far from both; either answer is optimal).
struct IQ4Table {
    uint8_t idx[512]; // floor(2 v) + 256, clamped
    IQ4Table() {
        for (int k = 0; k < 512; k++) {
            const float v = (float) (k - 256) * 0.5f + 0.25f; // inside [k/2, k/2 + 0.5)
            int best = 0;
            for (int j = 1; j < 16; j++)
                if (std::fabs(v - kIQ4NLValues[j]) < std::fabs(v - kIQ4NLValues[best])) best = j;
            idx[k] = (uint8_t) best;
        }
    }
};
const IQ4Table kIQ4Table;

inline int iq4_nearest(float v) {
    const float c = v >= -128.0f ? (v <= 127.5f ? v : 127.5f) : -128.0f;
    return kIQ4Table.idx[(int) std::floor(2.0f * c) + 256];
}

SymFit iq4_eval(const float * x, int n, float s) {
    if (s == 0.0f) return {0.0f, 0.0};
    const float is = 1.0f / s;
    float sxk = 0, skk = 0;
    for (int i = 0; i < n; i++) {
        const float k = kIQ4NLValues[iq4_nearest(x[i] * is)];
        sxk += x[i] * k, skk += k * k;
    }
    return {sxk / skk, (double) sxk * sxk / skk};
}

float fit_iq4(const float * x, int n) {
    const float vmax = signed_absmax(x, n);
    if (vmax == 0.0f) return 0.0f;
    SymFit best{0.0f, -1.0};
    const float ends[2] = {(float) kIQ4NLValues[0], (float) kIQ4NLValues[15]};
    for (float e : ends) {
        for (int k = 0; k <= 12; k++) {
            const SymFit f = iq4_eval(x, n, vmax / (e * (0.7f + 0.04f * (float) k))); // 0.7 .. 1.18 of the extreme
            if (f.score > best.score) best = f;
        }
    }
    for (int it = 0; it < 4; it++) {
        const SymFit f = iq4_eval(x, n, best.s);
        if (f.score <= best.score * (1.0 + 1e-7)) break;
        best = f;
    }
    return best.s;
}

// ------------------------------------------------------------------------------------ one-level formats

void quant_q8_0(const float * x, BlockQ8_0 * y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK) {
        // 8 bits leave little to search: largest element to +-127, then round against the stored scale.
        float amax = 0;
        for (int j = 0; j < QK; j++) amax = std::fmax(amax, std::fabs(x[j]));
        y[i].d = f32_to_f16(amax / 127.0f);
        const float d = f16_to_f32(y[i].d);
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        for (int j = 0; j < QK; j++) y[i].qs[j] = (int8_t) clampi(iround(x[j] * id), -127, 127);
    }
}

// Q4_0 / Q5_0 levels (q - offset) for one block against the stored scale.
void sym_levels(const float * x, int qlo, int qhi, uint16_t & dh, int * q) {
    dh = f32_to_f16(fit_symmetric(x, QK, qlo, qhi));
    const float d = f16_to_f32(dh);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < QK; j++) q[j] = clampi(iround(x[j] * id), qlo, qhi);
}

void quant_q4_0(const float * x, BlockQ4_0 * y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK) {
        int q[QK];
        sym_levels(x, -8, 7, y[i].d, q);
        for (int j = 0; j < 16; j++) y[i].qs[j] = (uint8_t) ((q[j] + 8) | ((q[j + 16] + 8) << 4));
    }
}

void quant_q5_0(const float * x, BlockQ5_0 * y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK) {
        int q[QK];
        sym_levels(x, -16, 15, y[i].d, q);
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            const int lo = q[j] + 16, hi = q[j + 16] + 16;
            y[i].qs[j] = (uint8_t) ((lo & 15) | ((hi & 15) << 4));
            qh |= (uint32_t) (lo >> 4) << j;
            qh |= (uint32_t) (hi >> 4) << (j + 16);
        }
        std::memcpy(y[i].qh, &qh, 4);
    }
}

// Q4_1 / Q5_1: affine levels 0..nmax against the stored d and m.
void aff_levels(const float * x, int nmax, uint16_t & dh, uint16_t & mh, int * q) {
    const AffFit f = fit_affine(x, QK, nmax, false);
    dh = f32_to_f16(f.a);
    mh = f32_to_f16(f.b);
    const float d = f16_to_f32(dh), m = f16_to_f32(mh);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < QK; j++) q[j] = clampi(iround((x[j] - m) * id), 0, nmax);
}

void quant_q4_1(const float * x, BlockQ4_1 * y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK) {
        int q[QK];
        aff_levels(x, 15, y[i].d, y[i].m, q);
        for (int j = 0; j < 16; j++) y[i].qs[j] = (uint8_t) (q[j] | (q[j + 16] << 4));
    }
}

void quant_q5_1(const float * x, BlockQ5_1 * y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK) {
        int q[QK];
        aff_levels(x, 31, y[i].d, y[i].m, q);
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            y[i].qs[j] = (uint8_t) ((q[j] & 15) | ((q[j + 16] & 15) << 4));
            qh |= (uint32_t) (q[j] >> 4) << j;
            qh |= (uint32_t) (q[j + 16] >> 4) << (j + 16);
        }
        std::memcpy(y[i].qh, &qh, 4);
    }
}

void quant_iq4_nl(const float * x, BlockIQ4_NL * y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK) {
        y[i].d = f32_to_f16(fit_iq4(x, QK));
        const float d = f16_to_f32(y[i].d);
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        for (int j = 0; j < 16; j++)
            y[i].qs[j] = (uint8_t) (iq4_nearest(x[j] * id) | (iq4_nearest(x[j + 16] * id) << 4));
    }
}

// ------------------------------------------------------------------------------------ two-level (super-block) formats

// Symmetric super-block: sub-blocks of `sub` elements with signed integer scale codes in [clo, chi] times an f16
// super-scale d, levels in [qlo, qhi]. Fills codes[] and q[] (QK_K levels) and returns the f16 d.
uint16_t fit_two_level_sym(const float * x, int sub, int qlo, int qhi, int clo, int chi, bool iq4, int * codes,
                           int * q) {
    const int ns = QK_K / sub;
    float s[16];
    for (int j = 0; j < ns; j++) s[j] = iq4 ? fit_iq4(x + sub * j, sub) : fit_symmetric(x + sub * j, sub, qlo, qhi);
    const float smax = signed_absmax(s, ns);
    // The largest sub-scale maps to the code with the larger magnitude (clo is -32 / -128).
    auto levels = [&](float d, int * cd, int * qq) -> double {
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        double err = 0;
        for (int j = 0; j < ns; j++) {
            cd[j] = clampi(iround(s[j] * id), clo, chi);
            const float dl = d * (float) cd[j];
            const float idl = dl != 0.0f ? 1.0f / dl : 0.0f;
            for (int l = 0; l < sub; l++) {
                const int e = sub * j + l;
                float r;
                if (iq4) {
                    qq[e] = iq4_nearest(x[e] * idl);
                    r = dl * (float) kIQ4NLValues[qq[e]];
                } else {
                    qq[e] = clampi(iround(x[e] * idl), qlo, qhi);
                    r = dl * (float) qq[e];
                }
                err += (double) (x[e] - r) * (x[e] - r);
            }
        }
        return err;
    };
    float d = round_f16(smax / (float) clo);
    double err = levels(d, codes, q);
    // Refit d by least squares with the codes and levels fixed: x_e ~ d * (code_j * level_e).
    for (int it = 0; it < 2; it++) {
        double sxa = 0, saa = 0;
        for (int e = 0; e < QK_K; e++) {
            const double a = (double) codes[e / sub] * (iq4 ? kIQ4NLValues[q[e]] : q[e]);
            sxa += x[e] * a;
            saa += a * a;
        }
        if (saa <= 0) break;
        const float d2 = round_f16((float) (sxa / saa));
        int c2[16], q2[QK_K];
        const double err2 = levels(d2, c2, q2);
        if (!(err2 < err)) break;
        d = d2, err = err2;
        std::memcpy(codes, c2, sizeof(int) * ns);
        std::memcpy(q, q2, sizeof q2);
    }
    return f32_to_f16(d);
}

// Affine super-block (Q2_K, Q4_K, Q5_K): x = d * sc_j * q - dmin * m_j, codes sc/m in [0, cmax], levels 0..nmax.
void fit_two_level_affine(const float * x, int sub, int nmax, int cmax, uint16_t & dh, uint16_t & dminh, int * sc,
                          int * mc, int * q) {
    const int ns = QK_K / sub;
    float a[16], m[16];
    float amax = 0, mmax = 0;
    for (int j = 0; j < ns; j++) {
        const AffFit f = fit_affine(x + sub * j, sub, nmax, true);
        a[j] = f.a;
        m[j] = -f.b;
        amax = std::fmax(amax, a[j]);
        mmax = std::fmax(mmax, m[j]);
    }
    auto levels = [&](float d, float dmin, int * c_s, int * c_m, int * qq, bool recode) -> double {
        const float id = d > 0 ? 1.0f / d : 0.0f, idm = dmin > 0 ? 1.0f / dmin : 0.0f;
        double err = 0;
        for (int j = 0; j < ns; j++) {
            if (recode) {
                c_s[j] = clampi(iround(a[j] * id), 0, cmax);
                c_m[j] = clampi(iround(m[j] * idm), 0, cmax);
            }
            const float dl = d * (float) c_s[j], ml = dmin * (float) c_m[j];
            const float idl = dl > 0 ? 1.0f / dl : 0.0f;
            for (int l = 0; l < sub; l++) {
                const int e = sub * j + l;
                qq[e] = clampi(iround((x[e] + ml) * idl), 0, nmax);
                const float r = dl * (float) qq[e] - ml;
                err += (double) (x[e] - r) * (x[e] - r);
            }
        }
        return err;
    };
    float d = round_f16(amax / (float) cmax), dmin = round_f16(mmax / (float) cmax);
    double err = levels(d, dmin, sc, mc, q, true);
    // Refit (d, dmin) jointly by least squares with codes and levels fixed: x_e ~ d * (sc_j q_e) - dmin * m_j.
    for (int it = 0; it < 2; it++) {
        double saa = 0, sab = 0, sbb = 0, sxa = 0, sxb = 0;
        for (int e = 0; e < QK_K; e++) {
            const double A = (double) sc[e / sub] * q[e], B = -(double) mc[e / sub];
            saa += A * A, sab += A * B, sbb += B * B, sxa += x[e] * A, sxb += x[e] * B;
        }
        const double det = saa * sbb - sab * sab;
        if (!(det > 0)) break;
        const float d2 = round_f16((float) ((sxa * sbb - sxb * sab) / det));
        const float dmin2 = round_f16((float) ((sxb * saa - sxa * sab) / det));
        if (!(d2 > 0) || dmin2 < 0) break;
        int s2[16], m2[16], q2[QK_K];
        std::memcpy(s2, sc, sizeof(int) * ns);
        std::memcpy(m2, mc, sizeof(int) * ns);
        const double err2 = levels(d2, dmin2, s2, m2, q2, false);
        if (!(err2 < err)) break;
        d = d2, dmin = dmin2, err = err2;
        std::memcpy(q, q2, sizeof q2);
    }
    dh = f32_to_f16(d);
    dminh = f32_to_f16(dmin);
}

void quant_q2_k(const float * x, BlockQ2_K * y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        int sc[16], mc[16], q[QK_K];
        fit_two_level_affine(x, 16, 3, 15, y[i].d, y[i].dmin, sc, mc, q);
        for (int j = 0; j < 16; j++) y[i].scales[j] = (uint8_t) (sc[j] | (mc[j] << 4));
        std::memset(y[i].qs, 0, sizeof y[i].qs);
        for (int e = 0; e < QK_K; e++) {
            const int half = e / 128, j = (e % 128) / 32, l = e % 32;
            y[i].qs[32 * half + l] |= (uint8_t) (q[e] << (2 * j));
        }
    }
}

void quant_q3_k(const float * x, BlockQ3_K * y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        int codes[16], q[QK_K];
        y[i].d = fit_two_level_sym(x, 16, -4, 3, -32, 31, false, codes, q);
        int8_t sc[16];
        for (int j = 0; j < 16; j++) sc[j] = (int8_t) codes[j];
        k3_pack_scales(y[i].scales, sc);
        std::memset(y[i].qs, 0, sizeof y[i].qs);
        std::memset(y[i].hmask, 0, sizeof y[i].hmask);
        for (int e = 0; e < QK_K; e++) {
            const int half = e / 128, j = (e % 128) / 32, l = e % 32;
            const int u = q[e] + 4; // 0..7: low 2 bits in qs, bit 2 in hmask (set means "no -4")
            y[i].qs[32 * half + l] |= (uint8_t) ((u & 3) << (2 * j));
            if (u & 4) y[i].hmask[l] |= (uint8_t) (1u << (4 * half + j));
        }
    }
}

void quant_q45_k(const float * x, int nmax, uint16_t & dh, uint16_t & dminh, uint8_t * scales, int * q) {
    int sc[8], mc[8];
    fit_two_level_affine(x, 32, nmax, 63, dh, dminh, sc, mc, q);
    uint8_t s8[8], m8[8];
    for (int j = 0; j < 8; j++) s8[j] = (uint8_t) sc[j], m8[j] = (uint8_t) mc[j];
    k4_pack_scale_min(scales, s8, m8);
}

void quant_q4_k(const float * x, BlockQ4_K * y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        int q[QK_K];
        quant_q45_k(x, 15, y[i].d, y[i].dmin, y[i].scales, q);
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++) y[i].qs[32 * c + l] = (uint8_t) (q[64 * c + l] | (q[64 * c + 32 + l] << 4));
    }
}

void quant_q5_k(const float * x, BlockQ5_K * y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        int q[QK_K];
        quant_q45_k(x, 31, y[i].d, y[i].dmin, y[i].scales, q);
        std::memset(y[i].qh, 0, sizeof y[i].qh);
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++) {
                const int lo = q[64 * c + l], hi = q[64 * c + 32 + l];
                y[i].qs[32 * c + l] = (uint8_t) ((lo & 15) | ((hi & 15) << 4));
                y[i].qh[l] |= (uint8_t) (((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1)));
            }
    }
}

void quant_q6_k(const float * x, BlockQ6_K * y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        int codes[16], q[QK_K];
        y[i].d = fit_two_level_sym(x, 16, -32, 31, -128, 127, false, codes, q);
        for (int j = 0; j < 16; j++) y[i].scales[j] = (int8_t) codes[j];
        std::memset(y[i].ql, 0, sizeof y[i].ql);
        std::memset(y[i].qh, 0, sizeof y[i].qh);
        for (int e = 0; e < QK_K; e++) {
            const int h = e / 128, r = e % 128, quarter = r / 32, l = r % 32;
            const int u = q[e] + 32; // 0..63
            y[i].ql[64 * h + 32 * (quarter & 1) + l] |= (uint8_t) ((u & 15) << (quarter < 2 ? 0 : 4));
            y[i].qh[32 * h + l] |= (uint8_t) ((u >> 4) << (2 * quarter));
        }
    }
}

void quant_iq4_xs(const float * x, BlockIQ4_XS * y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        int codes[8], q[QK_K];
        y[i].d = fit_two_level_sym(x, 32, 0, 0, -32, 31, true, codes, q);
        y[i].scales_h = 0;
        std::memset(y[i].scales_l, 0, sizeof y[i].scales_l);
        for (int j = 0; j < 8; j++) {
            const int u = codes[j] + 32;
            y[i].scales_l[j / 2] |= (uint8_t) ((u & 15) << (4 * (j % 2)));
            y[i].scales_h |= (uint16_t) ((u >> 4) << (2 * j));
            for (int l = 0; l < 16; l++)
                y[i].qs[16 * j + l] = (uint8_t) (q[32 * j + l] | (q[32 * j + 16 + l] << 4));
        }
    }
}

} // namespace

void quantize_row(Type t, const float * src, void * dst, int64_t n) {
    switch (t) {
    case Type::F32: std::memcpy(dst, src, (size_t) n * 4); return;
    case Type::F16: {
        uint16_t * y = static_cast<uint16_t *>(dst);
        for (int64_t i = 0; i < n; i++) y[i] = f32_to_f16(src[i]);
        return;
    }
    case Type::BF16: {
        uint16_t * y = static_cast<uint16_t *>(dst);
        for (int64_t i = 0; i < n; i++) y[i] = f32_to_bf16(src[i]);
        return;
    }
    case Type::Q4_0: return quant_q4_0(src, static_cast<BlockQ4_0 *>(dst), n / QK);
    case Type::Q4_1: return quant_q4_1(src, static_cast<BlockQ4_1 *>(dst), n / QK);
    case Type::Q5_0: return quant_q5_0(src, static_cast<BlockQ5_0 *>(dst), n / QK);
    case Type::Q5_1: return quant_q5_1(src, static_cast<BlockQ5_1 *>(dst), n / QK);
    case Type::Q8_0: return quant_q8_0(src, static_cast<BlockQ8_0 *>(dst), n / QK);
    case Type::Q2_K: return quant_q2_k(src, static_cast<BlockQ2_K *>(dst), n / QK_K);
    case Type::Q3_K: return quant_q3_k(src, static_cast<BlockQ3_K *>(dst), n / QK_K);
    case Type::Q4_K: return quant_q4_k(src, static_cast<BlockQ4_K *>(dst), n / QK_K);
    case Type::Q5_K: return quant_q5_k(src, static_cast<BlockQ5_K *>(dst), n / QK_K);
    case Type::Q6_K: return quant_q6_k(src, static_cast<BlockQ6_K *>(dst), n / QK_K);
    case Type::IQ4_NL: return quant_iq4_nl(src, static_cast<BlockIQ4_NL *>(dst), n / QK);
    case Type::IQ4_XS: return quant_iq4_xs(src, static_cast<BlockIQ4_XS *>(dst), n / QK_K);
    // Activation formats are written by quantize_acts(); other types have no quantizer here.
    case Type::Q8_1: return quantize_acts_q8_1(src, dst, n);
    case Type::Q8_K: return quantize_acts_q8_k(src, dst, n);
    default: std::memset(dst, 0, (size_t) (row_bytes(t, n) > 0 ? row_bytes(t, n) : 0)); return;
    }
}

} // namespace quant
} // namespace tl
