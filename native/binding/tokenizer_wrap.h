// The tokenizer's JS face: the `tokenizer` section of info() and the tokenize options, shared by NativeEngine and
// NativeTokenizer (a vocabulary loaded alone from a GGUF's metadata by loadTokenizer(path), so that vocabulary-only
// files, which have no tensors, can be tokenized).
#pragma once
#include <napi.h>

#include <memory>

#include "addon_data.h"
#include "gguf.h"
#include "tokenizer.h"

namespace tl_binding {

// { model, pre, bosId, eosId, bos, eos, eogIds, eogTokens, addBos, addSpacePrefix, chatTemplate, chatTemplates,
//   warnings }: see TokenizerInfo in src/engine/types.ts.
Napi::Object tokenizer_info(Napi::Env env, const tl::Tokenizer & tok, const tl::GgufFile & file);

// tokenize(text, addBos?, options?) for either handle: validates the arguments (EngineError INVALID_ARGUMENT),
// encodes, and returns an Int32Array.
Napi::Value tokenize_call(const Napi::CallbackInfo & info, const tl::Tokenizer & tok);
// detokenize(ids) for either handle.
Napi::Value detokenize_call(const Napi::CallbackInfo & info, const tl::Tokenizer & tok);

class NativeTokenizer : public Napi::ObjectWrap<NativeTokenizer> {
public:
    static Napi::Function define(Napi::Env env);
    explicit NativeTokenizer(const Napi::CallbackInfo & info);

    void adopt(std::unique_ptr<tl::GgufFile> file, std::unique_ptr<tl::Tokenizer> tok) {
        file_ = std::move(file);
        tok_ = std::move(tok);
    }

private:
    std::unique_ptr<tl::GgufFile> file_;
    std::unique_ptr<tl::Tokenizer> tok_;

    const tl::Tokenizer & tok(Napi::Env env) const;
    Napi::Value info(const Napi::CallbackInfo & info);
    Napi::Value tokenize(const Napi::CallbackInfo & info);
    Napi::Value detokenize(const Napi::CallbackInfo & info);
    Napi::Value token_text(const Napi::CallbackInfo & info);
};

void init_tokenizer_wrap(Napi::Env env, Napi::Object exports, AddonData * data);

} // namespace tl_binding
