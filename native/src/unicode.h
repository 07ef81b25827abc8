// Unicode facts the tokenizers need: UTF-8 decoding that never fails (malformed bytes become one-byte U+FFFD
// characters, so any input splits), general categories from the generated tables (unicode_tables.h), and the
// White_Space property (what \s means in the pre-tokenizer patterns, as in Oniguruma and llama.cpp).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace tl::unicode {

// General categories, in the order of unicode_tables.h.
// clang-format off
enum Category : uint8_t {
    Lu, Ll, Lt, Lm, Lo, Mn, Mc, Me, Nd, Nl, No, Pc, Pd, Ps, Pe, Pi, Pf, Po,
    Sm, Sc, Sk, So, Zs, Zl, Zp, Cc, Cf, Cs, Co, Cn, N_CATEGORIES
};
// clang-format on

// Category sets as bit masks (bit c = category c), for \p{L}, \p{N}, ...
constexpr uint32_t bit(Category c) { return 1u << c; }
constexpr uint32_t MASK_L = bit(Lu) | bit(Ll) | bit(Lt) | bit(Lm) | bit(Lo);
constexpr uint32_t MASK_M = bit(Mn) | bit(Mc) | bit(Me);
constexpr uint32_t MASK_N = bit(Nd) | bit(Nl) | bit(No);
constexpr uint32_t MASK_P = bit(Pc) | bit(Pd) | bit(Ps) | bit(Pe) | bit(Pi) | bit(Pf) | bit(Po);
constexpr uint32_t MASK_S = bit(Sm) | bit(Sc) | bit(Sk) | bit(So);
constexpr uint32_t MASK_Z = bit(Zs) | bit(Zl) | bit(Zp);
constexpr uint32_t MASK_C = bit(Cc) | bit(Cf) | bit(Cs) | bit(Co) | bit(Cn);

// The general category of a code point (Cn for unassigned ones and for values past U+10FFFF).
Category category(uint32_t cp);

// The White_Space property: \t \n \v \f \r, space, U+0085, U+00A0, U+1680, U+2000..U+200A, U+2028, U+2029,
// U+202F, U+205F, U+3000.
inline bool is_whitespace(uint32_t cp) {
    if (cp < 0x80) return cp == ' ' || (cp >= 9 && cp <= 13);
    return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

// Length of the character at s[i, n): its UTF-8 length when the lead byte is valid and all its continuation bytes
// are present, else 1. *cp gets the code point (U+FFFD for a malformed byte).
inline size_t decode_utf8(const char * s, size_t n, size_t i, uint32_t * cp) {
    const unsigned char c = (unsigned char) s[i];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    uint32_t v;
    if ((c & 0xE0) == 0xC0) len = 2, v = c & 0x1F;
    else if ((c & 0xF0) == 0xE0) len = 3, v = c & 0x0F;
    else if ((c & 0xF8) == 0xF0) len = 4, v = c & 0x07;
    else {
        *cp = 0xFFFD;
        return 1;
    }
    if (i + len > n) {
        *cp = 0xFFFD;
        return 1;
    }
    for (size_t k = 1; k < len; k++) {
        const unsigned char cc = (unsigned char) s[i + k];
        if ((cc & 0xC0) != 0x80) {
            *cp = 0xFFFD;
            return 1;
        }
        v = (v << 6) | (cc & 0x3F);
    }
    *cp = v;
    return len;
}

void append_utf8(std::string & out, uint32_t cp);

// NFC (canonical decomposition, canonical ordering, canonical composition), for the families whose tokenizer.json
// normalizes to NFC (Qwen2). needs_nfc() is the quick check: false when text[0, n) is already NFC (no code point
// with NFC_Quick_Check No/Maybe, combining marks in canonical order). nfc() appends the NFC form of text[0, n) to
// `out`; malformed UTF-8 bytes are copied unchanged and break composition, as a starter would.
bool needs_nfc(const char * text, size_t n);
void nfc(const char * text, size_t n, std::string & out);

// The Unicode version of the tables (e.g. "14.0.0").
const char * tables_version();

} // namespace tl::unicode
