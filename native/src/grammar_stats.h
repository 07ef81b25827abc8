// Grammar-constrained decoding counters (EngineStats.grammar; docs/metrics.md). Apart from grammar_matcher.h so that
// stats.h can hold them without pulling in the matcher.
#pragma once
#include <atomic>
#include <cstdint>

namespace tl {

struct GrammarCounters {
    std::atomic<uint64_t> requests{0};       // requests submitted with a grammar
    std::atomic<uint64_t> mask_ns{0};        // time spent constraining tokens (check, mask, resample, advance)
    std::atomic<uint64_t> tokens{0};         // tokens sampled under an active grammar
    std::atomic<uint64_t> fast_accepts{0};   // tokens the unconstrained sampler picked and the grammar allowed
    std::atomic<uint64_t> masks_computed{0}; // full masks computed (vocabulary trie walks)
    std::atomic<uint64_t> mask_cache_hits{0};
    std::atomic<uint64_t> dead_ends{0};  // requests ended because no token could continue the text
    std::atomic<uint64_t> limit_hits{0}; // transitions refused by a runtime bound (stacks, depth, expansion steps)
    std::atomic<uint64_t> completed{0};  // requests ended because the grammar could not continue (complete)
    std::atomic<uint64_t> triggered{0};  // lazy grammars whose trigger appeared
};

struct GrammarStatsSnapshot {
    uint64_t requests = 0, tokens = 0, fast_accepts = 0, masks_computed = 0, mask_cache_hits = 0, dead_ends = 0,
             limit_hits = 0, completed = 0, triggered = 0;
    double mask_seconds = 0;
};

} // namespace tl
