// The engine: owns the model instance(s), the tokenizer and the step loop, which runs on its own thread so the
// caller (Node's event loop) never waits on a forward pass. Requests are scheduled by continuous batching
// (scheduler.h) over a paged KV cache (block_pool.h, kv_cache.h); results stream back through a callback invoked
// on the engine thread.
//
// Units: engine.cpp is the step loop (admission, scheduling a step, the forward pass, sampling and feeding the token
// back); engine_output.cpp turns results into events and is the only code that ends a request; engine_stats.cpp
// publishes what stats() reads. engine_request.h holds their shared internal records.
//
// Hot settings (SchedulerConfig) change between steps with reconfigure(). Cold settings (ModelLayout, context
// length) need a new model instance: reload() builds it beside the old one on the caller's thread, then the step loop
// sends new and waiting requests to it while the old instance finishes its running ones, and frees the old.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "block_pool.h"
#include "engine_stats.h"
#include "gguf.h"
#include "model.h"
#include "sampler.h"
#include "scheduler.h"
#include "stats.h"
#include "tokenizer.h"

namespace tl {

struct EngineRequest;
struct EngineInstance;
class RequestOutput;
class GrammarRegistry;

struct EngineConfig {
    std::string model_path;
    ModelLayout layout; // kv_blocks 0 = sized from kv_cache_max_bytes
    int64_t kv_cache_max_bytes = 256ll << 20;
    int n_ctx = 0; // 0 = the model's trained context
    SchedulerConfig scheduler;
};

struct GenerateParams {
    std::vector<int32_t> prompt;
    int max_tokens = 16;
    SamplingParams sampling;
    std::vector<std::string> stop;
    bool stop_at_eos = true;
    double deadline_ms = 0; // 0 = none; from submission
    // Test hook: after this many generated tokens the request is paused (keeps its batch slot and KV blocks, is not
    // stepped) until resume(id), cancel(id), its deadline or close(). Lets a test act at a known token count however
    // late its event loop runs. 0 = never.
    int pause_after_tokens = 0;
    // GBNF grammar (grammar.h) the generated text must match; "" = unconstrained. With grammar_triggers the grammar
    // is lazy: unconstrained until the text contains a trigger, then constrained from the trigger's first byte.
    std::string grammar;
    std::vector<std::string> grammar_triggers;
};

enum class FinishReason { STOP, LENGTH, CANCELLED };
const char * finish_reason_name(FinishReason r);

struct GenerationTimings {
    double queue_ms = 0, prefill_ms = 0, decode_ms = 0, ttft_ms = 0;
};

// A sampled token's logprob as delivered: the sampler's TokenLogprob plus the text of the token and of each
// alternative, each exactly what Tokenizer::decode_one gives (so the caller needs no detokenize call per token).
struct EventLogprob {
    struct Alt {
        int32_t token;
        float logprob;
        std::string text;
    };
    int32_t token = -1;
    float logprob = 0.0f;
    std::string text;
    std::vector<Alt> top; // best first
};

// One delivery to the caller. `final` is set on the last event of a request; then either `failed` (with its code)
// or finish/usage/timings are set.
struct GenerateEvent {
    std::string text; // complete UTF-8, stop sequences removed
    std::vector<int32_t> tokens;
    std::vector<EventLogprob> logprobs;
    bool final = false;
    bool failed = false;
    ErrorCode error_code = ErrorCode::INTERNAL;
    std::string error;
    FinishReason finish = FinishReason::LENGTH;
    int prompt_tokens = 0;
    int cached_prompt_tokens = 0;
    int completion_tokens = 0;
    GenerationTimings timings;
};

using EventSink = std::function<void(GenerateEvent &&)>;
using EvalDone = std::function<void(std::vector<float> &&, const EngineException *)>;

class Engine {
public:
    // Loads and quantizes the model (slow: call off the event loop). Throws EngineException.
    static std::unique_ptr<Engine> load(const EngineConfig & cfg);
    ~Engine();

    const Tokenizer & tokenizer() const { return *tokenizer_; }
    const GgufFile & file() const { return *file_; }
    const ModelHParams & hparams() const { return hparams_; }
    const std::string & model_path() const { return cfg_.model_path; }
    double load_ms() const { return load_ms_; }
    // The live settings (cold ones are those of the newest instance).
    ModelLayout layout() const;
    SchedulerConfig scheduler_config() const;
    int n_ctx() const;
    std::vector<std::pair<std::string, size_t>> weight_bytes() const;
    std::vector<WeightFallback> weight_fallbacks() const;
    MoeActiveCounts active_counts() const;

    // Queue a generation. Validation errors throw at once (INVALID_ARGUMENT, CONTEXT_OVERFLOW, QUEUE_FULL,
    // ENGINE_CLOSED); everything after is reported through `sink`, which always receives exactly one final event.
    uint64_t submit(GenerateParams params, EventSink sink);
    // Queue a forward pass over `tokens` from position 0; `done` gets the logits ([n or 1][n_vocab]) or an error.
    uint64_t submit_evaluate(std::vector<int32_t> tokens, bool all_logits, EvalDone done);
    bool cancel(uint64_t id);
    // Lets a request paused by pause_after_tokens go on to its end (the pause is disarmed, so a resume that comes
    // before the pause point means no pause). False if it already ended.
    bool resume(uint64_t id);
    // Hot settings: applied at the next step boundary.
    void reconfigure(const SchedulerConfig & cfg);
    // Cold settings: blocks the caller while the new instance loads; in-flight requests are not disturbed.
    void reload(const ModelLayout & layout, int n_ctx);
    EngineStatsSnapshot stats() const;
    // Stops accepting work, cancels queued and running requests (each gets its final event), joins the thread.
    void close();

private:
    using Request = EngineRequest;
    using Instance = EngineInstance;
    Engine();

    EngineConfig cfg_;
    std::unique_ptr<GgufFile> file_;
    std::unique_ptr<Tokenizer> tokenizer_;
    ModelHParams hparams_;
    double load_ms_ = 0;
    Clock::time_point started_ = Clock::now();

    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::shared_ptr<Request>> incoming_;
    std::vector<uint64_t> cancel_ids_;           // cancel() requests, resolved by the loop
    std::vector<uint64_t> resume_ids_;           // resume() requests, resolved by the loop
    std::unordered_set<uint64_t> active_ids_;    // submitted and not yet ended
    std::unique_ptr<Instance> pending_instance_; // built by reload(), taken by the loop
    SchedulerConfig sched_cfg_;
    bool closing_ = false;
    uint64_t next_id_ = 1;
    std::thread thread_;

    // Owned by the engine thread.
    std::vector<std::unique_ptr<Instance>> instances_; // oldest first; the last one takes new work
    std::vector<std::shared_ptr<Request>> live_;
    std::unique_ptr<RequestOutput> output_;     // ends requests; the loop never does it itself
    std::unique_ptr<GrammarRegistry> grammars_; // compiled grammars, their runtimes, the vocabulary trie

    EngineCounters counters_;
    EngineStatsBoard board_; // published by the engine thread after each step, read by stats()

    std::unique_ptr<Instance> build_instance(const ModelLayout & layout, int n_ctx) const;
    uint64_t enqueue(std::shared_ptr<Request> r);
    void thread_main();
    bool run_step(Instance & inst, const SchedulerConfig & cfg);
    void fail_running(Instance * inst, ErrorCode code, const std::string & msg);
    void grammar_accept(Request & r, int32_t tok); // advance its grammar; ends it when complete or dead
    void retire(uint64_t id);                      // its id no longer cancellable
};

} // namespace tl
