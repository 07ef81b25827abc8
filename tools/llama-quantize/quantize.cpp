// A small front end to llama.cpp's own quantizer (llama_model_quantize in libllama), for making reference
// quantized GGUF files that tuneloop's engine is checked against. Built by tools/make-quantized-model.ts against the
// headers of the llama.cpp release node-llama-cpp ships (its git bundle) and linked to node-llama-cpp's prebuilt
// libllama; no llama.cpp code lives in this repository.
//
//   llama-quantize --list                          presets this build knows: NAME FTYPE_VALUE (from llama.h)
//   llama-quantize --inspect FILE                  one line per tensor: NAME TYPE NE0xNE1... BYTES
//   llama-quantize [--threads N] [--pure] [--allow-requantize] [--quiet] IN OUT PRESET
//
// --allow-requantize accepts quantized input: with PRESET F32 (and --pure) it writes the exact dequantized weights,
// a reference in which only the arithmetic differs from the quantized file.
//
// PRESET is a llama_ftype name without its LLAMA_FTYPE_MOSTLY_ prefix (Q4_K_M, Q8_0, IQ4_NL, ...). Every value comes
// from the llama.h this program is compiled against, so the numbers can never drift from the library's.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "ggml.h"
#include "gguf.h"
#include "llama.h"

namespace {

struct Preset {
    const char * name;
    llama_ftype ftype;
};

#define PRESET(n) {#n, LLAMA_FTYPE_MOSTLY_##n}
const Preset kPresets[] = {
    {"F32", LLAMA_FTYPE_ALL_F32},
    PRESET(F16),
    PRESET(BF16),
    PRESET(Q8_0),
    PRESET(Q4_0),
    PRESET(Q4_1),
    PRESET(Q5_0),
    PRESET(Q5_1),
    PRESET(Q2_K),
    PRESET(Q2_K_S),
    PRESET(Q3_K_S),
    PRESET(Q3_K_M),
    PRESET(Q3_K_L),
    PRESET(Q4_K_S),
    PRESET(Q4_K_M),
    PRESET(Q5_K_S),
    PRESET(Q5_K_M),
    PRESET(Q6_K),
    PRESET(IQ4_NL),
    PRESET(IQ4_XS),
    PRESET(TQ1_0),
    PRESET(TQ2_0),
};
#undef PRESET

int usage() {
    std::fprintf(stderr,
                 "usage: llama-quantize --list\n"
                 "       llama-quantize --inspect FILE\n"
                 "       llama-quantize [--threads N] [--pure] [--allow-requantize] [--quiet] IN OUT PRESET\n");
    return 2;
}

void quiet_log(ggml_log_level level, const char * text, void *) {
    if (level == GGML_LOG_LEVEL_ERROR || level == GGML_LOG_LEVEL_WARN) std::fputs(text, stderr);
}

int inspect(const char * file) {
    gguf_init_params params = {/*no_alloc =*/true, /*ctx =*/nullptr};
    gguf_context * ctx = gguf_init_from_file(file, params);
    if (ctx == nullptr) {
        std::fprintf(stderr, "llama-quantize: cannot read GGUF %s\n", file);
        return 1;
    }
    const int64_t ft = gguf_find_key(ctx, "general.file_type");
    if (ft >= 0) std::printf("# general.file_type %u\n", gguf_get_val_u32(ctx, ft));
    const int64_t n = gguf_get_n_tensors(ctx);
    for (int64_t i = 0; i < n; i++) {
        const int64_t * ne = gguf_get_tensor_ne(ctx, i);
        std::string dims = std::to_string(ne[0]);
        for (int d = 1; d < GGML_MAX_DIMS && ne[d] != 1; d++) dims += "x" + std::to_string(ne[d]);
        const ggml_type type = gguf_get_tensor_type(ctx, i);
        std::printf("%s %s %s %zu\n", gguf_get_tensor_name(ctx, i), ggml_type_name(type), dims.c_str(),
                    gguf_get_tensor_size(ctx, i));
    }
    gguf_free(ctx);
    return 0;
}

}  // namespace

int main(int argc, char ** argv) {
    int threads = 0;
    bool pure = false, quiet = false, requantize = false;
    int i = 1;
    for (; i < argc && argv[i][0] == '-' && argv[i][1] == '-'; i++) {
        const std::string a = argv[i];
        if (a == "--list") {
            for (const Preset & p : kPresets) std::printf("%s %d\n", p.name, static_cast<int>(p.ftype));
            return 0;
        } else if (a == "--inspect") {
            return i + 1 < argc ? inspect(argv[i + 1]) : usage();
        } else if (a == "--threads" && i + 1 < argc) {
            threads = std::atoi(argv[++i]);
        } else if (a == "--pure") {
            pure = true;
        } else if (a == "--allow-requantize") {
            requantize = true;
        } else if (a == "--quiet") {
            quiet = true;
        } else {
            return usage();
        }
    }
    if (argc - i != 3) return usage();
    const char * in = argv[i];
    const char * out = argv[i + 1];
    const std::string preset = argv[i + 2];
    const Preset * chosen = nullptr;
    for (const Preset & p : kPresets)
        if (preset == p.name) chosen = &p;
    if (chosen == nullptr) {
        std::fprintf(stderr, "llama-quantize: unknown preset '%s' (see --list)\n", preset.c_str());
        return 2;
    }
    if (quiet) llama_log_set(quiet_log, nullptr);
    llama_backend_init();
    llama_model_quantize_params params = llama_model_quantize_default_params();
    params.ftype = chosen->ftype;
    params.nthread = threads;
    params.pure = pure;
    params.allow_requantize = requantize;
    const uint32_t rc = llama_model_quantize(in, out, &params);
    llama_backend_free();
    if (rc != 0) {
        std::fprintf(stderr, "llama-quantize: llama_model_quantize failed (%u) for %s -> %s (%s)\n", rc, in, out,
                     chosen->name);
        return 1;
    }
    return 0;
}
