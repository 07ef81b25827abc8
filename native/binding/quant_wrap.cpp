// Addon functions over the GGUF block formats and the GGUF header, without an engine:
//   quantizeRows(type, data: Float32Array, cols) -> Uint8Array      f32 rows to blocks of `type` (quant::quantize_row)
//   dequantizeRows(type, bytes: Uint8Array, cols) -> Float32Array   blocks back to f32 (quant::dequantize_row)
//   inspectModel(path) -> ModelInspection                           the header and tensor infos only, never the weights
// Types are ggml's names in any case ("q4_K", "Q4_K", "q4_k"). Errors are EngineErrors: INVALID_ARGUMENT for bad
// arguments, MODEL_NOT_FOUND / MODEL_CORRUPT from the GGUF reader.
#include "quant_wrap.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "gguf.h"
#include "model_loader.h"
#include "quant/kernels.h"
#include "quant/quant.h"

namespace tl_binding {

namespace {

[[noreturn]] void invalid(Napi::Env env, const std::string & message) {
    throw Napi::Error(env, make_engine_error(env, tl::ErrorCode::INVALID_ARGUMENT, message));
}

std::string lower(std::string s) {
    for (char & c : s) c = (char) std::tolower((unsigned char) c);
    return s;
}

// The type named `v`, which must be one the library can `need` (quantize: a weight type; dequantize: also the
// activation formats).
tl::quant::Type type_arg(Napi::Env env, const Napi::Value & v, bool quantize) {
    if (!v.IsString()) invalid(env, "Expected a GGUF type name (e.g. 'q4_K') for type");
    const std::string name = v.As<Napi::String>().Utf8Value();
    std::string known;
    for (int id = 0; id < tl::quant::kTypeCount; ++id) {
        const tl::quant::TypeTraits * tt = tl::quant::traits((uint32_t) id);
        if (!tt) continue;
        const bool ok = tt->support == tl::quant::Support::Full ||
                        (!quantize && tt->support == tl::quant::Support::Activation && tt->is_quantized);
        if (!ok) continue;
        if (lower(tt->name) == lower(name)) return tt->type;
        known += (known.empty() ? "" : ", ") + std::string(tt->name);
    }
    invalid(env, "Unknown or unsupported GGUF type '" + name + "' for type (" +
                     (quantize ? "quantizeRows" : "dequantizeRows") + " takes " + known + ")");
}

int64_t cols_arg(Napi::Env env, const Napi::Value & v, tl::quant::Type t) {
    if (!v.IsNumber()) invalid(env, "Expected a positive integer for cols");
    const double d = v.As<Napi::Number>().DoubleValue();
    if (!(d >= 1 && d <= (double) (1ll << 40)) || d != (double) (int64_t) d)
        invalid(env, "Expected a positive integer for cols but received " + std::to_string(d));
    std::string why;
    if (!tl::quant::check_row_length(t, (int64_t) d, &why)) invalid(env, "cols: " + why);
    return (int64_t) d;
}

// Runs fn(row_begin, row_end) over `rows` on a few threads when the work is large (quantizing a billion weights to
// a K-quant takes a minute on one core).
template <class Fn>
void parallel_rows(int64_t rows, int64_t cols, Fn fn) {
    const unsigned hw = std::max(1u, std::min(8u, std::thread::hardware_concurrency()));
    const int64_t n = std::min<int64_t>(hw, std::max<int64_t>(1, rows * cols / (1 << 20)));
    if (n <= 1) {
        fn(0, rows);
        return;
    }
    std::vector<std::thread> ts;
    for (int64_t i = 1; i < n; ++i) ts.emplace_back([&, i] { fn(rows * i / n, rows * (i + 1) / n); });
    fn(0, rows / n);
    for (std::thread & t : ts) t.join();
}

Napi::Value quantize_rows(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    const tl::quant::Type t = type_arg(env, info[0], true);
    if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
        invalid(env, "Expected a Float32Array for data");
    Napi::Float32Array data = info[1].As<Napi::Float32Array>();
    const int64_t cols = cols_arg(env, info[2], t);
    const int64_t n = (int64_t) data.ElementLength();
    if (n % cols != 0)
        invalid(env,
                "data has " + std::to_string(n) + " values, not a whole number of rows of " + std::to_string(cols));
    const int64_t rows = n / cols, rb = tl::quant::row_bytes(t, cols);
    Napi::Uint8Array out = Napi::Uint8Array::New(env, (size_t) (rows * rb));
    const float * src = data.Data();
    uint8_t * dst = out.Data();
    parallel_rows(rows, cols, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) tl::quant::quantize_row(t, src + r * cols, dst + r * rb, cols);
    });
    return out;
}

Napi::Value dequantize_rows(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    const tl::quant::Type t = type_arg(env, info[0], false);
    if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
        invalid(env, "Expected a Uint8Array for bytes");
    Napi::Uint8Array bytes = info[1].As<Napi::Uint8Array>();
    const int64_t cols = cols_arg(env, info[2], t);
    const int64_t rb = tl::quant::row_bytes(t, cols), n = (int64_t) bytes.ByteLength();
    if (n % rb != 0)
        invalid(env, "bytes has " + std::to_string(n) + " bytes, not a whole number of " + tl::quant::type_name(t) +
                         " rows of " + std::to_string(cols) + " (" + std::to_string(rb) + " bytes each)");
    const int64_t rows = n / rb;
    Napi::Float32Array out = Napi::Float32Array::New(env, (size_t) (rows * cols));
    const uint8_t * src = bytes.Data();
    float * dst = out.Data();
    parallel_rows(rows, cols, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) tl::quant::dequantize_row(t, src + r * rb, dst + r * cols, cols);
    });
    return out;
}

std::string type_label(uint32_t id) {
    const tl::quant::TypeTraits * tt = tl::quant::traits(id);
    return tt ? tt->name : "unknown(" + std::to_string(id) + ")";
}

// KV-cache bytes per token at f16 (llama.cpp's default cache type) as tuneloop would lay the model out on one rank,
// and what plain multi-head attention over the same query heads would take; null when tuneloop cannot read the
// file's hyperparameters (an architecture it does not run), with the reason.
Napi::Value kv_cache_summary(Napi::Env env, const tl::GgufFile & f) {
    Napi::Object kv = Napi::Object::New(env);
    try {
        const tl::ModelHParams hp = tl::read_model_hparams(f);
        kv.Set("dtype", tl::kv_dtype_name(tl::KvDtype::F16));
        kv.Set("bytesPerToken", (double) tl::kv_bytes_per_token(hp, tl::KvDtype::F16, 1));
        kv.Set("bytesPerTokenMha", (double) tl::kv_bytes_per_token_mha(hp, tl::KvDtype::F16));
        kv.Set("latent", hp.is_mla());
    } catch (const tl::EngineException & ex) {
        kv.Set("error", std::string(tl::error_code_name(ex.code())) + ": " + ex.what());
    }
    return kv;
}

Napi::Value inspect_model(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (!info[0].IsString()) invalid(env, "Expected a path string for path");
    const std::string path = info[0].As<Napi::String>().Utf8Value();
    try {
        const tl::GgufFile f(path); // mmaps the file and parses the header; tensor data is never read
        const std::string arch = f.get_string("general.architecture", "");
        const std::string p = arch + ".";
        Napi::Object o = Napi::Object::New(env);
        o.Set("architecture", arch);
        o.Set("name", f.get_string("general.name", ""));
        struct Agg {
            int64_t tensors = 0, elements = 0;
            uint64_t bytes = 0;
        };
        std::map<std::string, Agg> by_type;
        int64_t params = 0;
        uint64_t known_bytes = 0;
        int64_t known_params = 0;
        Napi::Array tensors = Napi::Array::New(env, f.tensors().size());
        uint32_t i = 0;
        for (const tl::GgufTensorInfo & t : f.tensors()) {
            const std::string type = type_label(t.type);
            Agg & a = by_type[type];
            a.tensors++;
            a.elements += t.n_elements();
            a.bytes += t.n_bytes;
            params += t.n_elements();
            if (tl::quant::traits(t.type)) known_bytes += t.n_bytes, known_params += t.n_elements();
            Napi::Object to = Napi::Object::New(env);
            to.Set("name", t.name);
            to.Set("type", type);
            Napi::Array shape = Napi::Array::New(env, t.n_dims);
            for (uint32_t d = 0; d < t.n_dims; ++d) shape.Set(d, (double) t.ne[d]);
            to.Set("shape", shape);
            to.Set("bytes", (double) t.n_bytes);
            tensors.Set(i++, to);
        }
        o.Set("parameters", (double) params);
        o.Set("contextLength", (double) f.get_int(p + "context_length", 0));
        o.Set("embeddingLength", (double) f.get_int(p + "embedding_length", 0));
        o.Set("blockCount", (double) f.get_int(p + "block_count", 0));
        const int64_t heads = f.get_int(p + "attention.head_count", 0);
        o.Set("headCount", (double) heads);
        o.Set("headCountKv", (double) f.get_int(p + "attention.head_count_kv", heads));
        const tl::GgufValue * toks = f.find("tokenizer.ggml.tokens");
        const int64_t n_tokens = toks && toks->type == tl::GgufType::ARRAY ? (int64_t) toks->items.size() : 0;
        const tl::GgufTensorInfo * embd = f.find_tensor("token_embd.weight");
        o.Set("vocabSize", (double) f.get_int(p + "vocab_size", embd ? embd->ne[1] : n_tokens));
        Napi::Object tok = Napi::Object::New(env);
        tok.Set("model", f.get_string("tokenizer.ggml.model", ""));
        tok.Set("pre", f.get_string("tokenizer.ggml.pre", ""));
        tok.Set("tokens", (double) n_tokens);
        const int64_t bos = f.get_int("tokenizer.ggml.bos_token_id", -1),
                      eos = f.get_int("tokenizer.ggml.eos_token_id", -1);
        tok.Set("bos", bos >= 0 ? Napi::Value(Napi::Number::New(env, (double) bos)) : env.Null());
        tok.Set("eos", eos >= 0 ? Napi::Value(Napi::Number::New(env, (double) eos)) : env.Null());
        o.Set("tokenizer", tok);
        std::vector<std::pair<std::string, Agg>> types(by_type.begin(), by_type.end());
        std::stable_sort(types.begin(), types.end(),
                         [](const auto & a, const auto & b) { return a.second.bytes > b.second.bytes; });
        Napi::Array tt = Napi::Array::New(env, types.size());
        for (uint32_t k = 0; k < types.size(); ++k) {
            Napi::Object e = Napi::Object::New(env);
            e.Set("type", types[k].first);
            e.Set("tensors", (double) types[k].second.tensors);
            e.Set("elements", (double) types[k].second.elements);
            e.Set("bytes", (double) types[k].second.bytes);
            tt.Set(k, e);
        }
        o.Set("tensorTypes", tt);
        o.Set("bitsPerWeight", known_params > 0 ? 8.0 * (double) known_bytes / (double) known_params : 0.0);
        o.Set("fileBytes", (double) f.file_size());
        o.Set("tensors", tensors);
        o.Set("kvCache", kv_cache_summary(env, f));
        return o;
    } catch (const tl::EngineException & ex) {
        throw Napi::Error(env, make_engine_error(env, ex.code(), ex.what()));
    }
}

} // namespace

void init_quant_wrap(Napi::Env env, Napi::Object exports) {
    exports.Set("quantizeRows", Napi::Function::New(env, quantize_rows));
    exports.Set("dequantizeRows", Napi::Function::New(env, dequantize_rows));
    exports.Set("inspectModel", Napi::Function::New(env, inspect_model));
    exports.Set("quantKernels", Napi::String::New(env, tl::quant::kernels().name));
}

} // namespace tl_binding
