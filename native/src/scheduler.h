// Continuous batching scheduler (iteration-level, as in Orca and vLLM).
//
// Design note. The engine runs one forward pass ("step") at a time over a batch that mixes sequences in prefill and
// in decode. Between steps, sequences join (admission from the FIFO waiting queue) and leave (finished, cancelled,
// timed out). Each step is planned here under two budgets: at most `max_batch_size` sequences and at most
// `max_batch_tokens` tokens. Running sequences are served first, in admission order: a decoding sequence takes one
// token, one still in prefill takes the next chunk of its prompt (long prompts are prefilled in chunks that fit the
// remaining token budget). Then waiting sequences are admitted in order while both budgets and the KV pool allow.
//
// Dynamic batching. When nothing is running, an under-full batch may wait up to `max_queue_delay_ms` (measured from
// the oldest waiting request) for more work; it runs at once when it is full (`max_batch_size` requests or
// `max_batch_tokens` prompt tokens waiting) or when more than `queue_grow_threshold` requests wait (seed 000: grow the
// batch to its maximum under queue pressure). While sequences are running, steps never wait: new arrivals join at the
// next step boundary. Every step records why it ran: `full` (a budget was reached), `queue_threshold` (the queue was
// over the threshold), otherwise `timeout` (it ran under-full: the delay expired, or running work could not wait).
//
// KV blocks. Before a sequence's tokens are scheduled, blocks for them are allocated from the pool. A newly admitted
// sequence first reuses cached blocks of an identical prompt prefix (prefix caching, full blocks only, and never its
// last prompt token, whose logits are needed). When the pool is exhausted, the most recently admitted running
// sequence is preempted: its blocks are released and it goes back to the front of the queue, to be recomputed from
// its prompt and the tokens generated so far (preemption by recomputation).
#pragma once
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "block_pool.h"
#include "model.h"
#include "stats.h"

namespace tl {

using Clock = std::chrono::steady_clock;

struct SchedulerConfig {
    int32_t max_batch_size = 16;
    int32_t max_batch_tokens = 512;
    double max_queue_delay_ms = 2.0;
    int32_t queue_grow_threshold = 32;
    int32_t max_queue_length = 256;
};

// What the scheduler needs to know of a request. The engine derives its generation state from this.
struct SeqState {
    void * owner = nullptr; // the engine's request that holds this state
    uint64_t id = 0;
    std::vector<int32_t> tokens; // prompt followed by the tokens generated so far
    int32_t n_prompt = 0;
    int32_t n_computed = 0;       // leading tokens whose K/V are in the cache
    std::vector<int32_t> blocks;  // block table
    int32_t n_hashed = 0;         // leading full blocks registered in the prefix cache
    uint64_t last_hash = 0;       // chained hash of block n_hashed - 1
    bool use_prefix_cache = true; // false for evaluation (every position's logits are wanted)
    bool all_logits = false;
    Clock::time_point arrival;
    bool admitted_once = false;
    // Held by its caller (a test hook: GenerateParams::pause_after_tokens): never scheduled. Running, it keeps its
    // batch slot and blocks; waiting (preempted while paused), it is passed over by admission.
    bool paused = false;
};

struct ScheduledSeq {
    SeqState * seq;
    int32_t n_tokens;       // tokens of this step, starting at seq->n_computed
    bool completes_prefill; // after this step every token of seq->tokens is computed: sample next
};

struct StepPlan {
    std::vector<ScheduledSeq> seqs;
    int32_t n_tokens = 0;
    FlushReason reason = FlushReason::TIMEOUT;
    StepPhase phase = StepPhase::DECODE;
    std::vector<SeqState *> preempted;
};

class Scheduler {
public:
    Scheduler(BlockPool & pool, int32_t n_ctx) : pool_(pool), n_ctx_(n_ctx) {}

    void add(SeqState * s) { waiting_.push_back(s); }
    // A forked choice (engine.cpp): already holds the blocks of its computed tokens, so it joins the running ones as
    // the newest; or, when no block was left for its copy, it waits at the front to be recomputed like a preempted one.
    void add_running(SeqState * s) { running_.push_back(s); }
    void add_front(SeqState * s) { waiting_.push_front(s); }
    size_t n_waiting() const { return waiting_.size(); }
    size_t n_running() const { return running_.size(); }
    const std::deque<SeqState *> & waiting() const { return waiting_; }
    const std::vector<SeqState *> & running() const { return running_; }

    // When nothing is running: the time at which the waiting batch should run if no more work arrives
    // (Clock::time_point::max() when nothing waits). Running work never waits. Paused sequences are not work: with
    // only those running and no free batch slot, nothing is ready (max()).
    Clock::time_point ready_at(const SchedulerConfig & cfg) const;
    // Some sequence, running or waiting, is paused.
    bool has_paused() const;

    // Plan one step (empty when there is nothing to run yet).
    StepPlan plan(const SchedulerConfig & cfg, Clock::time_point now);
    // After the step ran: advance n_computed and register newly full blocks in the prefix cache.
    void commit(const StepPlan & plan);
    // Remove a sequence (finished, cancelled, timed out) and release its blocks.
    void remove(SeqState * s);
    // Take the waiting sequences of at most `max_tokens` tokens (to move them to another instance on reload).
    std::deque<SeqState *> take_waiting(size_t max_tokens);

    // With nothing running: the first waiting sequence if it needs more blocks than the pool holds in all.
    SeqState * unservable() const;
    // Reserved token slots over used ones across running sequences (1.0 = no waste).
    double fragmentation() const;

private:
    BlockPool & pool_;
    int32_t n_ctx_;
    std::deque<SeqState *> waiting_;
    std::vector<SeqState *> running_; // admission order

    bool ensure_blocks(SeqState * s, int32_t n_tokens_total);
    void release_blocks(SeqState * s);
    void reuse_cached_prefix(SeqState * s);
    void preempt(SeqState * s);
};

} // namespace tl
