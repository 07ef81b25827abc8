// The engine: owns a model, its tokenizer and a compute thread pool, and runs requests on its own thread so the
// caller (Node's event loop) never waits on a forward pass. Requests are queued and served first-come first-served;
// results stream back through a callback that is invoked on the engine thread.
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
#include <vector>

#include "gguf.h"
#include "model.h"
#include "sampler.h"
#include "tokenizer.h"

namespace tl {

struct EngineConfig {
    std::string model_path;
    WeightsPolicy policy = WeightsPolicy::F32;
    int threads = 1;
    int n_ctx = 0; // 0 = the model's trained context
};

struct GenerateParams {
    std::vector<int32_t> prompt;
    int max_tokens = 16;
    SamplingParams sampling;
    std::vector<std::string> stop;
    bool stop_at_eos = true;
};

enum class FinishReason { STOP, LENGTH, CANCELLED };
const char * finish_reason_name(FinishReason r);

struct GenerationTimings {
    double queue_ms = 0, prefill_ms = 0, decode_ms = 0, ttft_ms = 0;
};

// One delivery to the caller. `final` is set on the last event of a request; then either `error` is set
// (with its code) or finish/usage/timings are.
struct GenerateEvent {
    std::string text;                    // complete UTF-8, stop sequences removed
    std::vector<int32_t> tokens;
    std::vector<TokenLogprob> logprobs;
    bool final = false;
    bool failed = false;
    ErrorCode error_code = ErrorCode::INTERNAL;
    std::string error;
    FinishReason finish = FinishReason::LENGTH;
    int prompt_tokens = 0;
    int completion_tokens = 0;
    GenerationTimings timings;
};

using EventSink = std::function<void(GenerateEvent &&)>;

class Engine {
public:
    // Loads and quantizes the model (slow: call off the event loop). Throws EngineException.
    static std::unique_ptr<Engine> load(const EngineConfig & cfg);
    ~Engine();

    const LlamaModel & model() const { return *model_; }
    const Tokenizer & tokenizer() const { return *tokenizer_; }
    const GgufFile & file() const { return *file_; }
    const EngineConfig & config() const { return cfg_; }
    int n_ctx() const { return n_ctx_; }
    double load_ms() const { return load_ms_; }

    // Queue a generation. Validation errors throw at once (INVALID_ARGUMENT, CONTEXT_OVERFLOW, ENGINE_CLOSED);
    // everything after is reported through `sink`, which always receives exactly one final event.
    uint64_t submit(GenerateParams params, EventSink sink);
    // Queue a forward pass over `tokens` from position 0; `done` gets the logits ([n or 1][n_vocab]) or an error.
    void submit_evaluate(std::vector<int32_t> tokens, bool all_logits,
                         std::function<void(std::vector<float> &&, const EngineException *)> done);
    bool cancel(uint64_t id);
    // Stops accepting work, cancels queued and running requests (each gets its final event), joins the thread.
    void close();

private:
    struct Job;
    Engine() = default;

    EngineConfig cfg_;
    std::unique_ptr<GgufFile> file_;
    std::unique_ptr<ThreadPool> pool_;
    std::unique_ptr<LlamaModel> model_;
    std::unique_ptr<Tokenizer> tokenizer_;
    int n_ctx_ = 0;
    double load_ms_ = 0;

    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::shared_ptr<Job>> queue_;
    std::shared_ptr<Job> running_;
    bool closing_ = false;
    uint64_t next_id_ = 1;
    std::thread thread_;

    void thread_main();
    void run_generate(Job & job);
    void run_evaluate(Job & job);
};

} // namespace tl
