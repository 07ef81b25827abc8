#include "quant/formats.h"

#include <cmath>
#include <cstdarg>
#include <cstddef>
#include <cstdio>
#include <cstring>

#include "quant/half.h"

namespace tl {
namespace quant {

namespace {

constexpr Type kNoAct = Type::F32; // placeholder act_type for types without dot products

// Indexed by id; entries with name == nullptr are ids ggml does not (or no longer) define.
const TypeTraits kTraits[kTypeCount] = {
    /* 0 */ {Type::F32, "f32", 1, 4, Type::F32, false, Support::Full},
    /* 1 */ {Type::F16, "f16", 1, 2, Type::F32, false, Support::Full},
    /* 2 */ {Type::Q4_0, "q4_0", QK, sizeof(BlockQ4_0), Type::Q8_0, true, Support::Full},
    /* 3 */ {Type::Q4_1, "q4_1", QK, sizeof(BlockQ4_1), Type::Q8_1, true, Support::Full},
    /* 4 */ {Type(4), nullptr, 0, 0, kNoAct, false, Support::None}, // Q4_2, removed from ggml
    /* 5 */ {Type(5), nullptr, 0, 0, kNoAct, false, Support::None}, // Q4_3, removed from ggml
    /* 6 */ {Type::Q5_0, "q5_0", QK, sizeof(BlockQ5_0), Type::Q8_0, true, Support::Full},
    /* 7 */ {Type::Q5_1, "q5_1", QK, sizeof(BlockQ5_1), Type::Q8_1, true, Support::Full},
    /* 8 */ {Type::Q8_0, "q8_0", QK, sizeof(BlockQ8_0), Type::Q8_0, true, Support::Full},
    /* 9 */ {Type::Q8_1, "q8_1", QK, sizeof(BlockQ8_1), Type::Q8_1, true, Support::Activation},
    /* 10 */ {Type::Q2_K, "q2_K", QK_K, sizeof(BlockQ2_K), Type::Q8_K, true, Support::Full},
    /* 11 */ {Type::Q3_K, "q3_K", QK_K, sizeof(BlockQ3_K), Type::Q8_K, true, Support::Full},
    /* 12 */ {Type::Q4_K, "q4_K", QK_K, sizeof(BlockQ4_K), Type::Q8_K, true, Support::Full},
    /* 13 */ {Type::Q5_K, "q5_K", QK_K, sizeof(BlockQ5_K), Type::Q8_K, true, Support::Full},
    /* 14 */ {Type::Q6_K, "q6_K", QK_K, sizeof(BlockQ6_K), Type::Q8_K, true, Support::Full},
    /* 15 */ {Type::Q8_K, "q8_K", QK_K, sizeof(BlockQ8_K), Type::Q8_K, true, Support::Activation},
    /* 16 */ {Type::IQ2_XXS, "iq2_xxs", QK_K, sizeof(BlockIQ2_XXS), Type::Q8_K, true, Support::Recognised},
    /* 17 */ {Type::IQ2_XS, "iq2_xs", QK_K, sizeof(BlockIQ2_XS), Type::Q8_K, true, Support::Recognised},
    /* 18 */ {Type::IQ3_XXS, "iq3_xxs", QK_K, sizeof(BlockIQ3_XXS), Type::Q8_K, true, Support::Recognised},
    /* 19 */ {Type::IQ1_S, "iq1_s", QK_K, sizeof(BlockIQ1_S), Type::Q8_K, true, Support::Recognised},
    /* 20 */ {Type::IQ4_NL, "iq4_nl", QK, sizeof(BlockIQ4_NL), Type::Q8_0, true, Support::Full},
    /* 21 */ {Type::IQ3_S, "iq3_s", QK_K, sizeof(BlockIQ3_S), Type::Q8_K, true, Support::Recognised},
    /* 22 */ {Type::IQ2_S, "iq2_s", QK_K, sizeof(BlockIQ2_S), Type::Q8_K, true, Support::Recognised},
    /* 23 */ {Type::IQ4_XS, "iq4_xs", QK_K, sizeof(BlockIQ4_XS), Type::Q8_K, true, Support::Full},
    /* 24 */ {Type::I8, "i8", 1, 1, kNoAct, false, Support::Recognised},
    /* 25 */ {Type::I16, "i16", 1, 2, kNoAct, false, Support::Recognised},
    /* 26 */ {Type::I32, "i32", 1, 4, kNoAct, false, Support::Recognised},
    /* 27 */ {Type::I64, "i64", 1, 8, kNoAct, false, Support::Recognised},
    /* 28 */ {Type::F64, "f64", 1, 8, kNoAct, false, Support::Recognised},
    /* 29 */ {Type::IQ1_M, "iq1_m", QK_K, sizeof(BlockIQ1_M), Type::Q8_K, true, Support::Recognised},
    /* 30 */ {Type::BF16, "bf16", 1, 2, Type::BF16, false, Support::Full},
};

void set_why(std::string * why, const char * fmt, ...) __attribute__((format(printf, 2, 3)));
void set_why(std::string * why, const char * fmt, ...) {
    if (!why) return;
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    *why = buf;
}

const char * f16_kind(uint16_t h) { return (h & 0x03ffu) ? "NaN" : "Inf"; }

// Offsets (bytes) and names of the f16 scale fields of each quantized block type. Only those carry floats; the
// rest of a block is integers, and every integer bit pattern decodes to a finite value.
struct F16Field {
    uint8_t offset;
    const char * name;
};
struct F16Fields {
    int count;
    F16Field f[2];
};

F16Fields f16_fields(Type t) {
    switch (t) {
    case Type::Q4_0: return {1, {{0, "d"}}};
    case Type::Q4_1: return {2, {{0, "d"}, {2, "m"}}};
    case Type::Q5_0: return {1, {{0, "d"}}};
    case Type::Q5_1: return {2, {{0, "d"}, {2, "m"}}};
    case Type::Q8_0: return {1, {{0, "d"}}};
    case Type::Q8_1: return {2, {{0, "d"}, {2, "s"}}};
    case Type::Q2_K: return {2, {{offsetof(BlockQ2_K, d), "d"}, {offsetof(BlockQ2_K, dmin), "dmin"}}};
    case Type::Q3_K: return {1, {{offsetof(BlockQ3_K, d), "d"}}};
    case Type::Q4_K: return {2, {{0, "d"}, {2, "dmin"}}};
    case Type::Q5_K: return {2, {{0, "d"}, {2, "dmin"}}};
    case Type::Q6_K: return {1, {{offsetof(BlockQ6_K, d), "d"}}};
    case Type::IQ4_NL:
    case Type::IQ4_XS:
    case Type::IQ2_XXS:
    case Type::IQ2_XS:
    case Type::IQ2_S:
    case Type::IQ3_XXS:
    case Type::IQ3_S:
    case Type::IQ1_S: return {1, {{0, "d"}}};
    default: return {0, {}};
    }
}

uint16_t load_u16(const uint8_t * p) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return v;
}

} // namespace

const TypeTraits * traits(uint32_t id) {
    if (id >= (uint32_t) kTypeCount || !kTraits[id].name) return nullptr;
    return &kTraits[id];
}

const char * type_name(Type t) {
    const TypeTraits * tt = traits(t);
    return tt ? tt->name : "unknown";
}

bool is_native_weight_type(Type t) {
    const TypeTraits * tt = traits(t);
    return tt && tt->support == Support::Full;
}

bool check_row_length(Type t, int64_t n, std::string * why) {
    const TypeTraits * tt = traits(t);
    if (!tt) {
        set_why(why, "unknown ggml type id %u", (unsigned) t);
        return false;
    }
    if (n <= 0) {
        set_why(why, "%s: row length %lld must be positive", tt->name, (long long) n);
        return false;
    }
    if (n % tt->block_elems != 0) {
        set_why(why, "%s: row length %lld is not a multiple of the block size %d", tt->name, (long long) n,
                tt->block_elems);
        return false;
    }
    return true;
}

int64_t row_bytes(Type t, int64_t n) {
    if (!check_row_length(t, n)) return -1;
    const TypeTraits * tt = traits(t);
    return n / tt->block_elems * tt->block_bytes;
}

bool validate_blocks(Type t, const void * data, int64_t n_blocks, std::string * why) {
    const TypeTraits * tt = traits(t);
    if (!tt) {
        set_why(why, "unknown ggml type id %u", (unsigned) t);
        return false;
    }
    if (n_blocks < 0 || (n_blocks > 0 && !data)) {
        set_why(why, "%s: no data", tt->name);
        return false;
    }
    const uint8_t * p = static_cast<const uint8_t *>(data);
    switch (t) {
    case Type::F32:
        for (int64_t i = 0; i < n_blocks; i++) {
            float v;
            std::memcpy(&v, p + 4 * i, 4);
            if (f32_is_nonfinite(v)) {
                set_why(why, "f32 element %lld is %s", (long long) i, std::isnan(v) ? "NaN" : "Inf");
                return false;
            }
        }
        return true;
    case Type::F16:
        for (int64_t i = 0; i < n_blocks; i++) {
            const uint16_t h = load_u16(p + 2 * i);
            if (f16_is_nonfinite(h)) {
                set_why(why, "f16 element %lld is %s", (long long) i, f16_kind(h));
                return false;
            }
        }
        return true;
    case Type::BF16:
        for (int64_t i = 0; i < n_blocks; i++) {
            const uint16_t h = load_u16(p + 2 * i);
            if (bf16_is_nonfinite(h)) {
                set_why(why, "bf16 element %lld is %s", (long long) i, (h & 0x7fu) ? "NaN" : "Inf");
                return false;
            }
        }
        return true;
    case Type::F64:
        for (int64_t i = 0; i < n_blocks; i++) {
            double v;
            std::memcpy(&v, p + 8 * i, 8);
            if (!std::isfinite(v)) {
                set_why(why, "f64 element %lld is %s", (long long) i, std::isnan(v) ? "NaN" : "Inf");
                return false;
            }
        }
        return true;
    case Type::Q8_K:
        for (int64_t i = 0; i < n_blocks; i++) {
            float v;
            std::memcpy(&v, p + i * (int64_t) sizeof(BlockQ8_K), 4);
            if (f32_is_nonfinite(v)) {
                set_why(why, "q8_K block %lld: d is %s", (long long) i, std::isnan(v) ? "NaN" : "Inf");
                return false;
            }
        }
        return true;
    case Type::IQ1_M:
        // The f16 super-block scale is spread over the top nibbles of the four 16-bit scale words.
        for (int64_t i = 0; i < n_blocks; i++) {
            const uint8_t * sc = p + i * (int64_t) sizeof(BlockIQ1_M) + offsetof(BlockIQ1_M, scales);
            const uint16_t s0 = load_u16(sc), s1 = load_u16(sc + 2), s2 = load_u16(sc + 4), s3 = load_u16(sc + 6);
            const uint16_t h = (uint16_t) ((s0 >> 12) | ((s1 >> 8) & 0x00f0) | ((s2 >> 4) & 0x0f00) | (s3 & 0xf000));
            if (f16_is_nonfinite(h)) {
                set_why(why, "iq1_m block %lld: d is %s", (long long) i, f16_kind(h));
                return false;
            }
        }
        return true;
    default: break;
    }
    const F16Fields ff = f16_fields(t);
    for (int64_t i = 0; i < n_blocks; i++) {
        const uint8_t * b = p + i * tt->block_bytes;
        for (int k = 0; k < ff.count; k++) {
            const uint16_t h = load_u16(b + ff.f[k].offset);
            if (f16_is_nonfinite(h)) {
                set_why(why, "%s block %lld: %s is %s", tt->name, (long long) i, ff.f[k].name, f16_kind(h));
                return false;
            }
        }
    }
    return true;
}

} // namespace quant
} // namespace tl
