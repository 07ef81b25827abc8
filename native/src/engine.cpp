#include "engine.h"

#include <algorithm>
#include <cmath>

#include "model_loader.h"

namespace tl {

namespace {
double ms_between(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double, std::milli>(b - a).count(); }
double s_between(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// Length of the longest prefix of `s` that is complete UTF-8 (an incomplete trailing sequence is held back until
// the next token supplies the rest of its bytes).
size_t complete_utf8_prefix(const std::string & s) {
    size_t n = s.size();
    for (size_t back = 1; back <= 4 && back <= n; ++back) {
        unsigned char c = (unsigned char) s[n - back];
        if ((c & 0xC0) == 0x80) continue; // continuation byte
        size_t need = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
        return back >= need ? n : n - back;
    }
    return n;
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

struct Engine::Instance {
    ModelLayout layout;
    int n_ctx = 0;
    std::unique_ptr<LlamaModel> model;
    std::unique_ptr<BlockPool> pool;
    std::unique_ptr<Scheduler> sched;
    std::vector<float> logits; // scratch: [rows][n_vocab]
};

struct Engine::Request {
    SeqState seq;
    Instance * inst = nullptr;
    bool is_evaluate = false;
    GenerateParams params;
    EventSink sink;
    EvalDone eval_done;
    std::vector<float> eval_logits;
    std::unique_ptr<Sampler> sampler;
    std::unique_ptr<StopMatcher> stops;
    std::string pending_bytes;
    int completion = 0;
    int cached_prompt_tokens = -1;   // prefix-cache hit size at first admission
    Clock::time_point deadline = Clock::time_point::max();
    Clock::time_point first_scheduled = Clock::time_point::max(), prefill_done = Clock::time_point::max(), last_token;
    bool done = false;
};

std::unique_ptr<Engine::Instance> Engine::build_instance(const ModelLayout & layout_in, int n_ctx) const {
    ModelLayout layout = layout_in;
    const LlamaHParams & hp = hparams_;
    if (n_ctx < 0) fail(ErrorCode::INVALID_ARGUMENT, "contextLength must be positive");
    if (n_ctx > hp.n_ctx_train)
        fail(ErrorCode::INVALID_ARGUMENT, "contextLength " + std::to_string(n_ctx) + " exceeds the model's context length of " +
             std::to_string(hp.n_ctx_train) + " tokens (llama.context_length)");
    if (n_ctx == 0) n_ctx = hp.n_ctx_train;
    if (layout.kv_block_size < 1 || layout.kv_block_size > 1024) fail(ErrorCode::INVALID_ARGUMENT, "kvBlockSizeTokens must be between 1 and 1024");
    const int32_t per_seq = (n_ctx + layout.kv_block_size - 1) / layout.kv_block_size;
    if (layout.kv_blocks <= 0) {
        // Size the pool from the byte budget: at least one full-context sequence, at most 64 of them.
        const size_t elem = layout.kv_dtype == KvDtype::F32 ? 4 : layout.kv_dtype == KvDtype::F16 ? 2 : 1;
        const size_t per_block = (size_t) hp.n_layers * layout.kv_block_size * hp.kv_dim() * 2 * elem;
        int64_t fit = cfg_.kv_cache_max_bytes / (int64_t) std::max<size_t>(1, per_block);
        layout.kv_blocks = (int32_t) std::clamp<int64_t>(fit, per_seq, (int64_t) per_seq * 64);
    }
    auto inst = std::make_unique<Instance>();
    inst->n_ctx = n_ctx;
    ThreadPool load_pool(layout.tp * layout.threads_per_rank);
    inst->model = load_llama(*file_, layout, load_pool);
    inst->layout = layout;
    inst->pool = std::make_unique<BlockPool>(layout.kv_blocks, layout.kv_block_size);
    inst->sched = std::make_unique<Scheduler>(*inst->pool, n_ctx);
    return inst;
}

std::unique_ptr<Engine> Engine::load(const EngineConfig & cfg) {
    auto t0 = Clock::now();
    std::unique_ptr<Engine> e(new Engine());
    e->cfg_ = cfg;
    e->sched_cfg_ = cfg.scheduler;
    e->file_ = std::make_unique<GgufFile>(cfg.model_path);
    e->hparams_ = read_llama_hparams(*e->file_); // architecture check before the tokenizer's
    e->tokenizer_ = std::make_unique<Tokenizer>(Tokenizer::from_gguf(*e->file_));
    if (e->tokenizer_->n_vocab() > e->hparams_.n_vocab)
        fail(ErrorCode::MODEL_CORRUPT, "model '" + cfg.model_path + "': tokenizer has " + std::to_string(e->tokenizer_->n_vocab()) +
             " tokens but token_embd.weight only " + std::to_string(e->hparams_.n_vocab) + " rows");
    check_layout(e->hparams_, ModelLayout{cfg.layout.policy, cfg.layout.tp, cfg.layout.threads_per_rank, cfg.layout.kv_dtype,
                                         cfg.layout.kv_block_size, 1, cfg.layout.allreduce_delay_us});
    e->instances_.push_back(e->build_instance(cfg.layout, cfg.n_ctx));
    e->publish(*e->instances_.back());
    e->load_ms_ = ms_between(t0, Clock::now());
    e->started_ = Clock::now();
    e->thread_ = std::thread([p = e.get()] { p->thread_main(); });
    return e;
}

Engine::~Engine() { close(); }

ModelLayout Engine::layout() const { std::lock_guard<std::mutex> l(pub_mu_); return pub_layout_; }
int Engine::n_ctx() const { std::lock_guard<std::mutex> l(pub_mu_); return pub_n_ctx_; }
SchedulerConfig Engine::scheduler_config() const { std::lock_guard<std::mutex> l(mu_); return sched_cfg_; }
std::vector<std::pair<std::string, size_t>> Engine::weight_bytes() const { std::lock_guard<std::mutex> l(pub_mu_); return pub_weight_by_dtype_; }

uint64_t Engine::enqueue(std::shared_ptr<Request> r) {
    std::lock_guard<std::mutex> lock(mu_);
    if (closing_) {
        counters_.rejected[(int) RejectReason::CLOSED].fetch_add(1, std::memory_order_relaxed);
        fail(ErrorCode::ENGINE_CLOSED, "the engine is closed");
    }
    // maxQueueLength bounds the requests that must wait behind a full batch, not those the next step takes at once:
    // free batch slots absorb arrivals first (an idle engine with maxQueueLength 0 still serves). Running and waiting
    // are published together under mu_ after each step, and moved arrivals count as waiting until then, so the sum
    // seen here never loses a request in flight between the queues.
    const int64_t free_slots = std::max<int64_t>(0, (int64_t) sched_cfg_.max_batch_size - counters_.running.load(std::memory_order_relaxed));
    const int64_t queued = (int64_t) incoming_.size() + counters_.waiting.load(std::memory_order_relaxed) - free_slots;
    if (queued >= sched_cfg_.max_queue_length) { // this request would make queued + 1 wait
        counters_.rejected[(int) RejectReason::QUEUE_FULL].fetch_add(1, std::memory_order_relaxed);
        fail(ErrorCode::QUEUE_FULL, "the engine queue is full (" + std::to_string(queued) + " waiting, maxQueueLength " +
             std::to_string(sched_cfg_.max_queue_length) + ")");
    }
    r->seq.id = next_id_++;
    r->seq.owner = r.get();
    r->seq.arrival = Clock::now();
    if (!r->is_evaluate && r->params.deadline_ms > 0)
        r->deadline = r->seq.arrival + std::chrono::microseconds((int64_t) (r->params.deadline_ms * 1000.0));
    counters_.requests_submitted.fetch_add(1, std::memory_order_relaxed);
    active_ids_.insert(r->seq.id);
    if (!r->is_evaluate) {
        counters_.prompt_tokens.fetch_add(r->seq.n_prompt, std::memory_order_relaxed);
        counters_.prompt_len.observe(r->seq.n_prompt);
    }
    incoming_.push_back(r);
    cv_.notify_one();
    return r->seq.id;
}

uint64_t Engine::submit(GenerateParams params, EventSink sink) {
    auto reject = [&](RejectReason why, ErrorCode code, const std::string & msg) {
        counters_.rejected[(int) why].fetch_add(1, std::memory_order_relaxed);
        fail(code, msg);
    };
    if (params.prompt.empty()) reject(RejectReason::INVALID, ErrorCode::INVALID_ARGUMENT, "prompt must contain at least one token");
    for (int32_t t : params.prompt)
        if (t < 0 || t >= hparams_.n_vocab)
            reject(RejectReason::INVALID, ErrorCode::INVALID_ARGUMENT, "token id " + std::to_string(t) + " is outside the vocabulary (0.." + std::to_string(hparams_.n_vocab - 1) + ")");
    const int ctx = n_ctx();
    if ((int) params.prompt.size() >= ctx)
        reject(RejectReason::CONTEXT_OVERFLOW, ErrorCode::CONTEXT_OVERFLOW, "prompt of " + std::to_string(params.prompt.size()) +
               " tokens does not fit the context window of " + std::to_string(ctx) + " tokens (at least one token must be left to generate)");
    auto r = std::make_shared<Request>();
    r->seq.tokens = params.prompt;
    r->seq.n_prompt = (int32_t) params.prompt.size();
    r->sampler = std::make_unique<Sampler>(params.sampling);
    r->stops = std::make_unique<StopMatcher>(params.stop);
    r->params = std::move(params);
    r->sink = std::move(sink);
    return enqueue(r);
}

uint64_t Engine::submit_evaluate(std::vector<int32_t> tokens, bool all_logits, EvalDone done) {
    if (tokens.empty()) fail(ErrorCode::INVALID_ARGUMENT, "tokens must not be empty");
    const int ctx = n_ctx();
    if ((int) tokens.size() > ctx)
        fail(ErrorCode::CONTEXT_OVERFLOW, std::to_string(tokens.size()) + " tokens do not fit the context window of " + std::to_string(ctx));
    for (int32_t t : tokens)
        if (t < 0 || t >= hparams_.n_vocab) fail(ErrorCode::INVALID_ARGUMENT, "token id " + std::to_string(t) + " is outside the vocabulary");
    auto r = std::make_shared<Request>();
    r->is_evaluate = true;
    r->seq.tokens = std::move(tokens);
    r->seq.n_prompt = (int32_t) r->seq.tokens.size();
    r->seq.use_prefix_cache = false; // every position's logits are computed
    r->seq.all_logits = all_logits;
    r->eval_done = std::move(done);
    return enqueue(r);
}

bool Engine::cancel(uint64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!active_ids_.count(id)) return false;
    cancel_ids_.push_back(id);
    cv_.notify_one();
    return true;
}

void Engine::reconfigure(const SchedulerConfig & cfg) {
    std::lock_guard<std::mutex> lock(mu_);
    sched_cfg_ = cfg;
    counters_.reconfigures.fetch_add(1, std::memory_order_relaxed);
    cv_.notify_one();
}

void Engine::reload(const ModelLayout & layout, int n_ctx) {
    file_->check_unchanged(); // the new instance re-reads every tensor from the mapping made at load
    check_layout(hparams_, ModelLayout{layout.policy, layout.tp, layout.threads_per_rank, layout.kv_dtype, layout.kv_block_size, 1,
                                       layout.allreduce_delay_us});
    std::unique_ptr<Instance> inst = build_instance(layout, n_ctx);
    std::unique_lock<std::mutex> lock(mu_);
    if (closing_) fail(ErrorCode::ENGINE_CLOSED, "the engine is closed");
    pending_instance_ = std::move(inst);
    cv_.notify_one();
    // Return once the loop has taken it: from then on new requests run on the new instance.
    cv_.wait(lock, [&] { return !pending_instance_ || closing_; });
    counters_.reloads.fetch_add(1, std::memory_order_relaxed);
}

void Engine::close() {
    {
        std::lock_guard<std::mutex> lock(mu_);
        closing_ = true;
        cv_.notify_all();
    }
    if (thread_.joinable()) thread_.join();
}

Engine::Instance * Engine::instance_of(const Request & r) { return r.inst; }

void Engine::emit_token(Request & r, int32_t tok, TokenLogprob * lp) {
    GenerateEvent ev;
    ev.tokens.push_back(tok);
    if (lp) {
        EventLogprob out;
        out.token = lp->token;
        out.logprob = lp->logprob;
        out.text = tokenizer_->decode_one(lp->token);
        out.top.reserve(lp->top.size());
        for (const auto & [id, logprob] : lp->top) out.top.push_back({id, logprob, tokenizer_->decode_one(id)});
        ev.logprobs.push_back(std::move(out));
    }
    r.pending_bytes += tokenizer_->token_to_piece(tok);
    size_t ready = complete_utf8_prefix(r.pending_bytes);
    bool stopped = false;
    ev.text = r.stops->push(r.pending_bytes.substr(0, ready), &stopped);
    r.pending_bytes.erase(0, ready);
    r.sink(std::move(ev));
    if (stopped) finish(r.inst, r, FinishReason::STOP);
}

void Engine::retire(const Request & r) {
    std::lock_guard<std::mutex> lock(mu_);
    active_ids_.erase(r.seq.id);
}

void Engine::finish(Instance * inst, Request & r, FinishReason reason) {
    if (r.done) return;
    r.done = true;
    retire(r);
    auto now = Clock::now();
    if (inst) inst->sched->remove(&r.seq);
    if (r.is_evaluate) {
        EngineException ex(ErrorCode::CANCELLED, "evaluation cancelled");
        r.eval_done({}, &ex);
        counters_.requests_cancelled.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    GenerateEvent ev;
    ev.final = true;
    ev.finish = reason;
    if (reason != FinishReason::CANCELLED && !r.stops->stopped()) {
        // Text held back as a possible stop-sequence prefix, and a trailing partial character, go out as they are.
        bool stopped = false;
        ev.text = r.stops->push(r.pending_bytes, &stopped);
        if (stopped) ev.finish = FinishReason::STOP;
        else ev.text += r.stops->flush();
    }
    ev.prompt_tokens = r.seq.n_prompt;
    ev.cached_prompt_tokens = std::max(0, r.cached_prompt_tokens);
    ev.completion_tokens = r.completion;
    const auto start = std::min(r.first_scheduled, now);
    ev.timings.queue_ms = ms_between(r.seq.arrival, start);
    ev.timings.prefill_ms = r.prefill_done == Clock::time_point::max() ? ms_between(start, now) : ms_between(start, r.prefill_done);
    ev.timings.decode_ms = r.prefill_done == Clock::time_point::max() ? 0 : ms_between(r.prefill_done, now);
    ev.timings.ttft_ms = r.prefill_done == Clock::time_point::max() ? 0 : ms_between(r.seq.arrival, r.prefill_done);
    if (reason == FinishReason::CANCELLED) counters_.requests_cancelled.fetch_add(1, std::memory_order_relaxed);
    else counters_.requests_finished.fetch_add(1, std::memory_order_relaxed);
    counters_.e2e.observe(s_between(r.seq.arrival, now));
    counters_.generation_len.observe(r.completion);
    r.sink(std::move(ev));
}

void Engine::fail_request(Instance * inst, Request & r, ErrorCode code, const std::string & msg) {
    if (r.done) return;
    r.done = true;
    retire(r);
    if (inst) inst->sched->remove(&r.seq);
    if (code == ErrorCode::TIMEOUT) counters_.requests_timed_out.fetch_add(1, std::memory_order_relaxed);
    else counters_.requests_failed.fetch_add(1, std::memory_order_relaxed);
    if (r.is_evaluate) {
        EngineException ex(code, msg);
        r.eval_done({}, &ex);
        return;
    }
    GenerateEvent ev;
    ev.final = true;
    ev.failed = true;
    ev.error_code = code;
    ev.error = msg;
    r.sink(std::move(ev));
}

// One step of one instance: plan, forward, sample. Returns false when it had nothing to run.
bool Engine::run_step(Instance & inst, const SchedulerConfig & cfg) {
    auto t0 = Clock::now();
    StepPlan plan = inst.sched->plan(cfg, t0);
    counters_.preemptions.fetch_add(plan.preempted.size(), std::memory_order_relaxed);
    for (SeqState * s : plan.preempted) {
        Request & r = *static_cast<Request *>(s->owner);
        r.eval_logits.clear(); // an evaluation is recomputed from its first token
    }
    if (plan.seqs.empty()) {
        // A sequence that needs more blocks than the whole pool would wait (or be preempted) forever.
        if (SeqState * s = inst.sched->unservable()) {
            Request & r = *static_cast<Request *>(s->owner);
            fail_request(&inst, r, ErrorCode::OUT_OF_MEMORY, "the KV cache (" + std::to_string(inst.pool->n_blocks()) + " blocks of " +
                         std::to_string(inst.pool->block_size()) + " tokens) cannot hold a sequence of " + std::to_string(s->tokens.size()) +
                         " tokens: raise kvCacheBlocks or kvCacheMaxBytes");
            return true;
        }
        return false;
    }

    const int32_t V = hparams_.n_vocab;
    std::vector<BatchEntry> batch;
    batch.reserve(plan.seqs.size());
    for (const ScheduledSeq & q : plan.seqs) {
        SeqState * s = q.seq;
        Request & r = *static_cast<Request *>(s->owner);
        if (r.first_scheduled == Clock::time_point::max()) {
            r.first_scheduled = t0;
            r.cached_prompt_tokens = s->n_computed;
            counters_.queue_time.observe(s_between(s->arrival, t0));
            counters_.cached_prompt_tokens.fetch_add(s->n_computed, std::memory_order_relaxed);
        }
        BatchEntry e;
        e.block_table = s->blocks.data();
        e.pos0 = s->n_computed;
        e.tokens = s->tokens.data() + s->n_computed;
        e.n_tokens = q.n_tokens;
        e.all_logits = s->all_logits;
        e.want_logits = s->all_logits || q.completes_prefill;
        batch.push_back(e);
        if (s->n_computed < s->n_prompt) counters_.prefill_tokens_computed.fetch_add(q.n_tokens, std::memory_order_relaxed);
    }
    inst.logits.resize((size_t) std::max<int64_t>(1, LlamaModel::logits_rows(batch)) * V);
    inst.model->forward(batch, inst.logits.data());
    inst.sched->commit(plan);
    auto t1 = Clock::now();
    // Step counters go in before any result of this step reaches the caller.
    counters_.steps.fetch_add(1, std::memory_order_relaxed);
    counters_.flushes[(int) plan.reason].fetch_add(1, std::memory_order_relaxed);
    counters_.batch_size.observe((double) plan.seqs.size());
    counters_.batch_tokens.observe((double) plan.n_tokens);
    counters_.step_duration[(int) plan.phase].observe(s_between(t0, t1));

    // Sampling and delivery.
    size_t row = 0;
    for (size_t i = 0; i < plan.seqs.size(); ++i) {
        const ScheduledSeq & q = plan.seqs[i];
        Request & r = *static_cast<Request *>(q.seq->owner);
        const BatchEntry & e = batch[i];
        if (r.is_evaluate) {
            const size_t rows = e.all_logits ? (size_t) e.n_tokens : (e.want_logits ? 1 : 0);
            if (e.all_logits || e.want_logits)
                r.eval_logits.insert(r.eval_logits.end(), inst.logits.begin() + row * V, inst.logits.begin() + (row + rows) * V);
            row += rows;
            if (q.completes_prefill) {
                r.done = true;
                retire(r);
                inst.sched->remove(&r.seq);
                counters_.requests_finished.fetch_add(1, std::memory_order_relaxed);
                r.eval_done(std::move(r.eval_logits), nullptr);
            }
            continue;
        }
        if (!e.want_logits) continue;
        float * logits = inst.logits.data() + row * V;
        row += 1;
        auto ts = Clock::now();
        TokenLogprob lp;
        // Only ids the tokenizer knows can be sampled: a vocabulary padded in token_embd has rows beyond it.
        const int32_t tok = r.sampler->sample(logits, tokenizer_->n_vocab(), r.params.sampling.n_logprobs >= 0 ? &lp : nullptr);
        counters_.sampling_ns.fetch_add((uint64_t) (s_between(ts, Clock::now()) * 1e9), std::memory_order_relaxed);
        auto now = Clock::now();
        if (r.prefill_done == Clock::time_point::max()) {
            r.prefill_done = now;
            counters_.ttft.observe(s_between(r.seq.arrival, now));
        } else {
            counters_.inter_token.observe(s_between(r.last_token, now));
        }
        r.last_token = now;
        if (r.params.stop_at_eos && tokenizer_->is_end_of_generation(tok)) { finish(&inst, r, FinishReason::STOP); continue; }
        ++r.completion;
        counters_.generation_tokens.fetch_add(1, std::memory_order_relaxed);
        r.seq.tokens.push_back(tok);
        emit_token(r, tok, r.params.sampling.n_logprobs >= 0 ? &lp : nullptr);
        if (r.done) continue;
        if (r.completion >= r.params.max_tokens || (int) r.seq.tokens.size() >= inst.n_ctx) finish(&inst, r, FinishReason::LENGTH);
    }

    counters_.busy_ns.fetch_add((uint64_t) (s_between(t0, Clock::now()) * 1e9), std::memory_order_relaxed);
    // Stats describe the newest instance: an old one still draining after a reload must not overwrite them.
    if (&inst == instances_.back().get()) publish(inst);
    return true;
}

void Engine::fail_running(Instance * inst, ErrorCode code, const std::string & msg) {
    for (auto & r : live_)
        if (r->inst == inst && !r->done && r->first_scheduled != Clock::time_point::max()) fail_request(inst, *r, code, msg);
}

void Engine::publish(const Instance & inst) {
    BlockPoolStats ps = inst.pool->stats();
    pub_blocks_total_.store(ps.total, std::memory_order_relaxed);
    pub_blocks_used_.store(ps.used, std::memory_order_relaxed);
    pub_blocks_cached_.store(ps.cached, std::memory_order_relaxed);
    pub_blocks_free_.store(ps.free, std::memory_order_relaxed);
    pub_prefix_queries_.store(ps.prefix_queries, std::memory_order_relaxed);
    pub_prefix_hits_.store(ps.prefix_hits, std::memory_order_relaxed);
    pub_fragmentation_.store(inst.sched->fragmentation(), std::memory_order_relaxed);
    std::lock_guard<std::mutex> l(pub_mu_);
    pub_times_ = inst.model->times();
    pub_kv_bytes_ = inst.model->kv_bytes();
    pub_scratch_bytes_ = inst.model->scratch_bytes() + inst.logits.capacity() * sizeof(float);
    pub_weight_bytes_ = inst.model->weight_bytes_total();
    pub_weight_by_dtype_ = inst.model->weight_bytes();
    pub_layout_ = inst.layout;
    pub_n_ctx_ = inst.n_ctx;
}

void Engine::thread_main() {
    lower_compute_priority(); // this thread is the pool's worker 0: it computes too
    for (;;) {
        SchedulerConfig cfg;
        std::vector<uint64_t> cancels;
        bool closing;
        {
            std::unique_lock<std::mutex> lock(mu_);
            if (pending_instance_) {
                // Reload: waiting (not yet started) requests move to the new instance with the new arrivals.
                // Those that would not fit a shorter context stay and finish on the old instance.
                Instance * old = instances_.back().get();
                for (SeqState * s : old->sched->take_waiting((size_t) pending_instance_->n_ctx - 1)) {
                    Request * r = static_cast<Request *>(s->owner);
                    r->inst = pending_instance_.get();
                    pending_instance_->sched->add(s);
                }
                instances_.push_back(std::move(pending_instance_));
                publish(*instances_.back()); // reload() returns after this: info() must show the new layout
                cv_.notify_all();
            }
            Instance * target = instances_.back().get();
            // Counted as waiting from now on, so admission control never loses sight of them.
            counters_.waiting.fetch_add((int64_t) incoming_.size(), std::memory_order_relaxed);
            while (!incoming_.empty()) {
                std::shared_ptr<Request> r = incoming_.front();
                incoming_.pop_front();
                r->inst = target;
                target->sched->add(&r->seq);
                live_.push_back(r);
            }
            cancels.swap(cancel_ids_);
            cfg = sched_cfg_;
            closing = closing_;
        }
        for (uint64_t id : cancels)
            for (auto & r : live_)
                if (r->seq.id == id) finish(r->inst, *r, FinishReason::CANCELLED);
        if (closing) {
            for (auto & r : live_) finish(r->inst, *r, FinishReason::CANCELLED);
            live_.clear();
            return;
        }
        // Deadlines: refused while waiting, cut while running.
        auto now = Clock::now();
        for (auto & r : live_) {
            if (!r->done && now > r->deadline) {
                bool started = r->first_scheduled != Clock::time_point::max();
                fail_request(r->inst, *r, ErrorCode::TIMEOUT, started ? "the request's deadline passed while it was running" :
                                                                        "the request's deadline passed while it was waiting");
            }
        }

        bool ran = false;
        for (auto & inst : instances_) {
            try {
                ran |= run_step(*inst, cfg);
            } catch (const EngineException & ex) {
                fail_running(inst.get(), ex.code(), std::string("engine step failed: ") + ex.what());
            } catch (const std::exception & ex) {
                // A failed step fails the requests it held; the engine goes on.
                fail_running(inst.get(), ErrorCode::INTERNAL, std::string("engine step failed: ") + ex.what());
            }
        }
        live_.erase(std::remove_if(live_.begin(), live_.end(), [](const std::shared_ptr<Request> & r) { return r->done; }), live_.end());
        // Old instances are freed once drained.
        while (instances_.size() > 1 && instances_.front()->sched->n_running() == 0 && instances_.front()->sched->n_waiting() == 0)
            instances_.erase(instances_.begin());

        int64_t waiting = 0, running = 0;
        for (auto & inst : instances_) { waiting += inst->sched->n_waiting(); running += inst->sched->n_running(); }
        {
            std::lock_guard<std::mutex> lock(mu_); // admission reads both as one pair
            counters_.waiting.store(waiting, std::memory_order_relaxed);
            counters_.running.store(running, std::memory_order_relaxed);
        }
        publish(*instances_.back());

        if (!ran) {
            // Sleep until new work, a cancel, a reload, the batching delay or the nearest deadline.
            Clock::time_point wake = Clock::time_point::max();
            for (auto & inst : instances_) wake = std::min(wake, inst->sched->ready_at(cfg));
            for (auto & r : live_) wake = std::min(wake, r->deadline);
            std::unique_lock<std::mutex> lock(mu_);
            auto pred = [&] { return closing_ || !incoming_.empty() || !cancel_ids_.empty() || pending_instance_ != nullptr; };
            if (wake == Clock::time_point::max()) cv_.wait(lock, pred);
            else if (wake > Clock::now()) cv_.wait_until(lock, wake, pred);
        }
    }
}

EngineStatsSnapshot Engine::stats() const {
    EngineStatsSnapshot s{};
    const EngineCounters & c = counters_;
    auto ld = [](const auto & a) { return a.load(std::memory_order_relaxed); };
    s.requests_submitted = ld(c.requests_submitted); s.requests_finished = ld(c.requests_finished);
    s.requests_cancelled = ld(c.requests_cancelled); s.requests_timed_out = ld(c.requests_timed_out); s.requests_failed = ld(c.requests_failed);
    for (int i = 0; i < N_REJECT_REASONS; ++i) s.rejected[i] = ld(c.rejected[i]);
    s.running = ld(c.running); s.waiting = ld(c.waiting);
    s.prompt_tokens = ld(c.prompt_tokens); s.generation_tokens = ld(c.generation_tokens);
    s.prefill_tokens_computed = ld(c.prefill_tokens_computed); s.cached_prompt_tokens = ld(c.cached_prompt_tokens);
    s.steps = ld(c.steps); s.preemptions = ld(c.preemptions); s.reloads = ld(c.reloads); s.reconfigures = ld(c.reconfigures);
    for (int i = 0; i < N_FLUSH_REASONS; ++i) s.flushes[i] = ld(c.flushes[i]);
    s.busy_seconds = ld(c.busy_ns) / 1e9;
    s.sampling_seconds = ld(c.sampling_ns) / 1e9;
    s.uptime_seconds = s_between(started_, Clock::now());
    s.queue_time = c.queue_time.snapshot(); s.ttft = c.ttft.snapshot(); s.inter_token = c.inter_token.snapshot(); s.e2e = c.e2e.snapshot();
    s.prompt_len = c.prompt_len.snapshot(); s.generation_len = c.generation_len.snapshot();
    s.batch_size = c.batch_size.snapshot(); s.batch_tokens = c.batch_tokens.snapshot();
    for (int i = 0; i < N_STEP_PHASES; ++i) s.step_duration[i] = c.step_duration[i].snapshot();
    s.kv_blocks_total = ld(pub_blocks_total_); s.kv_blocks_used = ld(pub_blocks_used_);
    s.kv_blocks_cached = ld(pub_blocks_cached_); s.kv_blocks_free = ld(pub_blocks_free_);
    s.kv_usage_ratio = s.kv_blocks_total ? (double) s.kv_blocks_used / s.kv_blocks_total : 0.0;
    s.kv_fragmentation_ratio = ld(pub_fragmentation_);
    s.prefix_queries = ld(pub_prefix_queries_); s.prefix_hits = ld(pub_prefix_hits_);
    {
        std::lock_guard<std::mutex> l(pub_mu_);
        const ModelTimes & t = pub_times_;
        s.op_seconds_matmul = t.matmul; s.op_seconds_attention = t.attention; s.op_seconds_norm = t.norm; s.op_seconds_rope = t.rope;
        s.op_seconds_ffn_act = t.ffn_act; s.op_seconds_embed = t.embed; s.op_seconds_output = t.output;
        s.rank_busy_seconds = t.rank_busy; s.rank_allreduce_seconds = t.rank_allreduce; s.allreduces = t.allreduces;
        s.weight_bytes = pub_weight_bytes_; s.kv_bytes = pub_kv_bytes_; s.scratch_bytes = pub_scratch_bytes_;
        s.weight_bytes_by_dtype = pub_weight_by_dtype_;
        s.layout = pub_layout_; s.n_ctx = pub_n_ctx_;
        s.kv_block_size = pub_layout_.kv_block_size;
    }
    {
        std::lock_guard<std::mutex> l(mu_);
        s.scheduler = sched_cfg_;
    }
    return s;
}

} // namespace tl
