// The grammar's sampler stage (grammar_sampling.h).
#include "grammar_sampling.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

namespace tl {

namespace {
uint64_t ns_since(std::chrono::steady_clock::time_point t0) {
    return (uint64_t) std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0)
        .count();
}
} // namespace

int32_t sample_with_grammar(GrammarConstraint & gc, Sampler & sampler, float * logits, int32_t n_vocab,
                            TokenLogprob * lp, GrammarCounters & counters, uint64_t * sampler_ns) {
    if (!gc.active()) {
        const auto t0 = std::chrono::steady_clock::now();
        const int32_t tok = sampler.sample(logits, n_vocab, lp);
        *sampler_ns += ns_since(t0);
        return tok;
    }
    GrammarRuntime & rt = gc.runtime();
    rt.maybe_reset(); // a safe point: no state id of this step is held yet
    counters.tokens.fetch_add(1, std::memory_order_relaxed);
    const int32_t state = gc.state();
    const uint64_t index = gc.n_sampled++;
    // The fast path pays off when the model mostly follows the grammar. After two misses in a row it is skipped,
    // and retried every 8th token; the choice depends only on this request's own tokens, so a seed still gives the
    // same tokens whatever other requests did to the caches.
    const bool try_fast = !lp && (gc.fast_misses < 2 || index % 8 == 0);
    float * masked = logits;
    bool first_draw_counted = false;
    if (try_fast) {
        gc.scratch.assign(logits, logits + n_vocab); // the sampler may rewrite its input
        const auto t0 = std::chrono::steady_clock::now();
        const int32_t tok = sampler.sample(logits, n_vocab, nullptr, /*record_choice=*/false);
        *sampler_ns += ns_since(t0); // what an unconstrained request pays too
        first_draw_counted = true;
        if (rt.allowed(state, tok)) {
            sampler.record(tok); // the trial draw stands: count it for the penalties
            gc.fast_misses = 0;
            counters.fast_accepts.fetch_add(1, std::memory_order_relaxed);
            return tok;
        }
        ++gc.fast_misses;
        masked = gc.scratch.data();
    }
    bool cached = false;
    const std::vector<uint64_t> & bits = rt.mask(state, &cached);
    (cached ? counters.mask_cache_hits : counters.masks_computed).fetch_add(1, std::memory_order_relaxed);
    const float neg_inf = -std::numeric_limits<float>::infinity();
    bool any = false;
    const size_t words = ((size_t) n_vocab + 63) / 64;
    for (size_t w = 0; w < words; ++w) {
        const uint64_t m = w < bits.size() ? bits[w] : 0;
        const size_t base = w * 64, end = std::min<size_t>(base + 64, (size_t) n_vocab);
        if (m == 0) {
            std::fill(masked + base, masked + end, neg_inf);
            continue;
        }
        any = true;
        if (m == ~0ull) continue;
        for (size_t i = base; i < end; ++i)
            if (!((m >> (i - base)) & 1)) masked[i] = neg_inf;
    }
    if (!any) return -1;
    const auto t0 = std::chrono::steady_clock::now();
    const int32_t tok = sampler.sample(masked, n_vocab, lp);
    // Without a first draw this is the request's one sampler call (unconstrained requests pay it too); after a
    // missed first draw it is the grammar's extra cost.
    if (!first_draw_counted) *sampler_ns += ns_since(t0);
    return tok;
}

} // namespace tl
