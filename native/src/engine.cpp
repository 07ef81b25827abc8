#include "engine.h"

#include <algorithm>
#include <chrono>

#include "model_loader.h"

namespace tl {

namespace {
using Clock = std::chrono::steady_clock;
double ms_between(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double, std::milli>(b - a).count(); }

// Length of the longest prefix of `s` that is complete UTF-8 (an incomplete trailing sequence is held back until
// the next token supplies the rest of its bytes).
size_t complete_utf8_prefix(const std::string & s) {
    size_t n = s.size();
    size_t i = n;
    // Look back at most 3 bytes for the start of the last sequence.
    for (size_t back = 1; back <= 4 && back <= n; ++back) {
        unsigned char c = (unsigned char) s[n - back];
        if ((c & 0xC0) == 0x80) continue; // continuation byte
        size_t need = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
        i = back >= need ? n : n - back;
        break;
    }
    return i;
}
} // namespace

const char * finish_reason_name(FinishReason r) {
    switch (r) {
        case FinishReason::STOP: return "stop";
        case FinishReason::LENGTH: return "length";
        case FinishReason::CANCELLED: return "cancelled";
    }
    return "stop";
}

struct Engine::Job {
    uint64_t id = 0;
    bool is_evaluate = false;
    GenerateParams params;
    EventSink sink;
    std::vector<int32_t> eval_tokens;
    bool all_logits = false;
    std::function<void(std::vector<float> &&, const EngineException *)> eval_done;
    std::atomic<bool> cancelled{false};
    Clock::time_point submitted = Clock::now();
};

std::unique_ptr<Engine> Engine::load(const EngineConfig & cfg) {
    auto t0 = Clock::now();
    if (cfg.threads < 1 || cfg.threads > 256) fail(ErrorCode::INVALID_ARGUMENT, "threads must be between 1 and 256");
    std::unique_ptr<Engine> e(new Engine());
    e->cfg_ = cfg;
    e->file_ = std::make_unique<GgufFile>(cfg.model_path);
    LlamaHParams hp = read_llama_hparams(*e->file_); // architecture check before the tokenizer's
    e->tokenizer_ = std::make_unique<Tokenizer>(Tokenizer::from_gguf(*e->file_));
    if (e->tokenizer_->n_vocab() > hp.n_vocab)
        fail(ErrorCode::MODEL_CORRUPT, "model '" + cfg.model_path + "': tokenizer has " + std::to_string(e->tokenizer_->n_vocab()) +
             " tokens but token_embd.weight only " + std::to_string(hp.n_vocab) + " rows");
    if (cfg.n_ctx < 0) fail(ErrorCode::INVALID_ARGUMENT, "contextLength must be positive");
    if (cfg.n_ctx > hp.n_ctx_train)
        fail(ErrorCode::INVALID_ARGUMENT, "contextLength " + std::to_string(cfg.n_ctx) + " exceeds the model's context length of " +
             std::to_string(hp.n_ctx_train) + " tokens (llama.context_length)");
    e->n_ctx_ = cfg.n_ctx > 0 ? cfg.n_ctx : hp.n_ctx_train;
    e->pool_ = std::make_unique<ThreadPool>(cfg.threads);
    e->model_ = load_llama(*e->file_, cfg.policy, *e->pool_);
    e->load_ms_ = ms_between(t0, Clock::now());
    e->thread_ = std::thread([p = e.get()] { p->thread_main(); });
    return e;
}

Engine::~Engine() { close(); }

uint64_t Engine::submit(GenerateParams params, EventSink sink) {
    if (params.prompt.empty()) fail(ErrorCode::INVALID_ARGUMENT, "prompt must contain at least one token");
    for (int32_t t : params.prompt)
        if (t < 0 || t >= model_->hparams().n_vocab) fail(ErrorCode::INVALID_ARGUMENT, "token id " + std::to_string(t) + " is outside the vocabulary (0.." + std::to_string(model_->hparams().n_vocab - 1) + ")");
    if ((int) params.prompt.size() >= n_ctx_)
        fail(ErrorCode::CONTEXT_OVERFLOW, "prompt of " + std::to_string(params.prompt.size()) + " tokens does not fit the context window of " +
             std::to_string(n_ctx_) + " tokens (at least one token must be left to generate)");
    auto job = std::make_shared<Job>();
    job->params = std::move(params);
    job->sink = std::move(sink);
    std::lock_guard<std::mutex> lock(mu_);
    if (closing_) fail(ErrorCode::ENGINE_CLOSED, "the engine is closed");
    job->id = next_id_++;
    queue_.push_back(job);
    cv_.notify_one();
    return job->id;
}

void Engine::submit_evaluate(std::vector<int32_t> tokens, bool all_logits,
                             std::function<void(std::vector<float> &&, const EngineException *)> done) {
    if (tokens.empty()) fail(ErrorCode::INVALID_ARGUMENT, "tokens must not be empty");
    if ((int) tokens.size() > n_ctx_)
        fail(ErrorCode::CONTEXT_OVERFLOW, std::to_string(tokens.size()) + " tokens do not fit the context window of " + std::to_string(n_ctx_));
    for (int32_t t : tokens)
        if (t < 0 || t >= model_->hparams().n_vocab) fail(ErrorCode::INVALID_ARGUMENT, "token id " + std::to_string(t) + " is outside the vocabulary");
    auto job = std::make_shared<Job>();
    job->is_evaluate = true;
    job->eval_tokens = std::move(tokens);
    job->all_logits = all_logits;
    job->eval_done = std::move(done);
    std::lock_guard<std::mutex> lock(mu_);
    if (closing_) fail(ErrorCode::ENGINE_CLOSED, "the engine is closed");
    job->id = next_id_++;
    queue_.push_back(job);
    cv_.notify_one();
}

bool Engine::cancel(uint64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    if (running_ && running_->id == id) { running_->cancelled = true; return true; }
    for (auto & j : queue_) {
        if (j->id == id) { j->cancelled = true; return true; }
    }
    return false;
}

void Engine::close() {
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (closing_ && !thread_.joinable()) return;
        closing_ = true;
        for (auto & j : queue_) j->cancelled = true;
        if (running_) running_->cancelled = true;
        cv_.notify_all();
    }
    if (thread_.joinable()) thread_.join();
}

void Engine::thread_main() {
    for (;;) {
        std::shared_ptr<Job> job;
        {
            std::unique_lock<std::mutex> lock(mu_);
            cv_.wait(lock, [&] { return closing_ || !queue_.empty(); });
            if (queue_.empty()) return; // closing and drained
            job = queue_.front();
            queue_.pop_front();
            running_ = job;
        }
        try {
            if (job->is_evaluate) run_evaluate(*job);
            else run_generate(*job);
        } catch (const EngineException & ex) {
            if (job->is_evaluate) job->eval_done({}, &ex);
            else { GenerateEvent ev; ev.final = true; ev.failed = true; ev.error_code = ex.code(); ev.error = ex.what(); job->sink(std::move(ev)); }
        } catch (const std::exception & ex) {
            EngineException wrapped(ErrorCode::INTERNAL, std::string("internal error: ") + ex.what());
            if (job->is_evaluate) job->eval_done({}, &wrapped);
            else { GenerateEvent ev; ev.final = true; ev.failed = true; ev.error_code = ErrorCode::INTERNAL; ev.error = wrapped.what(); job->sink(std::move(ev)); }
        }
        std::lock_guard<std::mutex> lock(mu_);
        running_.reset();
    }
}

void Engine::run_evaluate(Job & job) {
    const LlamaHParams & hp = model_->hparams();
    const int n = (int) job.eval_tokens.size();
    KvCache kv(hp.n_layers, n, hp.kv_dim());
    std::vector<float> logits((size_t) (job.all_logits ? n : 1) * hp.n_vocab);
    // Chunks bound the scratch memory of one forward for long inputs.
    const int chunk = 256;
    size_t row = 0;
    for (int p = 0; p < n; p += chunk) {
        if (job.cancelled) fail(ErrorCode::CANCELLED, "evaluation cancelled");
        BatchEntry e;
        e.kv = &kv; e.pos0 = p; e.tokens = job.eval_tokens.data() + p; e.n_tokens = std::min(chunk, n - p);
        e.all_logits = job.all_logits;
        bool last = p + e.n_tokens >= n;
        if (!job.all_logits && !last) {
            std::vector<float> discard(hp.n_vocab);
            model_->forward({e}, discard.data(), *pool_);
            continue;
        }
        model_->forward({e}, logits.data() + row * hp.n_vocab, *pool_);
        row += job.all_logits ? e.n_tokens : 1;
    }
    job.eval_done(std::move(logits), nullptr);
}

void Engine::run_generate(Job & job) {
    const LlamaHParams & hp = model_->hparams();
    GenerateParams & p = job.params;
    auto t_start = Clock::now();
    GenerateEvent final_ev;
    final_ev.final = true;
    final_ev.prompt_tokens = (int) p.prompt.size();
    final_ev.timings.queue_ms = ms_between(job.submitted, t_start);

    auto finish = [&](FinishReason r, const std::string & tail_text) {
        final_ev.finish = r;
        final_ev.text = tail_text;
        job.sink(std::move(final_ev));
    };
    if (job.cancelled) return finish(FinishReason::CANCELLED, "");

    const int n_prompt = (int) p.prompt.size();
    const int budget = std::min(p.max_tokens, n_ctx_ - n_prompt);
    KvCache kv(hp.n_layers, std::min(n_ctx_, n_prompt + std::max(budget, 0) + 1), hp.kv_dim());
    std::vector<float> logits(hp.n_vocab);
    Sampler sampler(p.sampling);
    StopMatcher stops(p.stop);
    std::string pending_bytes; // decoded bytes not yet complete UTF-8

    // Prefill in chunks; only the last chunk's last row of logits is needed.
    const int chunk = 256;
    for (int pos = 0; pos < n_prompt; pos += chunk) {
        if (job.cancelled) return finish(FinishReason::CANCELLED, "");
        BatchEntry e;
        e.kv = &kv; e.pos0 = pos; e.tokens = p.prompt.data() + pos; e.n_tokens = std::min(chunk, n_prompt - pos);
        model_->forward({e}, logits.data(), *pool_);
    }
    auto t_prefilled = Clock::now();
    final_ev.timings.prefill_ms = ms_between(t_start, t_prefilled);
    if (budget <= 0) return finish(FinishReason::LENGTH, "");

    int pos = n_prompt;
    FinishReason reason = FinishReason::LENGTH;
    bool stop_hit = false;
    for (int i = 0; i < budget; ++i) {
        if (job.cancelled) { reason = FinishReason::CANCELLED; break; }
        TokenLogprob lp;
        // Only ids the tokenizer knows can be sampled: a vocabulary padded in token_embd has rows beyond it.
        int32_t tok = sampler.sample(logits.data(), tokenizer_->n_vocab(), p.sampling.n_logprobs >= 0 ? &lp : nullptr);
        if (i == 0) final_ev.timings.ttft_ms = ms_between(job.submitted, Clock::now());
        if (p.stop_at_eos && tokenizer_->is_end_of_generation(tok)) { reason = FinishReason::STOP; break; }
        ++final_ev.completion_tokens;

        GenerateEvent ev;
        ev.tokens.push_back(tok);
        if (p.sampling.n_logprobs >= 0) ev.logprobs.push_back(std::move(lp));
        pending_bytes += tokenizer_->token_to_piece(tok);
        size_t ready = complete_utf8_prefix(pending_bytes);
        bool stopped = false;
        ev.text = stops.push(pending_bytes.substr(0, ready), &stopped);
        pending_bytes.erase(0, ready);
        job.sink(std::move(ev));
        if (stopped) { reason = FinishReason::STOP; stop_hit = true; break; }
        if (i + 1 == budget) break; // the last token needs no forward pass

        BatchEntry e;
        e.kv = &kv; e.pos0 = pos; e.tokens = &tok; e.n_tokens = 1;
        model_->forward({e}, logits.data(), *pool_);
        ++pos;
    }
    final_ev.timings.decode_ms = ms_between(t_prefilled, Clock::now());
    std::string tail;
    if (!stop_hit && reason != FinishReason::CANCELLED) {
        // Text held back as a possible stop-sequence prefix, and a trailing partial character, go out as they are.
        bool stopped = false;
        tail = stops.push(pending_bytes, &stopped);
        if (stopped) reason = FinishReason::STOP;
        else tail += stops.flush();
    }
    finish(reason, reason == FinishReason::CANCELLED ? "" : tail);
}

} // namespace tl
