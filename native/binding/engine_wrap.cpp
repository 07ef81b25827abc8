// NativeEngine methods (engine_wrap.h): JS values to engine requests and back (events, stats, settings), promises
// settled from libuv workers, and per-request event batching through one thread-safe function.
#include "engine_wrap.h"

#include <functional>
#include <mutex>
#include <vector>

#include "quant/kernels.h"
#include "tokenizer_wrap.h"

namespace tl_binding {

namespace {

std::string get_string(const Napi::Object & o, const char * key, const std::string & def = "") {
    Napi::Value v = o.Get(key);
    return v.IsString() ? v.As<Napi::String>().Utf8Value() : def;
}
double get_number(const Napi::Object & o, const char * key, double def) {
    Napi::Value v = o.Get(key);
    return v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : def;
}
bool get_bool(const Napi::Object & o, const char * key, bool def) {
    Napi::Value v = o.Get(key);
    return v.IsBoolean() ? v.As<Napi::Boolean>().Value() : def;
}

std::vector<int32_t> to_tokens(const Napi::Value & v) {
    std::vector<int32_t> out;
    if (v.IsTypedArray()) {
        Napi::Int32Array a = v.As<Napi::Int32Array>();
        out.assign(a.Data(), a.Data() + a.ElementLength());
    } else if (v.IsArray()) {
        Napi::Array a = v.As<Napi::Array>();
        out.reserve(a.Length());
        for (uint32_t i = 0; i < a.Length(); ++i) out.push_back(a.Get(i).As<Napi::Number>().Int32Value());
    }
    return out;
}

// Settings objects are validated in TypeScript (src/engine/validate.ts); here absent fields keep their defaults.
tl::SchedulerConfig parse_scheduler(const Napi::Object & o, tl::SchedulerConfig c) {
    c.max_batch_size = (int32_t) get_number(o, "maxBatchSize", c.max_batch_size);
    c.max_batch_tokens = (int32_t) get_number(o, "maxBatchTokens", c.max_batch_tokens);
    c.max_queue_delay_ms = get_number(o, "maxQueueDelayMs", c.max_queue_delay_ms);
    c.queue_grow_threshold = (int32_t) get_number(o, "queueGrowThreshold", c.queue_grow_threshold);
    c.max_queue_length = (int32_t) get_number(o, "maxQueueLength", c.max_queue_length);
    return c;
}

tl::ModelLayout parse_layout(Napi::Env env, const Napi::Object & o, tl::ModelLayout l);

[[noreturn]] void throw_engine_error(Napi::Env env, const tl::EngineException & ex) {
    throw Napi::Error(env, make_engine_error(env, ex.code(), ex.what()));
}

// Runs `work` on a libuv worker thread and settles a promise: EngineExceptions become EngineErrors with their code.
class PromiseWorker : public Napi::AsyncWorker {
public:
    using Work = std::function<void()>;
    using Resolve = std::function<Napi::Value(Napi::Env)>;
    PromiseWorker(Napi::Env env, const char * name, Work work, Resolve resolve)
        : Napi::AsyncWorker(env, name), work_(std::move(work)), resolve_(std::move(resolve)),
          deferred_(Napi::Promise::Deferred::New(env)) {}
    Napi::Promise promise() { return deferred_.Promise(); }

    void Execute() override {
        try {
            work_();
        } catch (const tl::EngineException & ex) {
            code_ = ex.code();
            SetError(ex.what());
        } catch (const std::bad_alloc &) {
            code_ = tl::ErrorCode::OUT_OF_MEMORY;
            SetError("out of memory");
        } catch (const std::exception & ex) {
            SetError(std::string("internal error: ") + ex.what());
        }
    }
    void OnOK() override { deferred_.Resolve(resolve_(Env())); }
    void OnError(const Napi::Error & e) override { deferred_.Reject(make_engine_error(Env(), code_, e.Message())); }

private:
    Work work_;
    Resolve resolve_;
    Napi::Promise::Deferred deferred_;
    tl::ErrorCode code_ = tl::ErrorCode::INTERNAL;
};

Napi::Promise queue_worker(Napi::Env env, const char * name, PromiseWorker::Work work, PromiseWorker::Resolve resolve) {
    auto * w = new PromiseWorker(env, name, std::move(work), std::move(resolve));
    Napi::Promise p = w->promise();
    w->Queue();
    return p;
}

// Closing joins the engine thread, which may be mid-step: done off the event loop.
class CloseWorker : public Napi::AsyncWorker {
public:
    CloseWorker(Napi::Env env, std::unique_ptr<tl::Engine> engine)
        : Napi::AsyncWorker(env, "tuneloop:close"), engine_(std::move(engine)),
          deferred_(Napi::Promise::Deferred::New(env)) {}
    Napi::Promise promise() { return deferred_.Promise(); }
    void Execute() override {
        if (engine_) engine_->close();
        engine_.reset();
    }
    void OnOK() override { deferred_.Resolve(Env().Undefined()); }

private:
    std::unique_ptr<tl::Engine> engine_;
    Napi::Promise::Deferred deferred_;
};

tl::ModelLayout parse_layout(Napi::Env env, const Napi::Object & o, tl::ModelLayout l) {
    std::string policy = get_string(o, "weights", tl::weights_policy_name(l.policy));
    if (!tl::parse_weights_policy(policy, &l.policy))
        throw Napi::Error(
            env, make_engine_error(env, tl::ErrorCode::INVALID_ARGUMENT, "unknown weights policy '" + policy + "'"));
    std::string kv = get_string(o, "kvDtype", tl::kv_dtype_name(l.kv_dtype));
    if (!tl::parse_kv_dtype(kv, &l.kv_dtype))
        throw Napi::Error(env, make_engine_error(env, tl::ErrorCode::INVALID_ARGUMENT, "unknown kvDtype '" + kv + "'"));
    l.tp = (int32_t) get_number(o, "tpDegree", l.tp);
    l.threads_per_rank = (int32_t) get_number(o, "threadsPerRank", l.threads_per_rank);
    l.kv_block_size = (int32_t) get_number(o, "kvBlockSizeTokens", l.kv_block_size);
    l.kv_blocks = (int32_t) get_number(o, "kvCacheBlocks", 0);
    l.allreduce_delay_us = (int32_t) get_number(o, "allreduceDelayUs", l.allreduce_delay_us);
    l.ep_degree = (int32_t) get_number(o, "epDegree", l.ep_degree);
    l.alltoall_delay_us = (int32_t) get_number(o, "alltoallDelayUs", l.alltoall_delay_us);
    if (o.Has("redundantExperts") && !o.Get("redundantExperts").IsUndefined()) {
        Napi::Value v = o.Get("redundantExperts");
        if (!v.IsArray())
            throw Napi::Error(env, make_engine_error(env, tl::ErrorCode::INVALID_ARGUMENT,
                                                     "redundantExperts must be an array of {layer, expert}"));
        Napi::Array a = v.As<Napi::Array>();
        l.redundant_experts.clear();
        for (uint32_t i = 0; i < a.Length(); ++i) {
            Napi::Value e = a.Get(i);
            if (!e.IsObject())
                throw Napi::Error(env, make_engine_error(env, tl::ErrorCode::INVALID_ARGUMENT,
                                                         "redundantExperts[" + std::to_string(i) +
                                                             "] must be an object {layer, expert}"));
            Napi::Object eo = e.As<Napi::Object>();
            l.redundant_experts.push_back(
                {(int32_t) get_number(eo, "layer", -1), (int32_t) get_number(eo, "expert", -1)});
        }
    }
    return l;
}

Napi::Object histogram_to_js(Napi::Env env, const tl::HistogramSnapshot & h) {
    Napi::Object o = Napi::Object::New(env);
    Napi::Array b = Napi::Array::New(env, h.bounds.size()), c = Napi::Array::New(env, h.counts.size());
    for (size_t i = 0; i < h.bounds.size(); ++i) b.Set((uint32_t) i, h.bounds[i]);
    for (size_t i = 0; i < h.counts.size(); ++i) c.Set((uint32_t) i, (double) h.counts[i]);
    o.Set("bounds", b);
    o.Set("counts", c);
    o.Set("sum", h.sum);
    o.Set("count", (double) h.count);
    return o;
}

Napi::Object layout_to_js(Napi::Env env, const tl::ModelLayout & l, int n_ctx) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("weights", tl::weights_policy_name(l.policy));
    o.Set("kvDtype", tl::kv_dtype_name(l.kv_dtype));
    o.Set("tpDegree", l.tp);
    o.Set("threadsPerRank", l.threads_per_rank);
    o.Set("kvBlockSizeTokens", l.kv_block_size);
    o.Set("kvCacheBlocks", l.kv_blocks);
    o.Set("allreduceDelayUs", l.allreduce_delay_us);
    o.Set("epDegree", l.ep_degree);
    Napi::Array red = Napi::Array::New(env, l.redundant_experts.size());
    for (size_t i = 0; i < l.redundant_experts.size(); ++i) {
        Napi::Object r = Napi::Object::New(env);
        r.Set("layer", l.redundant_experts[i].first);
        r.Set("expert", l.redundant_experts[i].second);
        red.Set((uint32_t) i, r);
    }
    o.Set("redundantExperts", red);
    o.Set("alltoallDelayUs", l.alltoall_delay_us);
    o.Set("contextLength", n_ctx);
    return o;
}

Napi::Object scheduler_to_js(Napi::Env env, const tl::SchedulerConfig & c) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("maxBatchSize", c.max_batch_size);
    o.Set("maxBatchTokens", c.max_batch_tokens);
    o.Set("maxQueueDelayMs", c.max_queue_delay_ms);
    o.Set("queueGrowThreshold", c.queue_grow_threshold);
    o.Set("maxQueueLength", c.max_queue_length);
    return o;
}

// Token texts become JS strings here exactly as detokenize([id]) makes them (Napi::String::New of the same bytes:
// an incomplete UTF-8 sequence of a byte token turns into U+FFFD the same way).
Napi::Object logprob_to_js(Napi::Env env, const tl::EventLogprob & lp) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("token", lp.token);
    o.Set("logprob", lp.logprob);
    o.Set("text", lp.text);
    Napi::Array top = Napi::Array::New(env, lp.top.size());
    for (size_t i = 0; i < lp.top.size(); ++i) {
        Napi::Object t = Napi::Object::New(env);
        t.Set("token", lp.top[i].token);
        t.Set("logprob", lp.top[i].logprob);
        t.Set("text", lp.top[i].text);
        top.Set((uint32_t) i, t);
    }
    o.Set("top", top);
    return o;
}

Napi::Object event_to_js(Napi::Env env, const tl::GenerateEvent & ev) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("text", ev.text);
    Napi::Array toks = Napi::Array::New(env, ev.tokens.size());
    for (size_t i = 0; i < ev.tokens.size(); ++i) toks.Set((uint32_t) i, ev.tokens[i]);
    o.Set("tokens", toks);
    if (!ev.logprobs.empty()) {
        Napi::Array lps = Napi::Array::New(env, ev.logprobs.size());
        for (size_t i = 0; i < ev.logprobs.size(); ++i) lps.Set((uint32_t) i, logprob_to_js(env, ev.logprobs[i]));
        o.Set("logprobs", lps);
    }
    if (ev.final) {
        o.Set("final", true);
        if (ev.failed) {
            o.Set("error", make_engine_error(env, ev.error_code, ev.error));
        } else {
            o.Set("finishReason", tl::finish_reason_name(ev.finish));
            o.Set("promptTokens", ev.prompt_tokens);
            o.Set("cachedPromptTokens", ev.cached_prompt_tokens);
            o.Set("completionTokens", ev.completion_tokens);
            Napi::Object t = Napi::Object::New(env);
            t.Set("queueMs", ev.timings.queue_ms);
            t.Set("prefillMs", ev.timings.prefill_ms);
            t.Set("decodeMs", ev.timings.decode_ms);
            t.Set("timeToFirstTokenMs", ev.timings.ttft_ms);
            o.Set("timings", t);
        }
    }
    return o;
}

// Events of one request, batched: the engine thread appends and schedules at most one pending call into JS; that
// call drains everything appended so far. A slow event loop therefore gets fewer, larger deliveries.
struct EventChannel {
    Napi::ThreadSafeFunction tsfn;
    std::mutex mu;
    std::vector<tl::GenerateEvent> events;
    bool scheduled = false;
};

} // namespace

Napi::Function NativeEngine::define(Napi::Env env) {
    return DefineClass(env, "NativeEngine",
                       {
                           InstanceMethod<&NativeEngine::info>("info"),
                           InstanceMethod<&NativeEngine::tokenize>("tokenize"),
                           InstanceMethod<&NativeEngine::detokenize>("detokenize"),
                           InstanceMethod<&NativeEngine::generate>("generate"),
                           InstanceMethod<&NativeEngine::cancel>("cancel"),
                           InstanceMethod<&NativeEngine::resume>("resume"),
                           InstanceMethod<&NativeEngine::evaluate>("evaluate"),
                           InstanceMethod<&NativeEngine::close>("close"),
                           InstanceMethod<&NativeEngine::reconfigure>("reconfigure"),
                           InstanceMethod<&NativeEngine::reload>("reload"),
                           InstanceMethod<&NativeEngine::stats>("stats"),
                       });
}

NativeEngine::NativeEngine(const Napi::CallbackInfo & info) : Napi::ObjectWrap<NativeEngine>(info) {}

NativeEngine::~NativeEngine() {
    if (engine_) engine_->close();
}

tl::Engine & NativeEngine::engine(Napi::Env env) {
    if (!engine_) throw Napi::Error(env, make_engine_error(env, tl::ErrorCode::ENGINE_CLOSED, "the engine is closed"));
    return *engine_;
}

Napi::Value NativeEngine::info(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    tl::Engine & e = engine(env);
    const tl::ModelHParams & hp = e.hparams();
    const tl::ModelLayout layout = e.layout();
    Napi::Object o = Napi::Object::New(env);
    o.Set("path", e.model_path());
    o.Set("architecture", e.file().get_string("general.architecture", ""));
    o.Set("name", e.file().get_string("general.name", ""));
    o.Set("nVocab", hp.n_vocab);
    o.Set("dim", hp.dim);
    o.Set("nLayers", hp.n_layers);
    o.Set("nHeads", hp.n_heads);
    o.Set("nKvHeads", hp.n_kv_heads);
    o.Set("ffnDim", hp.ffn_dim);
    o.Set("contextLength", e.n_ctx());
    o.Set("trainedContextLength", hp.n_ctx_train);
    o.Set("ropeTheta", hp.rope_theta);
    o.Set("tokenizer", tokenizer_info(env, e.tokenizer(), e.file()));
    o.Set("bos", e.tokenizer().bos());
    o.Set("eos", e.tokenizer().eos());
    o.Set("addBos", e.tokenizer().add_bos_default());
    o.Set("weights", tl::weights_policy_name(layout.policy));
    Napi::Object bytes = Napi::Object::New(env);
    for (auto & [name, b] : e.weight_bytes()) bytes.Set(name, (double) b);
    o.Set("weightBytes", bytes);
    const std::vector<tl::WeightFallback> fb = e.weight_fallbacks();
    Napi::Array fallbacks = Napi::Array::New(env, fb.size());
    for (size_t i = 0; i < fb.size(); ++i) {
        Napi::Object f = Napi::Object::New(env);
        f.Set("tensor", fb[i].tensor);
        f.Set("requested", fb[i].requested);
        f.Set("used", fb[i].used);
        fallbacks.Set((uint32_t) i, f);
    }
    o.Set("weightFallbacks", fallbacks);
    o.Set("threads", layout.n_ranks() * layout.threads_per_rank);
    o.Set("kernels", tl::cpu_kernels().name);
    o.Set("quantKernels", tl::quant::kernels().name);
    o.Set("loadMs", e.load_ms());
    o.Set("layout", layout_to_js(env, layout, e.n_ctx()));
    // KV-cache bytes per token as laid out (kv dtype, every rank) and what plain multi-head attention over the same
    // query heads would take in that dtype (MLA's and GQA's saving).
    o.Set("kvBytesPerToken", (double) tl::kv_bytes_per_token(hp, layout.kv_dtype, layout.tp));
    o.Set("kvBytesPerTokenMha", (double) tl::kv_bytes_per_token_mha(hp, layout.kv_dtype));
    if (hp.is_mla()) {
        Napi::Object mla = Napi::Object::New(env);
        mla.Set("qLoraRank", hp.mla.q_lora);
        mla.Set("kvLoraRank", hp.mla.kv_lora);
        mla.Set("qkNopeDim", hp.mla.nope);
        mla.Set("qkRopeDim", hp.mla.rope);
        mla.Set("vHeadDim", hp.mla.v_head);
        mla.Set("kqScale", hp.mla.kq_scale);
        o.Set("mla", mla);
    }
    if (hp.moe.enabled()) {
        // Static Mixture-of-Experts facts (docs/metrics.md).
        const tl::MoeActiveCounts a = e.active_counts();
        Napi::Object m = Napi::Object::New(env);
        m.Set("expertCount", hp.moe.n_expert);
        m.Set("expertUsed", hp.moe.n_expert_used);
        m.Set("sharedExperts", hp.moe.n_expert_shared);
        m.Set("leadingDenseLayers", hp.moe.n_leading_dense);
        m.Set("gating", hp.moe.gating == tl::MoeGating::SIGMOID ? "sigmoid" : "softmax");
        m.Set("activeParams", a.active_params);
        m.Set("totalParams", a.total_params);
        m.Set("activeWeightBytesPerToken", a.active_bytes_per_token);
        o.Set("moe", m);
    }
    return o;
}

Napi::Value NativeEngine::tokenize(const Napi::CallbackInfo & info) {
    return tokenize_call(info, engine(info.Env()).tokenizer());
}

Napi::Value NativeEngine::detokenize(const Napi::CallbackInfo & info) {
    return detokenize_call(info, engine(info.Env()).tokenizer());
}

// generate(params, onEvents) -> { id, promptTokens }. onEvents(events[]) is called on the event loop.
Napi::Value NativeEngine::generate(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    tl::Engine & e = engine(env);
    Napi::Object o = info[0].As<Napi::Object>();
    Napi::Function cb = info[1].As<Napi::Function>();
    tl::GenerateParams p;
    Napi::Value prompt = o.Get("prompt");
    if (prompt.IsString()) {
        try {
            p.prompt = e.tokenizer().encode(prompt.As<Napi::String>().Utf8Value(),
                                            get_bool(o, "addBos", e.tokenizer().add_bos_default()));
        } catch (const tl::EngineException & ex) {
            throw_engine_error(env, ex);
        }
    } else p.prompt = to_tokens(o.Get("tokens"));
    p.max_tokens = (int) get_number(o, "maxTokens", 16);
    p.sampling.temperature = (float) get_number(o, "temperature", 1.0);
    p.sampling.top_k = (int) get_number(o, "topK", 0);
    p.sampling.top_p = (float) get_number(o, "topP", 1.0);
    p.sampling.seed = (uint64_t) get_number(o, "seed", 0);
    p.sampling.n_logprobs = (int) get_number(o, "logprobs", -1);
    p.stop_at_eos = get_bool(o, "stopAtEos", true);
    p.deadline_ms = get_number(o, "deadlineMs", 0);
    p.pause_after_tokens = (int) get_number(o, "pauseAfterTokens", 0);
    Napi::Value grammar = o.Get("grammar");
    if (grammar.IsString()) p.grammar = grammar.As<Napi::String>().Utf8Value();
    Napi::Value triggers = o.Get("grammarTriggers");
    if (triggers.IsArray()) {
        Napi::Array a = triggers.As<Napi::Array>();
        for (uint32_t i = 0; i < a.Length(); ++i) p.grammar_triggers.push_back(a.Get(i).As<Napi::String>().Utf8Value());
    }
    Napi::Value stop = o.Get("stop");
    if (stop.IsArray()) {
        Napi::Array a = stop.As<Napi::Array>();
        for (uint32_t i = 0; i < a.Length(); ++i) p.stop.push_back(a.Get(i).As<Napi::String>().Utf8Value());
    }
    const int n_prompt = (int) p.prompt.size();

    auto ch = std::make_shared<EventChannel>();
    ch->tsfn = Napi::ThreadSafeFunction::New(env, cb, "tuneloop:generate", 0, 1);
    auto sink = [ch](tl::GenerateEvent && ev) {
        bool final = ev.final, schedule;
        {
            std::lock_guard<std::mutex> lock(ch->mu);
            ch->events.push_back(std::move(ev));
            schedule = !ch->scheduled;
            ch->scheduled = true;
        }
        if (schedule) {
            ch->tsfn.NonBlockingCall([ch](Napi::Env env, Napi::Function fn) {
                std::vector<tl::GenerateEvent> batch;
                {
                    std::lock_guard<std::mutex> lock(ch->mu);
                    batch.swap(ch->events);
                    ch->scheduled = false;
                }
                if (batch.empty()) return;
                Napi::Array arr = Napi::Array::New(env, batch.size());
                for (size_t i = 0; i < batch.size(); ++i) arr.Set((uint32_t) i, event_to_js(env, batch[i]));
                fn.Call({arr});
            });
        }
        if (final) ch->tsfn.Release();
    };
    uint64_t id;
    try {
        id = e.submit(std::move(p), sink);
    } catch (const tl::EngineException & ex) {
        ch->tsfn.Release();
        throw_engine_error(env, ex);
    }
    Napi::Object r = Napi::Object::New(env);
    r.Set("id", (double) id);
    r.Set("promptTokens", n_prompt);
    return r;
}

Napi::Value NativeEngine::cancel(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    return Napi::Boolean::New(env, engine(env).cancel((uint64_t) info[0].As<Napi::Number>().Int64Value()));
}

Napi::Value NativeEngine::resume(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    return Napi::Boolean::New(env, engine(env).resume((uint64_t) info[0].As<Napi::Number>().Int64Value()));
}

// evaluate(tokens, allLogits) -> Promise<Float32Array>
Napi::Value NativeEngine::evaluate(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    tl::Engine & e = engine(env);
    std::vector<int32_t> tokens = to_tokens(info[0]);
    bool all = info.Length() > 1 && info[1].ToBoolean().Value();
    auto deferred = std::make_shared<Napi::Promise::Deferred>(Napi::Promise::Deferred::New(env));
    auto tsfn = std::make_shared<Napi::ThreadSafeFunction>(Napi::ThreadSafeFunction::New(
        env, Napi::Function::New(env, [](const Napi::CallbackInfo &) {}), "tuneloop:evaluate", 0, 1));
    auto done = [deferred, tsfn](std::vector<float> && logits, const tl::EngineException * err) {
        auto result = std::make_shared<std::vector<float>>(std::move(logits));
        bool failed = err != nullptr;
        tl::ErrorCode code = failed ? err->code() : tl::ErrorCode::INTERNAL;
        std::string msg = failed ? err->what() : "";
        tsfn->NonBlockingCall([deferred, result, failed, code, msg](Napi::Env env, Napi::Function) {
            if (failed) {
                deferred->Reject(make_engine_error(env, code, msg));
                return;
            }
            Napi::Float32Array out = Napi::Float32Array::New(env, result->size());
            std::copy(result->begin(), result->end(), out.Data());
            deferred->Resolve(out);
        });
        tsfn->Release();
    };
    try {
        e.submit_evaluate(std::move(tokens), all, done);
    } catch (const tl::EngineException & ex) {
        tsfn->Release();
        throw_engine_error(env, ex);
    }
    return deferred->Promise();
}

Napi::Value NativeEngine::close(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    auto * w = new CloseWorker(env, std::move(engine_));
    Napi::Promise p = w->promise();
    w->Queue();
    return p;
}

static Napi::Value load_engine(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    Napi::Object o = info[0].As<Napi::Object>();
    tl::EngineConfig cfg;
    cfg.model_path = get_string(o, "model");
    cfg.layout = parse_layout(env, o, cfg.layout);
    cfg.n_ctx = (int) get_number(o, "contextLength", 0);
    cfg.kv_cache_max_bytes = (int64_t) get_number(o, "kvCacheMaxBytes", (double) cfg.kv_cache_max_bytes);
    Napi::Value sched = o.Get("scheduler");
    if (sched.IsObject()) cfg.scheduler = parse_scheduler(sched.As<Napi::Object>(), cfg.scheduler);
    auto engine = std::make_shared<std::unique_ptr<tl::Engine>>();
    return queue_worker(
        env, "tuneloop:load", [cfg, engine] { *engine = tl::Engine::load(cfg); },
        [engine](Napi::Env env) -> Napi::Value {
            Napi::Object obj = env.GetInstanceData<AddonData>()->native_engine_ctor.New({});
            NativeEngine::Unwrap(obj)->adopt(std::move(*engine));
            return obj;
        });
}

Napi::Value NativeEngine::reconfigure(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    tl::Engine & e = engine(env);
    e.reconfigure(parse_scheduler(info[0].As<Napi::Object>(), e.scheduler_config()));
    return scheduler_to_js(env, e.scheduler_config());
}

Napi::Value NativeEngine::reload(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    tl::Engine & e = engine(env);
    Napi::Object o = info[0].As<Napi::Object>();
    tl::ModelLayout layout = parse_layout(env, o, e.layout());
    if (!o.Get("kvCacheBlocks").IsNumber()) layout.kv_blocks = 0; // re-size the pool for the new layout
    int n_ctx = (int) get_number(o, "contextLength", e.n_ctx());
    // The new instance loads on a libuv worker: the event loop and the engine's step loop keep going.
    return queue_worker(
        env, "tuneloop:reload", [&e, layout, n_ctx] { e.reload(layout, n_ctx); },
        [](Napi::Env env) -> Napi::Value { return env.Undefined(); });
}

Napi::Value NativeEngine::stats(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    tl::EngineStatsSnapshot s = engine(env).stats();
    Napi::Object o = Napi::Object::New(env);
    Napi::Object req = Napi::Object::New(env);
    req.Set("submitted", (double) s.requests_submitted);
    req.Set("finished", (double) s.requests_finished);
    req.Set("cancelled", (double) s.requests_cancelled);
    req.Set("timedOut", (double) s.requests_timed_out);
    req.Set("failed", (double) s.requests_failed);
    req.Set("running", (double) s.running);
    req.Set("waiting", (double) s.waiting);
    Napi::Object rej = Napi::Object::New(env);
    for (int i = 0; i < tl::N_REJECT_REASONS; ++i)
        rej.Set(tl::reject_reason_name((tl::RejectReason) i), (double) s.rejected[i]);
    req.Set("rejected", rej);
    o.Set("requests", req);
    Napi::Object tok = Napi::Object::New(env);
    tok.Set("prompt", (double) s.prompt_tokens);
    tok.Set("generated", (double) s.generation_tokens);
    tok.Set("prefillComputed", (double) s.prefill_tokens_computed);
    tok.Set("promptCached", (double) s.cached_prompt_tokens);
    o.Set("tokens", tok);
    Napi::Object lat = Napi::Object::New(env);
    lat.Set("queueTimeSeconds", histogram_to_js(env, s.queue_time));
    lat.Set("timeToFirstTokenSeconds", histogram_to_js(env, s.ttft));
    lat.Set("interTokenSeconds", histogram_to_js(env, s.inter_token));
    lat.Set("e2eSeconds", histogram_to_js(env, s.e2e));
    lat.Set("promptTokens", histogram_to_js(env, s.prompt_len));
    lat.Set("generationTokens", histogram_to_js(env, s.generation_len));
    o.Set("latency", lat);
    Napi::Object b = Napi::Object::New(env);
    b.Set("steps", (double) s.steps);
    b.Set("size", histogram_to_js(env, s.batch_size));
    b.Set("tokens", histogram_to_js(env, s.batch_tokens));
    Napi::Object sd = Napi::Object::New(env);
    for (int i = 0; i < tl::N_STEP_PHASES; ++i)
        sd.Set(tl::step_phase_name((tl::StepPhase) i), histogram_to_js(env, s.step_duration[i]));
    b.Set("stepDurationSeconds", sd);
    Napi::Object fl = Napi::Object::New(env);
    for (int i = 0; i < tl::N_FLUSH_REASONS; ++i)
        fl.Set(tl::flush_reason_name((tl::FlushReason) i), (double) s.flushes[i]);
    b.Set("flushes", fl);
    b.Set("preemptions", (double) s.preemptions);
    o.Set("batches", b);
    Napi::Object kv = Napi::Object::New(env);
    kv.Set("blocksTotal", s.kv_blocks_total);
    kv.Set("blocksUsed", s.kv_blocks_used);
    kv.Set("blocksCached", s.kv_blocks_cached);
    kv.Set("blocksFree", s.kv_blocks_free);
    kv.Set("blockSizeTokens", s.kv_block_size);
    kv.Set("usageRatio", s.kv_usage_ratio);
    kv.Set("fragmentationRatio", s.kv_fragmentation_ratio);
    kv.Set("prefixQueries", (double) s.prefix_queries);
    kv.Set("prefixHits", (double) s.prefix_hits);
    o.Set("kvCache", kv);
    Napi::Object ops = Napi::Object::New(env);
    ops.Set("matmul", s.op_seconds_matmul);
    ops.Set("attention", s.op_seconds_attention);
    ops.Set("norm", s.op_seconds_norm);
    ops.Set("rope", s.op_seconds_rope);
    ops.Set("ffn_activation", s.op_seconds_ffn_act);
    ops.Set("embedding", s.op_seconds_embed);
    ops.Set("output", s.op_seconds_output);
    ops.Set("sampling", s.sampling_seconds);
    o.Set("opSeconds", ops);
    Napi::Object gr = Napi::Object::New(env);
    gr.Set("requests", (double) s.grammar.requests);
    gr.Set("tokens", (double) s.grammar.tokens);
    gr.Set("maskSeconds", s.grammar.mask_seconds);
    gr.Set("fastAccepts", (double) s.grammar.fast_accepts);
    gr.Set("masksComputed", (double) s.grammar.masks_computed);
    gr.Set("maskCacheHits", (double) s.grammar.mask_cache_hits);
    gr.Set("deadEnds", (double) s.grammar.dead_ends);
    gr.Set("limitHits", (double) s.grammar.limit_hits);
    gr.Set("completed", (double) s.grammar.completed);
    gr.Set("triggered", (double) s.grammar.triggered);
    o.Set("grammar", gr);
    Napi::Array rb = Napi::Array::New(env, s.rank_busy_seconds.size()),
                ra = Napi::Array::New(env, s.rank_allreduce_seconds.size());
    for (size_t i = 0; i < s.rank_busy_seconds.size(); ++i) rb.Set((uint32_t) i, s.rank_busy_seconds[i]);
    for (size_t i = 0; i < s.rank_allreduce_seconds.size(); ++i) ra.Set((uint32_t) i, s.rank_allreduce_seconds[i]);
    Napi::Object tp = Napi::Object::New(env);
    tp.Set("rankBusySeconds", rb);
    tp.Set("rankAllreduceSeconds", ra);
    tp.Set("allreduces", (double) s.allreduces);
    o.Set("tensorParallel", tp);
    const tl::ModelHParams & hp = engine(env).hparams();
    if (hp.moe.enabled()) {
        // Routing statistics (docs/metrics.md): cumulative since the instance loaded.
        Napi::Object m = Napi::Object::New(env);
        m.Set("expertCount", hp.moe.n_expert);
        m.Set("expertUsed", hp.moe.n_expert_used);
        m.Set("sharedExperts", hp.moe.n_expert_shared);
        std::vector<int> moe_layers;
        for (int l = 0; l < hp.n_layers; ++l)
            if (hp.moe.layer_is_moe(l)) moe_layers.push_back(l);
        Napi::Array ml = Napi::Array::New(env, moe_layers.size());
        for (size_t i = 0; i < moe_layers.size(); ++i) ml.Set((uint32_t) i, moe_layers[i]);
        m.Set("moeLayers", ml);
        Napi::Array tpe = Napi::Array::New(env, moe_layers.size());
        for (size_t i = 0; i < moe_layers.size(); ++i) {
            Napi::Array row = Napi::Array::New(env, hp.moe.n_expert);
            for (int x = 0; x < hp.moe.n_expert; ++x)
                row.Set((uint32_t) x, i < s.moe_tokens.size() ? (double) s.moe_tokens[i][x] : 0.0);
            tpe.Set((uint32_t) i, row);
        }
        m.Set("tokensPerExpert", tpe);
        m.Set("epDegree", s.layout.ep_degree);
        Napi::Array red = Napi::Array::New(env, s.layout.redundant_experts.size());
        for (size_t i = 0; i < s.layout.redundant_experts.size(); ++i) {
            Napi::Object r = Napi::Object::New(env);
            r.Set("layer", s.layout.redundant_experts[i].first);
            r.Set("expert", s.layout.redundant_experts[i].second);
            red.Set((uint32_t) i, r);
        }
        m.Set("redundantExperts", red);
        auto arr = [&](const std::vector<double> & v) {
            Napi::Array a = Napi::Array::New(env, v.size());
            for (size_t i = 0; i < v.size(); ++i) a.Set((uint32_t) i, v[i]);
            return a;
        };
        m.Set("allToAllSeconds", arr(s.rank_alltoall_seconds));
        m.Set("allToAlls", (double) s.alltoalls);
        m.Set("allToAllRows", (double) s.alltoall_rows);
        m.Set("expertSecondsPerRank", arr(s.rank_expert_seconds));
        o.Set("moe", m);
    }
    Napi::Object mem = Napi::Object::New(env);
    mem.Set("weights", (double) s.weight_bytes);
    mem.Set("kv", (double) s.kv_bytes);
    mem.Set("scratch", (double) s.scratch_bytes);
    o.Set("memoryBytes", mem);
    Napi::Object wb = Napi::Object::New(env);
    for (auto & [name, bytes] : s.weight_bytes_by_dtype) wb.Set(name, (double) bytes);
    o.Set("weightBytesByDtype", wb);
    o.Set("busySeconds", s.busy_seconds);
    o.Set("uptimeSeconds", s.uptime_seconds);
    o.Set("reloads", (double) s.reloads);
    o.Set("reconfigures", (double) s.reconfigures);
    Napi::Object settings = layout_to_js(env, s.layout, s.n_ctx);
    Napi::Object sc = scheduler_to_js(env, s.scheduler);
    for (const char * k : {"maxBatchSize", "maxBatchTokens", "maxQueueDelayMs", "queueGrowThreshold", "maxQueueLength"})
        settings.Set(k, sc.Get(k));
    o.Set("settings", settings);
    return o;
}

void init_engine_wrap(Napi::Env env, Napi::Object exports, AddonData * data) {
    Napi::Function ctor = NativeEngine::define(env);
    data->native_engine_ctor = Napi::Persistent(ctor);
    exports.Set("NativeEngine", ctor);
    exports.Set("loadEngine", Napi::Function::New(env, load_engine));
}

} // namespace tl_binding
