// NativeEngine: the JS-visible wrapper of tl::Engine. One C++ class per JS class (better-sqlite3 style).
#pragma once
#include <napi.h>

#include <memory>

#include "addon_data.h"
#include "engine.h"

namespace tl_binding {

class NativeEngine : public Napi::ObjectWrap<NativeEngine> {
public:
    static Napi::Function define(Napi::Env env);
    explicit NativeEngine(const Napi::CallbackInfo & info);
    ~NativeEngine() override;

    void adopt(std::unique_ptr<tl::Engine> engine) { engine_ = std::move(engine); }

private:
    std::unique_ptr<tl::Engine> engine_;

    tl::Engine & engine(Napi::Env env);
    Napi::Value info(const Napi::CallbackInfo & info);
    Napi::Value tokenize(const Napi::CallbackInfo & info);
    Napi::Value detokenize(const Napi::CallbackInfo & info);
    Napi::Value generate(const Napi::CallbackInfo & info);
    Napi::Value cancel(const Napi::CallbackInfo & info);
    Napi::Value resume(const Napi::CallbackInfo & info);
    Napi::Value evaluate(const Napi::CallbackInfo & info);
    Napi::Value close(const Napi::CallbackInfo & info);
    Napi::Value reconfigure(const Napi::CallbackInfo & info);
    Napi::Value reload(const Napi::CallbackInfo & info);
    Napi::Value stats(const Napi::CallbackInfo & info);
};

void init_engine_wrap(Napi::Env env, Napi::Object exports, AddonData * data);

} // namespace tl_binding
