// Category look-up: a flat byte table for the Basic Multilingual Plane (64 KiB, built once from the runs), binary
// search over the runs above it (rare in text).
#include "unicode.h"

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

} // namespace tl::unicode
