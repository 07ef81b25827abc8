// The engine's step loop: admission (submit, cancel, reconfigure, reload, close) and the thread that plans a step,
// runs the forward pass, samples and feeds each token back. What a request streams and how it ends is
// engine_output.cpp's; what monitoring reads is engine_stats.cpp's (see engine.h).
#include "engine.h"

#include <algorithm>
#include <cmath>

#include "engine_output.h"
#include "engine_request.h"
#include "grammar_matcher.h"
#include "grammar_sampling.h"
#include "model_loader.h"

namespace tl {

const char * finish_reason_name(FinishReason r) {
    switch (r) {
        case FinishReason::STOP: return "stop";
        case FinishReason::LENGTH: return "length";
        case FinishReason::CANCELLED: return "cancelled";
    }
    return "stop";
}

std::unique_ptr<Engine::Instance> Engine::build_instance(const ModelLayout & layout_in, int n_ctx) const {
    ModelLayout layout = layout_in;
    const ModelHParams & hp = hparams_;
    if (n_ctx < 0) fail(ErrorCode::INVALID_ARGUMENT, "contextLength must be positive");
    if (n_ctx > hp.n_ctx_train)
        fail(ErrorCode::INVALID_ARGUMENT,
             "contextLength " + std::to_string(n_ctx) + " exceeds the model's context length of " +
                 std::to_string(hp.n_ctx_train) + " tokens (" + hp.arch + ".context_length)");
    if (n_ctx == 0) n_ctx = hp.n_ctx_train;
    layout.n_ctx = n_ctx; // the architecture may depend on it (Phi-3's LongRoPE factors)
    if (layout.kv_block_size < 1 || layout.kv_block_size > 1024)
        fail(ErrorCode::INVALID_ARGUMENT, "kvBlockSizeTokens must be between 1 and 1024");
    const int32_t per_seq = (n_ctx + layout.kv_block_size - 1) / layout.kv_block_size;
    if (layout.kv_blocks <= 0) {
        // Size the pool from the byte budget: at least one full-context sequence, at most 64 of them.
        // The real bytes a token takes on every rank (an MLA latent row: kv_lora + rope values per layer, replicated
        // per rank; int8 scales included), so a compact cache gets more blocks from the same budget.
        const size_t per_block = kv_bytes_per_token(hp, layout.kv_dtype, layout.tp) * layout.kv_block_size;
        int64_t fit = cfg_.kv_cache_max_bytes / (int64_t) std::max<size_t>(1, per_block);
        layout.kv_blocks = (int32_t) std::clamp<int64_t>(fit, per_seq, (int64_t) per_seq * 64);
    }
    auto inst = std::make_unique<Instance>();
    inst->n_ctx = n_ctx;
    ThreadPool load_pool(layout.n_ranks() * layout.threads_per_rank);
    inst->model = load_model(*file_, layout, load_pool);
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
    e->hparams_ = read_model_hparams(*e->file_); // architecture check before the tokenizer's
    e->tokenizer_ = std::make_unique<Tokenizer>(Tokenizer::from_gguf(*e->file_));
    e->output_ =
        std::make_unique<RequestOutput>(*e->tokenizer_, e->counters_, [p = e.get()](uint64_t id) { p->retire(id); });
    e->grammars_ = std::make_unique<GrammarRegistry>(*e->tokenizer_, e->counters_.grammar);
    // The vocabulary trie of grammar-constrained decoding, built here (off the event loop) rather than at the first
    // grammar request, which would otherwise block its caller (~20 MB and tens of ms for a 128k vocabulary).
    e->grammars_->trie();
    if (e->tokenizer_->n_vocab() > e->hparams_.n_vocab)
        fail(ErrorCode::MODEL_CORRUPT,
             "model '" + cfg.model_path + "': tokenizer has " + std::to_string(e->tokenizer_->n_vocab()) +
                 " tokens but token_embd.weight only " + std::to_string(e->hparams_.n_vocab) + " rows");
    ModelLayout checked = cfg.layout; // the pool is sized later: any block count passes here
    checked.kv_blocks = 1;
    check_layout(e->hparams_, checked);
    e->instances_.push_back(e->build_instance(cfg.layout, cfg.n_ctx));
    e->board_.publish(*e->instances_.back());
    e->load_ms_ = ms_between(t0, Clock::now());
    e->started_ = Clock::now();
    e->thread_ = std::thread([p = e.get()] { p->thread_main(); });
    return e;
}

Engine::Engine() = default;
Engine::~Engine() { close(); }

ModelLayout Engine::layout() const { return board_.layout(); }
int Engine::n_ctx() const { return board_.n_ctx(); }
SchedulerConfig Engine::scheduler_config() const {
    std::lock_guard<std::mutex> l(mu_);
    return sched_cfg_;
}
std::vector<std::pair<std::string, size_t>> Engine::weight_bytes() const { return board_.weight_bytes(); }
std::vector<WeightFallback> Engine::weight_fallbacks() const { return board_.weight_fallbacks(); }
MoeActiveCounts Engine::active_counts() const { return board_.active_counts(); }

uint64_t Engine::enqueue(std::shared_ptr<Request> r) {
    enqueue_group({r});
    return r->seq.id;
}

void Engine::enqueue_group(const std::vector<std::shared_ptr<Request>> & group) {
    std::lock_guard<std::mutex> lock(mu_);
    if (closing_) {
        counters_.rejected[(int) RejectReason::CLOSED].fetch_add(1, std::memory_order_relaxed);
        fail(ErrorCode::ENGINE_CLOSED, "the engine is closed");
    }
    // maxQueueLength bounds the requests that must wait behind a full batch, not those the next step takes at once:
    // free batch slots absorb arrivals first (an idle engine with maxQueueLength 0 still serves). Running and waiting
    // are published together under mu_ after each step, and moved arrivals count as waiting until then, so the sum
    // seen here never loses a request in flight between the queues.
    const int64_t free_slots =
        std::max<int64_t>(0, (int64_t) sched_cfg_.max_batch_size - counters_.running.load(std::memory_order_relaxed));
    const int64_t queued = (int64_t) incoming_.size() + counters_.waiting.load(std::memory_order_relaxed) - free_slots;
    if (queued >= sched_cfg_.max_queue_length) { // this request would make queued + 1 wait
        counters_.rejected[(int) RejectReason::QUEUE_FULL].fetch_add(1, std::memory_order_relaxed);
        fail(ErrorCode::QUEUE_FULL, "the engine queue is full (" + std::to_string(queued) +
                                        " waiting, maxQueueLength " + std::to_string(sched_cfg_.max_queue_length) +
                                        ")");
    }
    // A group (n choices) is admitted or refused whole, under one lock, so the engine thread takes all of it at once:
    // only its first request ever waits in a queue (the others are held until it forks).
    const auto arrival = Clock::now();
    for (const auto & r : group) {
        r->seq.id = next_id_++;
        r->seq.owner = r.get();
        r->seq.arrival = arrival;
        if (!r->is_evaluate && r->params.deadline_ms > 0)
            r->deadline = r->seq.arrival + std::chrono::microseconds((int64_t) (r->params.deadline_ms * 1000.0));
        counters_.requests_submitted.fetch_add(1, std::memory_order_relaxed);
        active_ids_.insert(r->seq.id);
        if (!r->is_evaluate) {
            counters_.prompt_tokens.fetch_add(r->seq.n_prompt, std::memory_order_relaxed);
            counters_.prompt_len.observe(r->seq.n_prompt);
        }
        incoming_.push_back(r);
    }
    cv_.notify_one();
}

uint64_t Engine::submit(GenerateParams params, EventSink sink) {
    std::vector<EventSink> sinks;
    sinks.push_back(std::move(sink));
    return submit_n(std::move(params), std::move(sinks))[0];
}

std::vector<uint64_t> Engine::submit_n(GenerateParams params, std::vector<EventSink> sinks) {
    auto reject = [&](RejectReason why, ErrorCode code, const std::string & msg) {
        counters_.rejected[(int) why].fetch_add(1, std::memory_order_relaxed);
        fail(code, msg);
    };
    if (params.prompt.empty())
        reject(RejectReason::INVALID, ErrorCode::INVALID_ARGUMENT, "prompt must contain at least one token");
    for (int32_t t : params.prompt)
        if (t < 0 || t >= hparams_.n_vocab)
            reject(RejectReason::INVALID, ErrorCode::INVALID_ARGUMENT,
                   "token id " + std::to_string(t) + " is outside the vocabulary (0.." +
                       std::to_string(hparams_.n_vocab - 1) + ")");
    const int ctx = n_ctx();
    if ((int) params.prompt.size() >= ctx)
        reject(RejectReason::CONTEXT_OVERFLOW, ErrorCode::CONTEXT_OVERFLOW,
               "prompt of " + std::to_string(params.prompt.size()) + " tokens does not fit the context window of " +
                   std::to_string(ctx) + " tokens (at least one token must be left to generate)");
    if (sinks.empty() || (int) sinks.size() > MAX_CHOICES)
        reject(RejectReason::INVALID, ErrorCode::INVALID_ARGUMENT,
               "n must be between 1 and " + std::to_string(MAX_CHOICES) + ", got " + std::to_string(sinks.size()));
    // One compiled grammar for every choice (each gets its own matcher state at its first token).
    std::shared_ptr<const CompiledGrammar> grammar_def;
    if (!params.grammar.empty()) {
        try {
            grammar_def = grammars_->compile(params.grammar, !params.grammar_triggers.empty());
        } catch (const EngineException & ex) {
            reject(RejectReason::INVALID, ex.code(), ex.what());
        }
        counters_.grammar.requests.fetch_add(sinks.size(), std::memory_order_relaxed);
    }
    std::vector<std::shared_ptr<Request>> group;
    for (size_t i = 0; i < sinks.size(); ++i) {
        auto r = std::make_shared<Request>();
        r->seq.tokens = params.prompt;
        r->seq.n_prompt = (int32_t) params.prompt.size();
        SamplingParams sp = params.sampling;
        sp.seed += i; // choice i's documented seed (wraps)
        r->sampler = std::make_unique<Sampler>(sp, params.prompt);
        r->stops = std::make_unique<StopMatcher>(params.stop);
        r->grammar_def = grammar_def;
        r->params = params;
        r->params.sampling.seed = sp.seed;
        r->sink = std::move(sinks[i]);
        r->held = i > 0;
        if (i > 0) group[0]->forks.push_back(r);
        group.push_back(r);
    }
    enqueue_group(group);
    std::vector<uint64_t> ids;
    for (const auto & r : group) ids.push_back(r->seq.id);
    return ids;
}

uint64_t Engine::submit_evaluate(std::vector<int32_t> tokens, bool all_logits, EvalDone done, bool hidden_states) {
    if (tokens.empty()) fail(ErrorCode::INVALID_ARGUMENT, "tokens must not be empty");
    const int ctx = n_ctx();
    if ((int) tokens.size() > ctx)
        fail(ErrorCode::CONTEXT_OVERFLOW,
             std::to_string(tokens.size()) + " tokens do not fit the context window of " + std::to_string(ctx));
    for (int32_t t : tokens)
        if (t < 0 || t >= hparams_.n_vocab)
            fail(ErrorCode::INVALID_ARGUMENT, "token id " + std::to_string(t) + " is outside the vocabulary");
    auto r = std::make_shared<Request>();
    r->is_evaluate = true;
    r->seq.tokens = std::move(tokens);
    r->seq.n_prompt = (int32_t) r->seq.tokens.size();
    r->seq.use_prefix_cache = false; // every position's logits are computed
    r->seq.all_logits = all_logits && !hidden_states;
    r->is_embed = hidden_states;
    if (hidden_states) r->eval_logits.assign(r->seq.tokens.size() * (size_t) hparams_.dim, 0.0f);
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

bool Engine::resume(uint64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!active_ids_.count(id)) return false;
    resume_ids_.push_back(id);
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
    ModelLayout checked = layout;
    checked.kv_blocks = 1;
    check_layout(hparams_, checked);
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

void Engine::retire(uint64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    active_ids_.erase(id);
}

// One step of one instance: plan, forward, sample. Returns false when it had nothing to run.
bool Engine::run_step(Instance & inst, const SchedulerConfig & cfg) {
    auto t0 = Clock::now();
    StepPlan plan = inst.sched->plan(cfg, t0);
    counters_.preemptions.fetch_add(plan.preempted.size(), std::memory_order_relaxed);
    for (SeqState * s : plan.preempted) {
        Request & r = Request::of(s);
        if (!r.is_embed)
            r.eval_logits.clear(); // an evaluation is recomputed from its first token (hidden rows:
                                   // rewritten in place)
    }
    if (plan.seqs.empty()) {
        // A sequence that needs more blocks than the whole pool would wait (or be preempted) forever.
        if (SeqState * s = inst.sched->unservable()) {
            Request & r = Request::of(s);
            output_->fail(r, ErrorCode::OUT_OF_MEMORY,
                          "the KV cache (" + std::to_string(inst.pool->n_blocks()) + " blocks of " +
                              std::to_string(inst.pool->block_size()) + " tokens) cannot hold a sequence of " +
                              std::to_string(s->tokens.size()) + " tokens: raise kvCacheBlocks or kvCacheMaxBytes");
            return true;
        }
        return false;
    }

    const int32_t V = hparams_.n_vocab;
    std::vector<BatchEntry> batch;
    batch.reserve(plan.seqs.size());
    for (const ScheduledSeq & q : plan.seqs) {
        SeqState * s = q.seq;
        Request & r = Request::of(s);
        if (!r.started()) {
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
        e.want_logits = !r.is_embed && (s->all_logits || q.completes_prefill);
        if (r.is_embed) e.hidden = r.eval_logits.data() + (size_t) s->n_computed * hparams_.dim;
        batch.push_back(e);
        if (s->n_computed < s->n_prompt)
            counters_.prefill_tokens_computed.fetch_add(q.n_tokens, std::memory_order_relaxed);
    }
    inst.logits.resize((size_t) std::max<int64_t>(1, Model::logits_rows(batch)) * V);
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
        Request & r = Request::of(q.seq);
        const BatchEntry & e = batch[i];
        if (r.is_evaluate) {
            const size_t rows = e.all_logits ? (size_t) e.n_tokens : (e.want_logits ? 1 : 0);
            if (!r.is_embed && (e.all_logits || e.want_logits))
                r.eval_logits.insert(r.eval_logits.end(), inst.logits.begin() + row * V,
                                     inst.logits.begin() + (row + rows) * V);
            row += rows;
            if (q.completes_prefill) output_->evaluated(r);
            continue;
        }
        if (!e.want_logits) continue;
        float * logits = inst.logits.data() + row * V;
        row += 1;
        if (!r.forks.empty()) fork_choices(inst, r, logits); // before r's sampler overwrites the row
        TokenLogprob lp;
        TokenLogprob * want_lp = r.params.sampling.n_logprobs >= 0 ? &lp : nullptr;
        const int32_t tok = sample_token(r, logits, want_lp);
        auto now = Clock::now();
        if (r.prefill_done == Clock::time_point::max()) {
            r.prefill_done = now;
            counters_.ttft.observe(s_between(r.seq.arrival, now));
        } else {
            counters_.inter_token.observe(s_between(r.last_token, now));
        }
        r.last_token = now;
        deliver_token(r, tok, want_lp);
    }

    counters_.busy_ns.fetch_add((uint64_t) (s_between(t0, Clock::now()) * 1e9), std::memory_order_relaxed);
    // Stats describe the newest instance: an old one still draining after a reload must not overwrite them.
    if (&inst == instances_.back().get()) board_.publish(inst);
    return true;
}

int32_t Engine::sample_token(Request & r, float * logits, TokenLogprob * lp) {
    // Only ids the tokenizer knows can be sampled: a vocabulary padded in token_embd has rows beyond it.
    auto ts = Clock::now();
    if (r.grammar_def) {
        // Grammar-constrained (grammar_sampling.h): the one draw an unconstrained request makes too counts as
        // sampling time, everything else (check, mask, a resample) as grammar mask time.
        if (!r.grammar)
            r.grammar =
                std::make_unique<GrammarConstraint>(grammars_->runtime(r.grammar_def), r.params.grammar_triggers);
        uint64_t sampler_ns = 0;
        const int32_t tok = sample_with_grammar(*r.grammar, *r.sampler, logits, tokenizer_->n_vocab(), lp,
                                                counters_.grammar, &sampler_ns);
        const uint64_t total_ns = (uint64_t) (s_between(ts, Clock::now()) * 1e9);
        counters_.sampling_ns.fetch_add(sampler_ns, std::memory_order_relaxed);
        counters_.grammar.mask_ns.fetch_add(total_ns > sampler_ns ? total_ns - sampler_ns : 0,
                                            std::memory_order_relaxed);
        return tok;
    }
    const int32_t tok = r.sampler->sample(logits, tokenizer_->n_vocab(), lp);
    counters_.sampling_ns.fetch_add((uint64_t) (s_between(ts, Clock::now()) * 1e9), std::memory_order_relaxed);
    return tok;
}

void Engine::deliver_token(Request & r, int32_t tok, const TokenLogprob * lp) {
    if (tok < 0) {
        // Grammar dead end: no token can continue the text (docs/structured-output.md).
        counters_.grammar.dead_ends.fetch_add(1, std::memory_order_relaxed);
        output_->stop(r);
        return;
    }
    output_->token(r, tok, lp); // may end it
    if (r.grammar && !r.done) grammar_accept(r, tok);
}

void Engine::grammar_accept(Request & r, int32_t tok) {
    auto t0 = Clock::now();
    const bool was_active = r.grammar->active();
    // A lazy grammar looks for its triggers in the text, control tokens included (Qwen's <tool_call> is one).
    const std::string text =
        tokenizer_->token_type(tok) == 3 ? tokenizer_->token_text(tok) : tokenizer_->token_to_piece(tok);
    const bool ok = r.grammar->accept(tok, text);
    if (!was_active && r.grammar->active()) counters_.grammar.triggered.fetch_add(1, std::memory_order_relaxed);
    if (!ok) {
        counters_.grammar.dead_ends.fetch_add(1, std::memory_order_relaxed);
        output_->stop(r);
    } else if (r.grammar->complete()) {
        counters_.grammar.completed.fetch_add(1, std::memory_order_relaxed);
        output_->stop(r);
    }
    counters_.grammar.mask_ns.fetch_add((uint64_t) (s_between(t0, Clock::now()) * 1e9), std::memory_order_relaxed);
}

void Engine::fork_choices(Instance & inst, Request & parent, const float * logits) {
    std::vector<std::shared_ptr<Request>> forks;
    forks.swap(parent.forks);
    const SeqState & ps = parent.seq;
    // The first sample of choice 0 comes right after its prompt is computed (a preempted choice 0 recomputes only
    // once it has generated, by which time it has forked): the cache holds exactly the prompt.
    if (ps.n_computed != ps.n_prompt || (int32_t) ps.tokens.size() != ps.n_prompt)
        fail(ErrorCode::INTERNAL, "fork_choices: choice 0 is not at the end of its prompt");
    BlockPool & pool = *inst.pool;
    const int32_t bs = pool.block_size();
    const int32_t n_full = ps.n_prompt / bs; // never written again: shared by reference
    const bool partial = ps.n_prompt % bs != 0;
    const int32_t V = hparams_.n_vocab;
    std::vector<float> row;
    for (auto & cp : forks) {
        Request & c = *cp;
        if (c.done) continue; // cancelled or timed out while held
        c.held = false;
        c.inst = &inst;
        SeqState & cs = c.seq;
        auto now = Clock::now();
        c.first_scheduled = now;
        counters_.queue_time.observe(s_between(cs.arrival, now));
        int32_t copy = -1;
        if (partial) copy = pool.allocate();
        if (partial && copy < 0) {
            // No block for the copy: this choice is recomputed from its prompt (plus the token sampled below) like a
            // preempted sequence; the prefix cache may still give it the full blocks.
            c.cached_prompt_tokens = 0;
            inst.sched->add_front(&cs);
        } else {
            for (int32_t b = 0; b < n_full; ++b) {
                pool.retain(ps.blocks[b]);
                cs.blocks.push_back(ps.blocks[b]);
            }
            if (partial) {
                inst.model->copy_kv_block(ps.blocks[n_full], copy); // copy-on-write: this choice writes past it
                cs.blocks.push_back(copy);
            }
            cs.n_computed = ps.n_computed;
            cs.n_hashed = ps.n_hashed;
            cs.last_hash = ps.last_hash;
            cs.use_prefix_cache = ps.use_prefix_cache;
            cs.admitted_once = true;
            c.cached_prompt_tokens = ps.n_prompt;
            counters_.cached_prompt_tokens.fetch_add(ps.n_prompt, std::memory_order_relaxed);
            inst.sched->add_running(&cs);
        }
        // Its first token comes from the same logits as choice 0's, with its own sampler.
        row.assign(logits, logits + V);
        TokenLogprob lp;
        const bool want_lp = c.params.sampling.n_logprobs >= 0;
        const int32_t tok = sample_token(c, row.data(), want_lp ? &lp : nullptr);
        now = Clock::now();
        c.prefill_done = now;
        c.last_token = now;
        counters_.ttft.observe(s_between(cs.arrival, now));
        deliver_token(c, tok, want_lp ? &lp : nullptr); // may end it (its blocks go back through the scheduler)
    }
}

void Engine::fail_running(Instance * inst, ErrorCode code, const std::string & msg) {
    for (auto & r : live_)
        if (r->inst == inst && !r->done && r->started()) output_->fail(*r, code, msg);
}

void Engine::thread_main() {
    lower_compute_priority(); // this thread is the pool's worker 0: it computes too
    for (;;) {
        SchedulerConfig cfg;
        std::vector<uint64_t> cancels, resumes;
        bool closing;
        {
            std::unique_lock<std::mutex> lock(mu_);
            if (pending_instance_) {
                // Reload: waiting (not yet started) requests move to the new instance with the new arrivals.
                // Those that would not fit a shorter context stay and finish on the old instance.
                Instance * old = instances_.back().get();
                for (SeqState * s : old->sched->take_waiting((size_t) pending_instance_->n_ctx - 1)) {
                    Request * r = &Request::of(s);
                    r->inst = pending_instance_.get();
                    pending_instance_->sched->add(s);
                }
                instances_.push_back(std::move(pending_instance_));
                board_.publish(*instances_.back()); // reload() returns after this: info() must show the new layout
                cv_.notify_all();
            }
            Instance * target = instances_.back().get();
            // Counted as waiting from now on, so admission control never loses sight of them.
            counters_.waiting.fetch_add((int64_t) incoming_.size(), std::memory_order_relaxed);
            while (!incoming_.empty()) {
                std::shared_ptr<Request> r = incoming_.front();
                incoming_.pop_front();
                r->inst = target;
                if (!r->held) target->sched->add(&r->seq);
                live_.push_back(r);
            }
            cancels.swap(cancel_ids_);
            resumes.swap(resume_ids_);
            cfg = sched_cfg_;
            closing = closing_;
        }
        for (uint64_t id : cancels)
            for (auto & r : live_)
                if (r->seq.id == id) output_->cancel(*r);
        for (uint64_t id : resumes)
            for (auto & r : live_)
                if (r->seq.id == id) {
                    r->params.pause_after_tokens = 0; // disarmed: a resume before the pause point means no pause
                    r->seq.paused = false;
                }
        if (closing) {
            for (auto & r : live_) output_->cancel(*r);
            live_.clear();
            return;
        }
        // Deadlines: refused while waiting, cut while running.
        auto now = Clock::now();
        for (auto & r : live_) {
            if (!r->done && now > r->deadline)
                output_->fail(*r, ErrorCode::TIMEOUT,
                              r->started() ? "the request's deadline passed while it was running"
                                           : "the request's deadline passed while it was waiting");
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
        live_.erase(
            std::remove_if(live_.begin(), live_.end(), [](const std::shared_ptr<Request> & r) { return r->done; }),
            live_.end());
        // Old instances are freed once drained.
        while (instances_.size() > 1 && instances_.front()->sched->n_running() == 0 &&
               instances_.front()->sched->n_waiting() == 0)
            instances_.erase(instances_.begin());

        int64_t waiting = 0, running = 0;
        for (auto & inst : instances_) {
            waiting += inst->sched->n_waiting();
            running += inst->sched->n_running();
        }
        {
            std::lock_guard<std::mutex> lock(mu_); // admission reads both as one pair
            counters_.waiting.store(waiting, std::memory_order_relaxed);
            counters_.running.store(running, std::memory_order_relaxed);
        }
        board_.publish(*instances_.back());

        if (!ran) {
            // Sleep until new work, a cancel, a resume, a reload, the batching delay or the nearest deadline.
            Clock::time_point wake = Clock::time_point::max();
            bool paused = false;
            for (auto & inst : instances_) {
                wake = std::min(wake, inst->sched->ready_at(cfg));
                paused = paused || inst->sched->has_paused();
            }
            // Paused requests hold batch slots and KV blocks, so work that is ready may still not run: wait for an
            // event rather than spin.
            if (paused && wake <= Clock::now()) wake = Clock::time_point::max();
            for (auto & r : live_) wake = std::min(wake, r->deadline);
            std::unique_lock<std::mutex> lock(mu_);
            auto pred = [&] {
                return closing_ || !incoming_.empty() || !cancel_ids_.empty() || !resume_ids_.empty() ||
                       pending_instance_ != nullptr;
            };
            if (wake == Clock::time_point::max()) cv_.wait(lock, pred);
            else if (wake > Clock::now()) cv_.wait_until(lock, wake, pred);
        }
    }
}

EngineStatsSnapshot Engine::stats() const { return board_.snapshot(counters_, started_, scheduler_config()); }

} // namespace tl
