// Category look-up: a flat byte table for the Basic Multilingual Plane (64 KiB, built once from the runs), binary
// search over the runs above it (rare in text).
#include "unicode.h"

#include <utility>
#include <vector>

#include "unicode_tables.h"

namespace tl::unicode {

namespace {

static_assert((int) unicode_data::Cn == (int) Cn, "unicode_tables.h and unicode.h disagree on the categories");

struct BmpTable {
    std::vector<uint8_t> cat;
    BmpTable() : cat(0x10000, Cn) {
        for (uint32_t r = 0; r < unicode_data::N_CATEGORY_RUNS; r++) {
            const unicode_data::CategoryRun & run = unicode_data::CATEGORY_RUNS[r];
            if (run.first >= 0x10000) break;
            const uint32_t last = run.last < 0xFFFF ? run.last : 0xFFFF;
            for (uint32_t cp = run.first; cp <= last; cp++) cat[cp] = run.category;
        }
    }
};

const BmpTable & bmp() {
    static const BmpTable table;
    return table;
}

} // namespace

Category category(uint32_t cp) {
    if (cp < 0x10000) return (Category) bmp().cat[cp];
    size_t lo = 0, hi = unicode_data::N_CATEGORY_RUNS;
    while (lo < hi) {
        const size_t mid = (lo + hi) / 2;
        const unicode_data::CategoryRun & run = unicode_data::CATEGORY_RUNS[mid];
        if (cp < run.first) hi = mid;
        else if (cp > run.last) lo = mid + 1;
        else return (Category) run.category;
    }
    return Cn;
}

void append_utf8(std::string & out, uint32_t cp) {
    if (cp < 0x80) {
        out += (char) cp;
    } else if (cp < 0x800) {
        out += (char) (0xC0 | (cp >> 6));
        out += (char) (0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += (char) (0xE0 | (cp >> 12));
        out += (char) (0x80 | ((cp >> 6) & 0x3F));
        out += (char) (0x80 | (cp & 0x3F));
    } else {
        out += (char) (0xF0 | (cp >> 18));
        out += (char) (0x80 | ((cp >> 12) & 0x3F));
        out += (char) (0x80 | ((cp >> 6) & 0x3F));
        out += (char) (0x80 | (cp & 0x3F));
    }
}

const char * tables_version() { return unicode_data::UNICODE_VERSION; }

// ---------------------------------------------------------------------------------------------------------------
// NFC

namespace {

constexpr uint32_t S_BASE = 0xAC00, L_BASE = 0x1100, V_BASE = 0x1161, T_BASE = 0x11A7;
constexpr uint32_t L_COUNT = 19, V_COUNT = 21, T_COUNT = 28, N_COUNT = V_COUNT * T_COUNT, S_COUNT = L_COUNT * N_COUNT;

uint8_t ccc(uint32_t cp) {
    if (cp < 0x300) return 0;
    size_t lo = 0, hi = unicode_data::N_CCC_RUNS;
    while (lo < hi) {
        const size_t mid = (lo + hi) / 2;
        const auto & r = unicode_data::CCC_RUNS[mid];
        if (cp < r.first) hi = mid;
        else if (cp > r.last) lo = mid + 1;
        else return r.ccc;
    }
    return 0;
}

bool quick_check_not_yes(uint32_t cp) {
    if (cp < 0x300) return false;
    size_t lo = 0, hi = unicode_data::N_NFC_QC_RANGES;
    while (lo < hi) {
        const size_t mid = (lo + hi) / 2;
        const auto & r = unicode_data::NFC_QC_RANGES[mid];
        if (cp < r.first) hi = mid;
        else if (cp > r.last) lo = mid + 1;
        else return true;
    }
    return false;
}

const unicode_data::Decomposition * decomposition(uint32_t cp) {
    size_t lo = 0, hi = unicode_data::N_DECOMPOSITIONS;
    while (lo < hi) {
        const size_t mid = (lo + hi) / 2;
        const auto & d = unicode_data::DECOMPOSITIONS[mid];
        if (cp < d.cp) hi = mid;
        else if (cp > d.cp) lo = mid + 1;
        else return &d;
    }
    return nullptr;
}

void decompose(uint32_t cp, std::vector<uint32_t> & out) {
    if (cp >= S_BASE && cp < S_BASE + S_COUNT) {
        const uint32_t s = cp - S_BASE;
        out.push_back(L_BASE + s / N_COUNT);
        out.push_back(V_BASE + (s % N_COUNT) / T_COUNT);
        if (s % T_COUNT != 0) out.push_back(T_BASE + s % T_COUNT);
        return;
    }
    const unicode_data::Decomposition * d = cp < 0xC0 ? nullptr : decomposition(cp);
    if (!d) {
        out.push_back(cp);
        return;
    }
    for (uint32_t k = 0; k < d->length; k++) decompose(unicode_data::DECOMPOSITION_DATA[d->offset + k], out);
}

// The primary composite of a pair, or 0.
uint32_t compose(uint32_t a, uint32_t b) {
    if (a >= L_BASE && a < L_BASE + L_COUNT && b >= V_BASE && b < V_BASE + V_COUNT) {
        return S_BASE + ((a - L_BASE) * V_COUNT + (b - V_BASE)) * T_COUNT;
    }
    if (a >= S_BASE && a < S_BASE + S_COUNT && (a - S_BASE) % T_COUNT == 0 && b > T_BASE && b < T_BASE + T_COUNT) {
        return a + (b - T_BASE);
    }
    size_t lo = 0, hi = unicode_data::N_COMPOSITIONS;
    while (lo < hi) {
        const size_t mid = (lo + hi) / 2;
        const auto & c = unicode_data::COMPOSITIONS[mid];
        if (a < c.first || (a == c.first && b < c.second)) hi = mid;
        else if (a > c.first || b > c.second) lo = mid + 1;
        else return c.composite;
    }
    return 0;
}

// NFC of a run of code points (no malformed bytes inside), appended as UTF-8.
void nfc_run(const std::vector<uint32_t> & cps, std::vector<uint32_t> & buf, std::string & out) {
    buf.clear();
    for (uint32_t cp : cps) decompose(cp, buf);
    // Canonical ordering: stable sort of each run of non-starters by combining class (runs are short: insertion).
    for (size_t i = 1; i < buf.size(); i++) {
        const uint8_t c = ccc(buf[i]);
        if (c == 0) continue;
        size_t j = i;
        while (j > 0 && ccc(buf[j - 1]) > c) {
            std::swap(buf[j], buf[j - 1]);
            j--;
        }
    }
    // Canonical composition.
    if (!buf.empty()) {
        size_t starter = 0, w = 1;
        int last_class = ccc(buf[0]) == 0 ? 0 : 256;
        bool have_starter = last_class == 0;
        for (size_t i = 1; i < buf.size(); i++) {
            const uint32_t ch = buf[i];
            const int cls = ccc(ch);
            const uint32_t composite = have_starter ? compose(buf[starter], ch) : 0;
            if (composite != 0 && (last_class < cls || last_class == 0)) {
                buf[starter] = composite;
                continue;
            }
            if (cls == 0) {
                starter = w;
                have_starter = true;
            }
            last_class = cls;
            buf[w++] = ch;
        }
        buf.resize(w);
    }
    for (uint32_t cp : buf) append_utf8(out, cp);
}

} // namespace

bool needs_nfc(const char * text, size_t n) {
    uint8_t last = 0;
    for (size_t i = 0; i < n;) {
        if ((unsigned char) text[i] < 0xCC) { // below U+0300: NFC_Quick_Check Yes, combining class 0
            last = 0;
            i++;
            continue;
        }
        uint32_t cp;
        i += decode_utf8(text, n, i, &cp);
        if (quick_check_not_yes(cp)) return true;
        const uint8_t c = ccc(cp);
        if (c != 0 && last > c) return true;
        last = c;
    }
    return false;
}

void nfc(const char * text, size_t n, std::string & out) {
    std::vector<uint32_t> run, buf;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        const size_t len = decode_utf8(text, n, i, &cp);
        if (cp == 0xFFFD && len == 1 && (unsigned char) text[i] >= 0x80) {
            nfc_run(run, buf, out); // a malformed byte: flush, then copy it as it is
            run.clear();
            out += text[i];
        } else {
            run.push_back(cp);
        }
        i += len;
    }
    nfc_run(run, buf, out);
}

} // namespace tl::unicode
