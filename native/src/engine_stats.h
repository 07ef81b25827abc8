// What monitoring reads of the engine. The step loop publishes the state of the newest instance (KV blocks, prefix
// cache, per-operation and per-rank times, memory, layout) after each step into EngineStatsBoard; stats() combines
// that with the live counters (stats.h) into one snapshot without taking the loop's lock or waiting for a step. Kept
// apart from the loop so that adding a metric touches this unit and the binding, not the scheduling code.
#pragma once
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "model.h"
#include "scheduler.h"
#include "stats.h"

namespace tl {

struct EngineInstance;

// One consistent-enough view of the engine for monitoring (each field is read atomically).
struct EngineStatsSnapshot {
    uint64_t requests_submitted, requests_finished, requests_cancelled, requests_timed_out, requests_failed;
    uint64_t rejected[N_REJECT_REASONS];
    int64_t running, waiting;
    uint64_t prompt_tokens, generation_tokens, prefill_tokens_computed, cached_prompt_tokens;
    uint64_t steps, preemptions, flushes[N_FLUSH_REASONS], reloads, reconfigures;
    double busy_seconds, sampling_seconds, uptime_seconds;
    HistogramSnapshot queue_time, ttft, inter_token, e2e, prompt_len, generation_len, batch_size, batch_tokens;
    HistogramSnapshot step_duration[N_STEP_PHASES];
    int32_t kv_blocks_total, kv_blocks_used, kv_blocks_cached, kv_blocks_free, kv_block_size;
    double kv_usage_ratio, kv_fragmentation_ratio;
    uint64_t prefix_queries, prefix_hits;
    double op_seconds_matmul, op_seconds_attention, op_seconds_norm, op_seconds_rope, op_seconds_ffn_act,
        op_seconds_embed, op_seconds_output;
    std::vector<double> rank_busy_seconds, rank_allreduce_seconds;
    uint64_t allreduces;
    // Mixture-of-Experts (empty for a dense model): ModelTimes' moe_tokens, rank_expert, rank_alltoall, alltoalls.
    std::vector<std::vector<uint64_t>> moe_tokens;
    std::vector<double> rank_expert_seconds, rank_alltoall_seconds;
    uint64_t alltoalls, alltoall_rows;
    size_t weight_bytes, kv_bytes, scratch_bytes;
    std::vector<std::pair<std::string, size_t>> weight_bytes_by_dtype;
    SchedulerConfig scheduler;
    ModelLayout layout;
    int32_t n_ctx;
    GrammarStatsSnapshot grammar;
};

class EngineStatsBoard {
public:
    // Engine thread (and load): copy the instance's state for readers.
    void publish(const EngineInstance & inst);
    // Any thread.
    ModelLayout layout() const;
    int n_ctx() const;
    std::vector<std::pair<std::string, size_t>> weight_bytes() const;
    std::vector<WeightFallback> weight_fallbacks() const;
    MoeActiveCounts active_counts() const;
    // Counters plus the last published state; `scheduler` is the live batching config, `started` the engine's start.
    EngineStatsSnapshot snapshot(const EngineCounters & c, Clock::time_point started,
                                 const SchedulerConfig & scheduler) const;

private:
    std::atomic<int32_t> blocks_total_{0}, blocks_used_{0}, blocks_cached_{0}, blocks_free_{0};
    std::atomic<uint64_t> prefix_queries_{0}, prefix_hits_{0};
    std::atomic<double> fragmentation_{1.0};
    mutable std::mutex mu_; // guards the model times and memory below (copied once per step)
    ModelTimes times_;
    size_t kv_bytes_ = 0, scratch_bytes_ = 0, weight_bytes_ = 0;
    std::vector<std::pair<std::string, size_t>> weight_by_dtype_;
    std::vector<WeightFallback> weight_fallbacks_;
    MoeActiveCounts active_;
    ModelLayout layout_;
    int32_t n_ctx_ = 0;
};

} // namespace tl
