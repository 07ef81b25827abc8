// Addon entry: registers exports only. All logic lives in native/src (plain C++) and engine_wrap.cpp.
#include <napi.h>

#include "addon_data.h"
#include "engine_wrap.h"
#include "kernels/cpu/kernels.h"
#include "membench.h"
#include "quant_wrap.h"
#include "tokenizer_wrap.h"

namespace tl_binding {

Napi::Value make_engine_error(Napi::Env env, tl::ErrorCode code, const std::string & message) {
    AddonData * data = env.GetInstanceData<AddonData>();
    Napi::String js_code = Napi::String::New(env, tl::error_code_name(code));
    Napi::String js_msg = Napi::String::New(env, message);
    if (data && !data->engine_error_class.IsEmpty()) return data->engine_error_class.New({js_code, js_msg});
    Napi::Error err = Napi::Error::New(env, message);
    err.Set("code", js_code);
    return err.Value();
}

static Napi::Value set_error_class(const Napi::CallbackInfo & info) {
    if (!info[0].IsFunction()) throw Napi::TypeError::New(info.Env(), "setErrorClass expects a constructor");
    info.Env().GetInstanceData<AddonData>()->engine_error_class = Napi::Persistent(info[0].As<Napi::Function>());
    return info.Env().Undefined();
}

// measureBandwidth(threads, megabytes, repeats) -> GB/s. Synchronous: for benchmarks only.
static Napi::Value measure_bandwidth(const Napi::CallbackInfo & info) {
    int threads = info[0].As<Napi::Number>().Int32Value();
    double mb = info[1].As<Napi::Number>().DoubleValue();
    int repeats = info.Length() > 2 ? info[2].As<Napi::Number>().Int32Value() : 3;
    return Napi::Number::New(info.Env(), tl::measure_read_bandwidth(threads, (size_t) (mb * 1024 * 1024), repeats));
}

static Napi::Object init(Napi::Env env, Napi::Object exports) {
    auto * data = new AddonData();
    env.SetInstanceData<AddonData>(data); // deleted by node-addon-api at environment teardown
    exports.Set("setErrorClass", Napi::Function::New(env, set_error_class));
    exports.Set("measureBandwidth", Napi::Function::New(env, measure_bandwidth));
    exports.Set("kernels", Napi::String::New(env, tl::cpu_kernels().name));
    // Every EngineError code the native side can raise (src/engine/errors.ts must list the same).
    Napi::Array codes = Napi::Array::New(env, tl::N_ERROR_CODES);
    for (int i = 0; i < tl::N_ERROR_CODES; ++i) codes.Set((uint32_t) i, tl::error_code_name((tl::ErrorCode) i));
    exports.Set("errorCodes", codes);
    init_engine_wrap(env, exports, data);
    init_quant_wrap(env, exports);
    init_tokenizer_wrap(env, exports, data);
    return exports;
}

} // namespace tl_binding

static Napi::Object init_addon(Napi::Env env, Napi::Object exports) { return tl_binding::init(env, exports); }

NODE_API_MODULE(tuneloop_native, init_addon)
