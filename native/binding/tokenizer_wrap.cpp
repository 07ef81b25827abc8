// Tokenizer bindings (tokenizer_wrap.h).
#include "tokenizer_wrap.h"

#include <vector>

namespace tl_binding {

namespace {

[[noreturn]] void throw_invalid(Napi::Env env, const std::string & message) {
    throw Napi::Error(env, make_engine_error(env, tl::ErrorCode::INVALID_ARGUMENT, message));
}

[[noreturn]] void rethrow(Napi::Env env, const tl::EngineException & ex) {
    throw Napi::Error(env, make_engine_error(env, ex.code(), ex.what()));
}

Napi::Value id_or_null(Napi::Env env, int32_t id) { return id < 0 ? env.Null() : Napi::Number::New(env, id); }

Napi::Value text_or_null(Napi::Env env, const tl::Tokenizer & tok, int32_t id) {
    return id < 0 ? env.Null() : Napi::String::New(env, tok.token_text(id));
}

} // namespace

Napi::Object tokenizer_info(Napi::Env env, const tl::Tokenizer & tok, const tl::GgufFile & file) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("model", tok.model_name());
    o.Set("pre", tok.pre_name());
    o.Set("nVocab", tok.n_vocab());
    o.Set("bosId", id_or_null(env, tok.bos()));
    o.Set("eosId", id_or_null(env, tok.eos()));
    o.Set("bos", text_or_null(env, tok, tok.bos()));
    o.Set("eos", text_or_null(env, tok, tok.eos()));
    const std::vector<int32_t> & eog = tok.eog_ids();
    Napi::Array ids = Napi::Array::New(env, eog.size());
    Napi::Array texts = Napi::Array::New(env, eog.size());
    for (size_t i = 0; i < eog.size(); i++) {
        ids.Set((uint32_t) i, eog[i]);
        texts.Set((uint32_t) i, tok.token_text(eog[i]));
    }
    o.Set("eogIds", ids);
    o.Set("eogTokens", texts);
    o.Set("addBos", tok.add_bos_default());
    o.Set("addSpacePrefix", tok.add_space_prefix());
    // The default template, and the named ones (tokenizer.chat_template.NAME, e.g. tool_use, rag).
    const tl::GgufValue * tmpl = file.find("tokenizer.chat_template");
    o.Set("chatTemplate",
          tmpl && tmpl->type == tl::GgufType::STRING ? Napi::Value(Napi::String::New(env, tmpl->str)) : env.Null());
    Napi::Object named = Napi::Object::New(env);
    const std::string prefix = "tokenizer.chat_template.";
    for (auto it = file.metadata().lower_bound(prefix); it != file.metadata().end(); ++it) {
        if (it->first.compare(0, prefix.size(), prefix) != 0) break;
        if (it->second.type == tl::GgufType::STRING) named.Set(it->first.substr(prefix.size()), it->second.str);
    }
    o.Set("chatTemplates", named);
    Napi::Array warnings = Napi::Array::New(env, tok.warnings().size());
    for (size_t i = 0; i < tok.warnings().size(); i++) warnings.Set((uint32_t) i, tok.warnings()[i]);
    o.Set("warnings", warnings);
    return o;
}

Napi::Value tokenize_call(const Napi::CallbackInfo & info, const tl::Tokenizer & tok) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsString()) throw_invalid(env, "tokenize expects a string text");
    const std::string text = info[0].As<Napi::String>().Utf8Value();
    bool add_bos = tok.add_bos_default();
    if (info.Length() > 1 && !info[1].IsUndefined() && !info[1].IsNull()) {
        if (!info[1].IsBoolean()) throw_invalid(env, "addBos must be a boolean");
        add_bos = info[1].As<Napi::Boolean>().Value();
    }
    bool parse_special = false;
    std::vector<int64_t> plain;
    if (info.Length() > 2 && !info[2].IsUndefined() && !info[2].IsNull()) {
        if (!info[2].IsObject()) throw_invalid(env, "tokenize options must be an object");
        Napi::Object o = info[2].As<Napi::Object>();
        Napi::Array keys = o.GetPropertyNames();
        for (uint32_t i = 0; i < keys.Length(); i++) {
            const std::string k = keys.Get(i).As<Napi::String>().Utf8Value();
            if (k != "parseSpecial" && k != "plainRanges") {
                throw_invalid(env, "unknown tokenize option '" + k + "' (known: parseSpecial, plainRanges)");
            }
        }
        Napi::Value ps = o.Get("parseSpecial");
        if (!ps.IsUndefined()) {
            if (!ps.IsBoolean()) throw_invalid(env, "parseSpecial must be a boolean");
            parse_special = ps.As<Napi::Boolean>().Value();
        }
        Napi::Value pr = o.Get("plainRanges");
        if (!pr.IsUndefined()) {
            if (pr.IsTypedArray() && pr.As<Napi::TypedArray>().TypedArrayType() == napi_int32_array) {
                Napi::Int32Array a = pr.As<Napi::Int32Array>();
                plain.assign(a.Data(), a.Data() + a.ElementLength());
            } else if (pr.IsArray()) {
                Napi::Array a = pr.As<Napi::Array>();
                for (uint32_t i = 0; i < a.Length(); i++) {
                    Napi::Value v = a.Get(i);
                    if (!v.IsNumber()) throw_invalid(env, "plainRanges must hold integers");
                    const double d = v.As<Napi::Number>().DoubleValue();
                    if (d != (double) (int64_t) d) throw_invalid(env, "plainRanges must hold integers");
                    plain.push_back((int64_t) d);
                }
            } else {
                throw_invalid(env, "plainRanges must be an Int32Array (or an array) of [start, end) byte offsets");
            }
        }
    }
    std::vector<int32_t> ids;
    try {
        ids = tok.encode(text, add_bos, parse_special, plain);
    } catch (const tl::EngineException & ex) {
        rethrow(env, ex);
    }
    Napi::Int32Array out = Napi::Int32Array::New(env, ids.size());
    std::copy(ids.begin(), ids.end(), out.Data());
    return out;
}

Napi::Value detokenize_call(const Napi::CallbackInfo & info, const tl::Tokenizer & tok) {
    Napi::Env env = info.Env();
    std::vector<int32_t> ids;
    if (info.Length() > 0 && info[0].IsTypedArray() &&
        info[0].As<Napi::TypedArray>().TypedArrayType() == napi_int32_array) {
        Napi::Int32Array a = info[0].As<Napi::Int32Array>();
        ids.assign(a.Data(), a.Data() + a.ElementLength());
    } else if (info.Length() > 0 && info[0].IsArray()) {
        Napi::Array a = info[0].As<Napi::Array>();
        for (uint32_t i = 0; i < a.Length(); i++) {
            Napi::Value v = a.Get(i);
            if (!v.IsNumber()) throw_invalid(env, "detokenize expects token ids (integers)");
            ids.push_back(v.As<Napi::Number>().Int32Value());
        }
    } else {
        throw_invalid(env, "detokenize expects an Int32Array or an array of token ids");
    }
    for (int32_t t : ids) {
        if (t < 0 || t >= tok.n_vocab())
            throw_invalid(env, "token id " + std::to_string(t) + " is outside the vocabulary");
    }
    return Napi::String::New(env, tok.decode(ids));
}

Napi::Function NativeTokenizer::define(Napi::Env env) {
    return DefineClass(env, "NativeTokenizer",
                       {
                           InstanceMethod<&NativeTokenizer::info>("info"),
                           InstanceMethod<&NativeTokenizer::tokenize>("tokenize"),
                           InstanceMethod<&NativeTokenizer::detokenize>("detokenize"),
                           InstanceMethod<&NativeTokenizer::token_text>("tokenText"),
                       });
}

NativeTokenizer::NativeTokenizer(const Napi::CallbackInfo & info) : Napi::ObjectWrap<NativeTokenizer>(info) {}

const tl::Tokenizer & NativeTokenizer::tok(Napi::Env env) const {
    if (!tok_) throw_invalid(env, "this tokenizer was not created by loadTokenizer()");
    return *tok_;
}

Napi::Value NativeTokenizer::info(const Napi::CallbackInfo & info) {
    const tl::Tokenizer & t = tok(info.Env());
    Napi::Object o = tokenizer_info(info.Env(), t, *file_);
    o.Set("path", file_->path());
    o.Set("architecture", file_->get_string("general.architecture", ""));
    o.Set("name", file_->get_string("general.name", ""));
    return o;
}

Napi::Value NativeTokenizer::tokenize(const Napi::CallbackInfo & info) { return tokenize_call(info, tok(info.Env())); }

Napi::Value NativeTokenizer::detokenize(const Napi::CallbackInfo & info) {
    return detokenize_call(info, tok(info.Env()));
}

Napi::Value NativeTokenizer::token_text(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    const tl::Tokenizer & t = tok(env);
    if (info.Length() < 1 || !info[0].IsNumber()) throw_invalid(env, "tokenText expects a token id");
    const double d = info[0].As<Napi::Number>().DoubleValue();
    if (d != (double) (int64_t) d || d < 0 || d >= t.n_vocab()) {
        throw_invalid(env, "token id " + info[0].ToString().Utf8Value() + " is outside the vocabulary (" +
                               std::to_string(t.n_vocab()) + " tokens)");
    }
    return Napi::String::New(env, t.token_text((int32_t) d));
}

namespace {

// loadTokenizer(path) -> NativeTokenizer. Synchronous: it reads only the metadata (tens of milliseconds even for a
// 200k-token vocabulary). MODEL_NOT_FOUND, MODEL_CORRUPT, UNSUPPORTED_ARCHITECTURE.
Napi::Value load_tokenizer(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsString()) throw_invalid(env, "loadTokenizer expects a path string");
    const std::string path = info[0].As<Napi::String>().Utf8Value();
    std::unique_ptr<tl::GgufFile> file;
    std::unique_ptr<tl::Tokenizer> tok;
    try {
        file = std::make_unique<tl::GgufFile>(path);
        tok = std::make_unique<tl::Tokenizer>(tl::Tokenizer::from_gguf(*file));
    } catch (const tl::EngineException & ex) {
        rethrow(env, ex);
    }
    AddonData * data = env.GetInstanceData<AddonData>();
    Napi::Object obj = data->native_tokenizer_ctor.New({});
    NativeTokenizer::Unwrap(obj)->adopt(std::move(file), std::move(tok));
    return obj;
}

} // namespace

void init_tokenizer_wrap(Napi::Env env, Napi::Object exports, AddonData * data) {
    Napi::Function ctor = NativeTokenizer::define(env);
    data->native_tokenizer_ctor = Napi::Persistent(ctor);
    exports.Set("loadTokenizer", Napi::Function::New(env, load_tokenizer));
}

} // namespace tl_binding
