// Per-environment addon state (safe with worker threads): the JS EngineError class and the NativeEngine and
// NativeTokenizer constructors.
#pragma once
#include <napi.h>

#include "errors.h"

namespace tl_binding {

struct AddonData {
    Napi::FunctionReference engine_error_class; // set by setErrorClass() from src/engine/native.ts
    Napi::FunctionReference native_engine_ctor;
    Napi::FunctionReference native_tokenizer_ctor;
};

// A JS EngineError(code, message) if the class was handed over, else an Error with a `code` property.
Napi::Value make_engine_error(Napi::Env env, tl::ErrorCode code, const std::string & message);

} // namespace tl_binding
