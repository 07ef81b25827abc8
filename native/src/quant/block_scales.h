// Packing of the 6-bit sub-block scales of Q3_K, Q4_K / Q5_K and IQ4_XS (12 or 6 bytes per super-block), shared by
// the dequantizer, the quantizers (which must produce exactly the inverse) and the kernels. Static inline: see the
// ODR note in kernels.h.
#pragma once
#include <cstdint>

namespace tl {
namespace quant {

// Q4_K / Q5_K: eight 6-bit scales and eight 6-bit mins in 12 bytes. Bytes 0..3 hold scales 0..3 in their low 6 bits,
// bytes 4..7 mins 0..3 likewise; scales / mins 4..7 have their low nibbles in bytes 8..11 (scale low, min high) and
// their top 2 bits in the spare top bits of bytes 0..3 (scales) and 4..7 (mins).
static inline void k4_scale_min(const uint8_t * s, int j, int & sc, int & m) {
    if (j < 4) {
        sc = s[j] & 63;
        m = s[j + 4] & 63;
    } else {
        sc = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
        m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

static inline void k4_pack_scale_min(uint8_t * s, const uint8_t sc[8], const uint8_t m[8]) {
    for (int j = 0; j < 4; j++) {
        s[j] = (uint8_t) ((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
        s[j + 4] = (uint8_t) ((m[j] & 63) | ((m[j + 4] >> 4) << 6));
        s[j + 8] = (uint8_t) ((sc[j + 4] & 15) | ((m[j + 4] & 15) << 4));
    }
}

// Q3_K: sixteen 6-bit scales (stored + 32) in 12 bytes: low nibbles in bytes 0..7 (scales 0..7 low nibble, 8..15
// high nibble), top 2 bits of scale i in bits 2(i/4)..2(i/4)+1 of byte 8 + i % 4. Returns the signed scale (-32..31).
static inline int k3_scale(const uint8_t * s, int i) {
    const int lo = i < 8 ? (s[i] & 0x0f) : (s[i - 8] >> 4);
    const int hi = (s[8 + (i & 3)] >> (2 * (i >> 2))) & 3;
    return (lo | (hi << 4)) - 32;
}

static inline void k3_pack_scales(uint8_t * s, const int8_t sc[16] /* -32..31 */) {
    for (int i = 0; i < 12; i++) s[i] = 0;
    for (int i = 0; i < 16; i++) {
        const int u = sc[i] + 32;
        if (i < 8) s[i] |= (uint8_t) (u & 0x0f);
        else s[i - 8] |= (uint8_t) ((u & 0x0f) << 4);
        s[8 + (i & 3)] |= (uint8_t) (((u >> 4) & 3) << (2 * (i >> 2)));
    }
}

// IQ4_XS: eight 6-bit scales (stored + 32): low nibbles in scales_l (two per byte, sub-block 2k in the low nibble),
// top 2 bits in scales_h (bits 2j..2j+1). Returns the signed scale (-32..31).
static inline int iq4xs_scale(uint16_t scales_h, const uint8_t * scales_l, int j) {
    const int lo = (scales_l[j / 2] >> (4 * (j % 2))) & 0x0f;
    const int hi = (scales_h >> (2 * j)) & 3;
    return (lo | (hi << 4)) - 32;
}

} // namespace quant
} // namespace tl
