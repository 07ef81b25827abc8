// Engine statistics: counters and histograms kept with relaxed atomics by the step loop, read as one snapshot by
// a scrape (which never takes the engine's lock, so reading never stalls a step).
//
// Histogram buckets span a tiny CPU model (tens of microseconds per step) to a large GPU model (tens of seconds).
#pragma once
#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "grammar_stats.h"

namespace tl {

// Upper bounds (le) of the latency buckets, seconds.
constexpr std::array<double, 22> LATENCY_BUCKETS_S = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                      0.025,   0.05,   0.1,     0.25,   0.5,   1.0,    2.5,   5.0,
                                                      10.0,    20.0,   30.0,    60.0,   120.0, 300.0};
// Upper bounds of count buckets (batch sizes, tokens per batch or request).
constexpr std::array<double, 15> COUNT_BUCKETS = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384};

struct HistogramSnapshot {
    std::vector<double> bounds;   // upper bounds; +Inf implied after the last
    std::vector<uint64_t> counts; // per bucket (not cumulative), bounds.size() + 1 entries
    double sum = 0;
    uint64_t count = 0;
};

template <size_t N>
class Histogram {
public:
    explicit Histogram(const std::array<double, N> & bounds) : bounds_(bounds) {
        for (auto & c : counts_) c.store(0, std::memory_order_relaxed);
    }
    void observe(double v) {
        size_t i = 0;
        while (i < N && v > bounds_[i]) ++i;
        counts_[i].fetch_add(1, std::memory_order_relaxed);
        // Sum as fixed-point nanounits so it can be an atomic integer.
        sum_nano_.fetch_add((uint64_t) (v * 1e9 + 0.5), std::memory_order_relaxed);
    }
    HistogramSnapshot snapshot() const {
        HistogramSnapshot s;
        s.bounds.assign(bounds_.begin(), bounds_.end());
        for (auto & c : counts_) {
            uint64_t v = c.load(std::memory_order_relaxed);
            s.counts.push_back(v);
            s.count += v;
        }
        s.sum = (double) sum_nano_.load(std::memory_order_relaxed) / 1e9;
        return s;
    }

private:
    std::array<double, N> bounds_;
    std::array<std::atomic<uint64_t>, N + 1> counts_;
    std::atomic<uint64_t> sum_nano_{0};
};

using LatencyHistogram = Histogram<LATENCY_BUCKETS_S.size()>;
using CountHistogram = Histogram<COUNT_BUCKETS.size()>;

enum class FlushReason { FULL = 0, TIMEOUT = 1, QUEUE_THRESHOLD = 2 };
constexpr int N_FLUSH_REASONS = 3;
const char * flush_reason_name(FlushReason r);

enum class StepPhase { PREFILL = 0, DECODE = 1, MIXED = 2 };
constexpr int N_STEP_PHASES = 3;
const char * step_phase_name(StepPhase p);

enum class RejectReason { QUEUE_FULL = 0, CONTEXT_OVERFLOW = 1, INVALID = 2, CLOSED = 3 };
constexpr int N_REJECT_REASONS = 4;
const char * reject_reason_name(RejectReason r);

struct EngineCounters {
    std::atomic<uint64_t> requests_submitted{0}, requests_finished{0}, requests_cancelled{0}, requests_timed_out{0},
        requests_failed{0};
    std::array<std::atomic<uint64_t>, N_REJECT_REASONS> rejected{};
    std::atomic<uint64_t> prompt_tokens{0}, generation_tokens{0}, prefill_tokens_computed{0}, cached_prompt_tokens{0};
    std::atomic<uint64_t> steps{0}, preemptions{0};
    std::array<std::atomic<uint64_t>, N_FLUSH_REASONS> flushes{};
    std::atomic<int64_t> running{0}, waiting{0};
    std::atomic<uint64_t> busy_ns{0}; // time inside steps (utilisation = busy / wall)
    std::atomic<uint64_t> sampling_ns{0};
    std::atomic<uint64_t> reloads{0}, reconfigures{0};
    GrammarCounters grammar;

    LatencyHistogram queue_time{LATENCY_BUCKETS_S}, ttft{LATENCY_BUCKETS_S}, inter_token{LATENCY_BUCKETS_S},
        e2e{LATENCY_BUCKETS_S};
    CountHistogram prompt_len{COUNT_BUCKETS}, generation_len{COUNT_BUCKETS}, batch_size{COUNT_BUCKETS},
        batch_tokens{COUNT_BUCKETS};
    std::array<LatencyHistogram, N_STEP_PHASES> step_duration{
        LatencyHistogram{LATENCY_BUCKETS_S}, LatencyHistogram{LATENCY_BUCKETS_S}, LatencyHistogram{LATENCY_BUCKETS_S}};
};

} // namespace tl
