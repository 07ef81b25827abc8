// Fuzz target: the GGUF reader, and what the engine reads through it (the typed metadata getters, the tokenizer built
// from the metadata, every tensor's blocks through the quant library's validators, decoders and kernels), over
// arbitrary bytes.
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
#include "kernels/cpu/kernels.h"
#include "quant/kernels.h"
#include "quant/quant.h"
#include "tensor_convert.h"
#include "tokenizer.h"

using namespace tl;

namespace {

// Largest row decoded per tensor: enough for every row of a small model, bounded so a plausible-looking
// [2^32 x 1] tensor cannot make one input allocate gigabytes. Blocks scanned for non-finite scales: likewise.
constexpr int64_t MAX_ROW = 1 << 14;
constexpr int64_t MAX_BLOCKS = 1 << 20;

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

// Every tensor of a known type: its blocks' scales checked (quant::validate_blocks), and for the types the engine
// runs, the first and last row decoded (tensor_convert's dequantize_row, the quant library's block decoders),
// multiplied by every kernel set on this CPU (quant::matmul over hostile blocks: NaN / Inf scales, any quant bits),
// and put in the engine's layout (copied, or Q8_0 / Q4_0 repacked into int8 / int4) and decoded back. The reader
// promised that [data, data + n_bytes) is in the file and that rows are whole blocks.
void touch_tensors(const GgufFile & f) {
    std::vector<float> row, x;
    std::vector<uint8_t> acts;
    for (const GgufTensorInfo & t : f.tensors()) {
        if (f.find_tensor(t.name) != &t) std::abort(); // the index must point at the entry itself
        const quant::TypeTraits * tt = quant::traits(t.type);
        if (!t.data || !tt || t.ne[0] > MAX_ROW) continue;
        const int64_t n = t.ne[0], rb = quant::row_bytes(tt->type, n);
        if (rb <= 0 || (uint64_t) rb > t.n_bytes || t.n_bytes % (uint64_t) rb != 0) std::abort();
        const int64_t blocks = (int64_t) (t.n_bytes / (uint64_t) tt->block_bytes);
        std::string why;
        if (blocks <= MAX_BLOCKS && !quant::validate_blocks(tt->type, t.data, blocks, &why) && why.empty())
            std::abort();
        if (!quant::is_native_weight_type(tt->type)) continue;
        row.resize((size_t) n);
        const uint8_t * last = t.data + t.n_bytes - (uint64_t) rb;
        dequantize_row(t.type, t.data, row.data(), n);
        dequantize_row(t.type, last, row.data(), n);
        // One product per kernel set: the row against activations quantized from a fixed vector.
        const quant::Type at = tt->act_type;
        x.assign((size_t) n, 0.0f);
        for (int64_t i = 0; i < n; i++) x[(size_t) i] = (float) ((i * 7919) % 61 - 30) / 16.0f;
        const int64_t ab = at == quant::Type::F32 ? n * 4 : quant::row_bytes(at, n);
        acts.assign((size_t) ab, 0);
        quant::quantize_acts(at, x.data(), acts.data(), n);
        for (const quant::Kernels * k : {&quant::kernels_scalar(), quant::kernels_avx2(), quant::kernels_avx512()}) {
            if (!k) continue;
            float y = 0.0f;
            quant::matmul(tt->type, t.data, (size_t) rb, n, 0, 1, acts.data(), (size_t) ab, 1, &y, 1, k);
        }
        QMatrix m;
        qmatrix_alloc_typed(m, tt->type, 1, n);
        qmatrix_set_row_from(m, 0, tt->type, last);
        qmatrix_get_row(m, 0, row.data());
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
