// Fuzz target: the GGUF reader, and what the engine reads through it before any weights are touched (the typed
// metadata getters, the tokenizer built from the metadata, a row of every tensor's data), over arbitrary bytes.
// Through the in-memory constructor, which runs the same parse() as a file.
//
// Accepted outcomes: success, or an EngineException (the reader's MODEL_CORRUPT and friends). Any other exception
// aborts, so the fuzzer reports it, as do the sanitizers' out-of-bounds reads, leaks and undefined behaviour.
// Build and run: native/fuzz/run.sh.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <typeinfo>
#include <vector>

#include "errors.h"
#include "gguf.h"
#include "tensor_convert.h"
#include "tokenizer.h"

using namespace tl;

namespace {

// Largest row decoded per tensor: enough for every row of a small model, bounded so a plausible-looking
// [2^32 x 1] tensor cannot make one input allocate gigabytes.
constexpr int64_t MAX_ROW = 1 << 14;

void touch_metadata(const GgufFile & f) {
    for (const auto & kv : f.metadata()) {
        const std::string & key = kv.first;
        // Each getter either returns or throws MODEL_CORRUPT for the wrong type: try them all on every key.
        try {
            (void) f.get_string(key);
        } catch (const EngineException &) {}
        try {
            (void) f.get_int(key, 0);
        } catch (const EngineException &) {}
        try {
            (void) f.get_float(key, 0.0);
        } catch (const EngineException &) {}
        try {
            (void) f.get_bool(key, false);
        } catch (const EngineException &) {}
        try {
            (void) f.get_string_array(key);
        } catch (const EngineException &) {}
        try {
            (void) f.get_float_array(key);
        } catch (const EngineException &) {}
        try {
            (void) f.get_int_array(key);
        } catch (const EngineException &) {}
    }
}

// The first and last row of each loadable tensor: the reader promised that [data, data + n_bytes) is in the file.
void touch_tensors(const GgufFile & f) {
    std::vector<float> row;
    for (const GgufTensorInfo & t : f.tensors()) {
        if (f.find_tensor(t.name) != &t) std::abort(); // the index must point at the entry itself
        if (!t.data || !ggml_type_supported(t.type) || t.ne[0] > MAX_ROW) continue;
        const uint64_t row_bytes = ggml_row_bytes(t.type, t.ne[0]);
        if (row_bytes == 0 || row_bytes > t.n_bytes) std::abort();
        row.resize((size_t) t.ne[0]);
        dequantize_row(t.type, t.data, row.data(), t.ne[0]);
        dequantize_row(t.type, t.data + t.n_bytes - row_bytes, row.data(), t.ne[0]);
    }
}

void touch_tokenizer(const GgufFile & f) {
    const Tokenizer tok = Tokenizer::from_gguf(f);
    static const char * const texts[] = {"",
                                         " ",
                                         "Hello world",
                                         "  two  spaces\n\ttab",
                                         "caf\xC3\xA9 \xE2\x96\x81 \xF0\x9F\x98\x80",
                                         "\xFF\xFE bad \xC3 utf8"};
    for (const char * text : texts) {
        std::vector<int32_t> ids;
        try {
            ids = tok.encode(text, true);
        } catch (const EngineException &) {
            continue; // a vocabulary without byte fallback cannot encode some bytes: INVALID_ARGUMENT
        }
        for (int32_t id : ids) {
            if (id < 0 || id >= tok.n_vocab()) std::abort();
        }
        (void) tok.decode(ids);
    }
    for (int32_t id = 0; id < tok.n_vocab() && id < 512; id++) (void) tok.token_to_piece(id);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    try {
        GgufFile f(data, size, "fuzz-input");
        touch_metadata(f);
        touch_tensors(f);
        touch_tokenizer(f);
    } catch (const EngineException &) {
        // a refused file: what the reader is for
    } catch (const std::exception & e) {
        std::fprintf(stderr, "gguf_fuzz: unexpected %s: %s\n", typeid(e).name(), e.what());
        std::abort();
    }
    return 0;
}
