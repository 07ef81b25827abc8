// Publishing the engine's state for monitoring, and assembling stats() snapshots (engine_stats.h).
#include "engine_stats.h"

#include "engine_request.h"

namespace tl {

void EngineStatsBoard::publish(const EngineInstance & inst) {
    BlockPoolStats ps = inst.pool->stats();
    blocks_total_.store(ps.total, std::memory_order_relaxed);
    blocks_used_.store(ps.used, std::memory_order_relaxed);
    blocks_cached_.store(ps.cached, std::memory_order_relaxed);
    blocks_free_.store(ps.free, std::memory_order_relaxed);
    prefix_queries_.store(ps.prefix_queries, std::memory_order_relaxed);
    prefix_hits_.store(ps.prefix_hits, std::memory_order_relaxed);
    fragmentation_.store(inst.sched->fragmentation(), std::memory_order_relaxed);
    std::lock_guard<std::mutex> l(mu_);
    times_ = inst.model->times();
    kv_bytes_ = inst.model->kv_bytes();
    scratch_bytes_ = inst.model->scratch_bytes() + inst.logits.capacity() * sizeof(float);
    weight_bytes_ = inst.model->weight_bytes_total();
    weight_by_dtype_ = inst.model->weight_bytes();
    if (weight_fallbacks_.size() != inst.model->weight_fallbacks().size() || layout_.policy != inst.layout.policy ||
        layout_.tp != inst.layout.tp || active_.total_params == 0) {
        weight_fallbacks_ = inst.model->weight_fallbacks();
        active_ = inst.model->active_counts(); // walks every matrix: only when the instance changes
    }
    layout_ = inst.layout;
    n_ctx_ = inst.n_ctx;
}

ModelLayout EngineStatsBoard::layout() const {
    std::lock_guard<std::mutex> l(mu_);
    return layout_;
}

int EngineStatsBoard::n_ctx() const {
    std::lock_guard<std::mutex> l(mu_);
    return n_ctx_;
}

std::vector<std::pair<std::string, size_t>> EngineStatsBoard::weight_bytes() const {
    std::lock_guard<std::mutex> l(mu_);
    return weight_by_dtype_;
}

MoeActiveCounts EngineStatsBoard::active_counts() const {
    std::lock_guard<std::mutex> l(mu_);
    return active_;
}

std::vector<WeightFallback> EngineStatsBoard::weight_fallbacks() const {
    std::lock_guard<std::mutex> l(mu_);
    return weight_fallbacks_;
}

EngineStatsSnapshot EngineStatsBoard::snapshot(const EngineCounters & c, Clock::time_point started,
                                               const SchedulerConfig & scheduler) const {
    EngineStatsSnapshot s{};
    auto ld = [](const auto & a) { return a.load(std::memory_order_relaxed); };
    s.requests_submitted = ld(c.requests_submitted);
    s.requests_finished = ld(c.requests_finished);
    s.requests_cancelled = ld(c.requests_cancelled);
    s.requests_timed_out = ld(c.requests_timed_out);
    s.requests_failed = ld(c.requests_failed);
    for (int i = 0; i < N_REJECT_REASONS; ++i) s.rejected[i] = ld(c.rejected[i]);
    s.running = ld(c.running);
    s.waiting = ld(c.waiting);
    s.prompt_tokens = ld(c.prompt_tokens);
    s.generation_tokens = ld(c.generation_tokens);
    s.prefill_tokens_computed = ld(c.prefill_tokens_computed);
    s.cached_prompt_tokens = ld(c.cached_prompt_tokens);
    s.steps = ld(c.steps);
    s.preemptions = ld(c.preemptions);
    s.reloads = ld(c.reloads);
    s.reconfigures = ld(c.reconfigures);
    for (int i = 0; i < N_FLUSH_REASONS; ++i) s.flushes[i] = ld(c.flushes[i]);
    s.busy_seconds = ld(c.busy_ns) / 1e9;
    s.sampling_seconds = ld(c.sampling_ns) / 1e9;
    s.grammar.requests = ld(c.grammar.requests);
    s.grammar.tokens = ld(c.grammar.tokens);
    s.grammar.fast_accepts = ld(c.grammar.fast_accepts);
    s.grammar.masks_computed = ld(c.grammar.masks_computed);
    s.grammar.mask_cache_hits = ld(c.grammar.mask_cache_hits);
    s.grammar.dead_ends = ld(c.grammar.dead_ends);
    s.grammar.limit_hits = ld(c.grammar.limit_hits);
    s.grammar.completed = ld(c.grammar.completed);
    s.grammar.triggered = ld(c.grammar.triggered);
    s.grammar.mask_seconds = ld(c.grammar.mask_ns) / 1e9;
    s.uptime_seconds = s_between(started, Clock::now());
    s.queue_time = c.queue_time.snapshot();
    s.ttft = c.ttft.snapshot();
    s.inter_token = c.inter_token.snapshot();
    s.e2e = c.e2e.snapshot();
    s.prompt_len = c.prompt_len.snapshot();
    s.generation_len = c.generation_len.snapshot();
    s.batch_size = c.batch_size.snapshot();
    s.batch_tokens = c.batch_tokens.snapshot();
    for (int i = 0; i < N_STEP_PHASES; ++i) s.step_duration[i] = c.step_duration[i].snapshot();
    s.kv_blocks_total = ld(blocks_total_);
    s.kv_blocks_used = ld(blocks_used_);
    s.kv_blocks_cached = ld(blocks_cached_);
    s.kv_blocks_free = ld(blocks_free_);
    s.kv_usage_ratio = s.kv_blocks_total ? (double) s.kv_blocks_used / s.kv_blocks_total : 0.0;
    s.kv_fragmentation_ratio = ld(fragmentation_);
    s.prefix_queries = ld(prefix_queries_);
    s.prefix_hits = ld(prefix_hits_);
    {
        std::lock_guard<std::mutex> l(mu_);
        const ModelTimes & t = times_;
        s.op_seconds_matmul = t.matmul;
        s.op_seconds_attention = t.attention;
        s.op_seconds_norm = t.norm;
        s.op_seconds_rope = t.rope;
        s.op_seconds_ffn_act = t.ffn_act;
        s.op_seconds_embed = t.embed;
        s.op_seconds_output = t.output;
        s.rank_busy_seconds = t.rank_busy;
        s.rank_allreduce_seconds = t.rank_allreduce;
        s.allreduces = t.allreduces;
        s.moe_tokens = t.moe_tokens;
        s.rank_expert_seconds = t.rank_expert;
        s.rank_alltoall_seconds = t.rank_alltoall;
        s.alltoalls = t.alltoalls;
        s.alltoall_rows = t.alltoall_rows;
        s.weight_bytes = weight_bytes_;
        s.kv_bytes = kv_bytes_;
        s.scratch_bytes = scratch_bytes_;
        s.weight_bytes_by_dtype = weight_by_dtype_;
        s.layout = layout_;
        s.n_ctx = n_ctx_;
        s.kv_block_size = layout_.kv_block_size;
    }
    s.scheduler = scheduler;
    return s;
}

} // namespace tl
